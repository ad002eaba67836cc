//! The agent's flags (Mesos names, with `--flag_name` aliases where Mesos has them).

use clap::{CommandFactory, Parser};
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_isolators::cgroups::io::{self, Device};
use strata_isolators::filesystem::linux::{self, ReadOnlyMount};
use strata_isolators::launch::Rlimit;
use strata_isolators::linux::capabilities::{self, Bounding};
use strata_isolators::linux::seccomp::{self, Profile as SeccompProfile};
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

fn absolute_path(text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("the path is empty".to_string());
    }
    std::path::absolute(text).map_err(|err| format!("{text}: {err}"))
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

/// `--recover`: what a starting agent does with the tasks and checkpoints a previous run left in
/// its work dir (Mesos' flag and values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Recover {
    /// Adopt the tasks still running, report those that ended meanwhile, resend every update
    /// not acknowledged yet, and re-register with the same agent id.
    #[default]
    Reconnect,
    /// Kill every container the previous run left, remove their checkpoints, and exit (before an
    /// incompatible upgrade, or to get past a damaged checkpoint).
    Cleanup,
}

/// The config file read when neither `--config` nor `STRATA_CONFIG` names one (it may be absent).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/strata/agent.toml";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "strata-agent",
    version,
    about = "The Strata agent: runs tasks in isolated containers for the master",
    after_help = "Every flag is also a key of the config file (default /etc/strata/agent.toml), \
                  e.g. `master = \"10.0.0.1:5050\"`, and is read from its STRATA_* environment \
                  variable; flags win over the environment, which wins over the file. The agent \
                  runs as root. Tasks live in <cgroup2 mount>/<--cgroups-root>/<container id> and \
                  keep running when the agent stops; a restarted agent adopts them. Logs go to \
                  stderr (the journal under systemd); STRATA_LOG sets their level (error, warn, \
                  info, debug, trace, or a filter such as `info,strata_agent=debug`)."
)]
pub struct AgentConfig {
    /// Config file (TOML): keys are the long flags' names, `master = "10.0.0.1:5050"`
    /// [default: /etc/strata/agent.toml, if it exists]
    #[arg(long, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The master: host:port, or zk://host1:port1,host2:port2/path to follow whichever master
    /// leads.
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
    /// Where the agent keeps sandboxes and checkpoints (a relative path is taken from the
    /// current directory and made absolute: tasks' sandboxes and the mask over the work dir are
    /// absolute paths).
    #[arg(
        long,
        alias = "work_dir",
        env = "STRATA_WORK_DIR",
        default_value = "/var/lib/strata/agent",
        value_parser = absolute_path
    )]
    pub work_dir: PathBuf,
    /// What to do with the tasks a previous run left in the work dir: `reconnect` adopts them
    /// (and resends their unacknowledged updates); `cleanup` kills them, removes their
    /// checkpoints and exits 0.
    #[arg(long, env = "STRATA_RECOVER", value_enum, default_value_t = Recover::Reconnect)]
    pub recover: Recover,
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
    /// filesystem/linux, linux/capabilities, linux/nnp, linux/seccomp, posix/rlimits); `auto`: every
    /// one that can work on this host; `none`: no isolation beyond a cgroup per container.
    /// linux/capabilities, linux/nnp and linux/seccomp come with every selection (their own
    /// flags loosen them). The agent refuses
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
    /// linux/seccomp: the tasks' seccomp profile: `default` (modeled on Docker's default profile:
    /// EPERM for kernel modules, ptrace, bpf, mount, namespaces, keyrings, the clock, reboot, …),
    /// `unconfined` (no filter), or a profile file in Docker's JSON format: absolute, or relative
    /// to `--seccomp-config-dir`.
    #[arg(
        long,
        alias = "seccomp_profile_name",
        env = "STRATA_SECCOMP_PROFILE_NAME",
        default_value = "default"
    )]
    pub seccomp_profile_name: String,
    /// linux/seccomp: the directory of profile files `--seccomp-profile-name` names (Mesos'
    /// `--seccomp_config_dir`).
    #[arg(long, alias = "seccomp_config_dir", env = "STRATA_SECCOMP_CONFIG_DIR")]
    pub seccomp_config_dir: Option<PathBuf>,
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
    // ---- authentication and authorization (issue 11, H2) ----
    /// Principals and secrets HTTP Basic is checked against (Mesos' `--http_credentials`: JSON
    /// `{"credentials":[..]}` or lines `principal secret`). Not `--credential`, the agent's own
    /// principal towards the master.
    #[arg(
        long,
        alias = "http_credentials",
        env = "STRATA_HTTP_CREDENTIALS",
        value_name = "FILE"
    )]
    pub http_credentials: Option<PathBuf>,
    /// Mesos' ACLs (JSON); the agent applies `access_sandboxes` (who may read the sandboxes of
    /// frameworks not their own) and `get_endpoints`.
    #[arg(long, env = "STRATA_ACLS", value_name = "FILE")]
    pub acls: Option<PathBuf>,
    /// HS256 key (the file's bytes) shared with the master: bearer tokens are checked with it,
    /// and executors' tokens signed with it (without it, with a random key of this agent's).
    #[arg(
        long,
        alias = "jwt_secret_key",
        env = "STRATA_JWT_SECRET_KEY",
        value_name = "FILE"
    )]
    pub jwt_secret_key: Option<PathBuf>,
    /// Read-only HTTP endpoints (GET: /state, /files/*, …) need credentials.
    #[arg(
        long,
        alias = "authenticate_http_readonly",
        env = "STRATA_AUTHENTICATE_HTTP_READONLY"
    )]
    pub authenticate_http_readonly: bool,
    /// Read-write HTTP endpoints (POSTs, the v1 operator API) need credentials.
    #[arg(
        long,
        alias = "authenticate_http_readwrite",
        env = "STRATA_AUTHENTICATE_HTTP_READWRITE"
    )]
    pub authenticate_http_readwrite: bool,
    /// Executors must present the token the agent gave them
    /// (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`) on the v1 executor API, and it must name them.
    #[arg(
        long,
        alias = "authenticate_http_executors",
        env = "STRATA_AUTHENTICATE_HTTP_EXECUTORS"
    )]
    pub authenticate_http_executors: bool,
    /// network/ports and network/accounting: where BPF maps and links are pinned, so ports
    /// enforcement and traffic counters outlive an agent restart. Its parent must be a BPF
    /// filesystem (the agent mounts one at /sys/fs/bpf when nothing is mounted there).
    /// `strata-agent cleanup-bpf` removes it.
    #[arg(long, env = "STRATA_BPF_PIN_DIR", default_value = strata_ebpf::DEFAULT_PIN_DIR)]
    pub bpf_pin_dir: PathBuf,
    /// Image registries (`host:port`, comma-separated) reached over plain HTTP; all others are
    /// reached over HTTPS.
    #[arg(long, env = "STRATA_IMAGE_REGISTRY_HTTP", value_delimiter = ',')]
    pub image_registry_http: Vec<String>,
    /// PEM files (comma-separated) of CAs trusted for image registries besides the system's.
    #[arg(long, env = "STRATA_IMAGE_REGISTRY_CA", value_delimiter = ',')]
    pub image_registry_ca: Vec<PathBuf>,
    /// Registry credentials: a Docker `config.json` (`{"auths": {"host:port": {"auth":
    /// base64(user:password)}}}`), used for basic and token (Bearer) authentication.
    #[arg(
        long,
        alias = "docker_config",
        env = "STRATA_DOCKER_CONFIG",
        value_name = "FILE"
    )]
    pub docker_config: Option<PathBuf>,

    // Transport security (TLS, authentication to the master).
    /// PEM certificate chain: the agent's HTTP endpoints serve TLS with it (then every
    /// connection must be TLS), and it is the client certificate of the link to the master
    /// (its CN is the agent's principal for `--authenticate-agents`).
    #[arg(long, env = "STRATA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "STRATA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates of the cluster: with it, the link to the master is TLS and the
    /// master's certificate must chain to this CA and name the host of `--master`.
    #[arg(long, env = "STRATA_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// The agent's own principal and secret for a master with `--authenticate-agents` (Mesos'
    /// format: JSON `{"principal": .., "secret": ..}` or one line `principal secret`).
    #[arg(long, env = "STRATA_CREDENTIAL", value_name = "FILE")]
    pub credential: Option<PathBuf>,
    /// Serve a non-loopback address without TLS (the agent refuses to otherwise).
    #[arg(long, env = "STRATA_INSECURE")]
    pub insecure: bool,
}

/// `strata-agent cleanup-bpf`: detaches the network isolators' BPF programs and removes their
/// pinned maps and links (ports enforcement and traffic counters of running tasks end). Its flags
/// are the agent's, read as the agent reads them (see [`CleanupBpf::parse_layered`]).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "strata-agent cleanup-bpf",
    bin_name = "strata-agent cleanup-bpf",
    version,
    about = "Detaches the network isolators' BPF programs and removes their pins",
    after_help = "The pin directory is the agent's: --bpf-pin-dir, else STRATA_BPF_PIN_DIR, else \
                  `bpf_pin_dir` of the agent's config file (--config, STRATA_CONFIG, default \
                  /etc/strata/agent.toml), else /sys/fs/bpf/strata."
)]
pub struct CleanupBpf {
    /// The agent's config file, whose `bpf_pin_dir` applies (its other keys are the agent's)
    /// [default: /etc/strata/agent.toml, if it exists]
    #[arg(long, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The pin directory the agent used (`--bpf-pin-dir`).
    #[arg(long, env = "STRATA_BPF_PIN_DIR", default_value = strata_ebpf::DEFAULT_PIN_DIR)]
    pub bpf_pin_dir: PathBuf,
}

impl CleanupBpf {
    /// Parses `args` (the first is `cleanup-bpf`) with the agent's layering over the agent's
    /// config file (`--config`, else `STRATA_CONFIG`, else `default_file`, which may be
    /// missing): flags over the environment over the file over the default. The file's other
    /// keys are left to the agent; a key the agent does not know is still an error.
    pub fn parse_layered<I, S>(
        args: I,
        default_file: &Path,
    ) -> Result<strata_flags::Layered<Self>, strata_flags::FlagsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString> + Clone,
    {
        strata_flags::parse_part_from(&AgentConfig::command(), args, default_file)
    }
}

impl AgentConfig {
    /// The tasks' seccomp profile (`None`: unconfined), from `--seccomp-profile-name` and
    /// `--seccomp-config-dir`; the error says what is wrong with them.
    pub fn seccomp_profile(&self) -> Result<Option<SeccompProfile>, String> {
        seccomp::profile_named(
            &self.seccomp_profile_name,
            self.seccomp_config_dir.as_deref(),
        )
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if let Err(err) = self.master.parse::<strata_ha::MasterAddress>() {
            return Err(format!("--master: {err}"));
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
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together: give both or neither".to_string());
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
        assert_eq!(
            config.seccomp_profile().unwrap(),
            Some(SeccompProfile::Default)
        );
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
            "--seccomp_profile_name",
            "unconfined",
        ])
        .unwrap();
        assert_eq!(config.seccomp_profile().unwrap(), None);
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
    fn a_relative_work_dir_becomes_absolute() {
        let config = parse(&["--work-dir", "rel/work"]).unwrap();
        assert!(config.work_dir.is_absolute(), "{:?}", config.work_dir);
        assert!(config.work_dir.ends_with("rel/work"));
        assert_eq!(
            parse(&["--work-dir", "/srv/w"]).unwrap().work_dir,
            PathBuf::from("/srv/w")
        );
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
        let config = parse(&["--seccomp-profile-name", "strict.json"]).unwrap();
        let err = config.seccomp_profile().unwrap_err();
        assert!(
            err.contains("unknown seccomp profile \"strict.json\""),
            "{err}"
        );
        let config = parse(&[
            "--seccomp-profile-name",
            "strict.json",
            "--seccomp-config-dir",
            "/etc/strata/seccomp",
        ])
        .unwrap();
        assert_eq!(
            config.seccomp_profile().unwrap(),
            Some(SeccompProfile::File(
                "/etc/strata/seccomp/strict.json".into()
            ))
        );
        let err = parse(&["--container-rlimits", "files=1"]).unwrap_err();
        assert!(err.contains("unknown resource limit"), "{err}");
        let err = parse(&["--container-ro-mounts", "relative"]).unwrap_err();
        assert!(err.contains("must be absolute"), "{err}");
        let err = parse(&["--cgroups-io-devices", "sda"]).unwrap_err();
        assert!(err.contains("not a block device number"), "{err}");
    }
}

#[cfg(test)]
mod config_file_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::CommandFactory;
    use std::path::Path;

    /// The assignments of a packaged config file, uncommented.
    fn packaged_assignments(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter_map(|line| line.split_once(" = "))
            .filter(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    fn parse_file(text: &str, args: &[&str]) -> Result<AgentConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        let mut argv = vec!["strata-agent", "--config", path.to_str().unwrap()];
        argv.extend_from_slice(args);
        strata_flags::parse_from::<AgentConfig, _, _>(argv, Path::new("/absent"))
            .map(|layered| layered.config)
            .map_err(|err| err.to_string())
    }

    /// Every flag, including those added later, is documented in the default config file the
    /// packages install, and the file's examples are valid.
    #[test]
    fn the_packaged_config_file_documents_every_flag_and_parses() {
        let text = include_str!("../../packaging/etc/agent.toml");
        let assignments = packaged_assignments(text);
        for key in strata_flags::known_keys(&AgentConfig::command()) {
            assert!(
                assignments.iter().any(|(k, _)| *k == key),
                "packaging/etc/agent.toml does not document `{key}`: add a commented \
                 `# {key} = <default or example>` line with what it does"
            );
        }
        let body: String = assignments
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        let config = parse_file(&body, &[])
            .unwrap_or_else(|err| panic!("packaging/etc/agent.toml, uncommented: {err}"));
        config.validate().unwrap();
        let defaults = AgentConfig::try_parse_from(["strata-agent", "--master", "m:1"]).unwrap();
        assert_eq!(config.port, defaults.port);
        assert_eq!(config.work_dir, defaults.work_dir);
        assert_eq!(config.isolation, defaults.isolation);
        assert_eq!(config.bounding_capabilities, defaults.bounding_capabilities);
        assert_eq!(config.container_rlimits, defaults.container_rlimits);
    }

    /// Every long flag reads its `STRATA_*` variable, named after it; no exceptions (`--config`
    /// is `STRATA_CONFIG` by the same rule). The same holds for `cleanup-bpf`, whose flags are
    /// the agent's.
    #[test]
    fn every_flag_has_its_environment_variable() {
        assert_eq!(
            strata_flags::env_mismatches(&AgentConfig::command()),
            Vec::<String>::new()
        );
        assert_eq!(
            strata_flags::env_mismatches(&CleanupBpf::command()),
            Vec::<String>::new()
        );
    }

    /// `cleanup-bpf` reads its flags as the agent does, so each must be the agent's flag with the
    /// same environment variable and default.
    #[test]
    fn cleanup_bpf_s_flags_are_the_agent_s() {
        let agent = AgentConfig::command();
        for arg in CleanupBpf::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let same = agent
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .unwrap_or_else(|| panic!("--{long} of cleanup-bpf is no flag of the agent"));
            assert_eq!(arg.get_env(), same.get_env(), "--{long}");
            assert_eq!(
                arg.get_default_values(),
                same.get_default_values(),
                "--{long}"
            );
        }
    }

    fn cleanup_bpf(text: Option<&str>, args: &[&str]) -> Result<PathBuf, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        if let Some(text) = text {
            std::fs::write(&path, text).unwrap();
        }
        let argv = std::iter::once("cleanup-bpf").chain(args.iter().copied());
        // The file in the temp dir stands for /etc/strata/agent.toml.
        CleanupBpf::parse_layered(argv, &path)
            .map(|layered| layered.config.bpf_pin_dir)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn cleanup_bpf_reads_the_pin_dir_of_the_agent_s_config_file() {
        let file = "master = \"10.0.0.1:5050\"\nisolation = \"auto\"\n\
                    bpf_pin_dir = \"/sys/fs/bpf/elsewhere\"\nresources = \"cpus:2\"\n";
        assert_eq!(
            cleanup_bpf(Some(file), &[]).unwrap(),
            Path::new("/sys/fs/bpf/elsewhere")
        );
        // The flag wins over the file.
        assert_eq!(
            cleanup_bpf(Some(file), &["--bpf-pin-dir", "/flag"]).unwrap(),
            Path::new("/flag")
        );
        // No file, or one without the key: the default.
        assert_eq!(
            cleanup_bpf(None, &[]).unwrap(),
            Path::new(strata_ebpf::DEFAULT_PIN_DIR)
        );
        assert_eq!(
            cleanup_bpf(Some("master = \"m:1\"\n"), &[]).unwrap(),
            Path::new(strata_ebpf::DEFAULT_PIN_DIR)
        );
        // --config names another file.
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("other.toml");
        std::fs::write(&named, "bpf-pin-dir = \"/named\"\n").unwrap();
        assert_eq!(
            cleanup_bpf(Some(file), &["--config", named.to_str().unwrap()]).unwrap(),
            Path::new("/named")
        );
        // The packaged file, uncommented, is the agent's and so cleanup-bpf's too.
        let packaged: String = packaged_assignments(include_str!("../../packaging/etc/agent.toml"))
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        assert_eq!(
            cleanup_bpf(Some(&packaged), &[]).unwrap(),
            Path::new(strata_ebpf::DEFAULT_PIN_DIR)
        );
        // Other keys are the agent's business, but a key the agent does not know is an error.
        let err = cleanup_bpf(Some("bpf_pin_dri = \"/x\"\n"), &[]).unwrap_err();
        assert!(
            err.contains("agent.toml: unknown key `bpf_pin_dri`"),
            "{err}"
        );
    }

    #[test]
    fn the_config_file_under_the_flags() {
        let file = "master = \"10.0.0.1:5050\"\nresources = \"cpus:2;mem:512\"\n\
                    cgroups_enable_cfs = true\ncontainer_pids_max = 64\n";
        let config = parse_file(file, &[]).unwrap();
        assert_eq!(config.master, "10.0.0.1:5050");
        assert_eq!(config.resources.unwrap().to_string(), "cpus:2;mem:512");
        assert!(config.cgroups_enable_cfs);
        assert_eq!(config.container_pids_max, 64);
        let config = parse_file(file, &["--master", "10.0.0.2:5050"]).unwrap();
        assert_eq!(config.master, "10.0.0.2:5050");
        let err = parse_file("isolation = \"cgroups/memory\"\n", &["--master", "m:1"]).unwrap_err();
        assert!(
            err.contains("agent.toml: `isolation` has invalid value 'cgroups/memory'"),
            "{err}"
        );
        assert!(err.contains("unknown isolator \"cgroups/memory\""), "{err}");
        let err = parse_file("mastre = \"m:1\"\n", &[]).unwrap_err();
        assert!(err.contains("agent.toml: unknown key `mastre`"), "{err}");
    }
}
