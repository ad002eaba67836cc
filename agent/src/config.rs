//! The agent's flags (Mesos names, with `--flag_name` aliases where Mesos has them).

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
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
