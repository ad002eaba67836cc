//! Namespaces: the `namespaces/pid`, `namespaces/ipc` and `namespaces/uts` isolators, and the
//! helpers a container's init uses to create and set up its namespaces (a private mount tree
//! with a fresh `/proc`, the hostname).
//!
//! The helpers run in the single-threaded supervisor and its children, never in the agent daemon.

pub mod ipc;
pub mod pid;
pub mod uts;

use crate::selection::Host;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The namespaces a container gets. The default is Mesos' `namespaces/pid` plus mount, uts and
/// ipc isolation; the network namespace is opt-in (a fresh one has only a down loopback).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(default)]
pub struct Namespaces {
    pub pid: bool,
    pub mount: bool,
    pub uts: bool,
    pub ipc: bool,
    pub net: bool,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self {
            pid: true,
            mount: true,
            uts: true,
            ipc: true,
            net: false,
        }
    }
}

impl Namespaces {
    /// Only the host's namespaces.
    pub const NONE: Namespaces = Namespaces {
        pid: false,
        mount: false,
        uts: false,
        ipc: false,
        net: false,
    };

    /// The `clone(2)`/`unshare(2)` flags of all these namespaces.
    pub fn clone_flags(&self) -> CloneFlags {
        let mut flags = self.flags_without_pid();
        flags.set(CloneFlags::CLONE_NEWPID, self.pid);
        flags
    }

    /// The flags of all but the pid namespace: what a process that already is the init of its
    /// pid namespace unshares for itself (a pid namespace only applies to the caller's children).
    pub fn flags_without_pid(&self) -> CloneFlags {
        let mut flags = CloneFlags::empty();
        flags.set(CloneFlags::CLONE_NEWNS, self.mount);
        flags.set(CloneFlags::CLONE_NEWUTS, self.uts);
        flags.set(CloneFlags::CLONE_NEWIPC, self.ipc);
        flags.set(CloneFlags::CLONE_NEWNET, self.net);
        flags
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("failed to create namespaces ({flags:?}): {source}")]
    Unshare {
        flags: CloneFlags,
        source: nix::Error,
    },
    #[error("failed to make the mounts below {} private: {source}", path.display())]
    MakePrivate { path: PathBuf, source: nix::Error },
    #[error("failed to mount proc on {}: {source}", path.display())]
    MountProc { path: PathBuf, source: nix::Error },
    #[error("failed to set the hostname to {name:?}: {source}")]
    Hostname { name: String, source: nix::Error },
}

/// Fails with a reason unless the kernel has namespaces of `kind` (`/proc/self/ns/<kind>`).
pub(crate) fn require_namespace(host: &Host, kind: &str) -> Result<(), String> {
    let path = host.proc.join("self/ns").join(kind);
    if path.exists() {
        Ok(())
    } else {
        Err(format!(
            "this kernel has no {kind} namespaces ({} is missing)",
            path.display()
        ))
    }
}

/// Moves the caller into new namespaces (`unshare(2)`).
pub fn unshare(flags: CloneFlags) -> Result<(), NamespaceError> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).map_err(|source| NamespaceError::Unshare { flags, source })
}

/// Makes every mount at and below `path` private (`MS_REC | MS_PRIVATE`), so that mounts made
/// in the container's mount namespace never propagate to the host (and back).
pub fn make_rprivate(path: &Path) -> Result<(), NamespaceError> {
    nix::mount::mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|source| NamespaceError::MakePrivate {
        path: path.to_path_buf(),
        source,
    })
}

/// Mounts a proc filesystem of the caller's pid namespace on `path` (normally `/proc`), so that
/// `ps` in the container shows only the container.
pub fn mount_proc(path: &Path) -> Result<(), NamespaceError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    nix::mount::mount(Some("proc"), path, Some("proc"), flags, None::<&str>).map_err(|source| {
        NamespaceError::MountProc {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Sets the hostname of the caller's uts namespace.
pub fn set_hostname(name: &str) -> Result<(), NamespaceError> {
    nix::unistd::sethostname(name).map_err(|source| NamespaceError::Hostname {
        name: name.to_string(),
        source,
    })
}

/// `CLONE_INTO_CGROUP` (Linux 5.7): start the child in the cgroup given by `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `clone3(2)` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Like `fork(2)`, but the child starts in new namespaces (`flags`) and, with `cgroup` (an open
/// cgroup2 directory), in that cgroup: `clone3(2)` with `CLONE_INTO_CGROUP`. Joining a cgroup at
/// birth takes only the read side of the kernel's threadgroup lock, where moving a process
/// (writing `cgroup.procs`) takes the write side and waits for an RCU grace period, often
/// milliseconds. Returns `ENOSYS`, `E2BIG` or `EINVAL` on kernels without `clone3` or
/// `CLONE_INTO_CGROUP` (before 5.3/5.7): fall back to `fork`, `unshare` and `cgroup.procs` then.
///
/// # Safety
/// As for `fork(2)`, and more: the child returns on a copy of the caller's stack without glibc's
/// fork bookkeeping (atfork handlers, the cached thread id). Call it only from a single-threaded
/// process, and in the child use only plain system calls, allocation and glibc's own `fork`.
pub unsafe fn clone_into(
    flags: CloneFlags,
    cgroup: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<nix::unistd::ForkResult, nix::Error> {
    use std::os::fd::AsRawFd;
    let mut args = CloneArgs {
        flags: u64::from(flags.bits() as u32),
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size passed; no stack is given, so the child
    // runs on a copy-on-write copy of this one, as after fork. The caller upholds the rest.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        0 => Ok(nix::unistd::ForkResult::Child),
        pid if pid > 0 => Ok(nix::unistd::ForkResult::Parent {
            child: nix::unistd::Pid::from_raw(pid as i32),
        }),
        _ => Err(nix::Error::last()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_namespaces_follow_mesos() {
        let ns = Namespaces::default();
        assert_eq!(
            ns.clone_flags(),
            CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWIPC
        );
        assert!(!ns.flags_without_pid().contains(CloneFlags::CLONE_NEWPID));
        assert!(Namespaces::NONE.clone_flags().is_empty());
        let net = Namespaces {
            net: true,
            ..Namespaces::NONE
        };
        assert_eq!(net.clone_flags(), CloneFlags::CLONE_NEWNET);
    }

    #[test]
    fn missing_fields_take_their_defaults() {
        let ns: Namespaces = serde_json::from_str(r#"{"net": true}"#).unwrap();
        assert_eq!(
            ns,
            Namespaces {
                net: true,
                ..Namespaces::default()
            }
        );
    }
}
