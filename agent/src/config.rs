//! The agent's flags (Mesos names, with `--flag_name` aliases where Mesos has them).

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use strata_isolators::cgroups::io::{self, Device};
use strata_isolators::filesystem::linux::{self, ReadOnlyMount};
use strata_isolators::launch::Rlimit;
use strata_isolators::linux::capabilities::{self, Bounding};
use strata_isolators::posix::rlimits;
use strata_isolators::Selection;
use strata_schema::{Attributes, Resources};

fn duration(text: &str) -> Result<Duration, String> {
    strata_schema::parse_duration(text).map_err(|e| e.to_string())
}

fn resources(text: &str) -> Result<Resources, String> {
    Resources::parse(text).map_err(|e| e.to_string())
}

fn attributes(text: &str) -> Result<Attributes, String> {
    Attributes::parse(text).map_err(|e| e.to_string())
}

fn isolation(text: &str) -> Result<Selection, String> {
    text.parse()
        .map_err(|e: strata_isolators::selection::SelectionError| e.to_string())
}

fn bounding(text: &str) -> Result<Bounding, String> {
    capabilities::parse_bounding(text)
}

fn rlimit_list(text: &str) -> Result<Rlimits, String> {
    rlimits::parse_rlimits(text).map(Rlimits)
}

fn ro_mounts(text: &str) -> Result<ReadOnlyMounts, String> {
    linux::parse_ro_mounts(text).map(ReadOnlyMounts)
}

fn devices(text: &str) -> Result<Devices, String> {
    io::parse_devices(text).map(Devices)
}

/// `--container-rlimits`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Rlimits(pub Vec<Rlimit>);

/// `--container-ro-mounts`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOnlyMounts(pub Vec<ReadOnlyMount>);

/// `--cgroups-io-devices`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Devices(pub Vec<Device>);

#[derive(Debug, Clone, Parser)]
#[command(
    name = "strata-agent",
    version,
    about = "The Strata agent: runs tasks in isolated containers for the master"
)]
pub struct AgentConfig {
    /// The master, as host:port.
    #[arg(long, env = "STRATA_MASTER")]
    pub master: String,
    /// Address the agent's HTTP endpoints listen on.
    #[arg(long, env = "STRATA_IP", default_value = "0.0.0.0")]
    pub ip: IpAddr,
    /// Port of the agent's HTTP endpoints.
    #[arg(long, env = "STRATA_PORT", default_value_t = 5051)]
    pub port: u16,
    /// Hostname advertised to the master (default: the system hostname, or --ip when it is set).
    #[arg(long, env = "STRATA_HOSTNAME")]
    pub hostname: Option<String>,
    /// Where the agent keeps sandboxes and checkpoints.
    #[arg(
        long,
        alias = "work_dir",
        env = "STRATA_WORK_DIR",
        default_value = "/var/lib/strata/agent"
    )]
    pub work_dir: PathBuf,
    /// Resources to offer, in Mesos syntax (e.g. `cpus:4;mem:8192;ports:[31000-32000]`); whatever
    /// is not given is detected.
    #[arg(long, env = "STRATA_RESOURCES", value_parser = resources)]
    pub resources: Option<Resources>,
    /// Attributes, in Mesos syntax (e.g. `rack:a;zone:eu1`).
    #[arg(long, env = "STRATA_ATTRIBUTES", value_parser = attributes)]
    pub attributes: Option<Attributes>,
    /// Name of the agent's subtree in the cgroup2 hierarchy.
    #[arg(
        long,
        alias = "cgroups_root",
        env = "STRATA_CGROUPS_ROOT",
        default_value = "strata"
    )]
    pub cgroups_root: String,
    /// Time a killed task gets between SIGTERM and SIGKILL when its task names none.
    #[arg(long, env = "STRATA_KILL_GRACE_PERIOD", default_value = "3secs", value_parser = duration)]
    pub kill_grace_period: Duration,
    /// Status update retry interval (doubles until acknowledged, up to 10 minutes).
    #[arg(long, env = "STRATA_STATUS_UPDATE_RETRY_INTERVAL", default_value = "10secs", value_parser = duration)]
    pub status_update_retry_interval: Duration,
    /// Longest wait between attempts to reach the master.
    #[arg(long, env = "STRATA_REGISTRATION_BACKOFF_MAX", default_value = "5secs", value_parser = duration)]
    pub registration_backoff_max: Duration,
    /// Isolators, comma-separated Mesos-style names (cgroups/cpu, cgroups/mem, cgroups/pids,
    /// cgroups/io, cgroups/cpuset, namespaces/pid, namespaces/ipc, namespaces/uts,
    /// filesystem/linux, linux/capabilities, linux/nnp, posix/rlimits); `auto`: every one that can
    /// work on this host; `none`: no isolation beyond a cgroup per container. The agent refuses
    /// to start when an isolator named here cannot work.
    #[arg(long, env = "STRATA_ISOLATION", default_value = "auto", value_parser = isolation)]
    pub isolation: Selection,
    /// cgroups/cpu: also cap each task at its cpus with a CFS quota (cpu.max), not only weigh it.
    #[arg(long, alias = "cgroups_enable_cfs", env = "STRATA_CGROUPS_ENABLE_CFS")]
    pub cgroups_enable_cfs: bool,
    /// cgroups/pids: pids.max of tasks without a `pids` resource; 0 means unlimited.
    #[arg(
        long,
        alias = "container_pids_max",
        env = "STRATA_CONTAINER_PIDS_MAX",
        default_value_t = 0
    )]
    pub container_pids_max: u64,
    /// linux/capabilities: the tasks' capability bounding set, comma-separated names (`CAP_`
    /// optional); `all` leaves capabilities alone. The default is Docker's default set.
    #[arg(
        long,
        alias = "bounding_capabilities",
        env = "STRATA_BOUNDING_CAPABILITIES",
        default_value = capabilities::DEFAULT,
        value_parser = bounding
    )]
    pub bounding_capabilities: Bounding,
    /// posix/rlimits: the tasks' resource limits, `NAME=SOFT[:HARD],…` (e.g. `nofile=1024:4096`;
    /// a value may be `unlimited`).
    #[arg(
        long,
        env = "STRATA_CONTAINER_RLIMITS",
        default_value = rlimits::DEFAULT,
        value_parser = rlimit_list
    )]
    pub container_rlimits: Rlimits,
    /// filesystem/linux: host paths every task sees read-only, `HOST[:CONTAINER],…`; CONTAINER is
    /// absolute (an existing path) or relative to the sandbox; without it HOST is made read-only
    /// in place.
    #[arg(long, env = "STRATA_CONTAINER_RO_MOUNTS", value_parser = ro_mounts)]
    pub container_ro_mounts: Option<ReadOnlyMounts>,
    /// cgroups/io: the block devices (`MAJOR:MINOR,…`) that disk bandwidth resources
    /// (disk_read_bps, disk_write_bps, disk_read_iops, disk_write_iops) limit; default: the disk
    /// holding the work dir.
    #[arg(long, env = "STRATA_CGROUPS_IO_DEVICES", value_parser = devices)]
    pub cgroups_io_devices: Option<Devices>,
    /// network/ports: refuse (EPERM) a task's bind() to a port outside its `ports` resource;
    /// `--enforce-container-ports=false` only counts such binds (`net_port_violations`).
    #[arg(
        long,
        alias = "enforce_container_ports",
        env = "STRATA_ENFORCE_CONTAINER_PORTS",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub enforce_container_ports: bool,
    /// network/ports and network/accounting: where BPF maps and links are pinned, so ports
    /// enforcement and traffic counters outlive an agent restart. Its parent must be a BPF
    /// filesystem (the agent mounts one at /sys/fs/bpf when nothing is mounted there).
    /// `strata-agent cleanup-bpf` removes it.
    #[arg(long, env = "STRATA_BPF_PIN_DIR", default_value = strata_ebpf::DEFAULT_PIN_DIR)]
    pub bpf_pin_dir: PathBuf,
}

/// `strata-agent cleanup-bpf`: detaches the network isolators' BPF programs and removes their
/// pinned maps and links (ports enforcement and traffic counters of running tasks end).
#[derive(Debug, Clone, Parser)]
#[command(name = "strata-agent cleanup-bpf", version)]
pub struct CleanupBpf {
    /// The pin directory the agent used (`--bpf-pin-dir`).
    #[arg(long, env = "STRATA_BPF_PIN_DIR", default_value = strata_ebpf::DEFAULT_PIN_DIR)]
    pub bpf_pin_dir: PathBuf,
}

impl AgentConfig {
    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.master.parse::<std::net::SocketAddr>().is_err() && !self.master.contains(':') {
            return Err(format!("--master {:?} is not host:port", self.master));
        }
        let root = &self.cgroups_root;
        if root.is_empty()
            || root.starts_with('/')
            || root
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(format!(
                "--cgroups-root {root:?} must be a relative path such as \"strata\""
            ));
        }
        if self.status_update_retry_interval.is_zero() {
            return Err("--status-update-retry-interval must be greater than zero".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use strata_isolators::Kind;

    fn parse(args: &[&str]) -> Result<AgentConfig, String> {
        let mut argv = vec!["strata-agent", "--master", "127.0.0.1:5050"];
        argv.extend_from_slice(args);
        AgentConfig::try_parse_from(argv).map_err(|e| e.to_string())
    }

    #[test]
    fn isolation_defaults_follow_the_host() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.isolation, Selection::Auto);
        assert!(!config.cgroups_enable_cfs);
        assert_eq!(config.container_pids_max, 0);
        assert_eq!(config.bounding_capabilities, Bounding::Only(0xa804_25fb));
        assert_eq!(config.container_rlimits.0.len(), 1);
        assert_eq!(config.container_ro_mounts, None);
        assert_eq!(config.cgroups_io_devices, None);
    }

    #[test]
    fn isolation_flags_parse() {
        let config = parse(&[
            "--isolation",
            "cgroups/mem,namespaces/pid",
            "--cgroups_enable_cfs",
            "--container-pids-max",
            "100",
            "--bounding-capabilities",
            "all",
            "--container-rlimits",
            "nofile=1024",
            "--container-ro-mounts",
            "/etc:etc",
            "--cgroups-io-devices",
            "8:0",
        ])
        .unwrap();
        assert_eq!(
            config.isolation,
            Selection::Only(vec![Kind::CgroupsMem, Kind::NamespacesPid])
        );
        assert!(config.cgroups_enable_cfs);
        assert_eq!(config.container_pids_max, 100);
        assert_eq!(config.bounding_capabilities, Bounding::All);
        assert_eq!(config.container_rlimits.0[0].soft, Some(1024));
        assert_eq!(config.container_ro_mounts.unwrap().0.len(), 1);
        assert_eq!(config.cgroups_io_devices.unwrap().0[0].major, 8);
    }

    #[test]
    fn bad_isolation_flags_name_the_problem() {
        let err = parse(&["--isolation", "cgroups/cpu,posix/cpu"]).unwrap_err();
        assert!(
            err.contains("unknown isolator \"posix/cpu\" (known: auto, none, cgroups/cpu,"),
            "{err}"
        );
        let err = parse(&["--bounding-capabilities", "chown,superpower"]).unwrap_err();
        assert!(err.contains("unknown capability \"superpower\""), "{err}");
        let err = parse(&["--container-rlimits", "files=1"]).unwrap_err();
        assert!(err.contains("unknown resource limit"), "{err}");
        let err = parse(&["--container-ro-mounts", "relative"]).unwrap_err();
        assert!(err.contains("must be absolute"), "{err}");
        let err = parse(&["--cgroups-io-devices", "sda"]).unwrap_err();
        assert!(err.contains("not a block device number"), "{err}");
    }
}
