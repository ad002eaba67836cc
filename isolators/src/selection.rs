//! `--isolation`: which isolators a container gets, checked against what this host can do, and
//! the agent's cgroup subtree set up for them.
//!
//! `auto` (the default) selects every isolator that can work on this host and reports the
//! others with the reason; an explicit list (`cgroups/cpu,cgroups/mem,namespaces/pid`) must work
//! entirely, or [`Isolation::setup`] fails naming the first isolator that cannot: a limit is never
//! claimed and left unenforced. `none` selects no isolator (containers still get their own cgroup,
//! which is how the agent tracks and kills them).

use crate::cgroup2::{Cgroup, CgroupError};
use crate::cgroups::{cpu, cpuset, io, mem, pids};
use crate::filesystem::linux::{self as fs_linux, ReadOnlyMount};
use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::{Launch, Rlimit};
use crate::linux::capabilities::{self, Bounding};
use crate::linux::nnp;
use crate::linux::seccomp::{self, Profile};
use crate::namespaces::{ipc, pid, uts};
use crate::network::{self, accounting, ports, NetworkBpf};
use crate::posix::rlimits;
use crate::statistics::{base_usage, ResourceStatistics};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use strata_schema::Resources;

/// The isolators Strata has, in the order they prepare a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    CgroupsCpu,
    CgroupsMem,
    CgroupsPids,
    CgroupsIo,
    CgroupsCpuset,
    NetworkPorts,
    NetworkAccounting,
    NamespacesPid,
    NamespacesIpc,
    NamespacesUts,
    FilesystemLinux,
    LinuxCapabilities,
    LinuxNnp,
    LinuxSeccomp,
    PosixRlimits,
}

impl Kind {
    pub const ALL: [Kind; 15] = [
        Kind::CgroupsCpu,
        Kind::CgroupsMem,
        Kind::CgroupsPids,
        Kind::CgroupsIo,
        Kind::CgroupsCpuset,
        Kind::NetworkPorts,
        Kind::NetworkAccounting,
        Kind::NamespacesPid,
        Kind::NamespacesIpc,
        Kind::NamespacesUts,
        Kind::FilesystemLinux,
        Kind::LinuxCapabilities,
        Kind::LinuxNnp,
        Kind::LinuxSeccomp,
        Kind::PosixRlimits,
    ];

    /// What every container gets, whatever `--isolation` lists (`none` included): the capability
    /// bounding set, no_new_privs and seccomp. Their own flags loosen them
    /// (`--bounding-capabilities all`, `--seccomp-profile-name unconfined`); no_new_privs is
    /// always set.
    pub const CONFINEMENT: [Kind; 3] =
        [Kind::LinuxCapabilities, Kind::LinuxNnp, Kind::LinuxSeccomp];

    /// The Mesos-style name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::CgroupsCpu => cpu::NAME,
            Kind::CgroupsMem => mem::NAME,
            Kind::CgroupsPids => pids::NAME,
            Kind::CgroupsIo => io::NAME,
            Kind::CgroupsCpuset => cpuset::NAME,
            Kind::NetworkPorts => ports::NAME,
            Kind::NetworkAccounting => accounting::NAME,
            Kind::NamespacesPid => pid::NAME,
            Kind::NamespacesIpc => ipc::NAME,
            Kind::NamespacesUts => uts::NAME,
            Kind::FilesystemLinux => fs_linux::NAME,
            Kind::LinuxCapabilities => capabilities::NAME,
            Kind::LinuxNnp => nnp::NAME,
            Kind::LinuxSeccomp => seccomp::NAME,
            Kind::PosixRlimits => rlimits::NAME,
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The cgroup2 controller the isolator needs.
    pub fn controller(self) -> Option<&'static str> {
        match self {
            Kind::CgroupsCpu => Some("cpu"),
            Kind::CgroupsMem => Some("memory"),
            Kind::CgroupsPids => Some("pids"),
            Kind::CgroupsIo => Some("io"),
            Kind::CgroupsCpuset => Some("cpuset"),
            _ => None,
        }
    }

    /// Whether the isolator can work on `host`, and why not.
    pub fn available(self, host: &Host) -> Result<(), String> {
        if let Some(controller) = self.controller() {
            return host.require_controller(controller);
        }
        match self {
            Kind::NamespacesPid => pid::available(host),
            Kind::NamespacesIpc => ipc::available(host),
            Kind::NamespacesUts => uts::available(host),
            Kind::FilesystemLinux => fs_linux::available(host),
            Kind::NetworkPorts | Kind::NetworkAccounting => network::available(host),
            // Capabilities (2.6.25), no_new_privs and seccomp filters (3.5) and rlimits: every
            // kernel this agent runs on (clone3 needs 5.3) has them.
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The value of `--isolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every isolator that can work on this host.
    Auto,
    /// Exactly these (sorted in [`Kind::ALL`] order, without duplicates); empty for `none`.
    Only(Vec<Kind>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("unknown isolator {name:?} (known: auto, none, {known})")]
    Unknown { name: String, known: String },
    #[error("{0:?} cannot be combined with other isolators")]
    Combined(&'static str),
    #[error("no isolator given (use auto, none, or a list such as cgroups/cpu,namespaces/pid)")]
    Empty,
}

impl FromStr for Selection {
    type Err = SelectionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let names: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        for special in ["auto", "none"] {
            if names.contains(&special) {
                return match names.len() {
                    1 if special == "auto" => Ok(Selection::Auto),
                    1 => Ok(Selection::Only(Vec::new())),
                    _ => Err(SelectionError::Combined(special)),
                };
            }
        }
        if names.is_empty() {
            return Err(SelectionError::Empty);
        }
        let mut kinds = names
            .iter()
            .map(|name| {
                Kind::from_name(name).ok_or_else(|| SelectionError::Unknown {
                    name: name.to_string(),
                    known: Kind::ALL.map(Kind::name).join(", "),
                })
            })
            .collect::<Result<Vec<Kind>, _>>()?;
        kinds.sort();
        kinds.dedup();
        Ok(Selection::Only(kinds))
    }
}

/// What the host offers isolators: its cgroup2 hierarchy and `/proc`.
#[derive(Debug, Clone)]
pub struct Host {
    /// The root of the cgroup2 mount.
    pub cgroup_mount: Cgroup,
    /// The controllers available at the root (`cgroup.controllers`).
    pub controllers: Vec<String>,
    /// Normally `/proc`.
    pub proc: PathBuf,
}

impl Host {
    /// Reads what `cgroup_mount` offers.
    pub fn probe(cgroup_mount: Cgroup, proc: impl Into<PathBuf>) -> Result<Self, CgroupError> {
        let controllers = cgroup_mount.controllers()?;
        Ok(Self {
            cgroup_mount,
            controllers,
            proc: proc.into(),
        })
    }

    fn require_controller(&self, controller: &str) -> Result<(), String> {
        if self.controllers.iter().any(|c| c == controller) {
            return Ok(());
        }
        let listed = if self.controllers.is_empty() {
            "none".to_string()
        } else {
            self.controllers.join(" ")
        };
        Err(format!(
            "the {controller} controller is not available in the cgroup2 hierarchy at {} \
             (controllers: {listed})",
            self.cgroup_mount.path().display()
        ))
    }
}

/// The agent flags isolators take their settings from.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationConfig {
    /// `--cgroups-enable-cfs`.
    pub enable_cfs: bool,
    /// `--container-pids-max` (0: unlimited).
    pub pids_max: u64,
    /// `--bounding-capabilities`.
    pub bounding: Bounding,
    /// `--container-rlimits`.
    pub rlimits: Vec<Rlimit>,
    /// `--container-ro-mounts`.
    pub ro_mounts: Vec<ReadOnlyMount>,
    /// `--cgroups-io-devices`, or the disk of the work dir.
    pub io_devices: Vec<io::Device>,
    /// `--enforce-container-ports`: refuse binds outside a container's ports (else count them).
    pub enforce_ports: bool,
    /// `--bpf-pin-dir`: where the network isolators pin their BPF maps and links.
    pub bpf_pin_dir: PathBuf,
    /// `--seccomp-profile-name`: `None` is `unconfined`.
    pub seccomp: Option<Profile>,
}

impl Default for IsolationConfig {
    fn default() -> Self {
        Self {
            enable_cfs: false,
            pids_max: 0,
            bounding: Bounding::All,
            rlimits: Vec::new(),
            ro_mounts: Vec::new(),
            io_devices: Vec::new(),
            enforce_ports: true,
            bpf_pin_dir: PathBuf::from(strata_ebpf::DEFAULT_PIN_DIR),
            seccomp: Some(Profile::Default),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// A selected isolator cannot work here, or its flags are wrong.
    #[error("{isolator}: {reason}")]
    Unavailable {
        isolator: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// The isolators a container gets, ready to drive containers under the agent's cgroup root.
#[derive(Debug)]
pub struct Isolation {
    isolators: Vec<Box<dyn Isolator>>,
    left_out: Vec<(&'static str, String)>,
    root: Cgroup,
}

impl Isolation {
    /// Checks the selected isolators against `host`, creates the agent's cgroup subtree
    /// `<mount>/<cgroups_root>`, and enables the controllers they need in `cgroup.subtree_control`
    /// from the mount's root down to that subtree. With [`Selection::Auto`] an isolator that
    /// cannot work is left out (see [`Isolation::left_out`]); in an explicit list it is an error.
    pub fn setup(
        selection: &Selection,
        config: &IsolationConfig,
        host: &Host,
        cgroups_root: &Path,
    ) -> Result<Self, IsolationError> {
        let explicit = *selection != Selection::Auto;
        let mut candidates = match selection {
            Selection::Auto => Kind::ALL.to_vec(),
            Selection::Only(kinds) => kinds.clone(),
        };
        candidates.extend(Kind::CONFINEMENT);
        candidates.sort();
        candidates.dedup();
        let mut chosen = Vec::new();
        let mut left_out = Vec::new();
        for kind in candidates {
            match kind.available(host) {
                Ok(()) => chosen.push(kind),
                Err(reason) if explicit => {
                    return Err(IsolationError::Unavailable {
                        isolator: kind.name(),
                        reason,
                    })
                }
                Err(reason) => left_out.push((kind.name(), reason)),
            }
        }
        // The network isolators share BPF programs attached at the agent's subtree: they are
        // built once that subtree exists.
        let (network, chosen): (Vec<Kind>, Vec<Kind>) = chosen
            .into_iter()
            .partition(|k| matches!(k, Kind::NetworkPorts | Kind::NetworkAccounting));
        // Flags are checked before anything is created for an agent that may refuse to start.
        let built = chosen
            .into_iter()
            .map(|kind| Ok((kind, build(kind, config, host)?)))
            .collect::<Result<Vec<_>, IsolationError>>()?;
        let root = host.cgroup_mount.create_child(cgroups_root)?;
        let built = match build_network(&network, config, host, &root) {
            Ok(network) => {
                let mut all = built;
                all.extend(network);
                all.sort_by_key(|(kind, _)| *kind);
                all
            }
            Err(reason) if explicit => {
                return Err(IsolationError::Unavailable {
                    isolator: network.first().map(|k| k.name()).unwrap_or("network"),
                    reason,
                })
            }
            Err(reason) => {
                left_out.extend(network.iter().map(|k| (k.name(), reason.clone())));
                built
            }
        };
        let mut isolators = Vec::new();
        for (kind, isolator) in built {
            if let Some(controller) = kind.controller() {
                if let Err(err) = enable_along(&host.cgroup_mount, cgroups_root, controller) {
                    let reason = format!("failed to enable the {controller} controller: {err}");
                    if explicit {
                        return Err(IsolationError::Unavailable {
                            isolator: kind.name(),
                            reason,
                        });
                    }
                    left_out.push((kind.name(), reason));
                    continue;
                }
            }
            isolators.push(isolator);
        }
        Ok(Self {
            isolators,
            left_out,
            root,
        })
    }

    /// The active isolators' names, in the order they run.
    pub fn names(&self) -> Vec<&'static str> {
        self.isolators.iter().map(|i| i.name()).collect()
    }

    /// The isolators `auto` left out, with the reason.
    pub fn left_out(&self) -> &[(&'static str, String)] {
        &self.left_out
    }

    /// The agent's cgroup subtree, parent of every container cgroup.
    pub fn root(&self) -> &Cgroup {
        &self.root
    }

    /// Runs every isolator's `prepare`, in order; stops at the first error.
    pub fn prepare(&self, container: &Container, launch: &mut Launch) -> Result<(), IsolatorError> {
        self.isolators
            .iter()
            .try_for_each(|i| i.prepare(container, launch))
    }

    /// Runs every isolator's `isolate`; returns the errors.
    pub fn isolate(&self, container: &Container, pid: i32) -> Vec<IsolatorError> {
        self.isolators
            .iter()
            .filter_map(|i| i.isolate(container, pid).err())
            .collect()
    }

    /// Runs every isolator's `update`, in order; stops at the first error.
    pub fn update(
        &self,
        container: &Container,
        resources: &Resources,
    ) -> Result<(), IsolatorError> {
        self.isolators
            .iter()
            .try_for_each(|i| i.update(container, resources))
    }

    /// The container's statistics: the figures every container has, then each isolator's.
    pub fn usage(&self, container: &Container) -> Result<ResourceStatistics, IsolatorError> {
        let mut stats = ResourceStatistics {
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            ..ResourceStatistics::default()
        };
        if !container.cgroup.path().is_dir() {
            return Err(IsolatorError::Invalid {
                isolator: "usage",
                message: format!(
                    "the container's cgroup {} is gone",
                    container.cgroup.path().display()
                ),
            });
        }
        base_usage(container.cgroup, container.resources, &mut stats)
            .map_err(IsolatorError::cgroup("usage"))?;
        for isolator in &self.isolators {
            isolator.usage(container, &mut stats)?;
        }
        Ok(stats)
    }

    /// Runs every isolator's `recover`; returns the errors.
    pub fn recover(&self, container: &Container) -> Vec<IsolatorError> {
        self.isolators
            .iter()
            .filter_map(|i| i.recover(container).err())
            .collect()
    }

    /// Runs every isolator's `cleanup`; returns the errors.
    pub fn cleanup(&self, container: &Container) -> Vec<IsolatorError> {
        self.isolators
            .iter()
            .filter_map(|i| i.cleanup(container).err())
            .collect()
    }
}

/// Enables `controller` in `cgroup.subtree_control` of `mount` and of every cgroup down to
/// `mount/relative`, where it is not enabled yet.
fn enable_along(mount: &Cgroup, relative: &Path, controller: &str) -> Result<(), CgroupError> {
    let mut level = mount.clone();
    let mut levels = vec![level.clone()];
    for component in relative.components() {
        level = level.child(component)?;
        levels.push(level.clone());
    }
    for level in levels {
        let enabled = level
            .subtree_control()?
            .iter()
            .any(|c| c.trim_start_matches('+') == controller);
        if !enabled {
            level.enable_controllers(&[controller])?;
        }
    }
    Ok(())
}

/// An isolator built for its kind.
type Built = (Kind, Box<dyn Isolator>);

/// Loads and attaches the BPF programs for the selected network isolators at `root` and builds
/// them; the error is the reason (the verifier's words when the kernel refused a program).
fn build_network(
    kinds: &[Kind],
    config: &IsolationConfig,
    host: &Host,
    root: &Cgroup,
) -> Result<Vec<Built>, String> {
    if kinds.is_empty() {
        return Ok(Vec::new());
    }
    let level = network::container_level(&host.cgroup_mount, root)?;
    let bpf = NetworkBpf::setup(&strata_ebpf::Options {
        pin_dir: &config.bpf_pin_dir,
        cgroup: root.path(),
        container_level: level,
        ports: kinds.contains(&Kind::NetworkPorts),
        accounting: kinds.contains(&Kind::NetworkAccounting),
    })
    .map_err(|err| err.to_string())?;
    // Entries of containers that ended while no agent was running go; live ones are kept
    // (their counts continue).
    let live = root
        .children()
        .map_err(|err| err.to_string())?
        .iter()
        .filter_map(|c| c.id().ok())
        .collect::<Vec<u64>>();
    let stale = bpf.retain(&live).map_err(|err| err.to_string())?;
    if stale > 0 {
        tracing::info!(stale, "removed BPF map entries of containers that are gone");
    }
    let bpf = Arc::new(bpf);
    Ok(kinds
        .iter()
        .map(|&kind| {
            let isolator: Box<dyn Isolator> = match kind {
                Kind::NetworkPorts => Box::new(ports::PortsIsolator::new(
                    Arc::clone(&bpf),
                    config.enforce_ports,
                )),
                _ => Box::new(accounting::AccountingIsolator::new(Arc::clone(&bpf))),
            };
            (kind, isolator)
        })
        .collect())
}

/// The BPF filesystem a task must not see: `/sys/fs/bpf` and the pin directory (wherever it
/// is; the network isolators create it later). Those that do not exist when a container starts
/// are skipped.
fn bpf_masks(pin_dir: &Path) -> Vec<PathBuf> {
    let mut masks = vec![PathBuf::from("/sys/fs/bpf")];
    if !pin_dir.starts_with("/sys/fs/bpf") && pin_dir.is_absolute() {
        masks.push(pin_dir.to_path_buf());
    }
    masks
}

fn build(
    kind: Kind,
    config: &IsolationConfig,
    host: &Host,
) -> Result<Box<dyn Isolator>, IsolationError> {
    let invalid = |isolator| move |reason| IsolationError::Unavailable { isolator, reason };
    Ok(match kind {
        Kind::CgroupsCpu => Box::new(cpu::CpuIsolator {
            enable_cfs: config.enable_cfs,
        }),
        Kind::CgroupsMem => Box::new(mem::MemIsolator),
        Kind::CgroupsPids => Box::new(pids::PidsIsolator {
            default_max: config.pids_max,
        }),
        Kind::CgroupsIo => Box::new(io::IoIsolator {
            devices: config.io_devices.clone(),
        }),
        Kind::CgroupsCpuset => Box::new(cpuset::CpusetIsolator),
        Kind::NamespacesPid => Box::new(pid::PidIsolator),
        Kind::NamespacesIpc => Box::new(ipc::IpcIsolator),
        Kind::NamespacesUts => Box::new(uts::UtsIsolator),
        Kind::FilesystemLinux => Box::new(
            fs_linux::LinuxFilesystemIsolator::new(config.ro_mounts.clone())
                .map(|fs| fs.masking(bpf_masks(&config.bpf_pin_dir)))
                .map_err(invalid(fs_linux::NAME))?,
        ),
        Kind::LinuxCapabilities => Box::new(capabilities::CapabilitiesIsolator {
            bounding: config.bounding,
        }),
        Kind::LinuxNnp => Box::new(nnp::NnpIsolator),
        Kind::LinuxSeccomp => {
            if let Some(profile) = &config.seccomp {
                // A profile that does not compile here fails the agent, not every task.
                let caps = match config.bounding {
                    Bounding::All => None,
                    Bounding::Only(mask) => Some(capabilities::names(mask)),
                };
                seccomp::compile(profile, caps.as_deref())
                    .map_err(|err| invalid(seccomp::NAME)(err.to_string()))?;
            }
            Box::new(seccomp::SeccompIsolator {
                profile: config.seccomp.clone(),
            })
        }
        Kind::PosixRlimits => Box::new(
            rlimits::RlimitsIsolator::new(config.rlimits.clone(), &host.proc)
                .map_err(invalid(rlimits::NAME))?,
        ),
        Kind::NetworkPorts | Kind::NetworkAccounting => {
            return Err(IsolationError::Unavailable {
                isolator: kind.name(),
                reason: "built with the agent's BPF programs (build_network)".into(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_mesos_style_lists() {
        assert_eq!("auto".parse::<Selection>().unwrap(), Selection::Auto);
        assert_eq!(
            "none".parse::<Selection>().unwrap(),
            Selection::Only(vec![])
        );
        assert_eq!(
            "namespaces/pid, cgroups/mem,cgroups/cpu,cgroups/mem"
                .parse::<Selection>()
                .unwrap(),
            Selection::Only(vec![
                Kind::CgroupsCpu,
                Kind::CgroupsMem,
                Kind::NamespacesPid
            ])
        );
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = "cgroups/cpu,cgroups/memory"
            .parse::<Selection>()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown isolator \"cgroups/memory\" (known: auto, none, cgroups/cpu, cgroups/mem, \
             cgroups/pids, cgroups/io, cgroups/cpuset, network/ports, network/accounting, \
             namespaces/pid, namespaces/ipc, namespaces/uts, filesystem/linux, linux/capabilities, linux/nnp, linux/seccomp, posix/rlimits)"
        );
        assert_eq!(
            "auto,cgroups/cpu"
                .parse::<Selection>()
                .unwrap_err()
                .to_string(),
            "\"auto\" cannot be combined with other isolators"
        );
        assert_eq!(
            " , ".parse::<Selection>().unwrap_err(),
            SelectionError::Empty
        );
    }

    /// A fake cgroup2 root offering `controllers`, and a fake /proc with the namespaces.
    struct FakeHost {
        dir: tempfile::TempDir,
        host: Host,
    }

    impl FakeHost {
        fn new(controllers: &[&str]) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mount = dir.path().join("cgroup");
            std::fs::create_dir(&mount).unwrap();
            std::fs::write(mount.join("cgroup.controllers"), controllers.join(" ")).unwrap();
            std::fs::write(mount.join("cgroup.subtree_control"), "").unwrap();
            let ns = dir.path().join("proc/self/ns");
            std::fs::create_dir_all(&ns).unwrap();
            for kind in ["pid", "ipc", "uts", "mnt"] {
                std::fs::write(ns.join(kind), "").unwrap();
            }
            let host = Host::probe(Cgroup::unchecked(&mount), dir.path().join("proc")).unwrap();
            Self { dir, host }
        }

        fn mount(&self) -> PathBuf {
            self.dir.path().join("cgroup")
        }
    }

    fn setup(selection: &str, host: &FakeHost) -> Result<Isolation, IsolationError> {
        Isolation::setup(
            &selection.parse().unwrap(),
            &IsolationConfig::default(),
            &host.host,
            Path::new("strata"),
        )
    }

    #[test]
    fn an_explicit_isolator_that_cannot_work_fails_clearly() {
        let host = FakeHost::new(&[]);
        let err = setup("namespaces/pid,cgroups/mem", &host).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cgroups/mem: the memory controller is not available in the cgroup2 hierarchy \
                 at {} (controllers: none)",
                host.mount().display()
            )
        );
        // Nothing was created for an agent that refuses to start.
        assert!(!host.mount().join("strata").exists());
        let host = FakeHost::new(&["hugetlb", "pids"]);
        let err = setup("cgroups/cpu", &host).unwrap_err();
        assert!(
            err.to_string().ends_with("(controllers: hugetlb pids)"),
            "{err}"
        );
    }

    #[test]
    fn none_keeps_the_confinement_isolators_and_a_bad_profile_stops_the_agent() {
        let host = FakeHost::new(&[]);
        let isolation = setup("none", &host).unwrap();
        assert_eq!(
            isolation.names(),
            vec!["linux/capabilities", "linux/nnp", "linux/seccomp"]
        );
        let config = IsolationConfig {
            seccomp: Some(Profile::File(host.dir.path().join("missing.json"))),
            ..IsolationConfig::default()
        };
        let err = Isolation::setup(
            &"none".parse().unwrap(),
            &config,
            &host.host,
            Path::new("strata"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("linux/seccomp: the seccomp profile ") && err.contains("missing.json"),
            "{err}"
        );
    }

    #[test]
    fn auto_on_a_hybrid_host_takes_what_works_and_says_why_not_the_rest() {
        let host = FakeHost::new(&["hugetlb"]);
        let isolation = setup("auto", &host).unwrap();
        assert_eq!(
            isolation.names(),
            vec![
                "namespaces/pid",
                "namespaces/ipc",
                "namespaces/uts",
                "filesystem/linux",
                "linux/capabilities",
                "linux/nnp",
                "linux/seccomp",
                "posix/rlimits"
            ]
        );
        let left: Vec<&str> = isolation.left_out().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            left,
            vec![
                "cgroups/cpu",
                "cgroups/mem",
                "cgroups/pids",
                "cgroups/io",
                "cgroups/cpuset",
                "network/ports",
                "network/accounting"
            ]
        );
        assert!(isolation.left_out()[1].1.contains("memory controller"));
        // A fake tree is no cgroup2 filesystem: BPF programs are not even tried.
        assert!(
            isolation.left_out()[5]
                .1
                .contains("not a cgroup2 filesystem"),
            "{:?}",
            isolation.left_out()
        );
        assert_eq!(isolation.root().path(), host.mount().join("strata"));
        assert_eq!(
            std::fs::read_to_string(host.mount().join("cgroup.subtree_control")).unwrap(),
            "",
            "no controller was enabled"
        );
    }

    #[test]
    fn controllers_are_enabled_down_the_agents_subtree() {
        let host = FakeHost::new(&["cpu", "memory", "pids", "io", "cpuset"]);
        // The kernel creates the interface files of a new cgroup; the fake tree needs them first.
        for dir in ["a", "a/b"] {
            std::fs::create_dir_all(host.mount().join(dir)).unwrap();
            std::fs::write(host.mount().join(dir).join("cgroup.subtree_control"), "").unwrap();
        }
        let isolation = Isolation::setup(
            &"cgroups/mem,namespaces/pid".parse().unwrap(),
            &IsolationConfig::default(),
            &host.host,
            Path::new("a/b"),
        )
        .unwrap();
        // The confinement isolators come with any selection.
        assert_eq!(
            isolation.names(),
            vec![
                "cgroups/mem",
                "namespaces/pid",
                "linux/capabilities",
                "linux/nnp",
                "linux/seccomp"
            ]
        );
        for dir in ["", "a", "a/b"] {
            assert_eq!(
                std::fs::read_to_string(host.mount().join(dir).join("cgroup.subtree_control"))
                    .unwrap(),
                "+memory",
                "{dir:?}"
            );
        }
        // Already enabled: nothing is written again (the fake file would show "+memory+memory").
        std::fs::write(host.mount().join("cgroup.subtree_control"), "memory pids").unwrap();
        Isolation::setup(
            &"cgroups/mem".parse().unwrap(),
            &IsolationConfig::default(),
            &host.host,
            Path::new("a/b"),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(host.mount().join("cgroup.subtree_control")).unwrap(),
            "memory pids"
        );
    }

    #[test]
    fn a_controller_that_cannot_be_enabled_is_left_out_by_auto_and_fatal_when_explicit() {
        // "cpu" is listed but the fake root has no cgroup.subtree_control to enable it in.
        let host = FakeHost::new(&["cpu"]);
        std::fs::remove_file(host.mount().join("cgroup.subtree_control")).unwrap();
        let isolation = setup("auto", &host).unwrap();
        assert!(!isolation.names().contains(&"cgroups/cpu"));
        let (_, reason) = isolation
            .left_out()
            .iter()
            .find(|(name, _)| *name == "cgroups/cpu")
            .unwrap();
        assert!(
            reason.starts_with("failed to enable the cpu controller: failed to read"),
            "{reason}"
        );
        let err = setup("cgroups/cpu", &host).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cgroups/cpu: failed to enable the cpu controller"),
            "{err}"
        );
    }

    #[test]
    fn namespaces_missing_from_proc_are_reported() {
        let host = FakeHost::new(&[]);
        std::fs::remove_file(host.dir.path().join("proc/self/ns/uts")).unwrap();
        let err = setup("namespaces/uts", &host).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("namespaces/uts: this kernel has no uts namespaces"),
            "{err}"
        );
    }

    #[test]
    fn bad_mount_flags_fail_even_with_auto() {
        let host = FakeHost::new(&[]);
        let config = IsolationConfig {
            ro_mounts: fs_linux::parse_ro_mounts("/no/such/path").unwrap(),
            ..IsolationConfig::default()
        };
        let err =
            Isolation::setup(&Selection::Auto, &config, &host.host, Path::new("s")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "filesystem/linux: --container-ro-mounts: /no/such/path does not exist"
        );
        assert!(!host.mount().join("s").exists(), "nothing created");
    }

    #[test]
    fn prepare_and_update_run_every_isolator() {
        let host = FakeHost::new(&["cpu", "memory", "pids"]);
        std::fs::create_dir(host.mount().join("s")).unwrap();
        std::fs::write(host.mount().join("s/cgroup.subtree_control"), "").unwrap();
        let config = IsolationConfig {
            enable_cfs: true,
            pids_max: 100,
            bounding: capabilities::parse_bounding(capabilities::DEFAULT).unwrap(),
            rlimits: rlimits::parse_rlimits(rlimits::DEFAULT).unwrap(),
            ..IsolationConfig::default()
        };
        let isolation =
            Isolation::setup(&Selection::Auto, &config, &host.host, Path::new("s")).unwrap();
        let cg_dir = host.mount().join("s/c1");
        std::fs::create_dir_all(&cg_dir).unwrap();
        for file in ["cpu.weight", "cpu.max", "memory.max", "pids.max"] {
            std::fs::write(cg_dir.join(file), "").unwrap();
        }
        let cgroup = isolation.root().child("c1").unwrap();
        let resources = Resources::parse("cpus:0.5;mem:64").unwrap();
        let container = Container {
            id: "c1",
            cgroup: &cgroup,
            sandbox: Path::new("/sandbox"),
            hostname: "web-1",
            resources: &resources,
        };
        let mut launch = Launch::default();
        isolation.prepare(&container, &mut launch).unwrap();
        let file = |name: &str| std::fs::read_to_string(cg_dir.join(name)).unwrap();
        assert_eq!(file("cpu.weight"), "20");
        assert_eq!(file("cpu.max"), "50000 100000");
        assert_eq!(file("memory.max"), "67108864");
        assert_eq!(file("pids.max"), "100");
        assert_eq!(launch.hostname.as_deref(), Some("web-1"));
        assert!(launch.namespaces.pid && launch.namespaces.mount);
        assert!(launch.process.no_new_privs);
        assert_eq!(launch.process.rlimits.len(), 1);
        assert_eq!(
            launch.process.bounding_capabilities.as_ref().map(Vec::len),
            Some(14)
        );
        assert!(isolation.isolate(&container, 42).is_empty());

        std::fs::write(
            cg_dir.join("cpu.stat"),
            "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n",
        )
        .unwrap();
        std::fs::write(cg_dir.join("cgroup.procs"), "42\n").unwrap();
        let stats = isolation.usage(&container).unwrap();
        assert_eq!(stats.cpus_user_time_secs, Some(2.0));
        assert_eq!(stats.cpus_limit, Some(0.5));
        assert_eq!(stats.processes, Some(1));
        assert!(stats.timestamp > 0.0);

        for file in ["cpu.weight", "memory.max"] {
            std::fs::write(cg_dir.join(file), "").unwrap();
        }
        isolation
            .update(&container, &Resources::parse("cpus:4;mem:128").unwrap())
            .unwrap();
        assert_eq!(file("cpu.weight"), "157");
        assert_eq!(file("memory.max"), "134217728");

        let gone = isolation.root().child("gone").unwrap();
        let container = Container {
            cgroup: &gone,
            ..container
        };
        assert!(isolation.usage(&container).is_err());
        assert!(!isolation.recover(&container).is_empty());
        assert!(isolation.cleanup(&container).is_empty());
    }
}
