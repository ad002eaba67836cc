//! What the isolators ask of a container's processes, filled in by [`crate::Isolator::prepare`]
//! in the agent and carried to the supervisor in its `spec.json`. The supervisor applies it in
//! the container's init (namespaces, mounts) and in the task between `fork` and `execve`
//! (rlimits, capabilities, no_new_privs, seccomp).

use crate::namespaces::Namespaces;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything the isolators decide about a container before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The namespaces init is cloned into; none until an isolator asks for one.
    pub namespaces: Namespaces,
    /// The hostname of the container's uts namespace (`namespaces/uts`).
    pub hostname: Option<String>,
    /// What the supervisor applies inside the container.
    pub process: ProcessIsolation,
}

impl Default for Launch {
    fn default() -> Self {
        Self {
            namespaces: Namespaces::NONE,
            hostname: None,
            process: ProcessIsolation::default(),
        }
    }
}

/// The part of [`Launch`] that the supervisor applies itself; a `spec.json` field. Every field
/// defaults to "leave as is", so specs written before a field existed still parse and mean what
/// they meant.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct ProcessIsolation {
    /// Mounts made in the container's mount namespace by its init (`filesystem/linux`).
    pub mounts: Mounts,
    /// The capability bounding set, as names such as `CAP_CHOWN` (`linux/capabilities`);
    /// `None` leaves the capabilities alone.
    pub bounding_capabilities: Option<Vec<String>>,
    /// `prctl(PR_SET_NO_NEW_PRIVS)` before `execve` (`linux/nnp`). The supervisor sets it
    /// whatever this says (kept for specs and runtime specs that read it).
    pub no_new_privs: bool,
    /// The seccomp profile installed right before `execve` (`linux/seccomp`); `None`:
    /// unconfined.
    pub seccomp: Option<crate::linux::seccomp::Profile>,
    /// Resource limits set before `execve` (`posix/rlimits`).
    pub rlimits: Vec<Rlimit>,
}

/// Mounts inside the container's mount namespace, made in this order.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct Mounts {
    /// A fresh proc filesystem on `/proc` (showing the container's own pid namespace).
    pub proc: bool,
    /// A fresh tmpfs on `/tmp`.
    pub tmp: Option<Tmpfs>,
    /// Docker's read-only kernel paths: `/proc/sys`, `/proc/sysrq-trigger`, `/proc/irq`,
    /// `/proc/bus`, `/proc/fs`, and `/sys` with every mount below it (cgroups included), so that
    /// a root task cannot turn the host's knobs or leave its cgroup.
    pub read_only_kernel: bool,
    /// Host directories covered by an empty read-only tmpfs (the agent's work dir, the BPF
    /// filesystem): the task sees none of what lies below them but its own sandbox and the
    /// binds' sources, bound back at their paths.
    pub masks: Vec<PathBuf>,
    /// Read-only bind mounts of host paths.
    pub read_only_binds: Vec<BindMount>,
    /// Read-write bind mounts of host paths, made after the read-only ones (the agent's
    /// persistent volumes in a command task's sandbox).
    pub read_write_binds: Vec<BindMount>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Tmpfs {
    /// `size=` of the tmpfs; `None`: the kernel's default (half of the RAM).
    pub size_bytes: Option<u64>,
}

/// A bind mount of `source` (a host path) on `target` (an absolute path that exists).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
}

/// One resource limit: `resource` is a lowercase name without prefix (`nofile`, `core`, …, see
/// [`crate::posix::rlimits::RESOURCES`]); `None` is `RLIM_INFINITY` ("unlimited").
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: String,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}
