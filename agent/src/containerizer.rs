//! Starts, signals and watches containers. Each container is run by its own supervisor process
//! (`strata-agent supervise <dir>`, see [`crate::supervisor`]), started here with a plain
//! spawn+exec: the daemon itself never clones with namespace flags. Events from a supervisor's
//! stdout become [`ContainerEvent`]s for the agent's actor.

use crate::paths::{write_atomic, write_replace, Paths};
use crate::supervisor::{ContainerSpec, ExitStatus, SPEC_FILE, STATUS_FILE};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use strata_isolators::cgroup2::CgroupError;
use strata_isolators::{Container, Isolation, IsolatorError, Launch, ResourceStatistics};
use strata_schema::{AgentId, ContainerId, FrameworkInfo, Resources, TaskInfo};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

pub const TASK_FILE: &str = "task.json";
pub const SUPERVISOR_PID_FILE: &str = "supervisor.pid";
pub const SUPERVISOR_LOG: &str = "supervisor.log";
/// The container's resources after a live update (absent: the task's own).
pub const RESOURCES_FILE: &str = "resources.json";

/// What the agent checkpoints about a container before starting it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskCheckpoint {
    pub container_id: ContainerId,
    pub agent_id: AgentId,
    pub framework: FrameworkInfo,
    pub task: TaskInfo,
    pub sandbox: PathBuf,
}

/// The user a command task runs as: its command's, else its framework's (as Mesos'
/// `--switch_user` does); `None` (the agent's user) when the framework names none, or when the
/// agent is not root (it could not switch users; `strata up` run by a developer).
pub fn task_user(ckpt: &TaskCheckpoint) -> Option<String> {
    let framework = nix::unistd::geteuid()
        .is_root()
        .then(|| ckpt.framework.user.clone());
    ckpt.task
        .command
        .user
        .clone()
        .or(framework)
        .filter(|user| !user.is_empty())
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
    #[error("failed to create the container's cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    /// The task's image could not be provided or used (the message names the image and why).
    #[error("{0}")]
    Image(String),
    #[error(transparent)]
    Isolator(#[from] IsolatorError),
    /// A persistent volume could not be created or attached (the message names it).
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
}

/// Why the isolators could not update or measure a running container.
#[derive(Debug, thiserror::Error)]
pub enum IsolationFailure {
    #[error(transparent)]
    Isolator(#[from] IsolatorError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct Containerizer {
    paths: Paths,
    /// The isolators, and the agent's subtree of the cgroup2 hierarchy (`<mount>/<cgroups_root>`)
    /// that holds the container cgroups.
    isolation: Arc<Isolation>,
    /// This binary, re-executed as each container's supervisor.
    exe: PathBuf,
    events: mpsc::UnboundedSender<ContainerEvent>,
    /// The image store, for tasks with an image (`None`: such tasks fail to launch).
    images: Option<Arc<strata_images::Store>>,
}

/// The longest hostname Linux accepts.
const HOST_NAME_MAX: usize = 64;

impl Containerizer {
    pub fn new(
        paths: Paths,
        isolation: Arc<Isolation>,
        exe: PathBuf,
        events: mpsc::UnboundedSender<ContainerEvent>,
    ) -> Self {
        Self {
            paths,
            isolation,
            exe,
            events,
            images: None,
        }
    }

    /// Gives the containerizer the agent's image store.
    pub fn with_images(mut self, store: Arc<strata_images::Store>) -> Self {
        self.images = Some(store);
        self
    }

    pub fn images(&self) -> Option<&Arc<strata_images::Store>> {
        self.images.as_ref()
    }

    /// The task's resources that no active isolator enforces on this host (e.g. `cpus` and
    /// `mem` on a hybrid host, whose cgroup2 hierarchy has no controllers), with the isolator
    /// each would need: reported in the task's TASK_RUNNING message, never silently dropped.
    pub fn unenforced(&self, resources: &Resources) -> Vec<String> {
        let active = self.isolation.names();
        let mut out = Vec::new();
        let mut names: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let isolator = match name {
                "cpus" => "cgroups/cpu",
                "mem" => "cgroups/mem",
                "pids" => "cgroups/pids",
                "disk_read_bps" | "disk_write_bps" | "disk_read_iops" | "disk_write_iops" => {
                    "cgroups/io"
                }
                "cpuset" => "cgroups/cpuset",
                "ports" => "network/ports",
                _ => continue,
            };
            if !active.contains(&isolator) {
                out.push(format!("{name} (no {isolator})"));
            }
        }
        out
    }

    pub fn isolation(&self) -> &Arc<Isolation> {
        &self.isolation
    }

    pub fn cgroup_of(&self, id: &ContainerId) -> PathBuf {
        self.isolation.root().path().join(id.as_str())
    }

    /// Runs `f` on the isolators' view of the container of `ckpt` with `resources`.
    pub fn with_container<T>(
        &self,
        ckpt: &TaskCheckpoint,
        resources: &Resources,
        f: impl FnOnce(&Isolation, &Container) -> T,
    ) -> Result<T, CgroupError> {
        let cgroup = self.isolation.root().child(ckpt.container_id.as_str())?;
        let hostname = hostname(&ckpt.task);
        let container = Container {
            id: ckpt.container_id.as_str(),
            cgroup: &cgroup,
            sandbox: &ckpt.sandbox,
            hostname: &hostname,
            resources,
        };
        Ok(f(&self.isolation, &container))
    }

    /// The isolators' `isolate`, once the container's init runs; errors are logged.
    pub fn isolate(&self, ckpt: &TaskCheckpoint, resources: &Resources, pid: i32) {
        let errors = self
            .with_container(ckpt, resources, |iso, c| iso.isolate(c, pid))
            .unwrap_or_else(|err| vec![IsolatorError::cgroup("container")(err)]);
        for err in errors {
            warn!(container_id = %ckpt.container_id, cause = %err, "isolate failed");
        }
    }

    /// The isolators' `recover`, for a container adopted after a restart; errors are logged.
    pub fn recover(&self, ckpt: &TaskCheckpoint, resources: &Resources) {
        let errors = self
            .with_container(ckpt, resources, |iso, c| iso.recover(c))
            .unwrap_or_else(|err| vec![IsolatorError::cgroup("container")(err)]);
        for err in errors {
            warn!(container_id = %ckpt.container_id, cause = %err, "failed to recover the container's isolation");
        }
    }

    /// Applies `resources` to a running container (the isolators' `update`), then records them
    /// in `resources.json` for a restarted agent. Blocks (cgroup writes may reclaim memory).
    pub fn update(
        &self,
        ckpt: &TaskCheckpoint,
        resources: &Resources,
    ) -> Result<(), IsolationFailure> {
        self.with_container(ckpt, resources, |iso, c| iso.update(c, resources))??;
        let path = self
            .paths
            .container_dir(&ckpt.container_id)
            .join(RESOURCES_FILE);
        let data = serde_json::to_vec(resources).unwrap_or_default();
        write_replace(&path, &data).map_err(|source| IsolationFailure::Write { path, source })
    }

    /// The container's statistics (the isolators' `usage`).
    pub fn usage(
        &self,
        ckpt: &TaskCheckpoint,
        resources: &Resources,
    ) -> Result<ResourceStatistics, IsolationFailure> {
        Ok(self.with_container(ckpt, resources, |iso, c| iso.usage(c))??)
    }

    /// The resources of a container dir: `resources.json` after an update, else the task's.
    pub fn recorded_resources(&self, ckpt: &TaskCheckpoint) -> Resources {
        std::fs::read(
            self.paths
                .container_dir(&ckpt.container_id)
                .join(RESOURCES_FILE),
        )
        .ok()
        .and_then(|data| serde_json::from_slice(&data).ok())
        .unwrap_or_else(|| ckpt.task.resources.clone())
    }

    /// The spec the supervisor runs for `task`, with what the isolators decided in `launch`.
    pub fn spec(&self, ckpt: &TaskCheckpoint, launch: &Launch) -> ContainerSpec {
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
        // A task with an image runs as its command's user or the image's (see image_container).
        let user = match task.image() {
            Some(_) => task.command.user.clone(),
            None => task_user(ckpt),
        };
        if let Some(user) = &user {
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
        ContainerSpec {
            container_id: ckpt.container_id.to_string(),
            sandbox: ckpt.sandbox.clone(),
            cgroup: self.cgroup_of(&ckpt.container_id),
            argv,
            env,
            user,
            hostname: launch.hostname.clone().unwrap_or_default(),
            namespaces: launch.namespaces,
            isolation: launch.process.clone(),
            image: None,
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
        // Only the task's user (and the agent) may enter the sandbox.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&ckpt.sandbox, std::fs::Permissions::from_mode(0o750))
                .map_err(|source| LaunchError::Create {
                    path: ckpt.sandbox.clone(),
                    source,
                })?;
        }
        // A task with an image has its user in the image; the supervisor resolves it there.
        let mut owner = None;
        if let Some(user) = task_user(ckpt)
            .as_ref()
            .filter(|_| ckpt.task.image().is_none())
        {
            let found = nix::unistd::User::from_name(user).ok().flatten();
            let found = found.ok_or_else(|| LaunchError::UnknownUser(user.clone()))?;
            nix::unistd::chown(&ckpt.sandbox, Some(found.uid), Some(found.gid)).map_err(
                |source| LaunchError::Chown {
                    path: ckpt.sandbox.clone(),
                    user: user.clone(),
                    source,
                },
            )?;
            owner = Some(found);
        }
        // Persistent volumes outlive the task: created on first use, never removed here.
        let new_volumes =
            crate::volumes::ensure(&self.paths.work_dir, &ckpt.task.resources, owner.as_ref())?;
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
        // The container's cgroup, with the isolators' limits written before anything runs in
        // it; the supervisor clones init straight into it.
        let cgroup = self
            .isolation
            .root()
            .create_child(ckpt.container_id.as_str())?;
        let mut launch = Launch::default();
        let prepared = self.with_container(ckpt, &ckpt.task.resources, |iso, c| {
            iso.prepare(c, &mut launch)
        })?;
        if let Err(err) = prepared {
            if let Err(err) = cgroup.remove() {
                warn!(container_id = %ckpt.container_id, cause = %err, "failed to remove the container's cgroup");
            }
            return Err(err.into());
        }
        let mut spec = self.spec(ckpt, &launch);
        // In its own mount namespace a command task sees nothing of the work dir (other
        // sandboxes, checkpoints, the image store, volumes) but its sandbox and its volumes.
        // (A task with an image has its own root; its host-path volumes are checked against the
        // masks instead.)
        let image = ckpt.task.image().is_some();
        if (launch.namespaces.mount || image) && self.paths.work_dir.is_absolute() {
            spec.isolation
                .mounts
                .masks
                .push(self.paths.work_dir.clone());
        }
        let volumes = crate::volumes::host_volumes(&self.paths.work_dir, &ckpt.task.resources);
        let attached = if ckpt.task.image().is_some() {
            match &self.images {
                Some(store) => crate::image_container::prepare(
                    store,
                    ckpt,
                    &dir,
                    &mut spec,
                    &volumes,
                    &new_volumes,
                ),
                None => Err("this agent has no image store".to_string()),
            }
            .map_err(LaunchError::Image)
        } else {
            crate::volumes::attach_to_command(
                &self.paths.work_dir,
                &ckpt.sandbox,
                &ckpt.task.resources,
                launch.namespaces.mount,
                &mut spec.isolation.mounts,
            )
            .map_err(LaunchError::from)
        };
        if let Err(err) = attached {
            if let Err(err) = cgroup.remove() {
                warn!(container_id = %ckpt.container_id, cause = %err, "failed to remove the container's cgroup");
            }
            return Err(err);
        }
        write(
            SPEC_FILE,
            serde_json::to_vec(&spec).unwrap_or_default(),
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
    /// cgroup if the supervisor left it behind, after the isolators' `cleanup`.
    pub fn destroy(&self, ckpt: &TaskCheckpoint, resources: &Resources) {
        let id = &ckpt.container_id;
        let errors = self
            .with_container(ckpt, resources, |iso, c| iso.cleanup(c))
            .unwrap_or_else(|err| vec![IsolatorError::cgroup("container")(err)]);
        for err in errors {
            warn!(container_id = %id, cause = %err, "isolator cleanup failed");
        }
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
        self.remove_checkpoint(id);
    }

    /// Removes a container's checkpoint dir: out of the containers dir in one rename, then
    /// deleted. (A custom executor's task has nothing else to remove.)
    pub fn remove_checkpoint(&self, id: &ContainerId) {
        let dir = self.paths.container_dir(id);
        // Out of the containers dir in one rename, then removed: an agent killed meanwhile
        // (an image container's upper dir may take a while) never finds half a checkpoint.
        let trash = self.paths.work_dir.join("meta").join("trash");
        let target = trash.join(id.as_str());
        let _ = std::fs::create_dir_all(&trash);
        let doomed = match std::fs::rename(&dir, &target) {
            Ok(()) => target,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => dir,
        };
        if let Err(err) = std::fs::remove_dir_all(&doomed) {
            if err.kind() != std::io::ErrorKind::NotFound {
                warn!(container_id = %id, cause = %err, "failed to remove the container's checkpoint dir");
            }
        }
        // Whatever an earlier, interrupted removal left.
        if let Ok(entries) = std::fs::read_dir(&trash) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path());
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

/// The hostname of a task's uts namespace: its `hostname`, else its task id, cut to the kernel's
/// limit of 64 bytes (at a character boundary).
pub fn hostname(task: &TaskInfo) -> String {
    let mut hostname = task
        .hostname
        .clone()
        .unwrap_or_else(|| task.task_id.to_string());
    if hostname.len() > HOST_NAME_MAX {
        let mut end = HOST_NAME_MAX;
        while !hostname.is_char_boundary(end) {
            end -= 1;
        }
        hostname.truncate(end);
    }
    hostname
}
