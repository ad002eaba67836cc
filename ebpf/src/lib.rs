//! BPF programs of the Strata agent and their aya loader.
//!
//! The programs (`bpf/strata.bpf.c`, built by clang in `build.rs`) are attached once, at the
//! agent's cgroup subtree, and act on every container below it through maps keyed by the
//! container's cgroup id:
//!
//! - `cgroup/bind4|bind6` and `cgroup/post_bind4|post_bind6` refuse (EPERM) a bind to a port the
//!   container was not allocated ([`NetworkBpf::set_ports`]);
//! - `cgroup_skb/ingress|egress` count bytes and packets per container
//!   ([`NetworkBpf::track_traffic`], [`NetworkBpf::traffic`]).
//!
//! Maps and links are pinned under the pin directory (default [`DEFAULT_PIN_DIR`]), so
//! enforcement and counters outlive the agent: a restarted agent reuses the pinned maps and swaps
//! its freshly loaded programs into the pinned links atomically (BPF_LINK_UPDATE), never leaving
//! a moment unenforced. [`remove_pins`] takes everything down (`strata-agent cleanup-bpf`).
//!
//! ```text
//!   <pin dir>/ports             hash     cgroup id -> Ports        (network/ports)
//!   <pin dir>/net               percpu   cgroup id -> NetCounters  (network/accounting)
//!   <pin dir>/links/<program>   the cgroup links at the agent's subtree
//! ```

pub mod layout;
mod sys;

pub use layout::{NetCounters, PortRange, Ports, MAX_CONTAINERS, MAX_PORT_RANGES, PORTS_ENFORCE};

use aya::maps::{HashMap, MapData, MapError, PerCpuHashMap, PerCpuValues};
use aya::programs::links::FdLink;
use aya::programs::{CgroupAttachMode, Program, ProgramError};
use aya::{Ebpf, EbpfLoader};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{debug, info};

/// The object clang built from `bpf/strata.bpf.c`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/strata.bpf.o"));

/// Where the agent pins its maps and links unless told otherwise (`--bpf-pin-dir`).
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/strata";
/// Where the BPF filesystem is normally mounted; the agent mounts it there when nothing is.
pub const BPF_FS: &str = "/sys/fs/bpf";

const PORTS_MAP: &str = "strata_ports";
/// `bpf_map_update_elem` flag: fail if the key exists.
const BPF_NOEXIST: u64 = 1;
const NET_MAP: &str = "strata_net";

/// What a set of programs is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `network/ports`: bind() confined to the allocated ports.
    Ports,
    /// `network/accounting`: traffic counters.
    Accounting,
}

/// For each of Strata's programs, how many programs of its attach type the kernel has attached
/// to the cgroup directory `cgroup` itself, or with `effective` how many apply to it (attached
/// there or at an ancestor): an operator's (and the tests') check that the programs sit once at
/// the agent's subtree and that containers below it carry none of their own.
pub fn attached_programs(cgroup: &Path, effective: bool) -> io::Result<Vec<(&'static str, u32)>> {
    let dir = File::open(cgroup)?;
    let flags = if effective { sys::QUERY_EFFECTIVE } else { 0 };
    PROGRAMS
        .iter()
        .map(|(name, _, attach_type)| {
            sys::prog_query_count(dir.as_fd(), *attach_type, flags).map(|count| (*name, count))
        })
        .collect()
}

/// The programs, with the kernel's attach type of each (`enum bpf_attach_type`).
const PROGRAMS: [(&str, Feature, u32); 6] = [
    ("strata_bind4", Feature::Ports, 8),
    ("strata_bind6", Feature::Ports, 9),
    ("strata_post_bind4", Feature::Ports, 12),
    ("strata_post_bind6", Feature::Ports, 13),
    ("strata_ingress", Feature::Accounting, 0),
    ("strata_egress", Feature::Accounting, 1),
];

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("{}: {message}", path.display())]
    PinDir { path: PathBuf, message: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("the BPF object was refused: {0}")]
    Object(String),
    /// The kernel (its verifier, usually) refused a program; the message carries its log.
    #[error("the kernel refused BPF program {program}: {message}")]
    Program {
        program: &'static str,
        message: String,
    },
    #[error("BPF map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error(
        "{count} port ranges: a container may hold at most {MAX_PORT_RANGES} (its ports are \
         enforced by a BPF program with a fixed-size table)"
    )]
    TooManyRanges { count: usize },
}

impl BpfError {
    fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> BpfError {
        let what = what.into();
        move |source| BpfError::Io { what, source }
    }

    fn map(map: &'static str) -> impl FnOnce(MapError) -> BpfError {
        move |source| BpfError::Map { map, source }
    }
}

/// Formats an error with its sources (aya's verifier log sits in a source).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The verifier's verdict first (the last line of its log that is not a statistic), then its
/// whole log, so an operator sees why at a glance and has everything to report.
fn verifier_message(io_error: &io::Error, log: &str) -> String {
    let verdict = log
        .lines()
        .map(str::trim)
        .rfind(|l| {
            !l.is_empty()
                && !l.starts_with("processed ")
                && !l.starts_with("verification time")
                && !l.starts_with("stack depth")
        })
        .unwrap_or("(no verifier output)");
    format!("{io_error}: {verdict}\nverifier log:\n{}", log.trim_end())
}

/// The object named by `STRATA_BPF_OBJECT`, which replaces the built-in one: for debugging a
/// program on a kernel without rebuilding the agent, and for testing how the agent reports a
/// program the kernel refuses.
fn object_override() -> Result<Option<Vec<u8>>, BpfError> {
    let Some(path) = std::env::var_os("STRATA_BPF_OBJECT") else {
        return Ok(None);
    };
    let bytes = std::fs::read(&path).map_err(BpfError::io(format!(
        "STRATA_BPF_OBJECT {}",
        Path::new(&path).display()
    )))?;
    tracing::warn!(object = %Path::new(&path).display(), "loading BPF programs from STRATA_BPF_OBJECT");
    Ok(Some(bytes))
}

/// How to set the programs up.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// Where maps and links are pinned; its parent must be on a BPF filesystem (the agent
    /// mounts one at [`BPF_FS`] if that is the parent and nothing is mounted there).
    pub pin_dir: &'a Path,
    /// The cgroup2 directory the programs attach to: the agent's subtree.
    pub cgroup: &'a Path,
    /// The depth of container cgroups in the cgroup2 hierarchy (its root is 0): a process is
    /// charged to its ancestor cgroup at this level.
    pub container_level: u32,
    /// Attach the ports programs (else any pinned ones are detached).
    pub ports: bool,
    /// Attach the accounting programs (else any pinned ones are detached).
    pub accounting: bool,
}

/// The loaded, attached programs and their maps.
pub struct NetworkBpf {
    pin_dir: PathBuf,
    ports: Mutex<HashMap<MapData, u64, Ports>>,
    net: Mutex<PerCpuHashMap<MapData, u64, NetCounters>>,
}

impl std::fmt::Debug for NetworkBpf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkBpf")
            .field("pin_dir", &self.pin_dir)
            .finish_non_exhaustive()
    }
}

impl NetworkBpf {
    /// Loads the programs (reusing pinned maps), attaches the selected ones at `options.cgroup`
    /// or swaps them into the links already pinned there, and detaches the unselected ones.
    pub fn setup(options: &Options) -> Result<Self, BpfError> {
        prepare_pin_dir(options.pin_dir)?;
        let links = options.pin_dir.join("links");
        std::fs::create_dir_all(&links).map_err(BpfError::io(format!(
            "failed to create {}",
            links.display()
        )))?;
        let cgroup = File::open(options.cgroup).map_err(BpfError::io(format!(
            "failed to open cgroup {}",
            options.cgroup.display()
        )))?;
        let cgroup_id = std::fs::metadata(options.cgroup)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .map_err(BpfError::io(format!(
                "failed to stat {}",
                options.cgroup.display()
            )))?;

        let replacement = object_override()?;
        let mut ebpf = EbpfLoader::new()
            .map_pin_path(PORTS_MAP, options.pin_dir.join("ports"))
            .map_pin_path(NET_MAP, options.pin_dir.join("net"))
            .override_global("container_level", &options.container_level, true)
            .load(replacement.as_deref().unwrap_or(OBJECT))
            .map_err(|err| BpfError::Object(chain(&err)))?;

        for (name, feature, attach_type) in PROGRAMS {
            let pin = links.join(name);
            let wanted = match feature {
                Feature::Ports => options.ports,
                Feature::Accounting => options.accounting,
            };
            if !wanted {
                remove_link(&pin)?;
                continue;
            }
            attach(&mut ebpf, name, attach_type, &cgroup, cgroup_id, &pin)?;
        }

        let ports = take_map(&mut ebpf, PORTS_MAP)?;
        let net = take_map(&mut ebpf, NET_MAP)?;
        let bpf = NetworkBpf {
            pin_dir: options.pin_dir.to_path_buf(),
            ports: Mutex::new(HashMap::try_from(ports).map_err(BpfError::map(PORTS_MAP))?),
            net: Mutex::new(PerCpuHashMap::try_from(net).map_err(BpfError::map(NET_MAP))?),
        };
        info!(
            pin_dir = %options.pin_dir.display(),
            cgroup = %options.cgroup.display(),
            level = options.container_level,
            ports = options.ports,
            accounting = options.accounting,
            "BPF programs attached"
        );
        Ok(bpf)
    }

    /// Opens the maps pinned under `pin_dir` without loading or attaching anything: how tools
    /// and tests look at what a running agent enforces and counts.
    pub fn open_pinned(pin_dir: &Path) -> Result<Self, BpfError> {
        let open = |file: &str, name: &'static str| {
            let path = pin_dir.join(file);
            MapData::from_pin(&path)
                .and_then(aya::maps::Map::from_map_data)
                .map_err(BpfError::map(name))
        };
        Ok(NetworkBpf {
            pin_dir: pin_dir.to_path_buf(),
            ports: Mutex::new(
                HashMap::try_from(open("ports", PORTS_MAP)?).map_err(BpfError::map(PORTS_MAP))?,
            ),
            net: Mutex::new(
                PerCpuHashMap::try_from(open("net", NET_MAP)?).map_err(BpfError::map(NET_MAP))?,
            ),
        })
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Sets the ports container `cgroup_id` may bind (replacing what it had; its violation
    /// count is kept). With `enforce` false, binds elsewhere are counted but allowed.
    pub fn set_ports(
        &self,
        cgroup_id: u64,
        ranges: &[(u16, u16)],
        enforce: bool,
    ) -> Result<(), BpfError> {
        if ranges.len() > MAX_PORT_RANGES {
            return Err(BpfError::TooManyRanges {
                count: ranges.len(),
            });
        }
        let mut value = Ports {
            flags: if enforce { PORTS_ENFORCE } else { 0 },
            count: u32::try_from(ranges.len()).unwrap_or(u32::MAX),
            ..Ports::default()
        };
        for (slot, &(first, last)) in value.ranges.iter_mut().zip(ranges) {
            *slot = PortRange { first, last };
        }
        let mut map = lock(&self.ports);
        value.violations = match map.get(&cgroup_id, 0) {
            Ok(old) => old.violations,
            Err(_) => 0,
        };
        map.insert(cgroup_id, value, 0)
            .map_err(BpfError::map(PORTS_MAP))
    }

    /// The ports entry of `cgroup_id`, if it has one.
    pub fn ports(&self, cgroup_id: u64) -> Result<Option<Ports>, BpfError> {
        match lock(&self.ports).get(&cgroup_id, 0) {
            Ok(value) => Ok(Some(value)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(err) => Err(BpfError::Map {
                map: PORTS_MAP,
                source: err,
            }),
        }
    }

    /// Starts counting `cgroup_id`'s traffic; counts it already has are kept.
    pub fn track_traffic(&self, cgroup_id: u64) -> Result<(), BpfError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, err)| BpfError::Io {
            what: "failed to count the possible CPUs".into(),
            source: err,
        })?;
        let zeros = PerCpuValues::try_from(vec![NetCounters::default(); cpus])
            .map_err(BpfError::io("per-CPU values"))?;
        match lock(&self.net).insert(cgroup_id, zeros, BPF_NOEXIST) {
            Ok(()) => Ok(()),
            Err(MapError::SyscallError(err))
                if err.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(())
            }
            Err(err) => Err(BpfError::Map {
                map: NET_MAP,
                source: err,
            }),
        }
    }

    /// The traffic of `cgroup_id` summed over CPUs, or `None` when it is not tracked.
    pub fn traffic(&self, cgroup_id: u64) -> Result<Option<NetCounters>, BpfError> {
        match lock(&self.net).get(&cgroup_id, 0) {
            Ok(values) => Ok(Some(
                values
                    .iter()
                    .fold(NetCounters::default(), |sum, v| sum + *v),
            )),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(err) => Err(BpfError::Map {
                map: NET_MAP,
                source: err,
            }),
        }
    }

    /// Removes `cgroup_id`'s ports entry (binds there are no longer checked); absent is fine.
    pub fn remove_ports(&self, cgroup_id: u64) -> Result<(), BpfError> {
        remove_key(&mut *lock(&self.ports), cgroup_id, PORTS_MAP)
    }

    /// Stops counting `cgroup_id`'s traffic and drops its counts; absent is fine.
    pub fn untrack_traffic(&self, cgroup_id: u64) -> Result<(), BpfError> {
        remove_key(&mut *lock(&self.net), cgroup_id, NET_MAP)
    }

    /// The cgroup ids with a ports or traffic entry.
    pub fn tracked(&self) -> Result<Vec<u64>, BpfError> {
        let mut ids = lock(&self.ports)
            .keys()
            .collect::<Result<Vec<u64>, _>>()
            .map_err(BpfError::map(PORTS_MAP))?;
        ids.extend(
            lock(&self.net)
                .keys()
                .collect::<Result<Vec<u64>, _>>()
                .map_err(BpfError::map(NET_MAP))?,
        );
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Removes the entries of every cgroup not in `live` (containers that ended while no agent
    /// was watching); returns how many went.
    pub fn retain(&self, live: &[u64]) -> Result<usize, BpfError> {
        let stale: Vec<u64> = self
            .tracked()?
            .into_iter()
            .filter(|id| !live.contains(id))
            .collect();
        for &id in &stale {
            self.remove_ports(id)?;
            self.untrack_traffic(id)?;
        }
        Ok(stale.len())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a map handle leaves nothing half-written on our side.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn remove_key<M>(map: &mut M, key: u64, name: &'static str) -> Result<(), BpfError>
where
    M: RemoveKey,
{
    match map.remove_key(&key) {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(err)) if err.io_error.raw_os_error() == Some(libc::ENOENT) => {
            Ok(())
        }
        Err(err) => Err(BpfError::Map {
            map: name,
            source: err,
        }),
    }
}

trait RemoveKey {
    fn remove_key(&mut self, key: &u64) -> Result<(), MapError>;
}

impl RemoveKey for HashMap<MapData, u64, Ports> {
    fn remove_key(&mut self, key: &u64) -> Result<(), MapError> {
        self.remove(key)
    }
}

impl RemoveKey for PerCpuHashMap<MapData, u64, NetCounters> {
    fn remove_key(&mut self, key: &u64) -> Result<(), MapError> {
        self.remove(key)
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, BpfError> {
    ebpf.take_map(name)
        .ok_or_else(|| BpfError::Object(format!("the object has no map {name}")))
}

/// Loads program `name` and makes the link pinned at `pin` run it at `cgroup`: an existing live
/// link there gets the new program swapped in; otherwise a new link is attached and pinned.
fn attach(
    ebpf: &mut Ebpf,
    name: &'static str,
    attach_type: u32,
    cgroup: &File,
    cgroup_id: u64,
    pin: &Path,
) -> Result<(), BpfError> {
    let refused = |err: ProgramError| BpfError::Program {
        program: name,
        message: match &err {
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => verifier_message(io_error, &verifier_log.to_string()),
            err => chain(err),
        },
    };
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| BpfError::Object(format!("the object has no program {name}")))?;
    match program {
        Program::CgroupSockAddr(p) => p.load(),
        Program::CgroupSock(p) => p.load(),
        Program::CgroupSkb(p) => p.load(),
        _ => return Err(BpfError::Object(format!("{name} has an unexpected type"))),
    }
    .map_err(refused)?;

    if pin.exists() {
        let link =
            sys::obj_get(pin).map_err(BpfError::io(format!("failed to open {}", pin.display())))?;
        let info = sys::cgroup_link_info(link.as_fd()).map_err(BpfError::io(format!(
            "failed to read link {}",
            pin.display()
        )))?;
        if info.cgroup_id == cgroup_id && info.attach_type == attach_type {
            let prog_fd = program.fd().map_err(refused)?;
            sys::link_update(link.as_fd(), prog_fd.as_fd()).map_err(BpfError::io(format!(
                "failed to swap program {name} into {}",
                pin.display()
            )))?;
            debug!(program = name, link = %pin.display(), "program swapped into the pinned link");
            return Ok(());
        }
        // Defunct (its cgroup was removed) or attached elsewhere: replace it.
        debug!(program = name, link = %pin.display(), ?info, "replacing a stale link");
        remove_link(pin)?;
    }

    let mode = CgroupAttachMode::Single;
    let link: FdLink = match program {
        Program::CgroupSockAddr(p) => {
            let id = p.attach(cgroup, mode).map_err(refused)?;
            p.take_link(id).map_err(refused)?.try_into()
        }
        Program::CgroupSock(p) => {
            let id = p.attach(cgroup, mode).map_err(refused)?;
            p.take_link(id).map_err(refused)?.try_into()
        }
        Program::CgroupSkb(p) => {
            let direction = if attach_type == 0 {
                aya::programs::CgroupSkbAttachType::Ingress
            } else {
                aya::programs::CgroupSkbAttachType::Egress
            };
            let id = p.attach(cgroup, direction, mode).map_err(refused)?;
            p.take_link(id).map_err(refused)?.try_into()
        }
        _ => return Err(BpfError::Object(format!("{name} has an unexpected type"))),
    }
    .map_err(|err| BpfError::Program {
        program: name,
        message: format!("the kernel gave no BPF link (needs Linux 5.7+): {err}"),
    })?;
    link.pin(pin).map_err(|err| BpfError::Io {
        what: format!("failed to pin {name} at {}", pin.display()),
        source: io::Error::other(err.to_string()),
    })?;
    Ok(())
}

/// Unpins the link at `path`, detaching its program once nothing else holds it.
fn remove_link(path: &Path) -> Result<(), BpfError> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            debug!(link = %path.display(), "link unpinned");
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(BpfError::Io {
            what: format!("failed to unpin {}", path.display()),
            source: err,
        }),
    }
}

/// Whether `path` is on a BPF filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
        .unwrap_or(false)
}

/// Makes sure `pin_dir` can hold pins: its parent is on a BPF filesystem (mounting one at
/// [`BPF_FS`] when that is the parent and it holds none, as systemd would), and it exists.
fn prepare_pin_dir(pin_dir: &Path) -> Result<(), BpfError> {
    let parent = pin_dir.parent().ok_or_else(|| BpfError::PinDir {
        path: pin_dir.to_path_buf(),
        message: "the pin directory needs a parent on a BPF filesystem".into(),
    })?;
    if !is_bpffs(parent) {
        if parent != Path::new(BPF_FS) {
            return Err(BpfError::PinDir {
                path: pin_dir.to_path_buf(),
                message: format!(
                    "{} is not on a BPF filesystem (mount one: mount -t bpf bpf {})",
                    parent.display(),
                    parent.display()
                ),
            });
        }
        std::fs::create_dir_all(parent).map_err(BpfError::io(format!(
            "failed to create {}",
            parent.display()
        )))?;
        nix::mount::mount(
            Some("bpf"),
            parent,
            Some("bpf"),
            nix::mount::MsFlags::MS_NOSUID
                | nix::mount::MsFlags::MS_NODEV
                | nix::mount::MsFlags::MS_NOEXEC,
            Some("mode=0700"),
        )
        .map_err(|errno| BpfError::PinDir {
            path: pin_dir.to_path_buf(),
            message: format!(
                "failed to mount a BPF filesystem at {}: {errno}",
                parent.display()
            ),
        })?;
        info!(path = %parent.display(), "mounted the BPF filesystem");
    }
    std::fs::create_dir_all(pin_dir).map_err(BpfError::io(format!(
        "failed to create {}",
        pin_dir.display()
    )))
}

/// Removes every pin under `pin_dir` (links first, which detaches the programs, then maps) and
/// the directory itself; what was never pinned is fine. Returns the paths removed.
pub fn remove_pins(pin_dir: &Path) -> Result<Vec<PathBuf>, BpfError> {
    let mut removed = Vec::new();
    let links = pin_dir.join("links");
    for (name, _, _) in PROGRAMS {
        let path = links.join(name);
        if path.exists() {
            remove_link(&path)?;
            removed.push(path);
        }
    }
    for dir in [links.as_path(), pin_dir] {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => {
                return Err(BpfError::Io {
                    what: format!("failed to list {}", dir.display()),
                    source: err,
                })
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() || path.is_symlink() || !path.is_dir() {
                std::fs::remove_file(&path)
                    .map_err(BpfError::io(format!("failed to unpin {}", path.display())))?;
                removed.push(path);
            }
        }
    }
    for dir in [links.as_path(), pin_dir] {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(BpfError::Io {
                    what: format!("failed to remove {}", dir.display()),
                    source: err,
                })
            }
        }
    }
    Ok(removed)
}
