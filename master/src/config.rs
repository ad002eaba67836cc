//! The master's flags (Mesos names, with `--flag_name` aliases where Mesos has them).

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

fn duration(text: &str) -> Result<Duration, String> {
    strata_schema::parse_duration(text).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "strata-master",
    version,
    about = "The Strata master: offers agents' resources to frameworks"
)]
pub struct MasterConfig {
    /// Address to listen on (HTTP and Cap'n Proto RPC share one port).
    #[arg(long, env = "STRATA_IP", default_value = "0.0.0.0")]
    pub ip: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "STRATA_PORT", default_value_t = 5050)]
    pub port: u16,
    /// Where the master keeps its state.
    #[arg(
        long,
        alias = "work_dir",
        env = "STRATA_WORK_DIR",
        default_value = "/var/lib/strata/master"
    )]
    pub work_dir: PathBuf,
    /// Hostname advertised to agents and frameworks (default: the system hostname).
    #[arg(long, env = "STRATA_HOSTNAME")]
    pub hostname: Option<String>,
    /// How often agents are pinged; an unanswered ping counts as a timeout.
    #[arg(long, alias = "agent_ping_timeout", env = "STRATA_AGENT_PING_TIMEOUT", default_value = "15secs", value_parser = duration)]
    pub agent_ping_timeout: Duration,
    /// Missed pings after which an agent is unreachable and its tasks are reported so.
    #[arg(long, alias = "max_agent_ping_timeouts", env = "STRATA_MAX_AGENT_PING_TIMEOUTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_agent_ping_timeouts: u32,
    /// Period of the batched allocation (allocation also runs on every event).
    #[arg(long, alias = "allocation_interval", env = "STRATA_ALLOCATION_INTERVAL", default_value = "1secs", value_parser = duration)]
    pub allocation_interval: Duration,
    /// Completed frameworks kept for `/state`.
    #[arg(
        long,
        alias = "max_completed_frameworks",
        env = "STRATA_MAX_COMPLETED_FRAMEWORKS",
        default_value_t = 50
    )]
    pub max_completed_frameworks: usize,
    /// Completed tasks kept per framework for `/state`.
    #[arg(
        long,
        alias = "max_completed_tasks_per_framework",
        env = "STRATA_MAX_COMPLETED_TASKS_PER_FRAMEWORK",
        default_value_t = 1000
    )]
    pub max_completed_tasks_per_framework: usize,
}

impl MasterConfig {
    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.agent_ping_timeout.is_zero() {
            return Err("--agent-ping-timeout must be greater than zero".to_string());
        }
        if self.allocation_interval.is_zero() {
            return Err("--allocation-interval must be greater than zero".to_string());
        }
        Ok(())
    }
}
