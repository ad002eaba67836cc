//! `linux/seccomp`: the task runs under a seccomp filter modeled on Docker's default profile.
//!
//! Docker's default profile is an allow list whose default action is `EPERM`; what it leaves out
//! (or allows only to holders of capabilities outside Docker's default set) is what this
//! profile denies, with the same `EPERM`, so that programs see the error they would see under
//! Docker:
//!
//! - kernel modules: `init_module`, `finit_module`, `delete_module` (and the obsolete
//!   `create_module`, `query_module`, `get_kernel_syms`); `kexec_load`, `kexec_file_load`;
//! - tracing other processes: `ptrace`, `process_vm_readv`, `process_vm_writev`, `kcmp`,
//!   `pidfd_getfd`; BPF and perf: `bpf`, `perf_event_open`, `lookup_dcookie`;
//! - the mount API: `mount`, `umount2`, `pivot_root`, `open_tree`, `move_mount`, `fsopen`,
//!   `fsconfig`, `fsmount`, `fspick`, `mount_setattr`;
//! - namespaces: `unshare` and `setns` outright, `clone` with any `CLONE_NEW*` flag;
//!   `clone3` (whose flags a filter cannot read) fails with `ENOSYS`, as under Docker, so that
//!   libcs fall back to `clone`;
//! - the kernel keyring: `keyctl`, `add_key`, `request_key`;
//! - the machine: `reboot`, `swapon`, `swapoff`, `acct`, `settimeofday`, `clock_settime`,
//!   `clock_adjtime`, `adjtimex`, `syslog`, `quotactl`, `quotactl_fd`, `nfsservctl`, `uselib`,
//!   `ustat`, `sysfs`, `_sysctl`, `vhangup`, `iopl`, `ioperm`, `fanotify_init`;
//! - `open_by_handle_at`, `userfaultfd`, `io_uring_setup`/`_enter`/`_register` (denied by
//!   Docker since 25.0), `personality` with anything but the values Docker allows (0, 8,
//!   0x20000, 0x20008, 0xffffffff), and `socket(AF_VSOCK)`;
//! - every system call of another ABI: on x86_64, 32-bit (`int 0x80`, checked through the
//!   architecture field) and x32 (numbers with bit 30 set).
//!
//! The filter is compiled with `seccompiler` (pure Rust, no libseccomp) by the supervisor before
//! it forks, and installed by the task as the very last step before `execve` (after
//! `no_new_privs`, which an unprivileged user needs to install a filter); for tasks with an image,
//! by the workload executor libcontainer calls once the container is set up (see
//! `strata_agent::image_container`), so it never stops the runtime's own setup. The agent's
//! `--seccomp-profile-name` selects the profile: `default` (this one), `unconfined` (none), or a
//! profile file in Docker's JSON format (Mesos' `--seccomp_config_dir` holds them), see
//! [`docker`].

use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
#[cfg(target_arch = "x86_64")]
use seccompiler::sock_filter;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const NAME: &str = "linux/seccomp";

/// A seccomp profile a task can run under; a `spec.json` field.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Modeled on Docker's default profile (see the module's documentation).
    #[default]
    Default,
    /// A profile file in Docker's JSON format (see [`docker`]).
    File(PathBuf),
}

/// The value of `--seccomp-profile-name` that turns seccomp off.
pub const UNCONFINED: &str = "unconfined";

/// Resolves `--seccomp-profile-name` (with Mesos' `--seccomp-config-dir`): `default`,
/// `unconfined` (`None`: no filter), or a profile file: absolute, or relative to `config_dir`.
pub fn profile_named(name: &str, config_dir: Option<&Path>) -> Result<Option<Profile>, String> {
    match name.trim() {
        "default" => Ok(Some(Profile::Default)),
        UNCONFINED => Ok(None),
        "" => Err("the seccomp profile name is empty".to_string()),
        file if Path::new(file).is_absolute() => Ok(Some(Profile::File(PathBuf::from(file)))),
        file => match config_dir {
            Some(dir) => Ok(Some(Profile::File(dir.join(file)))),
            None => Err(format!(
                "unknown seccomp profile {file:?} (known: default, unconfined, an absolute path, \
                 or a file in --seccomp-config-dir)"
            )),
        },
    }
}

#[derive(Debug)]
pub struct SeccompIsolator {
    /// `None`: unconfined.
    pub profile: Option<Profile>,
}

impl Isolator for SeccompIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, _container: &Container, launch: &mut Launch) -> Result<(), IsolatorError> {
        launch.process.seccomp = self.profile.clone();
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp is not supported on {0}")]
    Arch(&'static str),
    #[error("failed to compile the seccomp filter: {0}")]
    Compile(String),
    #[error("the seccomp profile {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("failed to install the seccomp filter: {0}")]
    Install(std::io::Error),
}

/// A compiled profile: BPF programs installed in order (the kernel runs them all and takes the
/// strictest answer; of equal ones, the last installed's).
#[derive(Debug, Clone, PartialEq)]
pub struct Filters(Vec<BpfProgram>);

impl Filters {
    /// Installs the filters on the calling thread. It needs `no_new_privs` (or
    /// `CAP_SYS_ADMIN`); after it, the thread and everything it executes or forks is filtered for
    /// good. Makes system calls only (no allocation): safe between `fork` and `execve`.
    pub fn install(&self) -> Result<(), SeccompError> {
        for program in &self.0 {
            seccompiler::apply_filter(program).map_err(|err| match err {
                seccompiler::Error::Seccomp(io) => SeccompError::Install(io),
                other => SeccompError::Install(std::io::Error::other(other.to_string())),
            })?;
        }
        Ok(())
    }

    /// The BPF programs, in installation order.
    pub fn programs(&self) -> &[BpfProgram] {
        &self.0
    }
}

fn target_arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH))
}

/// The system calls the default profile denies outright.
fn denied() -> Vec<libc::c_long> {
    let mut calls = vec![
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kcmp,
        libc::SYS_pidfd_getfd,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_lookup_dcookie,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_reboot,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_acct,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_syslog,
        libc::SYS_quotactl,
        libc::SYS_quotactl_fd,
        libc::SYS_nfsservctl,
        libc::SYS_vhangup,
        libc::SYS_fanotify_init,
        libc::SYS_open_by_handle_at,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        174, // create_module
        177, // get_kernel_syms
        178, // query_module
        libc::SYS_uselib,
        libc::SYS_ustat,
        libc::SYS_sysfs,
        libc::SYS__sysctl,
        libc::SYS_iopl,
        libc::SYS_ioperm,
    ]);
    calls
}

/// The `CLONE_NEW*` flags `clone` may not carry.
const NAMESPACE_FLAGS: [libc::c_int; 8] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    0x80, // CLONE_NEWTIME
];

/// The `personality` values Docker allows: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32 |
/// UNAME26 (0x20008 is PER_LINUX32_3GB's neighbour in Docker's list), and the query 0xffffffff.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

const AF_VSOCK: u64 = 40;

fn condition(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
        .map_err(|e| SeccompError::Compile(e.to_string()))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conditions).map_err(|e| SeccompError::Compile(e.to_string()))
}

/// The default profile's rules: system call → conditions, any of which denies it (none:
/// always).
fn default_rules() -> Result<BTreeMap<i64, Vec<SeccompRule>>, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        denied().into_iter().map(|nr| (nr, Vec::new())).collect();
    let clone = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let flag = u64::from(flag.unsigned_abs());
            rule(vec![condition(0, SeccompCmpOp::MaskedEq(flag), flag)?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_clone, clone);
    let personality = PERSONALITIES
        .iter()
        .map(|&p| condition(0, SeccompCmpOp::Ne, p))
        .collect::<Result<Vec<_>, _>>()?;
    rules.insert(libc::SYS_personality, vec![rule(personality)?]);
    rules.insert(
        libc::SYS_socket,
        vec![rule(vec![condition(0, SeccompCmpOp::Eq, AF_VSOCK)?])?],
    );
    Ok(rules)
}

fn errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

/// Compiles `rules` into one program answering `action` to a match and `mismatch` otherwise
/// (see [`program_with`]).
fn program(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    action: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram, SeccompError> {
    program_with(rules, SeccompAction::Allow, action, arch)
}

/// Compiles `rules` into one program answering `action` to a match. seccompiler's program
/// starts with its architecture check (`ld arch; jeq ARCH, 1, 0; ret KILL_PROCESS`): another
/// ABI gets `EPERM` instead of death, as under Docker, and on x86_64 the x32 ABI is refused
/// right after the check.
fn program_with(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    action: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram, SeccompError> {
    let filter = SeccompFilter::new(rules, mismatch, action, arch)
        .map_err(|e| SeccompError::Compile(e.to_string()))?;
    let mut program: BpfProgram =
        BpfProgram::try_from(filter).map_err(|e| SeccompError::Compile(e.to_string()))?;
    match program.get_mut(2) {
        Some(ret) if ret.code == BPF_RET_K && ret.k == libc::SECCOMP_RET_KILL_PROCESS => {
            ret.k = errno(libc::EPERM);
        }
        _ => {
            return Err(SeccompError::Compile(
                "unexpected architecture check from seccompiler".to_string(),
            ))
        }
    }
    #[cfg(target_arch = "x86_64")]
    program.splice(3..3, refuse_x32());
    Ok(program)
}

/// `BPF_RET | BPF_K` (linux/bpf_common.h).
const BPF_RET_K: u16 = 0x06;

/// Instructions answering `EPERM` to x32 system calls (x86_64 numbers with bit 30 set).
#[cfg(target_arch = "x86_64")]
fn refuse_x32() -> [sock_filter; 3] {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JSET_K: u16 = 0x05 | 0x40;
    const SECCOMP_DATA_NR: u32 = 0;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    [
        sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: SECCOMP_DATA_NR,
        },
        sock_filter {
            code: BPF_JMP_JSET_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: errno(libc::EPERM),
        },
    ]
}

/// Compiles `profile` for this machine's architecture, for a task whose capability bounding set
/// is `capabilities` (`None`: every capability), which decides the conditional rules of a
/// profile file.
pub fn compile(
    profile: &Profile,
    capabilities: Option<&[String]>,
) -> Result<Filters, SeccompError> {
    let arch = target_arch()?;
    match profile {
        Profile::File(path) => docker::compile(path, capabilities, arch),
        Profile::Default => {
            let deny = program(
                default_rules()?,
                SeccompAction::Errno(libc::EPERM as u32),
                arch,
            )?;
            let clone3 = program(
                [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
                SeccompAction::Errno(libc::ENOSYS as u32),
                arch,
            )?;
            Ok(Filters(vec![deny, clone3]))
        }
    }
}

pub mod docker {
    //! Profile files in Docker's (and Mesos') JSON format: `defaultAction` (with
    //! `defaultErrnoRet`), and `syscalls`: `{"names": [...], "action", "errnoRet", "args":
    //! [{"index", "value", "valueTwo", "op"}], "includes"/"excludes": {"caps", "arches"}}`.
    //! Actions: `SCMP_ACT_ALLOW`, `_ERRNO`, `_KILL`/`_KILL_THREAD`, `_KILL_PROCESS`, `_TRAP`,
    //! `_LOG`, `_TRACE`; comparisons: `SCMP_CMP_EQ`, `_NE`, `_LT`, `_LE`, `_GT`, `_GE`,
    //! `_MASKED_EQ` (`value` the mask, `valueTwo` the value); the arguments of one entry must all
    //! match. An entry whose `includes.caps` the task's bounding set lacks (or whose
    //! `excludes.caps` it has), or made for another architecture, is left out; names this
    //! architecture does not have are skipped, as Docker does. `architectures` and `minKernel`
    //! are ignored.
    //!
    //! Compiled as one filter for the default action (allowing what `SCMP_ACT_ALLOW` entries
    //! allow), then one per other action, installed after it: the kernel answers with the
    //! strictest action of all filters, and of equal ones (two `ERRNO`s) with the last
    //! installed, so an entry's own action wins over the default.

    use super::{program_with, SeccompError};
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule, TargetArch,
    };
    use serde::Deserialize;
    use std::collections::BTreeMap;
    use std::path::Path;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct DockerProfile {
        default_action: String,
        #[serde(default)]
        default_errno_ret: Option<u32>,
        #[serde(default)]
        syscalls: Option<Vec<Entry>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        #[serde(default)]
        names: Option<Vec<String>>,
        #[serde(default)]
        name: Option<String>,
        action: String,
        #[serde(default)]
        errno_ret: Option<u32>,
        #[serde(default)]
        args: Option<Vec<Arg>>,
        #[serde(default)]
        includes: Option<Scope>,
        #[serde(default)]
        excludes: Option<Scope>,
    }

    #[derive(Deserialize, Default)]
    struct Scope {
        #[serde(default)]
        caps: Option<Vec<String>>,
        #[serde(default)]
        arches: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Arg {
        index: u8,
        value: u64,
        #[serde(default)]
        value_two: u64,
        op: String,
    }

    fn action(name: &str, errno: Option<u32>) -> Result<SeccompAction, String> {
        Ok(match name {
            "SCMP_ACT_ALLOW" => SeccompAction::Allow,
            "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
            "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
            "SCMP_ACT_TRAP" => SeccompAction::Trap,
            "SCMP_ACT_LOG" => SeccompAction::Log,
            "SCMP_ACT_TRACE" => SeccompAction::Trace(errno.unwrap_or(0)),
            other => return Err(format!("unknown action {other:?}")),
        })
    }

    fn condition(arg: &Arg) -> Result<SeccompCondition, String> {
        let (op, value) = match arg.op.as_str() {
            "SCMP_CMP_EQ" => (SeccompCmpOp::Eq, arg.value),
            "SCMP_CMP_NE" => (SeccompCmpOp::Ne, arg.value),
            "SCMP_CMP_LT" => (SeccompCmpOp::Lt, arg.value),
            "SCMP_CMP_LE" => (SeccompCmpOp::Le, arg.value),
            "SCMP_CMP_GT" => (SeccompCmpOp::Gt, arg.value),
            "SCMP_CMP_GE" => (SeccompCmpOp::Ge, arg.value),
            "SCMP_CMP_MASKED_EQ" => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
            other => return Err(format!("unknown comparison {other:?}")),
        };
        SeccompCondition::new(arg.index, SeccompCmpArgLen::Qword, op, value)
            .map_err(|e| format!("argument {}: {e}", arg.index))
    }

    /// The system call number of `name` on `arch`, from seccompiler's tables.
    fn number(name: &str, arch: TargetArch) -> Option<i64> {
        let json = format!(
            r#"{{"t": {{"mismatch_action": "allow", "match_action": "log", "filter": [{{"syscall": {}}}]}}}}"#,
            serde_json::to_string(name).ok()?
        );
        let map = seccompiler::compile_from_json(json.as_bytes(), arch).ok()?;
        // The arch check (3 instructions), the number's load, then its comparison.
        map.get("t")?.get(4).map(|jeq| i64::from(jeq.k))
    }

    fn arch_names(arch: TargetArch) -> &'static [&'static str] {
        match arch {
            TargetArch::x86_64 => &["amd64", "x86_64", "SCMP_ARCH_X86_64"],
            TargetArch::aarch64 => &["arm64", "aarch64", "SCMP_ARCH_AARCH64"],
            TargetArch::riscv64 => &["riscv64", "SCMP_ARCH_RISCV64"],
        }
    }

    /// Whether an entry applies to a task with `capabilities` (`None`: all) on `arch`.
    fn applies(entry: &Entry, capabilities: Option<&[String]>, arch: TargetArch) -> bool {
        let has = |cap: &String| {
            capabilities.is_none_or(|caps| {
                caps.iter()
                    .any(|c| c.trim_start_matches("CAP_") == cap.trim_start_matches("CAP_"))
            })
        };
        let ours = |a: &String| arch_names(arch).contains(&a.as_str());
        let includes = entry.includes.as_ref();
        let excludes = entry.excludes.as_ref();
        let caps_in = includes
            .and_then(|s| s.caps.as_ref())
            .is_none_or(|caps| caps.iter().all(has));
        let arches_in = includes
            .and_then(|s| s.arches.as_ref())
            .is_none_or(|arches| arches.is_empty() || arches.iter().any(ours));
        let caps_out = excludes
            .and_then(|s| s.caps.as_ref())
            .is_some_and(|caps| caps.iter().any(has));
        let arches_out = excludes
            .and_then(|s| s.arches.as_ref())
            .is_some_and(|arches| arches.iter().any(ours));
        caps_in && arches_in && !caps_out && !arches_out
    }

    type Rules = BTreeMap<i64, Vec<SeccompRule>>;

    /// Adds `rule` (`None`: unconditional) for `nr`; an unconditional entry stays so.
    fn add(rules: &mut Rules, nr: i64, rule: Option<SeccompRule>, unconditional: &mut Vec<i64>) {
        if unconditional.contains(&nr) {
            return;
        }
        match rule {
            None => {
                unconditional.push(nr);
                rules.insert(nr, Vec::new());
            }
            Some(rule) => rules.entry(nr).or_default().push(rule),
        }
    }

    pub(super) fn compile(
        path: &Path,
        capabilities: Option<&[String]>,
        arch: TargetArch,
    ) -> Result<super::Filters, SeccompError> {
        let err = |message: String| SeccompError::File {
            path: path.to_path_buf(),
            message,
        };
        let data = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let profile: DockerProfile =
            serde_json::from_slice(&data).map_err(|e| err(e.to_string()))?;
        let default = action(&profile.default_action, profile.default_errno_ret)
            .map_err(|e| err(format!("defaultAction: {e}")))?;
        // Per action (in the order first seen): its rules, and which numbers are unconditional.
        let mut groups: Vec<(SeccompAction, Rules, Vec<i64>)> = Vec::new();
        for (i, entry) in profile.syscalls.iter().flatten().enumerate() {
            let what = |e: String| err(format!("syscalls[{i}]: {e}"));
            let act = action(&entry.action, entry.errno_ret).map_err(what)?;
            if !applies(entry, capabilities, arch) {
                continue;
            }
            let conditions = entry
                .args
                .iter()
                .flatten()
                .map(condition)
                .collect::<Result<Vec<_>, _>>()
                .map_err(what)?;
            let rule = if conditions.is_empty() {
                None
            } else {
                Some(SeccompRule::new(conditions).map_err(|e| what(e.to_string()))?)
            };
            let index = match groups.iter().position(|(a, ..)| *a == act) {
                Some(index) => index,
                None => {
                    groups.push((act.clone(), Rules::new(), Vec::new()));
                    groups.len() - 1
                }
            };
            let names = entry.names.iter().flatten().chain(entry.name.iter());
            for name in names {
                let Some(nr) = number(name, arch) else {
                    continue;
                };
                let (_, rules, unconditional) = &mut groups[index];
                add(rules, nr, rule.clone(), unconditional);
            }
        }
        let compile_err = |e: SeccompError| err(e.to_string());
        let mut programs = Vec::new();
        if default != SeccompAction::Allow {
            let allowed = groups
                .iter()
                .find(|(a, ..)| *a == SeccompAction::Allow)
                .map(|(_, rules, _)| rules.clone())
                .unwrap_or_default();
            programs.push(
                program_with(allowed, default.clone(), SeccompAction::Allow, arch)
                    .map_err(compile_err)?,
            );
        }
        for (act, rules, _) in groups {
            if act == SeccompAction::Allow || act == default || rules.is_empty() {
                continue;
            }
            programs
                .push(program_with(rules, SeccompAction::Allow, act, arch).map_err(compile_err)?);
        }
        Ok(super::Filters(programs))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cgroups::testing::FakeCgroup;
    use seccompiler::sock_filter;

    #[test]
    fn profile_names_parse() {
        assert_eq!(
            profile_named("default", None).unwrap(),
            Some(Profile::Default)
        );
        assert_eq!(profile_named(" unconfined ", None).unwrap(), None);
        assert!(profile_named("docker.json", None)
            .unwrap_err()
            .starts_with("unknown seccomp profile \"docker.json\""));
        assert_eq!(
            profile_named("docker.json", Some(Path::new("/etc/strata/seccomp"))).unwrap(),
            Some(Profile::File("/etc/strata/seccomp/docker.json".into()))
        );
        assert_eq!(
            profile_named("/p.json", None).unwrap(),
            Some(Profile::File("/p.json".into()))
        );
        assert_eq!(
            serde_json::to_string(&Some(Profile::Default)).unwrap(),
            "\"default\""
        );
    }

    /// A profile file in Docker's format: an allow list, an entry's own errno, arguments, and
    /// entries that depend on capabilities.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn docker_profile_files_compile_to_what_they_say() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.json");
        std::fs::write(
            &path,
            r#"{
              "defaultAction": "SCMP_ACT_ERRNO",
              "defaultErrnoRet": 1,
              "architectures": ["SCMP_ARCH_X86_64"],
              "syscalls": [
                {"names": ["read", "write", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}}
              ]
            }"#,
        )
        .unwrap();
        let profile = Profile::File(path.clone());
        let bounded = compile(&profile, Some(&["CAP_KILL".to_string()])).unwrap();
        let eperm = errno(libc::EPERM);
        let call = |f: &Filters, nr: libc::c_long, arg0: u64| {
            verdict(f, ARCH, nr as u32, [arg0, 0, 0, 0, 0, 0])
        };
        assert_eq!(call(&bounded, libc::SYS_read, 0), libc::SECCOMP_RET_ALLOW);
        assert_eq!(call(&bounded, libc::SYS_getpid, 0), eperm, "not listed");
        assert_eq!(
            call(&bounded, libc::SYS_personality, 0),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(call(&bounded, libc::SYS_personality, 8), eperm);
        assert_eq!(
            call(&bounded, libc::SYS_clone, libc::SIGCHLD as u64),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(
            call(&bounded, libc::SYS_clone, libc::CLONE_NEWNS as u64),
            eperm
        );
        assert_eq!(call(&bounded, libc::SYS_clone3, 0), errno(libc::ENOSYS));
        assert_eq!(
            call(&bounded, libc::SYS_mount, 0),
            eperm,
            "needs CAP_SYS_ADMIN"
        );
        assert_eq!(call(&bounded, libc::SYS_kill, 0), eperm, "s390x only");
        // With every capability the mount entry applies and the clone entry does not.
        let all = compile(&profile, None).unwrap();
        assert_eq!(call(&all, libc::SYS_mount, 0), libc::SECCOMP_RET_ALLOW);
        assert_eq!(call(&all, libc::SYS_clone, libc::SIGCHLD as u64), eperm);

        std::fs::write(&path, r#"{"defaultAction": "SCMP_ACT_SOMETIMES"}"#).unwrap();
        let err = compile(&profile, None).unwrap_err().to_string();
        assert!(
            err.contains("profile.json: defaultAction: unknown action \"SCMP_ACT_SOMETIMES\""),
            "{err}"
        );
        let err = compile(&Profile::File(dir.path().join("none.json")), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.json: No such file"), "{err}");
    }

    #[test]
    fn prepare_carries_the_profile() {
        let fake = FakeCgroup::new(&[], "cpus:1");
        let mut launch = Launch::default();
        SeccompIsolator {
            profile: Some(Profile::Default),
        }
        .prepare(&fake.container(), &mut launch)
        .unwrap();
        assert_eq!(launch.process.seccomp, Some(Profile::Default));
        let mut launch = Launch::default();
        SeccompIsolator { profile: None }
            .prepare(&fake.container(), &mut launch)
            .unwrap();
        assert_eq!(launch.process.seccomp, None);
    }

    /// Runs the profile's BPF programs on a system call the way the kernel does (every filter,
    /// the strictest answer wins; of equal ones, the last installed).
    fn verdict(filters: &Filters, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut answer = u32::MAX;
        for program in filters.programs().iter().rev() {
            let ret = run(program, arch, nr, &args);
            if (ret & libc::SECCOMP_RET_ACTION_FULL) < (answer & libc::SECCOMP_RET_ACTION_FULL) {
                answer = ret;
            }
        }
        answer
    }

    /// A small classic-BPF interpreter for the instructions seccompiler emits.
    fn run(program: &[sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let ins = &program[pc];
            let class = ins.code & 0x07;
            match class {
                0x00 => {
                    let off = ins.k as usize;
                    acc = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap());
                    pc += 1;
                }
                0x04 => {
                    // ALU: only AND with a constant is used (masked comparisons).
                    assert_eq!(ins.code & 0xf0, 0x50, "ALU op {:#x}", ins.code);
                    acc &= ins.k;
                    pc += 1;
                }
                0x05 => {
                    let op = ins.code & 0xf0;
                    if op == 0x00 {
                        pc += 1 + ins.k as usize;
                        continue;
                    }
                    let taken = match op {
                        0x10 => acc == ins.k,
                        0x20 => acc > ins.k,
                        0x30 => acc >= ins.k,
                        0x40 => acc & ins.k != 0,
                        _ => panic!("jump op {:#x}", ins.code),
                    };
                    pc += 1 + usize::from(if taken { ins.jt } else { ins.jf });
                }
                0x06 => return ins.k,
                _ => panic!("instruction {:#x}", ins.code),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xc000_003e;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_default_profile_denies_what_docker_denies() {
        let filters = compile(&Profile::Default, None).unwrap();
        let eperm = errno(libc::EPERM);
        let call = |nr: libc::c_long, args: [u64; 6]| verdict(&filters, ARCH, nr as u32, args);
        for nr in [
            libc::SYS_ptrace,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            libc::SYS_kexec_load,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_keyctl,
            libc::SYS_reboot,
            libc::SYS_swapon,
            libc::SYS_acct,
            libc::SYS_settimeofday,
            libc::SYS_clock_settime,
            libc::SYS_adjtimex,
            libc::SYS_open_by_handle_at,
            libc::SYS_userfaultfd,
            libc::SYS_syslog,
            libc::SYS_iopl,
            libc::SYS_ioperm,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
        ] {
            assert_eq!(call(nr, [0; 6]), eperm, "system call {nr}");
        }
        // Everyday calls pass.
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_wait4,
            libc::SYS_bind,
        ] {
            assert_eq!(
                call(nr, [0; 6]),
                libc::SECCOMP_RET_ALLOW,
                "system call {nr}"
            );
        }
        // clone: a thread or a fork passes, a new namespace does not.
        let thread =
            (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_THREAD) as u64;
        assert_eq!(
            call(libc::SYS_clone, [thread, 0, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(
            call(libc::SYS_clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        for flag in NAMESPACE_FLAGS {
            let flags = libc::SIGCHLD as u64 | u64::from(flag.unsigned_abs());
            assert_eq!(
                call(libc::SYS_clone, [flags, 0, 0, 0, 0, 0]),
                eperm,
                "{flag:#x}"
            );
        }
        assert_eq!(call(libc::SYS_clone3, [0; 6]), errno(libc::ENOSYS));
        // personality: the query and PER_LINUX pass, READ_IMPLIES_EXEC does not.
        assert_eq!(
            call(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        assert_eq!(call(libc::SYS_personality, [0; 6]), libc::SECCOMP_RET_ALLOW);
        assert_eq!(
            call(libc::SYS_personality, [0x0040_0000, 0, 0, 0, 0, 0]),
            eperm
        );
        assert_eq!(call(libc::SYS_socket, [AF_VSOCK, 1, 0, 0, 0, 0]), eperm);
        assert_eq!(
            call(libc::SYS_socket, [libc::AF_INET as u64, 1, 0, 0, 0, 0]),
            libc::SECCOMP_RET_ALLOW
        );
        // Other ABIs: i386 (by its architecture) and x32 (by bit 30 of the number).
        assert_eq!(verdict(&filters, 0x4000_0003, 1, [0; 6]), eperm);
        assert_eq!(
            verdict(&filters, ARCH, 0x4000_0000 | libc::SYS_read as u32, [0; 6]),
            eperm
        );
    }

    /// The filter in a real process: a forked child installs it and reports what the kernel
    /// answers.
    #[test]
    fn an_installed_filter_refuses_ptrace_and_modules() {
        let filters = compile(&Profile::Default, None).unwrap();
        // SAFETY: the child makes system calls only and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| {
                crate::linux::nnp::set_no_new_privs().map_err(|_| 10)?;
                filters.install().map_err(|_| 11)?;
                // SAFETY: plain system calls with harmless arguments.
                let traced = unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
                if traced != -1
                    || std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
                {
                    return Err(12);
                }
                // SAFETY: as above; an invalid descriptor, refused before it is looked at.
                let loaded = unsafe { libc::syscall(libc::SYS_finit_module, -1, c"".as_ptr(), 0) };
                if loaded != -1
                    || std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
                {
                    return Err(13);
                }
                // SAFETY: as above.
                let shared = unsafe { libc::unshare(libc::CLONE_NEWNS) };
                if shared != -1
                    || std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
                {
                    return Err(14);
                }
                // SAFETY: getpid(2).
                if unsafe { libc::getpid() } <= 0 {
                    return Err(15);
                }
                // getpid through the x32 ABI (bit 30 of the number): EPERM, where an unfiltered
                // kernel runs it or answers ENOSYS (no x32 support).
                #[cfg(target_arch = "x86_64")]
                {
                    // SAFETY: a system call without arguments.
                    let x32 = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
                    if x32 != -1
                        || std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
                    {
                        return Err(16);
                    }
                }
                Ok::<(), i32>(())
            })()
            .err()
            .unwrap_or(0);
            // SAFETY: _exit(2) in the forked child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waitpid(2) on our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "see the codes above");
    }
}
