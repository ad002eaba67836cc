//! The command line of `strata`: flags, their environment fallbacks and the parsers that turn
//! malformed values into clap errors (exit status 2) before anything runs.

use crate::units;
use clap::{ArgAction, Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use strata_schema::{AgentId, FrameworkId, Resources, TaskId, DEFAULT_ROLE};

/// The prefix of a master address that asks for TLS.
pub const HTTPS: &str = "https://";

/// The master the CLI talks to when neither `--master` nor `STRATA_MASTER` is given.
pub const DEFAULT_MASTER: &str = "127.0.0.1:5050";

/// Start a single-node Strata cluster, run tasks on it and inspect it.
#[derive(Debug, Parser)]
#[command(name = "strata", version = strata_schema::VERSION, propagate_version = true)]
pub struct Cli {
    /// The master's address, as host:port, or zk://host:port[,host:port]/path to use whichever
    /// master leads [default: `master` in /etc/strata/cli.toml, else 127.0.0.1:5050]
    #[arg(long, global = true, env = "STRATA_MASTER", value_parser = parse_master)]
    pub master: Option<String>,

    /// CA certificate (PEM) to trust for the master's and agents' TLS: connections are then
    /// TLS (also with an https:// master) [default: `tls_ca` in /etc/strata/cli.toml]
    #[arg(long, global = true, env = "STRATA_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) to present over TLS, with --tls-key [default: `tls_cert` in
    /// /etc/strata/cli.toml]
    #[arg(long, global = true, env = "STRATA_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert [default: `tls_key` in /etc/strata/cli.toml]
    #[arg(long, global = true, env = "STRATA_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// The principal to authenticate as (HTTP Basic with --secret-file; `strata run`'s framework
    /// subscribes with it) [default: `principal` in /etc/strata/cli.toml]
    #[arg(long, global = true, env = "STRATA_PRINCIPAL")]
    pub principal: Option<String>,
    /// A file holding the principal's secret [default: `secret_file` in /etc/strata/cli.toml]
    #[arg(long, global = true, env = "STRATA_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// A bearer token (see `strata token`) sent instead of a principal and secret
    /// [default: `token` in /etc/strata/cli.toml]
    #[arg(long, global = true, env = "STRATA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Log to stderr (-v info, -vv debug, -vvv trace; RUST_LOG overrides)
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a master and an agent on this machine as background daemons (needs root)
    Up(UpArgs),
    /// Stop the daemons that `strata up` started
    Down(DownArgs),
    /// Run one command as a task and follow its output; exits with the task's exit status
    Run(RunArgs),
    /// List tasks
    #[command(visible_alias = "ps")]
    Tasks(TasksArgs),
    /// List agents
    Agents(AgentsArgs),
    /// List frameworks: roles, state, tasks, resources used and offered
    Frameworks(FrameworksArgs),
    /// Print a task's stdout and stderr from its sandbox; -f follows them until the task ends
    Logs(LogsArgs),
    /// Live per-task usage (CPU, memory, network), refreshed in the terminal
    Top(TopArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(CompletionsArgs),
    /// Kill a task
    Kill(KillArgs),
    /// List the images in the agents' image stores, or prune the unused ones
    Images(ImagesArgs),
    /// List the roles: weight, frameworks, allocated and reserved resources, quota
    Roles(RolesArgs),
    /// List the roles' quotas, or set or remove one
    Quota(QuotaArgs),
    /// List the roles' weights, or set one
    Weights(WeightsArgs),
    /// Reserve resources of an agent for a role (e.g. "cpus(ops):2;mem(ops):512")
    Reserve(ReservationArgs),
    /// Unreserve resources of an agent that are reserved for a role
    Unreserve(ReservationArgs),
    /// Drain an agent: kill its tasks and offer it no more until it is reactivated
    Drain(DrainArgs),
    /// Reactivate a drained (or deactivated) agent
    Reactivate(AgentArgs),
    /// Mint an operator's bearer token (HS256, signed with the master's --jwt-secret-key) for
    /// the principal given with --principal
    Token(TokenArgs),
    /// Make a cluster CA and node certificates for mutual TLS (small installs without a CA)
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub action: CertsAction,
}

#[derive(Debug, Subcommand)]
pub enum CertsAction {
    /// Make a self-signed cluster CA: DIR/ca.crt and DIR/ca.key (mode 0600)
    Ca {
        /// Where to write the CA's files
        #[arg(long, value_name = "DIR", default_value = "/etc/strata/tls")]
        dir: PathBuf,
        /// The CA's common name
        #[arg(long, default_value = "Strata cluster CA")]
        name: String,
        /// Validity in days
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Replace files that exist
        #[arg(long)]
        force: bool,
    },
    /// Issue a node certificate signed by the CA: OUT/NAME.crt and OUT/NAME.key (mode 0600);
    /// the subject CN is NAME, which the master takes as an agent's principal
    Node {
        /// The node's host name or address (subject CN and first alternative name)
        name: String,
        /// More DNS names or IP addresses the node is reached by (repeatable)
        #[arg(long = "alt-name", value_name = "NAME")]
        alt_names: Vec<String>,
        /// Where the CA's ca.crt and ca.key are
        #[arg(long, value_name = "DIR", default_value = "/etc/strata/tls")]
        ca_dir: PathBuf,
        /// Where to write the node's files (default: the CA's directory)
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Validity in days
        #[arg(long, default_value_t = 825)]
        days: u32,
        /// Replace files that exist
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The HS256 key file the master was given as --jwt-secret-key
    #[arg(long, value_name = "FILE")]
    pub jwt_secret_key: PathBuf,
    /// How long the token is valid (e.g. 1hours, 30mins, 7days)
    #[arg(long, default_value = "1hours", value_parser = parse_grace)]
    pub ttl: Duration,
}

#[derive(Debug, Args)]
pub struct RolesArgs {
    /// Print the master's role objects as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// Print the master's quota configurations as JSON
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub action: Option<QuotaAction>,
}

#[derive(Debug, Subcommand)]
pub enum QuotaAction {
    /// Set the guarantee and/or the limit of a role (replacing its quota)
    #[command(group(clap::ArgGroup::new("amounts").args(["guarantee", "limit"]).required(true).multiple(true)))]
    Set {
        /// The role
        #[arg(value_parser = parse_role)]
        role: String,

        /// Resources the role is guaranteed, unreserved scalars (e.g. "cpus:2;mem:1024")
        #[arg(long, value_parser = parse_quota_resources)]
        guarantee: Option<Resources>,

        /// Resources the role may use at most, unreserved scalars (e.g. "cpus:4")
        #[arg(long, value_parser = parse_quota_resources)]
        limit: Option<Resources>,
    },
    /// Remove a role's quota
    Remove {
        /// The role
        #[arg(value_parser = parse_role)]
        role: String,
    },
}

#[derive(Debug, Args)]
pub struct WeightsArgs {
    /// Print the master's weights as JSON
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub action: Option<WeightsAction>,
}

#[derive(Debug, Subcommand)]
pub enum WeightsAction {
    /// Set the weight of a role (its share of the cluster relative to the others; default 1)
    Set {
        /// The role
        #[arg(value_parser = parse_role)]
        role: String,

        /// The weight, a number greater than zero
        #[arg(value_parser = parse_weight, allow_negative_numbers = true)]
        weight: f64,
    },
}

#[derive(Debug, Args)]
pub struct ReservationArgs {
    /// The agent's id
    #[arg(value_parser = parse_agent_id)]
    pub agent: AgentId,

    /// The resources, each with its role, in Mesos syntax (e.g. "cpus(ops):2;mem(ops):512")
    #[arg(value_parser = parse_reserved_resources)]
    pub resources: Resources,
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The agent's id
    #[arg(value_parser = parse_agent_id)]
    pub agent: AgentId,

    /// The longest a task may take to stop (e.g. 30s, 5mins) [default: each task's kill policy]
    #[arg(long, value_name = "DURATION", value_parser = parse_grace)]
    pub grace: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's id
    #[arg(value_parser = parse_agent_id)]
    pub agent: AgentId,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only this agent (`host:port` of its HTTP endpoints) [default: every agent of the master]
    #[arg(long)]
    pub agent: Option<String>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub action: Option<ImagesAction>,
}

#[derive(Debug, Subcommand)]
pub enum ImagesAction {
    /// Remove the images no container uses (and their layers)
    Prune,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Work directory: master/, agent/, logs/ and run/ (pid files) live below it
    #[arg(long, env = "STRATA_WORK_DIR", default_value = "/var/lib/strata")]
    pub work_dir: PathBuf,

    /// The master's port (HTTP and RPC)
    #[arg(long, env = "STRATA_MASTER_PORT", default_value_t = 5050)]
    pub master_port: u16,

    /// The agent's port
    #[arg(long, env = "STRATA_AGENT_PORT", default_value_t = 5051)]
    pub agent_port: u16,

    /// The address both daemons listen on
    #[arg(long, env = "STRATA_IP", default_value = "127.0.0.1")]
    pub ip: IpAddr,

    /// The agent's resources in Mesos syntax (e.g. "cpus:2;mem:2048"); detected when absent
    #[arg(long, env = "STRATA_RESOURCES")]
    pub resources: Option<String>,

    /// Stay attached; stop both daemons on Ctrl-C or SIGTERM
    #[arg(long)]
    pub foreground: bool,

    /// Let the daemons serve a non-loopback --ip without TLS (they refuse to otherwise)
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// The work directory given to `strata up`
    #[arg(long, env = "STRATA_WORK_DIR", default_value = "/var/lib/strata")]
    pub work_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// CPUs for the task
    #[arg(long, default_value_t = 0.5, value_parser = parse_positive)]
    pub cpus: f64,

    /// Memory for the task, in MiB (suffixes MiB and GiB are accepted)
    #[arg(long, default_value = "64", value_parser = units::parse_mem)]
    pub mem: f64,

    /// The task's name (also the prefix of its generated id)
    #[arg(long)]
    pub name: Option<String>,

    /// The task's id [default: <name or "run">-<8 hex digits>]
    #[arg(long, value_parser = parse_task_id)]
    pub task_id: Option<TaskId>,

    /// Run the command as this user (the framework's user is the invoking user otherwise)
    #[arg(long)]
    pub user: Option<String>,

    /// Set an environment variable for the command (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<(String, String)>,

    /// Seconds to wait for an offer that fits
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub offer_timeout: u64,

    /// Do not print the task's state changes
    #[arg(short, long)]
    pub quiet: bool,

    /// Ask for N ports of the agent's `ports` resource; the task sees them as PORT0…PORT<N-1>
    /// and PORTS (comma-separated), and may bind only those
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub ports: u16,

    /// Return once the task runs, leaving it running (`strata logs -f`, `strata kill` later);
    /// its framework is kept for a week without this command
    #[arg(short, long, conflicts_with = "attach")]
    pub detach: bool,

    /// Stay attached, copying the task's stdout and stderr live until it ends (the default)
    #[arg(long)]
    pub attach: bool,

    /// Run the task in this image: a registry reference (`registry:5000/repo:tag`,
    /// `…@sha256:…`), `oci:DIR[:REF]`, `oci-archive:FILE[:REF]` or `docker-archive:FILE[:TAG]`;
    /// without a command it runs the image's entrypoint and cmd
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,

    /// The image's type in the task's ContainerInfo [default: oci for oci: and oci-archive:
    /// names, else docker]
    #[arg(long, value_parser = ["docker", "oci"], requires = "image")]
    pub image_type: Option<String>,

    /// Bind a host path into the container, `HOST:CONTAINER[:ro|rw]` (repeatable; needs --image)
    #[arg(long = "volume", value_name = "HOST:CONTAINER[:MODE]", value_parser = parse_volume, requires = "image")]
    pub volumes: Vec<strata_schema::Volume>,

    /// The command: one word-string runs through /bin/sh -c, several are executed directly
    #[arg(
        required_unless_present = "image",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

/// `HOST:CONTAINER[:ro|rw]`.
pub fn parse_volume(text: &str) -> Result<strata_schema::Volume, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host, container, mode) = match parts.as_slice() {
        [host, container] => (*host, *container, strata_schema::VolumeMode::Rw),
        [host, container, "rw"] => (*host, *container, strata_schema::VolumeMode::Rw),
        [host, container, "ro"] => (*host, *container, strata_schema::VolumeMode::Ro),
        [_, _, mode] => return Err(format!("unknown volume mode {mode:?} (ro or rw)")),
        _ => return Err("expected HOST:CONTAINER[:ro|rw]".to_string()),
    };
    if !host.starts_with('/') {
        return Err(format!("the host path {host:?} must be absolute"));
    }
    if container.is_empty() {
        return Err("the container path is empty".to_string());
    }
    Ok(strata_schema::Volume {
        container_path: container.to_string(),
        host_path: host.to_string(),
        mode,
    })
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    /// Also list completed tasks and the tasks of completed frameworks
    #[arg(long)]
    pub all: bool,

    /// Print the master's task objects as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FrameworksArgs {
    /// Also list completed (torn down) frameworks
    #[arg(long)]
    pub all: bool,

    /// Print the master's framework objects as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The task's id
    #[arg(value_parser = parse_task_id)]
    pub task_id: TaskId,

    /// The task's framework, when several frameworks have a task of that id
    #[arg(long, value_parser = parse_framework_id)]
    pub framework: Option<FrameworkId>,

    /// Keep printing what the task writes until it ends (Ctrl-C stops)
    #[arg(short, long)]
    pub follow: bool,

    /// Only stdout
    #[arg(long, conflicts_with = "stderr")]
    pub stdout: bool,

    /// Only stderr
    #[arg(long)]
    pub stderr: bool,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Seconds between refreshes
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_interval)]
    pub interval: Duration,

    /// Print one sample (measured over --interval) as a plain table and exit
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: clap_complete::Shell,
}

/// A refresh interval: seconds, at least 0.1.
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.1..=3600.0).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "`{text}` is not a number of seconds between 0.1 and 3600"
        )),
    }
}

#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// Print the master's agent objects as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The id of the task to kill
    #[arg(value_parser = parse_task_id)]
    pub task_id: TaskId,

    /// The framework of the task (needed when several frameworks have a task of that id)
    #[arg(long, value_parser = parse_framework_id)]
    pub framework: Option<FrameworkId>,
}

/// Normalizes a master address to `host:port`: accepts `host`, `host:port`, `[v6]:port`, a bare
/// IP address, an `http://` URL, and `zk://host:port[,host:port]/path` (the leader is looked up
/// in ZooKeeper when the command starts).
pub fn parse_master(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with("zk://") {
        // Resolved to the leading master when the command starts.
        return text.parse::<strata_ha::ZkUrl>().map(|url| url.to_string());
    }
    // `https://` is kept in front: the connections are then TLS (see `crate::tls_settings`).
    if let Some(rest) = text.strip_prefix("https://") {
        if rest.starts_with("https://") || rest.starts_with("http://") {
            return Err(format!("{text:?} is not a host:port address"));
        }
        return parse_master(rest).map(|addr| format!("{HTTPS}{addr}"));
    }
    let text = text
        .strip_prefix("http://")
        .unwrap_or(text)
        .trim_end_matches('/');
    if text.is_empty() {
        return Err("the master address is empty".to_string());
    }
    if text.contains('/') {
        return Err(format!("{text:?} is not a host:port address"));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(crate::host_port(&ip.to_string(), 5050));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("invalid port in {text:?}"))?;
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            if bare.is_empty() || (host.contains(':') && !host.starts_with('[')) {
                return Err(format!("{text:?} is not a host:port address"));
            }
            Ok(format!("{host}:{port}"))
        }
        None => Ok(format!("{text}:5050")),
    }
}

fn parse_positive(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("{text:?} must be greater than zero"));
    }
    Ok(value)
}

fn parse_agent_id(text: &str) -> Result<AgentId, String> {
    AgentId::new(text).map_err(|err| err.to_string())
}

/// A role name as Mesos allows it ([`strata_schema::validate_role`]), and not `*` (the
/// unreserved role).
pub fn parse_role(text: &str) -> Result<String, String> {
    if text == DEFAULT_ROLE {
        return Err("\"*\" is the role of unreserved resources; name a role".to_string());
    }
    strata_schema::validate_role(text)?;
    Ok(text.to_string())
}

/// A quota's resources: unreserved scalars only (`cpus:2;mem:1024`).
pub fn parse_quota_resources(text: &str) -> Result<Resources, String> {
    let resources = Resources::parse(text).map_err(|err| err.to_string())?;
    for item in resources.iter() {
        if item.role != DEFAULT_ROLE {
            return Err(format!(
                "{}({}) names a role: quota resources are unreserved (write {}:{})",
                item.name, item.role, item.name, item.value
            ));
        }
        if !matches!(item.value, strata_schema::Value::Scalar(_)) {
            return Err(format!(
                "{}:{} is not a scalar: quota covers scalars only (cpus, mem, disk, gpus…)",
                item.name, item.value
            ));
        }
    }
    if resources.is_empty() {
        return Err(format!("{text:?} names no resources"));
    }
    Ok(resources)
}

/// Resources to reserve or unreserve: each item names its role (`cpus(ops):2`).
pub fn parse_reserved_resources(text: &str) -> Result<Resources, String> {
    let resources = Resources::parse(text).map_err(|err| err.to_string())?;
    if let Some(item) = resources.iter().find(|item| item.role == DEFAULT_ROLE) {
        return Err(format!(
            "{}:{} names no role: write {}(ROLE):{}",
            item.name, item.value, item.name, item.value
        ));
    }
    if resources.is_empty() {
        return Err(format!("{text:?} names no resources"));
    }
    Ok(resources)
}

/// A role's weight: a finite number greater than zero.
pub fn parse_weight(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("the weight {text:?} is not a number"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!(
            "the weight {text:?} must be a finite number greater than zero"
        ));
    }
    Ok(value)
}

/// A drain's grace period in Mesos' duration syntax (`30s`, `5mins`).
fn parse_grace(text: &str) -> Result<Duration, String> {
    strata_schema::parse_duration(text).map_err(|err| err.to_string())
}

fn parse_task_id(text: &str) -> Result<TaskId, String> {
    TaskId::new(text).map_err(|err| err.to_string())
}

fn parse_framework_id(text: &str) -> Result<FrameworkId, String> {
    FrameworkId::new(text).map_err(|err| err.to_string())
}

/// `KEY=VALUE`; the value may be empty and may contain `=`.
pub fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.contains('\0') && !value.contains('\0') => {
            Ok((key.to_string(), value.to_string()))
        }
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn master_addresses() {
        assert_eq!(parse_master("127.0.0.1:5050").unwrap(), "127.0.0.1:5050");
        assert_eq!(parse_master("http://m1:6060/").unwrap(), "m1:6060");
        assert_eq!(parse_master("m1").unwrap(), "m1:5050");
        assert_eq!(parse_master("10.0.0.1").unwrap(), "10.0.0.1:5050");
        assert_eq!(parse_master("::1").unwrap(), "[::1]:5050");
        assert_eq!(parse_master("[::1]:7000").unwrap(), "[::1]:7000");
        assert_eq!(
            parse_master("zk://z1:2181,z2:2181/strata/").unwrap(),
            "zk://z1:2181,z2:2181/strata"
        );
        assert!(parse_master("zk://z1:2181").unwrap_err().contains("path"));
        assert!(parse_master("m1:notaport").is_err());
        assert_eq!(parse_master("https://m1:6060/").unwrap(), "https://m1:6060");
        assert_eq!(parse_master("https://m1").unwrap(), "https://m1:5050");
        assert!(parse_master("https://http://m1").is_err());
        assert!(parse_master("m1:5050/state").is_err());
        assert!(parse_master("").is_err());
    }

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), ("A".into(), String::new()));
        assert!(parse_env("A").is_err());
        assert!(parse_env("=x").is_err());
    }

    #[test]
    fn run_takes_the_rest_as_the_command() {
        let cli = Cli::try_parse_from(["strata", "run", "--cpus", "1", "--", "ls", "-la"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.command, ["ls", "-la"]);
        assert_eq!(run.cpus, 1.0);
        let cli = Cli::try_parse_from(["strata", "run", "sh", "-c", "exit 3"]).unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.command, ["sh", "-c", "exit 3"]);
        assert!(Cli::try_parse_from(["strata", "run"]).is_err());
        assert!(Cli::try_parse_from(["strata", "run", "--cpus", "0", "--", "x"]).is_err());
        assert!(Cli::try_parse_from(["strata", "run", "--task-id", "a/b", "--", "x"]).is_err());
    }

    fn parse(args: &[&str]) -> Result<Command, String> {
        Cli::try_parse_from(std::iter::once("strata").chain(args.iter().copied()))
            .map(|cli| cli.command)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn roles() {
        assert_eq!(parse_role("eng/backend").unwrap(), "eng/backend");
        assert!(parse_role("*").unwrap_err().contains("unreserved"));
        assert!(parse_role("").is_err());
        assert!(parse_role("eng/").unwrap_err().contains("ends with"));
        assert!(parse_role("a/../b").is_err());
        assert!(parse_role("-x").is_err());
        assert!(parse_role("a b").unwrap_err().contains("' '"));
    }

    #[test]
    fn quota_resources() {
        let r = parse_quota_resources("cpus:2;mem:1024").unwrap();
        assert_eq!(r.cpus(), 2.0);
        assert_eq!(r.mem(), 1024.0);
        let err = parse_quota_resources("cpus(ops):2").unwrap_err();
        assert!(err.contains("cpus(ops)"), "{err}");
        let err = parse_quota_resources("cpus:1;ports:[1-2]").unwrap_err();
        assert!(err.contains("ports:[1-2] is not a scalar"), "{err}");
        let err = parse_quota_resources("cpus:lots").unwrap_err();
        assert!(err.contains("cpus:lots"), "{err}");
        assert!(parse_quota_resources("").is_err());
    }

    #[test]
    fn reserved_resources() {
        let r = parse_reserved_resources("cpus(ops):2;mem(ops):512").unwrap();
        assert_eq!(r.to_string(), "cpus(ops):2;mem(ops):512");
        let err = parse_reserved_resources("cpus(ops):2;mem:512").unwrap_err();
        assert_eq!(err, "mem:512 names no role: write mem(ROLE):512");
        assert!(parse_reserved_resources("cpus(ops)").is_err());
        assert!(parse_reserved_resources(";").is_err());
    }

    #[test]
    fn weights() {
        assert_eq!(parse_weight("2.5").unwrap(), 2.5);
        for bad in ["0", "-1", "inf", "NaN", "heavy"] {
            assert!(parse_weight(bad).is_err(), "{bad}");
        }
        let Command::Weights(WeightsArgs {
            action: Some(WeightsAction::Set { role, weight }),
            ..
        }) = parse(&["weights", "set", "eng", "2"]).unwrap()
        else {
            panic!("not weights set")
        };
        assert_eq!((role.as_str(), weight), ("eng", 2.0));
        let err = parse(&["weights", "set", "eng", "-1"]).unwrap_err();
        assert!(err.contains("greater than zero"), "{err}");
        assert!(parse(&["weights", "set", "*", "1"]).is_err());
    }

    #[test]
    fn allocation_commands() {
        let Command::Quota(QuotaArgs {
            action:
                Some(QuotaAction::Set {
                    role,
                    guarantee,
                    limit,
                }),
            ..
        }) = parse(&["quota", "set", "eng", "--guarantee", "cpus:2"]).unwrap()
        else {
            panic!("not quota set")
        };
        assert_eq!(role, "eng");
        assert_eq!(guarantee.unwrap().cpus(), 2.0);
        assert!(limit.is_none());
        // a quota set names a guarantee or a limit (`quota remove` clears)
        assert!(parse(&["quota", "set", "eng"]).is_err());
        assert!(parse(&["quota", "set", "eng", "--limit", "cpus(eng):1"]).is_err());
        assert!(matches!(
            parse(&["quota", "remove", "eng"]).unwrap(),
            Command::Quota(QuotaArgs {
                action: Some(QuotaAction::Remove { .. }),
                ..
            })
        ));
        assert!(matches!(
            parse(&["quota", "--json"]).unwrap(),
            Command::Quota(QuotaArgs {
                json: true,
                action: None
            })
        ));
        let err = parse(&["reserve", "S0", "cpus:2"]).unwrap_err();
        assert!(err.contains("names no role"), "{err}");
        assert!(matches!(
            parse(&["unreserve", "S0", "cpus(ops):2"]).unwrap(),
            Command::Unreserve(_)
        ));
        let Command::Drain(drain) = parse(&["drain", "S0", "--grace", "30s"]).unwrap() else {
            panic!("not drain")
        };
        assert_eq!(drain.grace, Some(Duration::from_secs(30)));
        assert!(parse(&["drain", "S0", "--grace", "30"]).is_err());
        assert!(parse(&["reactivate", "a/b"]).is_err());
        assert!(matches!(parse(&["roles"]).unwrap(), Command::Roles(_)));
    }

    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
