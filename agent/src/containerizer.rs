//! Starts, signals and watches containers. Each container is run by its own supervisor process
//! (`strata-agent supervise <dir>`, see [`crate::supervisor`]), started here with a plain
//! spawn+exec: the daemon itself never clones with namespace flags. Events from a supervisor's
//! stdout become [`ContainerEvent`]s for the agent's actor.

use crate::paths::{write_atomic, write_replace, Paths};
use crate::supervisor::{ContainerSpec, ExitStatus, Namespaces, SPEC_FILE, STATUS_FILE};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use strata_schema::{AgentId, ContainerId, FrameworkInfo, TaskInfo};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

pub const TASK_FILE: &str = "task.json";
pub const SUPERVISOR_PID_FILE: &str = "supervisor.pid";
pub const SUPERVISOR_LOG: &str = "supervisor.log";

/// What the agent checkpoints about a container before starting it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskCheckpoint {
    pub container_id: ContainerId,
    pub agent_id: AgentId,
    pub framework: FrameworkInfo,
    pub task: TaskInfo,
    pub sandbox: PathBuf,
}

/// What a container's supervisor reports.
#[derive(Debug)]
pub enum ContainerEvent {
    /// The task's command is executing; `init_pid` is the container's init on the host.
    Running {
        container_id: ContainerId,
        init_pid: i32,
    },
    /// The supervisor is gone; `status` is what it wrote (None if it died without writing).
    Exited {
        container_id: ContainerId,
        status: Option<ExitStatus>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("failed to create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("failed to give the sandbox {path} to user {user}: {source}")]
    Chown {
        path: PathBuf,
        user: String,
        source: nix::Error,
    },
    #[error("failed to start the container's supervisor {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct Containerizer {
    paths: Paths,
    /// The agent's subtree of the cgroup2 hierarchy (`<mount>/<cgroups_root>`).
    cgroup_root: PathBuf,
    /// This binary, re-executed as each container's supervisor.
    exe: PathBuf,
    events: mpsc::UnboundedSender<ContainerEvent>,
}

/// The longest hostname Linux accepts.
const HOST_NAME_MAX: usize = 64;

impl Containerizer {
    pub fn new(
        paths: Paths,
        cgroup_root: PathBuf,
        exe: PathBuf,
        events: mpsc::UnboundedSender<ContainerEvent>,
    ) -> Self {
        Self {
            paths,
            cgroup_root,
            exe,
            events,
        }
    }

    pub fn cgroup_of(&self, id: &ContainerId) -> PathBuf {
        self.cgroup_root.join(id.as_str())
    }

    /// The spec the supervisor runs for `task`.
    pub fn spec(&self, ckpt: &TaskCheckpoint) -> ContainerSpec {
        let task = &ckpt.task;
        let sandbox = ckpt.sandbox.to_string_lossy().into_owned();
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("HOME".into(), sandbox.clone()),
            ("MESOS_SANDBOX".into(), sandbox.clone()),
            ("MESOS_DIRECTORY".into(), sandbox),
            ("MESOS_TASK_ID".into(), task.task_id.to_string()),
            ("MESOS_EXECUTOR_ID".into(), task.task_id.to_string()),
            (
                "MESOS_FRAMEWORK_ID".into(),
                ckpt.framework
                    .id
                    .as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
            ),
            ("MESOS_AGENT_ID".into(), ckpt.agent_id.to_string()),
            ("MESOS_SLAVE_ID".into(), ckpt.agent_id.to_string()),
            ("MESOS_CONTAINER_ID".into(), ckpt.container_id.to_string()),
        ];
        if let Some(user) = &task.command.user {
            env.push(("USER".into(), user.clone()));
        }
        for (name, value) in &task.command.environment {
            env.retain(|(n, _)| n != name);
            env.push((name.clone(), value.clone()));
        }
        let argv = if task.command.shell {
            vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                task.command.value.clone(),
            ]
        } else if task.command.arguments.is_empty() {
            vec![task.command.value.clone()]
        } else {
            task.command.arguments.clone()
        };
        let mut hostname = task
            .hostname
            .clone()
            .unwrap_or_else(|| task.task_id.to_string());
        hostname.truncate(HOST_NAME_MAX);
        ContainerSpec {
            container_id: ckpt.container_id.to_string(),
            sandbox: ckpt.sandbox.clone(),
            cgroup: self.cgroup_of(&ckpt.container_id),
            argv,
            env,
            user: task.command.user.clone(),
            hostname,
            namespaces: Namespaces::default(),
        }
    }

    /// Prepares the sandbox and checkpoint dir and starts the supervisor. Returns its pid.
    pub fn launch(&self, ckpt: &TaskCheckpoint) -> Result<u32, LaunchError> {
        let dir = self.paths.container_dir(&ckpt.container_id);
        for path in [&dir, &ckpt.sandbox] {
            std::fs::create_dir_all(path).map_err(|source| LaunchError::Create {
                path: path.clone(),
                source,
            })?;
        }
        if let Some(user) = &ckpt.task.command.user {
            let found = nix::unistd::User::from_name(user).ok().flatten();
            let found = found.ok_or_else(|| LaunchError::UnknownUser(user.clone()))?;
            nix::unistd::chown(&ckpt.sandbox, Some(found.uid), Some(found.gid)).map_err(
                |source| LaunchError::Chown {
                    path: ckpt.sandbox.clone(),
                    user: user.clone(),
                    source,
                },
            )?;
        }
        let write = |name: &str, data: Vec<u8>, durable: bool| {
            let path = dir.join(name);
            let result = if durable {
                write_atomic(&path, &data)
            } else {
                write_replace(&path, &data)
            };
            result.map_err(|source| LaunchError::Write { path, source })
        };
        // The task's checkpoint must outlive a machine crash (to report the task after reboot);
        // the spec and pid file only matter while the supervisor lives.
        write(
            TASK_FILE,
            serde_json::to_vec_pretty(ckpt).unwrap_or_default(),
            true,
        )?;
        write(
            SPEC_FILE,
            serde_json::to_vec_pretty(&self.spec(ckpt)).unwrap_or_default(),
            false,
        )?;
        let log_path = dir.join(SUPERVISOR_LOG);
        let log = std::fs::File::create(&log_path).map_err(|source| LaunchError::Create {
            path: log_path,
            source,
        })?;
        let mut child = tokio::process::Command::new(&self.exe)
            .arg("supervise")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                exe: self.exe.clone(),
                source,
            })?;
        let pid = child.id().unwrap_or(0);
        write(SUPERVISOR_PID_FILE, pid.to_string().into_bytes(), false)?;
        let stdout = child.stdout.take();
        let events = self.events.clone();
        let id = ckpt.container_id.clone();
        tokio::spawn(async move {
            if let Some(stdout) = stdout {
                let mut lines = tokio::io::BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(pid) = line.strip_prefix("running ") {
                        let init_pid = pid.trim().parse().unwrap_or(0);
                        let _ = events.send(ContainerEvent::Running {
                            container_id: id.clone(),
                            init_pid,
                        });
                    } else {
                        debug!(container_id = %id, line, "supervisor");
                    }
                }
            }
            let _ = child.wait().await;
            let status = read_status(&dir);
            let _ = events.send(ContainerEvent::Exited {
                container_id: id,
                status,
            });
        });
        Ok(pid)
    }

    /// Watches a supervisor this agent did not start (found on recovery) until it exits.
    pub fn watch_adopted(&self, id: ContainerId, supervisor_pid: i32) {
        let events = self.events.clone();
        let dir = self.paths.container_dir(&id);
        tokio::spawn(async move {
            while process_alive(supervisor_pid, &dir) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let status = read_status(&dir);
            let _ = events.send(ContainerEvent::Exited {
                container_id: id,
                status,
            });
        });
    }

    /// Asks a container to stop: SIGTERM to its supervisor, which passes it on to the task.
    pub fn terminate(&self, supervisor_pid: i32) {
        use nix::sys::signal::{kill, Signal};
        if let Err(err) = kill(nix::unistd::Pid::from_raw(supervisor_pid), Signal::SIGTERM) {
            debug!(supervisor_pid, cause = %err, "failed to signal a supervisor");
        }
    }

    /// Kills every process of a container at once (cgroup.kill).
    pub fn kill_all(&self, id: &ContainerId) {
        let path = self.cgroup_of(id);
        if !path.exists() {
            return;
        }
        match strata_isolators::cgroup2::Cgroup::open(&path) {
            Ok(cg) => {
                if let Err(err) = cg.kill() {
                    warn!(container_id = %id, cause = %err, "failed to kill the container's cgroup");
                }
            }
            Err(err) => {
                warn!(container_id = %id, cause = %err, "failed to open the container's cgroup")
            }
        }
    }

    /// Removes a container's checkpoint dir (after its terminal update was acknowledged) and its
    /// cgroup if the supervisor left it behind.
    pub fn destroy(&self, id: &ContainerId) {
        let path = self.cgroup_of(id);
        if path.exists() {
            self.kill_all(id);
            if let Ok(cg) = strata_isolators::cgroup2::Cgroup::open(&path) {
                let _ = cg.wait_empty(Duration::from_secs(2));
                if let Err(err) = cg.remove() {
                    warn!(container_id = %id, cause = %err, "failed to remove the container's cgroup");
                }
            }
        }
        let dir = self.paths.container_dir(id);
        if let Err(err) = std::fs::remove_dir_all(&dir) {
            if err.kind() != std::io::ErrorKind::NotFound {
                warn!(container_id = %id, cause = %err, "failed to remove the container's checkpoint dir");
            }
        }
    }
}

pub fn read_status(dir: &Path) -> Option<ExitStatus> {
    let data = std::fs::read(dir.join(STATUS_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Whether `pid` is alive and still the supervisor of the container in `dir` (pids get reused).
pub fn process_alive(pid: i32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let dir = dir.as_os_str().as_encoded_bytes();
    if !(args.contains(&&b"supervise"[..]) && args.contains(&dir)) {
        return false;
    }
    // A zombie is as good as dead.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
