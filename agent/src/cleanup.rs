//! `strata-agent --recover=cleanup` (Mesos' flag): kills every container a previous run of the
//! agent left, removes their checkpoints, and exits, so that an operator can start afresh before
//! an incompatible upgrade or past a damaged checkpoint. It reads no more of the checkpoint than
//! it must (a damaged `task.json` only costs the log line its task id).
//!
//! Kept: the agent id (`meta/agent_id`), so the next agent re-registers as the same agent and the
//! master at once reports the killed tasks lost, instead of waiting for the old agent to time
//! out beside a new one; and the sandboxes, for the operator to read. The network isolators' BPF
//! map entries of the killed containers are swept by the next agent's start.

use crate::checkpoint;
use crate::containerizer::{process_alive, TaskCheckpoint, SUPERVISOR_PID_FILE, TASK_FILE};
use crate::paths::Paths;
use crate::{AgentConfig, AgentError};
use std::path::Path;
use std::time::Duration;
use strata_isolators::cgroup2::{find_cgroup2_mount, Cgroup};
use tracing::{info, warn};

/// How long to wait for a killed container's processes to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a clean-up did.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// Checkpointed containers removed (killed if they still ran).
    pub containers: usize,
    /// Processes killed, supervisors included.
    pub processes: usize,
}

/// Runs the clean-up for `config`'s work dir and cgroup subtree.
pub fn run(config: &AgentConfig) -> Result<Cleaned, AgentError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(AgentError::NotRoot);
    }
    let paths = Paths {
        work_dir: config.work_dir.clone(),
    };
    let mount = find_cgroup2_mount(Path::new("/proc/self/mountinfo"))?;
    let subtree = mount.join(&config.cgroups_root);
    let mut cleaned = Cleaned::default();
    let containers = paths.containers_dir();
    let entries = match std::fs::read_dir(&containers) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => {
            return Err(AgentError::Cleanup(format!(
                "failed to read {}: {err}",
                containers.display()
            )))
        }
    };
    for dir in entries {
        let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if !dir.is_dir() || name.starts_with('.') {
            continue;
        }
        let task = describe(&dir);
        let killed = kill_supervisor(&dir) + kill_cgroup(&subtree.join(&name))?;
        info!(container_id = %name, task = %task, processes = killed, "killed the container and removed its checkpoint");
        std::fs::remove_dir_all(&dir).map_err(|err| {
            AgentError::Cleanup(format!("failed to remove {}: {err}", dir.display()))
        })?;
        cleaned.containers += 1;
        cleaned.processes += killed;
    }
    // Cgroups of containers whose checkpoint dir is gone (the subtree is the agent's own).
    if let Ok(root) = Cgroup::open(&subtree) {
        for child in root.children().unwrap_or_default() {
            let killed = kill_cgroup(child.path())?;
            warn!(cgroup = %child.path().display(), processes = killed, "killed a container cgroup without a checkpoint");
            cleaned.processes += killed;
        }
    }
    let frameworks = checkpoint::frameworks_dir(&paths);
    if let Err(err) = std::fs::remove_dir_all(&frameworks) {
        if err.kind() != std::io::ErrorKind::NotFound {
            return Err(AgentError::Cleanup(format!(
                "failed to remove {}: {err}",
                frameworks.display()
            )));
        }
    }
    info!(
        containers = cleaned.containers,
        processes = cleaned.processes,
        work_dir = %config.work_dir.display(),
        "recover=cleanup: done (the agent id is kept; sandboxes are left in place)"
    );
    Ok(cleaned)
}

/// "task T of framework F", or why that is unknown.
fn describe(dir: &Path) -> String {
    let path = dir.join(TASK_FILE);
    match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|d| serde_json::from_slice::<TaskCheckpoint>(&d).map_err(|e| e.to_string()))
    {
        Ok(ckpt) => format!(
            "task {} of framework {}",
            ckpt.task.task_id,
            ckpt.framework.id.map(|f| f.to_string()).unwrap_or_default()
        ),
        Err(err) => format!("unknown task ({}: {err})", path.display()),
    }
}

/// SIGKILLs the container's supervisor if it still runs; returns 1 if it did.
fn kill_supervisor(dir: &Path) -> usize {
    let pid = std::fs::read_to_string(dir.join(SUPERVISOR_PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 0);
    match pid {
        Some(pid) if process_alive(pid, dir) => {
            use nix::sys::signal::{kill, Signal};
            match kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) => 1,
                Err(err) => {
                    warn!(supervisor_pid = pid, cause = %err, "failed to kill a supervisor");
                    0
                }
            }
        }
        _ => 0,
    }
}

/// Kills everything in a container's cgroup (`cgroup.kill`), waits for it to empty and removes
/// it; returns how many processes it held.
fn kill_cgroup(path: &Path) -> Result<usize, AgentError> {
    if !path.exists() {
        return Ok(0);
    }
    let cgroup = Cgroup::open(path)?;
    let mut count = cgroup.procs().map(|p| p.len()).unwrap_or(0);
    for child in cgroup.children().unwrap_or_default() {
        count += child.procs().map(|p| p.len()).unwrap_or(0);
    }
    cgroup.kill()?;
    if !cgroup.wait_empty(KILL_TIMEOUT) {
        return Err(AgentError::Cleanup(format!(
            "the processes of {} did not die within {KILL_TIMEOUT:?} of cgroup.kill",
            path.display()
        )));
    }
    cgroup.remove()?;
    Ok(count)
}
