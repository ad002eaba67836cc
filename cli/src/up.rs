//! `strata up` and `strata down`: a single-node cluster of one master and one agent running as
//! background daemons under a work directory.

use crate::args::{DownArgs, UpArgs, DEFAULT_MASTER};
use crate::daemons::{self, Daemon, Layout, ProcState, Started, Stopped, PROC_ROOT};
use crate::signals::Interrupts;
use crate::tables::{array, number, text};
use crate::units::{format_cpus, format_mem};
use crate::{connect_ip, host_port};
use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_client::http::{self, HttpError};
use tokio::time::Instant;

/// How long `strata up` waits for the master to answer and an agent to register.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `strata down` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of a daemon's log shown when it fails to come up.
const LOG_LINES: usize = 20;

pub async fn up(args: UpArgs) -> anyhow::Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        bail!("strata up must run as root: the agent creates cgroups and namespaces for tasks");
    }
    let root = std::path::absolute(&args.work_dir)
        .with_context(|| format!("invalid work dir {}", args.work_dir.display()))?;
    let layout = Layout::new(root);
    for dir in [
        layout.work_dir(Daemon::Master),
        layout.work_dir(Daemon::Agent),
        layout.logs_dir(),
        layout.run_dir(),
    ] {
        daemons::create_dir(&dir)?;
    }

    let master_running = running_pid(&layout, Daemon::Master)?;
    let agent_running = running_pid(&layout, Daemon::Agent)?;
    if let (Some(master), Some(agent)) = (&master_running, &agent_running) {
        println!(
            "strata is already up (strata-master pid {}, strata-agent pid {}; logs in {})",
            master.0,
            agent.0,
            layout.logs_dir().display()
        );
        if master.1 || agent.1 {
            println!(
                "note: the daemons' binaries were replaced since they started; \
                 run `strata down` and `strata up` to restart them"
            );
        }
        return Ok(0);
    }

    // Find every binary before starting anything.
    let master_bin = match master_running {
        None => Some(daemons::locate(Daemon::Master)?),
        Some(_) => None,
    };
    let agent_bin = match agent_running {
        None => Some(daemons::locate(Daemon::Agent)?),
        Some(_) => None,
    };

    let ip = args.ip.to_string();
    let master_addr = host_port(&connect_ip(args.ip).to_string(), args.master_port);
    let mut started: Vec<Started> = Vec::new();
    if let Some(bin) = master_bin {
        let mut master = master_args(&ip, args.master_port, &layout.work_dir(Daemon::Master));
        master.extend(dev_acls(&layout.work_dir(Daemon::Master))?);
        if args.insecure {
            master.push("--insecure".into());
        }
        let args = master;
        started.push(daemons::spawn(Daemon::Master, &bin, &args, &layout)?);
    }
    if let Some(bin) = agent_bin {
        let mut agent_args = agent_args(
            &master_addr,
            &ip,
            args.agent_port,
            &layout.work_dir(Daemon::Agent),
            args.resources.as_deref(),
        );
        if args.insecure {
            agent_args.push("--insecure".into());
        }
        match daemons::spawn(Daemon::Agent, &bin, &agent_args, &layout) {
            Ok(agent) => started.push(agent),
            Err(err) => {
                daemons::stop_started(&mut started).await;
                return Err(err);
            }
        }
    }
    for s in &started {
        eprintln!(
            "strata: started {} (pid {}), log {}",
            s.daemon.binary(),
            s.child.id(),
            s.log.display()
        );
    }

    let mut interrupts = Interrupts::new()?;
    let ready = tokio::select! {
        ready = wait_ready(&master_addr, args.agent_port, &mut started) => ready,
        () = interrupts.recv() => {
            eprintln!("strata: interrupted; stopping what was started");
            daemons::stop_started(&mut started).await;
            return Ok(130);
        }
    };
    let agent = match ready {
        Ok(agent) => agent,
        Err(failure) => {
            // The log of the daemon that failed, if this run started it.
            if let Some(s) = started.iter().find(|s| s.daemon == failure.daemon) {
                eprintln!("strata: last {LOG_LINES} lines of {}:", s.log.display());
                eprint!("{}", daemons::log_tail(&s.log, s.log_offset, LOG_LINES));
            }
            daemons::stop_started(&mut started).await;
            return Err(failure.error);
        }
    };

    println!(
        "strata is up: master http://{master_addr}, {}",
        describe_agent(&agent)
    );
    if master_addr == DEFAULT_MASTER {
        println!("try: strata run -- echo hello");
    } else {
        println!("try: strata --master {master_addr} run -- echo hello");
    }
    if !args.foreground {
        return Ok(0);
    }
    foreground(&mut started, &mut interrupts).await
}

/// Stays attached until SIGINT/SIGTERM (stops the daemons, exit 0) or until a daemon exits by
/// itself (stops the other, exit 1).
async fn foreground(started: &mut [Started], interrupts: &mut Interrupts) -> anyhow::Result<u8> {
    eprintln!("strata: running in the foreground; Ctrl-C stops the cluster");
    let exited = loop {
        tokio::select! {
            () = interrupts.recv() => break None,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Some((daemon, status)) = exited_child(started) {
            break Some((daemon, status));
        }
    };
    eprintln!("strata: stopping");
    let logs: Vec<(Daemon, PathBuf, u64)> = started
        .iter()
        .map(|s| (s.daemon, s.log.clone(), s.log_offset))
        .collect();
    daemons::stop_started(started).await;
    match exited {
        None => {
            println!("strata is down");
            Ok(0)
        }
        Some((daemon, status)) => {
            if let Some((_, log, offset)) = logs.iter().find(|(d, _, _)| *d == daemon) {
                eprintln!("strata: last {LOG_LINES} lines of {}:", log.display());
                eprint!("{}", daemons::log_tail(log, *offset, LOG_LINES));
            }
            Err(anyhow!(
                "{} exited unexpectedly ({status})",
                daemon.binary()
            ))
        }
    }
}

pub async fn down(args: DownArgs) -> anyhow::Result<u8> {
    let root = std::path::absolute(&args.work_dir)
        .with_context(|| format!("invalid work dir {}", args.work_dir.display()))?;
    let layout = Layout::new(root);
    let mut targets = Vec::new();
    let mut any_pid_file = false;
    // The agent first: it would otherwise keep trying to reach a stopped master.
    for daemon in [Daemon::Agent, Daemon::Master] {
        let pid_file = layout.pid_file(daemon);
        let Some(pid) = daemons::read_pid(&pid_file)
            .with_context(|| format!("cannot read {}", pid_file.display()))?
        else {
            continue;
        };
        any_pid_file = true;
        match inspect(daemon, pid, &pid_file)? {
            ProcState::Daemon { .. } => targets.push((daemon, pid)),
            ProcState::Gone => {
                println!(
                    "{} was not running (stale pid file {})",
                    daemon.binary(),
                    pid_file.display()
                );
                daemons::remove_pid(&pid_file)?;
            }
            ProcState::Other(exe) => {
                println!(
                    "{} was not running: pid {pid} in {} is now {}; not signalling it",
                    daemon.binary(),
                    pid_file.display(),
                    exe.display()
                );
                daemons::remove_pid(&pid_file)?;
            }
        }
    }
    if !any_pid_file {
        println!(
            "strata is not running (no pid files in {})",
            layout.run_dir().display()
        );
        return Ok(0);
    }
    let outcome = daemons::stop(Path::new(PROC_ROOT), &targets, STOP_GRACE).await?;
    for (&(daemon, pid), stopped) in targets.iter().zip(outcome) {
        match stopped {
            Stopped::NotRunning => println!("{} (pid {pid}) had already exited", daemon.binary()),
            Stopped::Terminated => println!("stopped {} (pid {pid})", daemon.binary()),
            Stopped::Killed => println!(
                "killed {} (pid {pid}): it did not exit within {} s of SIGTERM",
                daemon.binary(),
                STOP_GRACE.as_secs()
            ),
        }
        daemons::remove_pid(&layout.pid_file(daemon))?;
    }
    println!("strata is down");
    Ok(0)
}

/// The pid of a running daemon from its pid file and whether its binary was replaced since;
/// `None` when it does not run (a stale pid file is left to be overwritten).
fn running_pid(layout: &Layout, daemon: Daemon) -> anyhow::Result<Option<(i32, bool)>> {
    let pid_file = layout.pid_file(daemon);
    let Some(pid) = daemons::read_pid(&pid_file)
        .with_context(|| format!("cannot read {}", pid_file.display()))?
    else {
        return Ok(None);
    };
    Ok(match inspect(daemon, pid, &pid_file)? {
        ProcState::Daemon { replaced } => Some((pid, replaced)),
        ProcState::Gone | ProcState::Other(_) => None,
    })
}

fn inspect(daemon: Daemon, pid: i32, pid_file: &Path) -> anyhow::Result<ProcState> {
    daemons::inspect_pid(Path::new(PROC_ROOT), pid, daemon.binary())
        .with_context(|| format!("cannot inspect pid {pid} from {}", pid_file.display()))
}

/// `--acls` for the dev cluster: a single-node loopback cluster run by its owner, whose tasks
/// run as root by default — which a master allows only with an ACL that says so (issue 11).
/// The file is written next to the master's work dir.
fn dev_acls(work_dir: &Path) -> anyhow::Result<Vec<String>> {
    let dir = work_dir.parent().unwrap_or(work_dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("acls.json");
    std::fs::write(&path, strata_security::acl::Acls::ALLOW_ROOT_JSON)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(vec!["--acls".into(), path.display().to_string()])
}

pub fn master_args(ip: &str, port: u16, work_dir: &Path) -> Vec<String> {
    vec![
        "--ip".into(),
        ip.into(),
        "--port".into(),
        port.to_string(),
        "--work-dir".into(),
        work_dir.display().to_string(),
    ]
}

pub fn agent_args(
    master: &str,
    ip: &str,
    port: u16,
    work_dir: &Path,
    resources: Option<&str>,
) -> Vec<String> {
    let mut args = vec![
        "--master".into(),
        master.into(),
        "--ip".into(),
        ip.into(),
        "--port".into(),
        port.to_string(),
        "--work-dir".into(),
        work_dir.display().to_string(),
    ];
    if let Some(resources) = resources {
        args.extend(["--resources".into(), resources.into()]);
    }
    args
}

/// Why the cluster did not come up, and whose log explains it.
struct StartFailure {
    daemon: Daemon,
    error: anyhow::Error,
}

/// Polls until the master answers `/health` and `/state` lists an active agent (preferring the
/// one on `agent_port`); fails early when a started daemon exits.
async fn wait_ready(
    master_addr: &str,
    agent_port: u16,
    started: &mut [Started],
) -> Result<Value, StartFailure> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut master_answered = false;
    let mut last_error: String;
    loop {
        if let Some((daemon, status)) = exited_child(started) {
            let error = anyhow!("{} exited during start-up ({status})", daemon.binary());
            return Err(StartFailure { daemon, error });
        }
        match health(master_addr).await {
            Ok(()) => {
                master_answered = true;
                match http::get_json(master_addr, "/state").await {
                    Ok(state) => {
                        if let Some(agent) = active_agent(&state, agent_port) {
                            return Ok(agent.clone());
                        }
                        last_error = "no active agent yet".into();
                    }
                    Err(err) => last_error = crate::master::error_chain(&err),
                }
            }
            Err(err) => last_error = err,
        }
        if Instant::now() >= deadline {
            let secs = READY_TIMEOUT.as_secs();
            return Err(if master_answered {
                StartFailure {
                    daemon: Daemon::Agent,
                    error: anyhow!(
                        "no agent registered with the master at {master_addr} within {secs} s \
                         ({last_error})"
                    ),
                }
            } else {
                StartFailure {
                    daemon: Daemon::Master,
                    error: anyhow!(
                        "the master did not answer http://{master_addr}/health within {secs} s: \
                         {last_error}"
                    ),
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `GET /health`: any 2xx is healthy, whatever the body (the master answers a plain `OK`, which
/// the JSON helper reports as an error after the successful status).
async fn health(addr: &str) -> Result<(), String> {
    match http::get_json(addr, "/health").await {
        Ok(_) | Err(HttpError::Json { .. }) => Ok(()),
        Err(HttpError::Status {
            status: 200..=299, ..
        }) => Ok(()),
        Err(err) => Err(crate::master::error_chain(&err)),
    }
}

/// The first started daemon that has exited, with its status.
fn exited_child(started: &mut [Started]) -> Option<(Daemon, String)> {
    started.iter_mut().find_map(|s| match s.child.try_wait() {
        Ok(Some(status)) => Some((s.daemon, status.to_string())),
        Ok(None) => None,
        Err(err) => Some((s.daemon, format!("cannot wait for it: {err}"))),
    })
}

/// An active agent in the master's `/state`, preferring the one on `port`.
pub fn active_agent(state: &Value, port: u16) -> Option<&Value> {
    let active: Vec<&Value> = array(state, "slaves")
        .iter()
        .filter(|agent| agent.get("active").and_then(Value::as_bool) == Some(true))
        .collect();
    active
        .iter()
        .find(|agent| number(agent, "port") == f64::from(port))
        .or_else(|| active.first())
        .copied()
}

/// `agent <id> (cpus 2, mem 1.5 GiB)`.
pub fn describe_agent(agent: &Value) -> String {
    let resources = agent.get("resources").unwrap_or(&Value::Null);
    format!(
        "agent {} (cpus {}, mem {})",
        text(agent, "id"),
        format_cpus(number(resources, "cpus")),
        format_mem(number(resources, "mem"))
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn daemon_command_lines() {
        let wd = Path::new("/var/lib/strata/master");
        assert_eq!(
            master_args("127.0.0.1", 5050, wd).join(" "),
            "--ip 127.0.0.1 --port 5050 --work-dir /var/lib/strata/master"
        );
        let wd = Path::new("/var/lib/strata/agent");
        assert_eq!(
            agent_args("127.0.0.1:5050", "127.0.0.1", 5051, wd, None).join(" "),
            "--master 127.0.0.1:5050 --ip 127.0.0.1 --port 5051 --work-dir /var/lib/strata/agent"
        );
        let args = agent_args("m:1", "0.0.0.0", 1, wd, Some("cpus:2;mem:1024"));
        assert_eq!(args[args.len() - 2..], ["--resources", "cpus:2;mem:1024"]);
    }

    #[test]
    fn picks_the_active_agent_on_our_port() {
        let state = json!({"slaves": [
            {"id": "S0", "port": 5051, "active": false},
            {"id": "S1", "port": 6000, "active": true},
            {"id": "S2", "port": 5051, "active": true,
             "resources": {"cpus": 2.0, "mem": 1536.0}}
        ]});
        let agent = active_agent(&state, 5051).unwrap();
        assert_eq!(agent["id"], "S2");
        assert_eq!(describe_agent(agent), "agent S2 (cpus 2, mem 1.5 GiB)");
        assert_eq!(active_agent(&state, 7000).unwrap()["id"], "S1");
        assert!(active_agent(&json!({"slaves": [{"active": false}]}), 5051).is_none());
    }
}
