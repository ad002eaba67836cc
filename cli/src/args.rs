//! The command line of `strata`: flags, their environment fallbacks and the parsers that turn
//! malformed values into clap errors (exit status 2) before anything runs.

use crate::units;
use clap::{ArgAction, Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;
use strata_schema::{FrameworkId, TaskId};

/// The master the CLI talks to when neither `--master` nor `STRATA_MASTER` is given.
pub const DEFAULT_MASTER: &str = "127.0.0.1:5050";

/// Start a single-node Strata cluster, run tasks on it and inspect it.
#[derive(Debug, Parser)]
#[command(name = "strata", version = strata_schema::VERSION, propagate_version = true)]
pub struct Cli {
    /// The master's address, as host:port, or zk://host:port[,host:port]/path to use whichever
    /// master leads
    #[arg(long, global = true, env = "STRATA_MASTER", default_value = DEFAULT_MASTER,
          value_parser = parse_master)]
    pub master: String,

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
    Tasks(TasksArgs),
    /// List agents
    Agents(AgentsArgs),
    /// Kill a task
    Kill(KillArgs),
    /// List the images in the agents' image stores, or prune the unused ones
    Images(ImagesArgs),
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
    if text.starts_with("https://") {
        return Err("https is not supported; pass the master as host:port".to_string());
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

    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
