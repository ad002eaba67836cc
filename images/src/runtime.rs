//! The OCI runtime spec (`config.json`, built with `oci-spec`) of a container started from an
//! image: the image's config merged with the task's command, the isolators' namespaces,
//! capabilities, rlimits and no_new_privs, the sandbox at `/mnt/mesos/sandbox`, host-path
//! volumes, and the container's cgroup. It carries no `linux.resources`: the agent's isolators
//! have written the container's limits into its cgroup before the runtime starts anything
//! (the runtime only joins the cgroup), so limits have a single writer.

use crate::user::ResolvedUser;
use crate::ImageConfig;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use strata_schema::CommandInfo;

/// Where the sandbox appears in the container (Mesos' path).
pub const SANDBOX: &str = "/mnt/mesos/sandbox";

/// The argv of a task with an image, merging the task's command with the image's config as
/// Mesos does: a shell command runs through `/bin/sh -c` (the image's entrypoint is ignored); a
/// command with a value runs that argv; a command with arguments only appends them to the
/// entrypoint (replacing Cmd); no command runs Entrypoint + Cmd.
pub fn argv(command: &CommandInfo, config: &ImageConfig) -> Result<Vec<String>, String> {
    let argv = if command.shell && !command.value.is_empty() {
        vec!["/bin/sh".into(), "-c".into(), command.value.clone()]
    } else if !command.value.is_empty() {
        if command.arguments.is_empty() {
            vec![command.value.clone()]
        } else {
            command.arguments.clone()
        }
    } else if !command.arguments.is_empty() {
        config
            .entrypoint
            .iter()
            .chain(&command.arguments)
            .cloned()
            .collect()
    } else {
        config
            .entrypoint
            .iter()
            .chain(&config.cmd)
            .cloned()
            .collect()
    };
    if argv.is_empty() {
        return Err(
            "the task has no command and the image has neither Entrypoint nor Cmd".to_string(),
        );
    }
    Ok(argv)
}

/// The environment: the image's, then `extra` (the Mesos variables), then the task's own, later
/// entries replacing earlier ones of the same name.
pub fn env(
    config: &ImageConfig,
    extra: &[(String, String)],
    task: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| {
        out.retain(|(n, _)| n != name);
        out.push((name.to_string(), value.to_string()));
    };
    for entry in &config.env {
        match entry.split_once('=') {
            Some((n, v)) => set(n, v),
            None => set(entry, ""),
        }
    }
    if !config.env.iter().any(|e| e.starts_with("PATH=")) {
        set(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    for (n, v) in extra.iter().chain(task) {
        set(n, v);
    }
    out
}

/// A bind mount of a host path into the container.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    /// Absolute, in the container.
    pub destination: String,
    pub read_only: bool,
}

/// Which namespaces the container gets besides its mount namespace.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Namespaces {
    pub pid: bool,
    pub uts: bool,
    pub ipc: bool,
    pub net: bool,
}

/// Everything the spec is made of.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub rootfs: &'a Path,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub cwd: &'a str,
    pub user: &'a ResolvedUser,
    pub hostname: &'a str,
    pub namespaces: Namespaces,
    /// The container's cgroup, relative to the cgroup2 mount the runtime sees.
    pub cgroups_path: &'a str,
    /// The sandbox first, then volumes and read-only binds, in order.
    pub binds: &'a [Bind],
    /// A private tmpfs on `/tmp`: `Some(size)` (None: the kernel's default size).
    pub tmp: Option<Option<u64>>,
    /// `None` keeps every capability (root's full set).
    pub bounding_capabilities: Option<&'a [String]>,
    pub no_new_privs: bool,
    /// (resource name as in `posix/rlimits`, soft, hard); `None` = unlimited.
    pub rlimits: &'a [(String, Option<u64>, Option<u64>)],
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, String> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| format!("mount {destination}: {e}"))
}

fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    Some(match name {
        "cpu" => PosixRlimitType::RlimitCpu,
        "fsize" => PosixRlimitType::RlimitFsize,
        "data" => PosixRlimitType::RlimitData,
        "stack" => PosixRlimitType::RlimitStack,
        "core" => PosixRlimitType::RlimitCore,
        "rss" => PosixRlimitType::RlimitRss,
        "nproc" => PosixRlimitType::RlimitNproc,
        "nofile" => PosixRlimitType::RlimitNofile,
        "memlock" => PosixRlimitType::RlimitMemlock,
        "as" => PosixRlimitType::RlimitAs,
        "locks" => PosixRlimitType::RlimitLocks,
        "sigpending" => PosixRlimitType::RlimitSigpending,
        "msgqueue" => PosixRlimitType::RlimitMsgqueue,
        "nice" => PosixRlimitType::RlimitNice,
        "rtprio" => PosixRlimitType::RlimitRtprio,
        "rttime" => PosixRlimitType::RlimitRttime,
        _ => return None,
    })
}

/// Every capability this process may pass on: its own bounding set (`CapBnd`), which may be
/// smaller than what the kernel knows (the agent itself may run bounded).
fn all_capabilities() -> HashSet<Capability> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    caps_by_number()
        .into_iter()
        .filter(|(n, _)| bounding & (1u64 << n) != 0)
        .map(|(_, c)| c)
        .collect()
}

fn caps_by_number() -> Vec<(u8, Capability)> {
    use Capability::*;
    vec![
        (0, Chown),
        (1, DacOverride),
        (2, DacReadSearch),
        (3, Fowner),
        (4, Fsetid),
        (5, Kill),
        (6, Setgid),
        (7, Setuid),
        (8, Setpcap),
        (9, LinuxImmutable),
        (10, NetBindService),
        (11, NetBroadcast),
        (12, NetAdmin),
        (13, NetRaw),
        (14, IpcLock),
        (15, IpcOwner),
        (16, SysModule),
        (17, SysRawio),
        (18, SysChroot),
        (19, SysPtrace),
        (20, SysPacct),
        (21, SysAdmin),
        (22, SysBoot),
        (23, SysNice),
        (24, SysResource),
        (25, SysTime),
        (26, SysTtyConfig),
        (27, Mknod),
        (28, Lease),
        (29, AuditWrite),
        (30, AuditControl),
        (31, Setfcap),
        (32, MacOverride),
        (33, MacAdmin),
        (34, Syslog),
        (35, WakeAlarm),
        (36, BlockSuspend),
        (37, AuditRead),
        (38, Perfmon),
        (39, Bpf),
        (40, CheckpointRestore),
    ]
}

/// Builds the runtime spec.
pub fn build(input: &SpecInput<'_>) -> Result<Spec, String> {
    let ns = input.namespaces;
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
    ];
    if ns.ipc {
        mounts.push(mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?);
    }
    if let Some(size) = input.tmp {
        let size = size.map(|b| format!("size={b}"));
        let mut options = vec!["nosuid", "nodev", "mode=1777"];
        if let Some(size) = &size {
            options.push(size);
        }
        mounts.push(mount("/tmp", "tmpfs", "tmpfs", &options)?);
    }
    for bind in input.binds {
        let mut options = vec!["rbind", "rprivate"];
        if bind.read_only {
            options.push("ro");
        }
        mounts.push(mount(
            &bind.destination,
            "bind",
            &bind.source.to_string_lossy(),
            &options,
        )?);
    }

    let user = UserBuilder::default()
        .uid(input.user.uid)
        .gid(input.user.gid)
        .additional_gids(input.user.additional_gids.clone())
        .build()
        .map_err(|e| format!("user: {e}"))?;
    let bounding: HashSet<Capability> = match input.bounding_capabilities {
        Some(names) => names
            .iter()
            .map(|n| {
                Capability::from_str(n.trim_start_matches("CAP_"))
                    .map_err(|_| format!("unknown capability {n}"))
            })
            .collect::<Result<_, _>>()?,
        None => all_capabilities(),
    };
    // Root keeps its (bounded) capabilities; another user starts with none, as after execve.
    let granted = if input.user.uid == 0 {
        bounding.clone()
    } else {
        HashSet::new()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(bounding)
        .effective(granted.clone())
        .permitted(granted)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(|e| format!("capabilities: {e}"))?;
    let mut rlimits = Vec::new();
    for (name, soft, hard) in input.rlimits {
        let typ = rlimit_type(name).ok_or_else(|| format!("unknown rlimit {name}"))?;
        rlimits.push(
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(soft.unwrap_or(u64::MAX))
                .hard(hard.unwrap_or(u64::MAX))
                .build()
                .map_err(|e| format!("rlimit {name}: {e}"))?,
        );
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(input.argv.to_vec())
        .env(
            input
                .env
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>(),
        )
        .cwd(input.cwd)
        .user(user)
        .capabilities(capabilities)
        .rlimits(rlimits)
        .no_new_privileges(input.no_new_privs)
        .build()
        .map_err(|e| format!("process: {e}"))?;

    let mut namespaces = vec![LinuxNamespaceType::Mount];
    if ns.pid {
        namespaces.push(LinuxNamespaceType::Pid);
    }
    if ns.uts {
        namespaces.push(LinuxNamespaceType::Uts);
    }
    if ns.ipc {
        namespaces.push(LinuxNamespaceType::Ipc);
    }
    if ns.net {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| {
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(|e| format!("namespace: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(input.cgroups_path))
        .masked_paths(oci_spec::runtime::get_default_maskedpaths())
        .readonly_paths(oci_spec::runtime::get_default_readonly_paths())
        .build()
        .map_err(|e| format!("linux: {e}"))?;
    // Limits are the agent's isolators' (already in the cgroup); devices the runtime's defaults.
    linux.set_resources(None);
    let root = RootBuilder::default()
        .path(input.rootfs)
        .readonly(false)
        .build()
        .map_err(|e| format!("root: {e}"))?;
    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(|e| format!("spec: {e}"))?;
    if ns.uts {
        spec.set_hostname(Some(input.hostname.to_string()));
    }
    Ok(spec)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config() -> ImageConfig {
        ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["--default".into()],
            env: vec!["PATH=/image/bin".into(), "A=image".into()],
            ..ImageConfig::default()
        }
    }

    #[test]
    fn commands_merge_as_mesos_does() {
        let c = config();
        assert_eq!(
            argv(&CommandInfo::default(), &c).unwrap(),
            ["/entry", "--default"]
        );
        assert_eq!(
            argv(&CommandInfo::shell("echo hi"), &c).unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
        assert_eq!(
            argv(&CommandInfo::argv(vec!["ls".into(), "-l".into()]), &c).unwrap(),
            ["ls", "-l"]
        );
        let args_only = CommandInfo {
            arguments: vec!["--x".into()],
            ..CommandInfo::default()
        };
        assert_eq!(argv(&args_only, &c).unwrap(), ["/entry", "--x"]);
        assert!(argv(&CommandInfo::default(), &ImageConfig::default())
            .unwrap_err()
            .contains("Entrypoint"));
    }

    #[test]
    fn environments_layer() {
        let env = env(
            &config(),
            &[("MESOS_SANDBOX".into(), SANDBOX.into())],
            &[("A".into(), "task".into())],
        );
        assert!(env.contains(&("PATH".into(), "/image/bin".into())));
        assert!(env.contains(&("A".into(), "task".into())));
        assert!(env.contains(&("MESOS_SANDBOX".into(), SANDBOX.into())));
        assert_eq!(env.iter().filter(|(n, _)| n == "A").count(), 1);
    }

    #[test]
    fn specs_carry_namespaces_mounts_and_limits() {
        let binds = [Bind {
            source: "/host/sandbox".into(),
            destination: SANDBOX.into(),
            read_only: false,
        }];
        let caps = vec!["CAP_CHOWN".to_string(), "CAP_KILL".to_string()];
        let rlimits = vec![("nofile".to_string(), Some(1024), Some(4096))];
        let spec = build(&SpecInput {
            rootfs: Path::new("/c/rootfs"),
            argv: &["sh".to_string()],
            env: &[("A".into(), "1".into())],
            cwd: SANDBOX,
            user: &ResolvedUser::ROOT,
            hostname: "task-1",
            namespaces: Namespaces {
                pid: true,
                uts: true,
                ipc: true,
                net: false,
            },
            cgroups_path: "/c1",
            binds: &binds,
            tmp: Some(Some(1 << 20)),
            bounding_capabilities: Some(&caps),
            no_new_privs: true,
            rlimits: &rlimits,
        })
        .unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["hostname"], "task-1");
        assert_eq!(json["linux"]["cgroupsPath"], "/c1");
        assert!(json["linux"].get("resources").is_none());
        let ns: Vec<&str> = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["mount", "pid", "uts", "ipc"]);
        let mounts = json["mounts"].as_array().unwrap();
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == SANDBOX && m["source"] == "/host/sandbox"));
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/tmp" && m["options"][3] == "size=1048576"));
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(
            json["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
