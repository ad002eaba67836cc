//! The master's flags (Mesos names, with `--flag_name` aliases where Mesos has them).

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

fn duration(text: &str) -> Result<Duration, String> {
    strata_schema::parse_duration(text).map_err(|e| e.to_string())
}

/// The config file read when neither `--config` nor `STRATA_CONFIG` names one (it may be absent).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/strata/master.toml";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "strata-master",
    version,
    about = "The Strata master: offers agents' resources to frameworks",
    after_help = "Every flag is also a key of the config file (default /etc/strata/master.toml), \
                  e.g. `work_dir = \"/srv/strata/master\"`, and is read from its STRATA_* \
                  environment variable; flags win over the environment, which wins over the \
                  file. Logs go to stderr (the journal under systemd); STRATA_LOG sets their \
                  level (error, warn, info, debug, trace, or a filter such as \
                  `info,strata_master=debug`)."
)]
pub struct MasterConfig {
    /// Config file (TOML): keys are the long flags' names, `work_dir = "/srv/strata/master"`
    /// [default: /etc/strata/master.toml, if it exists]
    #[arg(long, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
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
    /// ZooKeeper to elect the leading master through, `zk://host1:port1,host2:port2/path`
    /// (Mesos layout: `<path>/json.info_NNNNNNNNNN`; the registry is `<path>/registry`). Without
    /// it the master is standalone and keeps its registry in `<work dir>/registry.json`.
    #[arg(long, env = "STRATA_ZK", value_parser = zk_url)]
    pub zk: Option<strata_ha::ZkUrl>,
    /// ZooKeeper session timeout: a leader that loses its session for longer stops leading.
    #[arg(long, alias = "zk_session_timeout", env = "STRATA_ZK_SESSION_TIMEOUT", default_value = "10secs", value_parser = duration)]
    pub zk_session_timeout: Duration,
    /// How long agents admitted by an earlier leader have to re-register with a new one before
    /// they are marked unreachable (their tasks then reconcile as TASK_UNREACHABLE or TASK_LOST).
    #[arg(long, alias = "agent_reregister_timeout", env = "STRATA_AGENT_REREGISTER_TIMEOUT", default_value = "10mins", value_parser = duration)]
    pub agent_reregister_timeout: Duration,
    /// Outstanding offers are rescinded after this long (their resources are offered again);
    /// by default offers stay until used, declined or rescinded.
    #[arg(long, alias = "offer_timeout", env = "STRATA_OFFER_TIMEOUT", value_parser = duration)]
    pub offer_timeout: Option<Duration>,
    /// The smallest offers worth making: alternatives separated by `|`, each a resources
    /// string; an offer must hold at least one of them entirely.
    #[arg(long, alias = "min_allocatable_resources", env = "STRATA_MIN_ALLOCATABLE_RESOURCES",
          default_value = "cpus:0.01|mem:32", value_parser = min_allocatable)]
    pub min_allocatable_resources: MinAllocatable,

    // Transport security (TLS, agent authentication).
    /// PEM certificate chain to serve TLS with (HTTP and Cap'n Proto RPC on the one port); with
    /// it, every connection must be TLS.
    #[arg(long, env = "STRATA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "STRATA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: TLS clients are asked for a certificate, which must chain to this CA
    /// (an agent's identity is its certificate's subject CN); clients without one are let in
    /// (HTTP frameworks and operators).
    #[arg(long, env = "STRATA_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Agents must authenticate to register: with a client certificate from `--tls-ca`
    /// (principal: its CN) or with a credential (`strata-agent --credential`) found in
    /// `--credentials`.
    #[arg(
        long,
        alias = "authenticate_agents",
        env = "STRATA_AUTHENTICATE_AGENTS"
    )]
    pub authenticate_agents: bool,
    /// Serve a non-loopback address without TLS (the master refuses to otherwise).
    #[arg(long, env = "STRATA_INSECURE")]
    pub insecure: bool,

    // ---- authentication and authorization (issue 11, H2) ----
    /// Principals and secrets that may authenticate (Mesos' format: JSON
    /// `{"credentials":[{"principal":..,"secret":..}]}` or lines `principal secret`): HTTP Basic,
    /// the `credential` of a Cap'n Proto subscribe and agents' credentials are checked against it.
    #[arg(long, env = "STRATA_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Mesos' ACLs (JSON) deciding who may register with which role, run tasks as which user,
    /// reserve, set quotas and weights, tear down, view frameworks and tasks. Without it every
    /// action is allowed except running tasks as root (which needs a `run_tasks` rule naming
    /// `root`).
    #[arg(long, env = "STRATA_ACLS", value_name = "FILE")]
    pub acls: Option<PathBuf>,
    /// HS256 key (the file's bytes) that bearer tokens (`Authorization: Bearer`, `strata token`)
    /// are signed with; the agents share it.
    #[arg(
        long,
        alias = "jwt_secret_key",
        env = "STRATA_JWT_SECRET_KEY",
        value_name = "FILE"
    )]
    pub jwt_secret_key: Option<PathBuf>,
    /// Frameworks subscribing over Cap'n Proto must authenticate (their `credential`).
    #[arg(
        long,
        alias = "authenticate_frameworks",
        env = "STRATA_AUTHENTICATE_FRAMEWORKS"
    )]
    pub authenticate_frameworks: bool,
    /// Read-only HTTP endpoints (GET: /state, /roles, …) need credentials.
    #[arg(
        long,
        alias = "authenticate_http_readonly",
        env = "STRATA_AUTHENTICATE_HTTP_READONLY"
    )]
    pub authenticate_http_readonly: bool,
    /// Read-write HTTP endpoints (operator POSTs, /api/v1) need credentials.
    #[arg(
        long,
        alias = "authenticate_http_readwrite",
        env = "STRATA_AUTHENTICATE_HTTP_READWRITE"
    )]
    pub authenticate_http_readwrite: bool,
    /// Frameworks on the v1 HTTP scheduler API (/api/v1/scheduler) need credentials.
    #[arg(
        long,
        alias = "authenticate_http_frameworks",
        env = "STRATA_AUTHENTICATE_HTTP_FRAMEWORKS"
    )]
    pub authenticate_http_frameworks: bool,
}

/// The alternatives of `--min-allocatable-resources`.
#[derive(Debug, Clone, PartialEq)]
pub struct MinAllocatable(pub Vec<strata_schema::Resources>);

fn min_allocatable(text: &str) -> Result<MinAllocatable, String> {
    crate::allocator::parse_min_allocatable(text)
        .map(MinAllocatable)
        .map_err(|e| e.to_string())
}

fn zk_url(text: &str) -> Result<strata_ha::ZkUrl, String> {
    text.parse()
}

impl MasterConfig {
    /// The flags' values by their Mesos names, as `/flags` and GET_FLAGS show them.
    pub fn flags(&self) -> Vec<(String, String)> {
        fn secs(d: Duration) -> String {
            if d.subsec_nanos() == 0 {
                format!("{}secs", d.as_secs())
            } else {
                format!("{}ms", d.as_millis())
            }
        }
        let mut flags = vec![
            ("ip", self.ip.to_string()),
            ("port", self.port.to_string()),
            ("work_dir", self.work_dir.display().to_string()),
            ("agent_ping_timeout", secs(self.agent_ping_timeout)),
            (
                "max_agent_ping_timeouts",
                self.max_agent_ping_timeouts.to_string(),
            ),
            ("allocation_interval", secs(self.allocation_interval)),
            (
                "max_completed_frameworks",
                self.max_completed_frameworks.to_string(),
            ),
            (
                "max_completed_tasks_per_framework",
                self.max_completed_tasks_per_framework.to_string(),
            ),
            ("zk_session_timeout", secs(self.zk_session_timeout)),
            (
                "agent_reregister_timeout",
                secs(self.agent_reregister_timeout),
            ),
            (
                "min_allocatable_resources",
                self.min_allocatable_resources
                    .0
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
        ];
        if let Some(h) = &self.hostname {
            flags.push(("hostname", h.clone()));
        }
        if let Some(zk) = &self.zk {
            flags.push(("zk", zk.to_string()));
        }
        if let Some(t) = self.offer_timeout {
            flags.push(("offer_timeout", secs(t)));
        }
        for (name, path) in [
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
            ("tls_ca", &self.tls_ca),
            ("credentials", &self.credentials),
            ("acls", &self.acls),
            ("jwt_secret_key", &self.jwt_secret_key),
        ] {
            if let Some(path) = path {
                flags.push((name, path.display().to_string()));
            }
        }
        flags.push(("authenticate_agents", self.authenticate_agents.to_string()));
        flags.push(("insecure", self.insecure.to_string()));
        for (name, on) in [
            ("authenticate_frameworks", self.authenticate_frameworks),
            (
                "authenticate_http_readonly",
                self.authenticate_http_readonly,
            ),
            (
                "authenticate_http_readwrite",
                self.authenticate_http_readwrite,
            ),
            (
                "authenticate_http_frameworks",
                self.authenticate_http_frameworks,
            ),
        ] {
            flags.push((name, on.to_string()));
        }
        let mut flags: Vec<(String, String)> =
            flags.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        flags.sort();
        flags
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.agent_ping_timeout.is_zero() {
            return Err("--agent-ping-timeout must be greater than zero".to_string());
        }
        if self.allocation_interval.is_zero() {
            return Err("--allocation-interval must be greater than zero".to_string());
        }
        if self.zk_session_timeout < Duration::from_millis(500) {
            return Err("--zk-session-timeout must be at least 500ms".to_string());
        }
        if self.agent_reregister_timeout.is_zero() {
            return Err("--agent-reregister-timeout must be greater than zero".to_string());
        }
        if self.offer_timeout.is_some_and(|t| t.is_zero()) {
            return Err("--offer-timeout must be greater than zero".to_string());
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together: give both or neither".to_string());
        }
        if self.tls_ca.is_some() && self.tls_cert.is_none() {
            return Err("--tls-ca needs --tls-cert and --tls-key (the master's own)".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn the_packaged_config_file_documents_every_flag_and_parses() {
        let text = include_str!("../../packaging/etc/master.toml");
        let assignments = packaged_assignments(text);
        for key in strata_flags::known_keys(&MasterConfig::command()) {
            assert!(
                assignments.iter().any(|(k, _)| *k == key),
                "packaging/etc/master.toml does not document `{key}`: add a commented \
                 `# {key} = <default>` line with what it does"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.toml");
        let body: String = assignments
            .iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect();
        std::fs::write(&path, body).unwrap();
        let argv = ["strata-master", "--config", path.to_str().unwrap()];
        let layered = strata_flags::parse_from::<MasterConfig, _, _>(argv, Path::new("/absent"))
            .unwrap_or_else(|err| panic!("packaging/etc/master.toml, uncommented: {err}"));
        // The defaults it shows are the defaults.
        let defaults = MasterConfig::try_parse_from(["strata-master"]).unwrap();
        assert_eq!(layered.config.port, defaults.port);
        assert_eq!(layered.config.work_dir, defaults.work_dir);
        assert_eq!(
            layered.config.agent_ping_timeout,
            defaults.agent_ping_timeout
        );
        layered.config.validate().unwrap();
    }

    #[test]
    fn allocation_flags_parse_and_refuse_bad_values() {
        let config = MasterConfig::try_parse_from([
            "strata-master",
            "--min-allocatable-resources",
            "cpus:1;mem:64|gpus:1",
            "--offer-timeout",
            "30secs",
        ])
        .unwrap();
        assert_eq!(config.min_allocatable_resources.0.len(), 2);
        assert_eq!(config.offer_timeout, Some(Duration::from_secs(30)));
        let defaults = MasterConfig::try_parse_from(["strata-master"]).unwrap();
        assert_eq!(
            defaults.min_allocatable_resources.0,
            crate::allocator::default_min_allocatable()
        );
        assert_eq!(defaults.offer_timeout, None);
        let err = MasterConfig::try_parse_from([
            "strata-master",
            "--min-allocatable-resources",
            "cpus:x",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--min-allocatable-resources") && err.contains("cpus:x"),
            "{err}"
        );
        let zero =
            MasterConfig::try_parse_from(["strata-master", "--offer-timeout", "0secs"]).unwrap();
        assert!(zero.validate().unwrap_err().contains("--offer-timeout"));
    }

    #[test]
    fn every_flag_has_its_environment_variable() {
        assert_eq!(
            strata_flags::env_mismatches(&MasterConfig::command()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_config_file_under_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.toml");
        std::fs::write(&path, "port = 6050\nallocation_interval = \"2secs\"\n").unwrap();
        let file = path.to_str().unwrap();
        let parse = |args: &[&str]| {
            let argv: Vec<&str> = ["strata-master", "--config", file]
                .iter()
                .chain(args)
                .copied()
                .collect();
            strata_flags::parse_from::<MasterConfig, _, _>(argv, Path::new("/absent"))
                .map(|l| l.config)
        };
        let config = parse(&[]).unwrap();
        assert_eq!(config.port, 6050);
        assert_eq!(config.allocation_interval, Duration::from_secs(2));
        assert_eq!(parse(&["--port", "7050"]).unwrap().port, 7050);
        std::fs::write(&path, "max_agent_ping_timeouts = 0\n").unwrap();
        let err = parse(&[]).unwrap_err().to_string();
        assert!(
            err.contains("`max_agent_ping_timeouts` has invalid value '0'"),
            "{err}"
        );
    }
}
