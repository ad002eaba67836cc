//! The agent's actor: owns frameworks, containers and the status update manager, and applies
//! messages from the master (through [`crate::rpc`]), from containers and from timers in order.
//!
//! A container's life, as seen here:
//!
//! ```text
//!   Launch ──▶ STAGING ──spawn ok──▶ STARTING ──supervisor: running──▶ RUNNING
//!                │                      │                                 │
//!                └─spawn failed─▶ FAILED └───────── supervisor exited ────┴─▶ FINISHED | FAILED | KILLED
//!   terminal update acknowledged ──▶ checkpoint dir removed, container moves to "completed"
//! ```
//!
//! The isolators (see `strata_isolators::Isolator`) follow it: `prepare` in the launch (before
//! the supervisor starts), `isolate` at RUNNING, `update`/`usage` while it runs, `cleanup` when
//! the container is removed, `recover` for containers adopted after a restart. A container
//! whose cgroup recorded an OOM kill ends TASK_FAILED with `REASON_CONTAINER_LIMITATION_MEMORY`.
//!
//! Everything the agent must remember is checkpointed before it acts on it
//! ([`crate::checkpoint`]): the framework and the task before the container starts, each update
//! before it is sent, each acknowledgement and kill request before they take effect. A restarted
//! agent rebuilds its containers and update streams from that ([`Agent::recover`]).

use crate::checkpoint::{self, Record, Recovered, RecoveredContainer};
use crate::containerizer::{ContainerEvent, Containerizer, TaskCheckpoint};
use crate::monitor::UsageTarget;
use crate::paths::{write_atomic, Paths};
use crate::status::StatusUpdates;
use crate::supervisor::ExitStatus;
use serde_json::{json, Value as Json};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use strata_schema::{
    AgentId, AgentInfo, Attributes, ContainerId, FrameworkId, FrameworkInfo, MasterInfo, Resources,
    StatusSource, TaskId, TaskInfo, TaskState, TaskStatus, UpdateUuid,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

/// Completed containers kept for `/state`.
const MAX_COMPLETED: usize = 1000;

/// A task the agent reports when it (re-)registers.
#[derive(Debug, Clone)]
pub struct RunningTask {
    pub framework: FrameworkInfo,
    pub task: TaskInfo,
    pub state: TaskState,
}

/// What the agent's front ends and containers tell the actor.
pub enum Msg {
    Launch {
        framework: Box<FrameworkInfo>,
        task: Box<TaskInfo>,
    },
    Kill {
        framework_id: FrameworkId,
        task_id: TaskId,
        grace_period_secs: f64,
    },
    Acknowledge {
        framework_id: FrameworkId,
        task_id: TaskId,
        uuid: UpdateUuid,
    },
    ShutdownFramework {
        framework_id: FrameworkId,
    },
    Shutdown {
        reason: String,
    },
    /// The RPC thread is about to register: what should it say?
    Snapshot {
        reply: oneshot::Sender<(AgentInfo, Vec<RunningTask>)>,
    },
    Registered {
        agent_id: AgentId,
        master: MasterInfo,
    },
    Disconnected,
    Escalate {
        container_id: ContainerId,
    },
    /// The blocking part of a launch (sandbox, checkpoint, spawning the supervisor) is done.
    Launched {
        container_id: ContainerId,
        result: Result<u32, String>,
    },
    GetState {
        reply: oneshot::Sender<Json>,
    },
    /// `POST /containers/update`: change a running container's resources (the given names
    /// replace the container's; the others stay).
    UpdateResources {
        framework_id: Option<FrameworkId>,
        task_id: TaskId,
        resources: Resources,
        reply: oneshot::Sender<Result<Json, UpdateError>>,
    },
    /// The isolators applied an update (off the actor): record it and answer.
    ResourcesUpdated {
        container_id: ContainerId,
        resources: Resources,
        reply: oneshot::Sender<Result<Json, UpdateError>>,
    },
    /// `/monitor/statistics`: the running containers, whose usage the caller then reads.
    Usage {
        reply: oneshot::Sender<Vec<UsageTarget>>,
    },
    /// DESTROY: remove the data of persistent volumes no running task uses.
    DestroyVolumes {
        volumes: Resources,
        reply: oneshot::Sender<Result<(), crate::volumes::VolumeError>>,
    },
}

/// Why a live update was refused or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotRunning(String),
    #[error("{0}")]
    Failed(String),
}

/// What the actor asks the RPC thread to send to the master.
#[derive(Debug)]
pub enum ToMaster {
    StatusUpdate(TaskStatus),
}

#[derive(Debug)]
struct Container {
    ckpt: TaskCheckpoint,
    state: TaskState,
    supervisor_pid: Option<i32>,
    kill_requested: bool,
    /// Whether the terminal update has been generated (the container is done running).
    exited: bool,
    launched: Instant,
    /// The container's resources: the task's, or those of the latest live update.
    resources: Resources,
}

pub struct Agent {
    paths: Paths,
    hostname: String,
    port: u16,
    resources: Resources,
    attributes: Attributes,
    agent_id: Option<AgentId>,
    master: Option<MasterInfo>,
    connected: bool,
    kill_grace_period: Duration,
    containers: HashMap<ContainerId, Container>,
    by_task: HashMap<(FrameworkId, TaskId), ContainerId>,
    completed: VecDeque<Container>,
    updates: StatusUpdates,
    /// The frameworks checkpointed in `meta/frameworks` (those with containers here).
    frameworks: HashMap<FrameworkId, FrameworkInfo>,
    containerizer: Containerizer,
    to_master: mpsc::UnboundedSender<ToMaster>,
    to_self: mpsc::UnboundedSender<Msg>,
}

pub struct AgentSetup {
    pub paths: Paths,
    pub hostname: String,
    pub port: u16,
    pub resources: Resources,
    pub attributes: Attributes,
    pub kill_grace_period: Duration,
    pub status_retry_interval: Duration,
    pub containerizer: Containerizer,
    pub to_master: mpsc::UnboundedSender<ToMaster>,
    pub to_self: mpsc::UnboundedSender<Msg>,
}

fn exit_code(status: &ExitStatus) -> Option<i32> {
    status.exit_code.or(status.signal.map(|s| 128 + s))
}

/// The message of a task the OOM killer ended: its limit, from the cgroup's `memory.max` when
/// the supervisor read it, else from its resources.
fn memory_limit_message(status: &ExitStatus, resources: &Resources) -> String {
    let mb = match status.memory_limit_bytes {
        Some(bytes) => bytes as f64 / (1024.0 * 1024.0),
        None => resources.mem(),
    };
    format!("Memory limit exceeded: the task used more than {mb} MB")
}

impl Agent {
    pub fn new(setup: AgentSetup) -> Self {
        let agent_id = std::fs::read_to_string(setup.paths.agent_id_file())
            .ok()
            .and_then(|s| AgentId::new(s.trim()).ok());
        Self {
            paths: setup.paths,
            hostname: setup.hostname,
            port: setup.port,
            resources: setup.resources,
            attributes: setup.attributes,
            agent_id,
            master: None,
            connected: false,
            kill_grace_period: setup.kill_grace_period,
            containers: HashMap::new(),
            by_task: HashMap::new(),
            completed: VecDeque::new(),
            updates: StatusUpdates::new(setup.status_retry_interval),
            frameworks: HashMap::new(),
            containerizer: setup.containerizer,
            to_master: setup.to_master,
            to_self: setup.to_self,
        }
    }

    fn status(
        c: &Container,
        state: TaskState,
        source: StatusSource,
        message: String,
    ) -> TaskStatus {
        TaskStatus {
            task_id: c.ckpt.task.task_id.clone(),
            state,
            message,
            source,
            reason: None,
            agent_id: Some(c.ckpt.agent_id.clone()),
            framework_id: c.ckpt.framework.id.clone(),
            container_id: Some(c.ckpt.container_id.clone()),
            timestamp: TaskStatus::now(),
            uuid: Some(UpdateUuid::random()),
            exit_code: None,
        }
    }

    /// Records a state change and queues its status update.
    fn update(&mut self, id: &ContainerId, mut status: TaskStatus) {
        if let Some(c) = self.containers.get_mut(id) {
            c.state = status.state;
            if status.state.is_terminal() {
                c.exited = true;
            }
        }
        status.timestamp = TaskStatus::now();
        info!(task_id = %status.task_id, state = %status.state, message = %status.message, "task status");
        self.checkpoint_update(id, &status);
        if let Some(send) = self.updates.push(status, Instant::now()) {
            self.send(send);
        }
    }

    /// Appends an update to its container's log before it is sent (not synced: see
    /// `crate::checkpoint` for why that is enough). A failed write is logged and the update
    /// delivered anyway: the agent keeps its promise to the running framework, only a restart
    /// would lose the update.
    fn checkpoint_update(&self, id: &ContainerId, status: &TaskStatus) {
        if !self.containers.contains_key(id) {
            return;
        }
        let path = self.paths.container_dir(id).join(checkpoint::UPDATES_FILE);
        if let Err(err) = checkpoint::append(&path, &Record::Update(status.clone())) {
            error!(task_id = %status.task_id, cause = %err, path = %path.display(), "failed to checkpoint a status update; sending it anyway");
        }
    }

    /// Signals a container's supervisor once its kill record is on disk (off the actor): the
    /// task's terminal state then stays TASK_KILLED whatever crashes before it is acknowledged.
    fn terminate_after_sync(&self, id: &ContainerId, pid: i32) {
        let path = self.paths.container_dir(id).join(checkpoint::UPDATES_FILE);
        let containerizer = self.containerizer.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = checkpoint::sync(&path) {
                error!(cause = %err, path = %path.display(), "failed to sync a kill request's checkpoint; killing anyway");
            }
            containerizer.terminate(pid);
        });
    }

    /// Appends a record other than an update (an acknowledgement, a kill) to a container's log.
    fn checkpoint_record(&self, id: &ContainerId, record: &Record) {
        let path = self.paths.container_dir(id).join(checkpoint::UPDATES_FILE);
        let mut written = checkpoint::append(&path, record);
        if matches!(&written, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            // A kill during the launch can come before the launch created the dir.
            written = std::fs::create_dir_all(self.paths.container_dir(id))
                .and_then(|()| checkpoint::append(&path, record));
        }
        if let Err(err) = written {
            let what = match record {
                Record::Ack(_) => "an acknowledgement",
                Record::Kill => "a kill request",
                Record::Update(_) => "a status update",
            };
            error!(container_id = %id, cause = %err, path = %path.display(), "failed to checkpoint {what}");
        }
    }

    fn send(&self, status: TaskStatus) {
        if self.connected {
            let _ = self.to_master.send(ToMaster::StatusUpdate(status));
        }
    }

    /// Takes over what a previous run of the agent left (read and checked by
    /// [`checkpoint::load`]): adopts the containers whose supervisors still run, reports those
    /// that ended meanwhile, and queues every update not acknowledged yet (resent with its uuid
    /// once registered). An update already checkpointed is never generated again: a container
    /// whose terminal update is in its log only waits for its acknowledgement.
    pub fn recover(&mut self, recovered: Recovered) {
        if recovered.agent_id.is_some() {
            self.agent_id = recovered.agent_id;
        }
        self.frameworks = recovered.frameworks;
        let mut done = Vec::new();
        for container in recovered.containers {
            if let Some(id) = self.recover_container(container) {
                done.push(id);
            }
        }
        for id in done {
            self.finish(&id);
        }
        let unused: Vec<FrameworkId> = self
            .frameworks
            .keys()
            .filter(|f| !self.has_containers(f))
            .cloned()
            .collect();
        for fw in unused {
            self.forget_framework(&fw);
        }
    }

    /// Rebuilds one container; returns its id if it is over and only waits to be removed.
    fn recover_container(&mut self, rc: RecoveredContainer) -> Option<ContainerId> {
        let RecoveredContainer {
            ckpt,
            framework_id,
            stream,
            supervisor_pid,
            alive,
            started,
            resources,
            exit,
            ..
        } = rc;
        let id = ckpt.container_id.clone();
        let resources = resources.unwrap_or_else(|| ckpt.task.resources.clone());
        let latest = stream.latest_state();
        let pending = stream.pending().to_vec();
        info!(container_id = %id, task_id = %ckpt.task.task_id, framework_id = %framework_id,
              alive, state = ?latest, pending = pending.len(), "recovering container");
        let task_id = ckpt.task.task_id.clone();
        self.containers.insert(
            id.clone(),
            Container {
                ckpt,
                state: latest.unwrap_or(TaskState::Staging),
                supervisor_pid,
                kill_requested: stream.kill_requested,
                exited: stream.terminal(),
                launched: Instant::now(),
                resources,
            },
        );
        if stream.terminal() && pending.is_empty() {
            // Its terminal update was acknowledged just before the last run stopped.
            return Some(id);
        }
        self.by_task.insert((framework_id, task_id), id.clone());
        let now = Instant::now();
        for status in pending {
            // Synced by `load`; sent once registered.
            self.updates.push(status, now);
        }
        if stream.terminal() {
            // Over: whatever is left of it goes.
            self.containerizer.kill_all(&id);
            return None;
        }
        let c = self.containers.get(&id)?;
        match supervisor_pid.filter(|_| alive) {
            Some(pid) => {
                self.containerizer.recover(&c.ckpt, &c.resources);
                self.containerizer.watch_adopted(id.clone(), pid);
                // The updates the last run did not get to generate.
                if matches!(latest, None | Some(TaskState::Staging)) {
                    let status = Self::status(
                        c,
                        TaskState::Starting,
                        StatusSource::Executor,
                        String::new(),
                    );
                    self.update(&id, status);
                }
                let c = self.containers.get(&id)?;
                if started && c.state == TaskState::Starting {
                    let status =
                        Self::status(c, TaskState::Running, StatusSource::Executor, String::new());
                    self.update(&id, status);
                }
                if stream.kill_requested {
                    // The last run was killing it: carry on, with a fresh grace period.
                    let grace = self.grace_period(&id, 0.0);
                    info!(container_id = %id, "resuming the kill of a recovered container");
                    self.containerizer.terminate(pid);
                    self.schedule_escalation(id, grace);
                }
            }
            None => self.container_exited(&id, exit),
        }
        None
    }

    /// How long a killed container gets before SIGKILL: the kill's, else its task's, else the
    /// agent's `--kill-grace-period`.
    fn grace_period(&self, id: &ContainerId, grace_period_secs: f64) -> Duration {
        let secs = if grace_period_secs > 0.0 {
            Some(grace_period_secs)
        } else {
            self.containers
                .get(id)
                .and_then(|c| c.ckpt.task.kill_grace_period_secs)
        };
        secs.and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(self.kill_grace_period)
    }

    fn has_containers(&self, fw: &FrameworkId) -> bool {
        self.containers
            .values()
            .any(|c| c.ckpt.framework.id.as_ref() == Some(fw))
    }

    /// Removes the checkpoint of a framework that has no container here any more.
    fn forget_framework(&mut self, fw: &FrameworkId) {
        self.frameworks.remove(fw);
        let dir = checkpoint::framework_dir(&self.paths, fw);
        if let Err(err) = std::fs::remove_dir_all(&dir) {
            if err.kind() != std::io::ErrorKind::NotFound {
                warn!(framework_id = %fw, cause = %err, dir = %dir.display(), "failed to remove the framework's checkpoint");
            }
        }
    }

    pub fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Launch { framework, task } => self.launch(*framework, *task),
            Msg::Kill {
                framework_id,
                task_id,
                grace_period_secs,
            } => self.kill(&framework_id, &task_id, grace_period_secs),
            Msg::Acknowledge {
                framework_id,
                task_id,
                uuid,
            } => self.acknowledge(&framework_id, &task_id, &uuid),
            Msg::ShutdownFramework { framework_id } => self.shutdown_framework(&framework_id),
            Msg::Shutdown { reason } => {
                warn!(%reason, "the master asked this agent to shut down: killing every task");
                let fws: Vec<FrameworkId> = self.by_task.keys().map(|(f, _)| f.clone()).collect();
                for fw in fws {
                    self.shutdown_framework(&fw);
                }
                self.agent_id = None;
                let _ = std::fs::remove_file(self.paths.agent_id_file());
            }
            Msg::Snapshot { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Msg::Registered { agent_id, master } => self.registered(agent_id, master),
            Msg::Disconnected => {
                if self.connected {
                    warn!("disconnected from the master");
                }
                self.connected = false;
            }
            Msg::Escalate { container_id } => {
                if self
                    .containers
                    .get(&container_id)
                    .is_some_and(|c| !c.exited)
                {
                    info!(container_id = %container_id, "grace period over: killing the container's cgroup");
                    self.containerizer.kill_all(&container_id);
                }
            }
            Msg::Launched {
                container_id,
                result,
            } => self.launched(&container_id, result),
            Msg::GetState { reply } => {
                let _ = reply.send(self.state_json());
            }
            Msg::UpdateResources {
                framework_id,
                task_id,
                resources,
                reply,
            } => self.update_resources(framework_id, task_id, resources, reply),
            Msg::ResourcesUpdated {
                container_id,
                resources,
                reply,
            } => self.resources_updated(&container_id, resources, reply),
            Msg::DestroyVolumes { volumes, reply } => self.destroy_volumes(volumes, reply),
            Msg::Usage { reply } => {
                let targets = self
                    .containers
                    .values()
                    .filter(|c| !c.exited && c.supervisor_pid.is_some())
                    .map(|c| UsageTarget {
                        ckpt: c.ckpt.clone(),
                        resources: c.resources.clone(),
                    })
                    .collect();
                let _ = reply.send(targets);
            }
        }
    }

    pub fn handle_container(&mut self, event: ContainerEvent) {
        match event {
            ContainerEvent::Running {
                container_id,
                init_pid,
            } => {
                let Some(c) = self.containers.get(&container_id) else {
                    return;
                };
                if matches!(c.state, TaskState::Staging | TaskState::Starting)
                    && !c.kill_requested
                    && !c.exited
                {
                    info!(task_id = %c.ckpt.task.task_id, init_pid, elapsed_ms = c.launched.elapsed().as_secs_f64() * 1e3, "task running");
                    self.containerizer.isolate(&c.ckpt, &c.resources, init_pid);
                    if c.state == TaskState::Staging {
                        let status = Self::status(
                            c,
                            TaskState::Starting,
                            StatusSource::Executor,
                            String::new(),
                        );
                        self.update(&container_id, status);
                    }
                    let Some(c) = self.containers.get(&container_id) else {
                        return;
                    };
                    // Limits this host cannot enforce are said so, never silently dropped.
                    let unenforced = self.containerizer.unenforced(&c.resources);
                    let message = if unenforced.is_empty() {
                        String::new()
                    } else {
                        warn!(task_id = %c.ckpt.task.task_id, unenforced = %unenforced.join(", "), "task limits not enforced on this host");
                        format!("not enforced on this host: {}", unenforced.join(", "))
                    };
                    let status =
                        Self::status(c, TaskState::Running, StatusSource::Executor, message);
                    self.update(&container_id, status);
                }
            }
            ContainerEvent::Exited {
                container_id,
                status,
            } => self.container_exited(&container_id, status),
        }
    }

    /// Resends the heads of the update streams that are due.
    pub fn retry_tick(&mut self) {
        for status in self.updates.due(Instant::now()) {
            self.send(status);
        }
    }

    fn snapshot(&self) -> (AgentInfo, Vec<RunningTask>) {
        let info = AgentInfo {
            id: self.agent_id.clone(),
            hostname: self.hostname.clone(),
            port: self.port,
            resources: self.resources.clone(),
            attributes: self.attributes.clone(),
        };
        // Every container not forgotten yet, those whose terminal update waits for its
        // acknowledgement included (with that state), so that the master does not take them
        // for lost (Mesos reports them too).
        let running = self
            .containers
            .values()
            .map(|c| RunningTask {
                framework: c
                    .ckpt
                    .framework
                    .id
                    .as_ref()
                    .and_then(|f| self.frameworks.get(f))
                    .unwrap_or(&c.ckpt.framework)
                    .clone(),
                task: c.ckpt.task.clone(),
                state: c.state,
            })
            .collect();
        (info, running)
    }

    fn registered(&mut self, agent_id: AgentId, master: MasterInfo) {
        info!(agent_id = %agent_id, master = %format!("{}:{}", master.ip, master.port), "registered with the master");
        if self.agent_id.as_ref() != Some(&agent_id) {
            if let Err(err) =
                write_atomic(&self.paths.agent_id_file(), agent_id.as_str().as_bytes())
            {
                warn!(cause = %err, "failed to checkpoint the agent id");
            }
        }
        self.agent_id = Some(agent_id);
        self.master = Some(master);
        self.connected = true;
        for status in self.updates.heads() {
            self.send(status);
        }
    }

    /// The task of a container not yet ended whose resources hold the volume `(role, id)`.
    fn volume_user(&self, role: &str, persistence_id: &str) -> Option<String> {
        self.containers
            .values()
            .filter(|c| !c.exited)
            .find(|c| {
                c.ckpt
                    .task
                    .resources
                    .volumes()
                    .any(|(r, d)| r.role == role && d.persistence_id == persistence_id)
            })
            .map(|c| c.ckpt.task.task_id.to_string())
    }

    /// Checks that no task uses `volumes`, then removes their data on the blocking pool.
    fn destroy_volumes(
        &mut self,
        volumes: Resources,
        reply: oneshot::Sender<Result<(), crate::volumes::VolumeError>>,
    ) {
        let users = |role: &str, id: &str| self.volume_user(role, id);
        if let Err(err) = crate::volumes::check_destroy(&volumes, &users) {
            warn!(cause = %err, "refused to destroy persistent volumes");
            let _ = reply.send(Err(err));
            return;
        }
        let work_dir = self.paths.work_dir.clone();
        tokio::task::spawn_blocking(move || {
            let result = crate::volumes::destroy(&work_dir, &volumes);
            if let Err(err) = &result {
                warn!(cause = %err, "failed to destroy persistent volumes");
            }
            let _ = reply.send(result);
        });
    }

    fn launch(&mut self, framework: FrameworkInfo, task: TaskInfo) {
        let Some(fw_id) = framework.id.clone() else {
            warn!(task_id = %task.task_id, "launch without a framework id ignored");
            return;
        };
        let key = (fw_id.clone(), task.task_id.clone());
        if self.by_task.contains_key(&key) {
            warn!(task_id = %task.task_id, "duplicate launch ignored");
            return;
        }
        let container_id = ContainerId::random();
        let sandbox: PathBuf =
            self.paths
                .sandbox(&task.agent_id, &fw_id, &task.task_id, &container_id);
        let resources = task.resources.clone();
        let ckpt = TaskCheckpoint {
            container_id: container_id.clone(),
            agent_id: task.agent_id.clone(),
            framework,
            task,
            sandbox,
        };
        self.by_task.insert(key, container_id.clone());
        self.containers.insert(
            container_id.clone(),
            Container {
                ckpt,
                state: TaskState::Staging,
                supervisor_pid: None,
                kill_requested: false,
                exited: false,
                launched: Instant::now(),
                resources,
            },
        );
        let Some(c) = self.containers.get(&container_id) else {
            return;
        };
        // A framework new here (or with new info) is checkpointed before its task starts.
        let framework = (self.frameworks.get(&fw_id) != Some(&c.ckpt.framework))
            .then(|| c.ckpt.framework.clone());
        if let Some(info) = &framework {
            self.frameworks.insert(fw_id, info.clone());
        }
        // Sandbox, checkpoint (fsync) and spawn block: do them on the blocking pool so that
        // launches overlap and the actor keeps answering.
        let containerizer = self.containerizer.clone();
        let ckpt = c.ckpt.clone();
        let to_self = self.to_self.clone();
        let paths = self.paths.clone();
        tokio::task::spawn_blocking(move || {
            let result = checkpoint::prepare_launch(&paths, &ckpt, framework.as_ref())
                .and_then(|()| containerizer.launch(&ckpt).map_err(|e| e.to_string()));
            if result.is_err() {
                // The failure is an update to checkpoint, which needs the task's checkpoint.
                if let Err(err) = checkpoint::ensure_task(&paths, &ckpt) {
                    error!(task_id = %ckpt.task.task_id, cause = %err, "failed to checkpoint the task");
                }
            }
            let _ = to_self.send(Msg::Launched {
                container_id: ckpt.container_id,
                result,
            });
        });
    }

    fn launched(&mut self, id: &ContainerId, result: Result<u32, String>) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        match result {
            Ok(pid) => {
                c.supervisor_pid = Some(pid as i32);
                if c.kill_requested && !c.exited {
                    // Killed while it was being launched.
                    self.terminate_after_sync(id, pid as i32);
                    self.schedule_escalation(id.clone(), self.kill_grace_period);
                } else if c.state == TaskState::Staging && !c.exited {
                    let status = Self::status(
                        c,
                        TaskState::Starting,
                        StatusSource::Executor,
                        String::new(),
                    );
                    self.update(id, status);
                }
            }
            Err(err) => {
                warn!(task_id = %c.ckpt.task.task_id, cause = %err, "failed to launch the container");
                let mut status = Self::status(
                    c,
                    TaskState::Failed,
                    StatusSource::Agent,
                    format!("failed to launch the container: {err}"),
                );
                status.reason = Some("REASON_CONTAINER_LAUNCH_FAILED".to_string());
                self.update(id, status);
            }
        }
    }

    fn schedule_escalation(&self, id: ContainerId, grace: Duration) {
        let to_self = self.to_self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = to_self.send(Msg::Escalate { container_id: id });
        });
    }

    fn kill(&mut self, fw: &FrameworkId, task: &TaskId, grace_period_secs: f64) {
        let Some(id) = self.by_task.get(&(fw.clone(), task.clone())).cloned() else {
            warn!(task_id = %task, "kill for an unknown task ignored");
            return;
        };
        let Some(c) = self.containers.get_mut(&id) else {
            return;
        };
        if c.exited || c.kill_requested {
            return;
        }
        c.kill_requested = true;
        let grace = if grace_period_secs > 0.0 {
            Duration::from_secs_f64(grace_period_secs)
        } else {
            c.ckpt
                .task
                .kill_grace_period_secs
                .map(Duration::from_secs_f64)
                .unwrap_or(self.kill_grace_period)
        };
        info!(task_id = %task, grace_ms = grace.as_millis() as u64, "killing task");
        let pid = c.supervisor_pid;
        // Remembered before the task is signalled: a restarted agent reports it KILLED.
        self.checkpoint_record(&id, &Record::Kill);
        // Without a pid the launch is still in flight: `launched` terminates it once it is up.
        if let Some(pid) = pid {
            self.terminate_after_sync(&id, pid);
            self.schedule_escalation(id, grace);
        }
    }

    fn container_exited(&mut self, id: &ContainerId, exit: Option<ExitStatus>) {
        let Some(c) = self.containers.get(id) else {
            return;
        };
        if c.exited {
            return;
        }
        // Whatever the supervisor left behind goes too.
        self.containerizer.kill_all(id);
        let (state, message, reason, code) = match &exit {
            None => (
                TaskState::Failed,
                "the container's supervisor exited without reporting the task's status".to_string(),
                Some("REASON_EXECUTOR_TERMINATED"),
                None,
            ),
            Some(s) if !s.started => (
                TaskState::Failed,
                s.message.clone(),
                Some("REASON_CONTAINER_LAUNCH_FAILED"),
                exit_code(s),
            ),
            // The memory limit was hit: the OOM killer killed the container (memory.oom.group).
            Some(s) if s.oom_kills > 0 => (
                TaskState::Failed,
                memory_limit_message(s, &c.resources),
                Some("REASON_CONTAINER_LIMITATION_MEMORY"),
                exit_code(s),
            ),
            Some(s) if c.kill_requested => {
                (TaskState::Killed, s.message.clone(), None, exit_code(s))
            }
            Some(s) if s.exit_code == Some(0) => {
                (TaskState::Finished, s.message.clone(), None, Some(0))
            }
            Some(s) => (TaskState::Failed, s.message.clone(), None, exit_code(s)),
        };
        let mut status = Self::status(c, state, StatusSource::Executor, message);
        status.reason = reason.map(str::to_string);
        status.exit_code = code;
        self.update(id, status);
    }

    fn acknowledge(&mut self, fw: &FrameworkId, task: &TaskId, uuid: &UpdateUuid) {
        let (acked, next) = self.updates.acknowledge(fw, task, uuid, Instant::now());
        if acked.is_some() {
            if let Some(id) = self.by_task.get(&(fw.clone(), task.clone())) {
                self.checkpoint_record(id, &Record::Ack(*uuid));
            }
        }
        if let Some(next) = next {
            self.send(next);
        }
        if acked.is_some_and(|s| s.state.is_terminal()) {
            if let Some(id) = self.by_task.remove(&(fw.clone(), task.clone())) {
                self.finish(&id);
            }
        }
    }

    /// The container is over and its terminal update acknowledged: forget it.
    fn finish(&mut self, id: &ContainerId) {
        if let Some(c) = self.containers.remove(id) {
            // Teardown may wait for a cgroup to empty: keep it off the actor, like launches.
            let containerizer = self.containerizer.clone();
            let (ckpt, resources) = (c.ckpt.clone(), c.resources.clone());
            tokio::task::spawn_blocking(move || containerizer.destroy(&ckpt, &resources));
            self.completed.push_back(c);
            while self.completed.len() > MAX_COMPLETED {
                self.completed.pop_front();
            }
        }
    }

    fn shutdown_framework(&mut self, fw: &FrameworkId) {
        info!(framework_id = %fw, "shutting down the framework's tasks");
        self.updates.drop_framework(fw);
        let ids: Vec<(TaskId, ContainerId)> = self
            .by_task
            .iter()
            .filter(|((f, _), _)| f == fw)
            .map(|((_, t), c)| (t.clone(), c.clone()))
            .collect();
        for (task, id) in ids {
            let running = self.containers.get(&id).is_some_and(|c| !c.exited);
            if running {
                // Kill at once: the framework is gone, nobody waits for a graceful end.
                if let Some(pid) = self.containers.get(&id).and_then(|c| c.supervisor_pid) {
                    self.containerizer.terminate(pid);
                }
                self.containerizer.kill_all(&id);
                if let Some(c) = self.containers.get_mut(&id) {
                    if !c.kill_requested {
                        c.kill_requested = true;
                        self.checkpoint_record(&id, &Record::Kill);
                    }
                }
                // Its exit will be noticed by its watcher; updates for it are dropped from now on.
                let to_self = self.to_self.clone();
                let fw = fw.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = to_self.send(Msg::ShutdownFramework { framework_id: fw });
                });
            } else {
                self.by_task.remove(&(fw.clone(), task));
                self.finish(&id);
            }
        }
        // A framework's checkpoint stays while it may launch again (a restart drops those
        // without containers); a framework shut down is forgotten with its last container.
        if !self.has_containers(fw) {
            self.forget_framework(fw);
        }
    }

    fn container_json(c: &Container) -> Json {
        json!({
            "id": c.ckpt.task.task_id,
            "name": c.ckpt.task.name,
            "container": c.ckpt.container_id,
            "directory": c.ckpt.sandbox,
            "framework_id": c.ckpt.framework.id,
            "resources": c.ckpt.task.resources.to_json(),
            "tasks": if c.exited { vec![] } else { vec![Self::task_json(c)] },
            "completed_tasks": if c.exited { vec![Self::task_json(c)] } else { vec![] },
        })
    }

    fn task_json(c: &Container) -> Json {
        json!({
            "id": c.ckpt.task.task_id,
            "name": c.ckpt.task.name,
            "framework_id": c.ckpt.framework.id,
            "executor_id": c.ckpt.task.task_id,
            "slave_id": c.ckpt.agent_id,
            "state": c.state,
            "resources": c.ckpt.task.resources.to_json(),
        })
    }

    /// The agent's `/state`, in Mesos' shape.
    pub fn state_json(&self) -> Json {
        let mut frameworks: HashMap<String, (Json, Vec<Json>, Vec<Json>)> = HashMap::new();
        // Live containers go under "executors", completed ones under "completed_executors".
        let live = self.containers.values().map(|c| (c, false));
        for (c, completed) in live.chain(self.completed.iter().map(|c| (c, true))) {
            let fw = &c.ckpt.framework;
            let id = fw.id.as_ref().map(|i| i.to_string()).unwrap_or_default();
            let e = frameworks
                .entry(id)
                .or_insert_with(|| (json!({"name": fw.name, "user": fw.user}), vec![], vec![]));
            if completed {
                e.2.push(Self::container_json(c));
            } else {
                e.1.push(Self::container_json(c));
            }
        }
        let mut used = Resources::new();
        for c in self.containers.values().filter(|c| !c.exited) {
            used.add(&c.ckpt.task.resources);
        }
        json!({
            "version": strata_schema::VERSION,
            "id": self.agent_id,
            "hostname": self.hostname,
            "port": self.port,
            "pid": format!("slave(1)@{}:{}", self.hostname, self.port),
            "master_hostname": self.master.as_ref().map(|m| m.hostname.clone()),
            "connected": self.connected,
            "resources": self.resources.to_json(),
            "used_resources": used.to_json(),
            "attributes": self.attributes.to_json(),
            "isolation": self.containerizer.isolation().names(),
            "pending_status_updates": self.updates.len(),
            "frameworks": frameworks.into_iter().map(|(id, (info, executors, completed))| json!({
                "id": id,
                "name": info["name"],
                "user": info["user"],
                "executors": executors,
                "completed_executors": completed,
            })).collect::<Vec<_>>(),
        })
    }

    fn update_resources(
        &mut self,
        framework_id: Option<FrameworkId>,
        task_id: TaskId,
        update: Resources,
        reply: oneshot::Sender<Result<Json, UpdateError>>,
    ) {
        let (ckpt, merged) = match self.update_target(framework_id, &task_id, &update) {
            Ok(target) => target,
            Err(err) => {
                let _ = reply.send(Err(err));
                return;
            }
        };
        info!(task_id = %task_id, resources = %merged, "updating a container's resources");
        let containerizer = self.containerizer.clone();
        let to_self = self.to_self.clone();
        // Cgroup writes may block (a lower memory.max reclaims): off the actor.
        tokio::task::spawn_blocking(move || match containerizer.update(&ckpt, &merged) {
            Ok(()) => {
                let _ = to_self.send(Msg::ResourcesUpdated {
                    container_id: ckpt.container_id,
                    resources: merged,
                    reply,
                });
            }
            Err(err) => {
                warn!(task_id = %ckpt.task.task_id, cause = %err, "failed to update a container");
                let _ = reply.send(Err(UpdateError::Failed(format!(
                    "failed to update task {}: {err}",
                    ckpt.task.task_id
                ))));
            }
        });
    }

    /// The running container of `task_id` and its resources merged with `update`.
    fn update_target(
        &self,
        framework_id: Option<FrameworkId>,
        task_id: &TaskId,
        update: &Resources,
    ) -> Result<(TaskCheckpoint, Resources), UpdateError> {
        if update.is_empty() {
            return Err(UpdateError::Invalid("no resources to update".to_string()));
        }
        let matches: Vec<&ContainerId> = self
            .by_task
            .iter()
            .filter(|((f, t), _)| t == task_id && framework_id.as_ref().is_none_or(|x| x == f))
            .map(|(_, id)| id)
            .collect();
        let not_found = || {
            let of = framework_id
                .as_ref()
                .map(|f| format!(" of framework {f}"))
                .unwrap_or_default();
            UpdateError::NotFound(format!("no task {task_id}{of} on this agent"))
        };
        let id = match matches.as_slice() {
            [id] => *id,
            [] => return Err(not_found()),
            _ => {
                return Err(UpdateError::Invalid(format!(
                    "several frameworks have a task {task_id}: give framework_id"
                )))
            }
        };
        let c = self.containers.get(id).ok_or_else(not_found)?;
        if c.exited || c.kill_requested {
            let what = if c.exited {
                c.state.mesos_name()
            } else {
                "being killed"
            };
            return Err(UpdateError::NotRunning(format!(
                "task {task_id} is {what}: only a running container can be updated"
            )));
        }
        if c.supervisor_pid.is_none() {
            return Err(UpdateError::NotRunning(format!(
                "task {task_id} is still being launched"
            )));
        }
        let names = update.names();
        let merged = c
            .resources
            .iter()
            .filter(|r| !names.contains(&r.name.as_str()))
            .chain(update.iter())
            .cloned()
            .collect();
        let merged =
            Resources::from_vec(merged).map_err(|err| UpdateError::Invalid(err.to_string()))?;
        Ok((c.ckpt.clone(), merged))
    }

    fn resources_updated(
        &mut self,
        id: &ContainerId,
        resources: Resources,
        reply: oneshot::Sender<Result<Json, UpdateError>>,
    ) {
        let Some(c) = self.containers.get_mut(id) else {
            let _ = reply.send(Err(UpdateError::NotFound(format!(
                "container {id} is gone"
            ))));
            return;
        };
        c.resources = resources;
        let _ = reply.send(Ok(json!({
            "task_id": c.ckpt.task.task_id,
            "framework_id": c.ckpt.framework.id,
            "container_id": c.ckpt.container_id,
            "resources": c.resources.to_json(),
            "isolation": self.containerizer.isolation().names(),
        })));
    }

    /// Absolute roots under which `/files` may read.
    pub fn sandbox_root(&self) -> PathBuf {
        self.paths.work_dir.join("agents")
    }
}

/// Runs the actor until `shutdown` resolves.
pub async fn run(
    mut agent: Agent,
    mut mailbox: mpsc::UnboundedReceiver<Msg>,
    mut containers: mpsc::UnboundedReceiver<ContainerEvent>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            msg = mailbox.recv() => match msg {
                Some(msg) => agent.handle(msg),
                None => break,
            },
            Some(event) = containers.recv() => agent.handle_container(event),
            _ = retry.tick() => agent.retry_tick(),
            _ = &mut shutdown => break,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn oom_messages_name_the_limit() {
        let status = ExitStatus {
            signal: Some(9),
            message: "Command terminated with signal Killed".to_string(),
            started: true,
            oom_kills: 1,
            memory_limit_bytes: Some(64 << 20),
            ..ExitStatus::default()
        };
        let resources = Resources::parse("cpus:1;mem:128").unwrap();
        assert_eq!(
            memory_limit_message(&status, &resources),
            "Memory limit exceeded: the task used more than 64 MB"
        );
        let status = ExitStatus {
            memory_limit_bytes: None,
            ..status
        };
        assert_eq!(
            memory_limit_message(&status, &resources),
            "Memory limit exceeded: the task used more than 128 MB"
        );
    }

    #[test]
    fn exit_statuses_without_oom_fields_still_parse() {
        let status: ExitStatus = serde_json::from_str(
            r#"{"exit_code":0,"signal":null,"message":"Command exited with status 0","started":true}"#,
        )
        .unwrap();
        assert_eq!(status.oom_kills, 0);
        assert_eq!(status.memory_limit_bytes, None);
    }
}
