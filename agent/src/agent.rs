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
use crate::executor::{self as exec, ApiError, Executor, ExecutorKey, Pending};
use crate::monitor::UsageTarget;
use crate::paths::{write_atomic, Paths};
use crate::status::StatusUpdates;
use crate::supervisor::ExitStatus;
use serde_json::{json, Value as Json};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use strata_schema::{
    AgentId, AgentInfo, Attributes, ContainerId, ExecutorId, ExecutorInfo, ExecutorKind,
    FrameworkId, FrameworkInfo, MasterInfo, Resources, StatusSource, TaskId, TaskInfo, TaskState,
    TaskStatus, UpdateUuid,
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
    /// LAUNCH_GROUP: all of `tasks` under `executor`.
    LaunchGroup {
        framework: Box<FrameworkInfo>,
        executor: Box<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    },
    /// A scheduler's message for one of its executors here.
    FrameworkMessage {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    },
    /// SHUTDOWN of one executor: a SHUTDOWN event, then a kill after the grace period.
    ShutdownExecutor {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
    },
    /// A call of `POST /api/v1/executor`; SUBSCRIBE is answered with the executor's events.
    ExecutorCall {
        call: exec::Call,
        reply: oneshot::Sender<Result<Option<mpsc::UnboundedReceiver<Json>>, ApiError>>,
    },
    /// The task containers of an executor are checkpointed (or failed to be).
    ExecutorTasksReady {
        key: ExecutorKey,
        pending: Pending,
        result: Result<(), String>,
    },
    /// A shut-down executor's grace period is over.
    ExecutorEscalate {
        container_id: ContainerId,
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
    /// An executor's message for its scheduler.
    FrameworkMessage {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    },
    /// A custom executor's process ended (`status`: its wait status, -1 if unknown).
    ExecutorExited {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        status: i32,
    },
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
    /// A task of a custom executor: whether the executor was handed it (LAUNCH).
    delivered: bool,
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
    /// `host:port` of this agent's HTTP API, for executors (`MESOS_AGENT_ENDPOINT`).
    endpoint: String,
    /// Extra environment of executors (the agent's TLS, `LIBPROCESS_SSL_*`).
    executor_env: Vec<(String, String)>,
    auth: Option<crate::auth::SharedAgentAuth>,
    /// The custom executors running here.
    executors: HashMap<ExecutorKey, Executor>,
    /// The container of each executor.
    executor_containers: HashMap<ContainerId, ExecutorKey>,
    /// The tasks of each LAUNCH_GROUP run by the default executor (one fails: the others are
    /// killed), by member.
    groups: HashMap<(FrameworkId, TaskId), Vec<TaskId>>,
    /// Executor exits that happened while disconnected, told the master once registered (it
    /// releases their resources then).
    unreported_exits: Vec<ToMaster>,
}

/// The custom executor that runs `task`, if any (a DEFAULT one runs tasks as containers).
fn custom_executor(task: &TaskInfo) -> Option<&ExecutorInfo> {
    task.executor
        .as_deref()
        .filter(|e| e.kind == ExecutorKind::Custom)
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
    /// `host:port` of the agent's HTTP API, as executors reach it.
    pub endpoint: String,
    /// Extra environment of executors (the agent's TLS, `LIBPROCESS_SSL_*`).
    pub executor_env: Vec<(String, String)>,
    /// Authentication settings: executors' tokens are minted with them (issue 11).
    pub auth: Option<crate::auth::SharedAgentAuth>,
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
            endpoint: setup.endpoint,
            executor_env: setup.executor_env,
            auth: setup.auth,
            executors: HashMap::new(),
            executor_containers: HashMap::new(),
            groups: HashMap::new(),
            unreported_exits: Vec::new(),
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
        let failed = status.state.is_terminal() && status.state != TaskState::Finished;
        let member = status
            .framework_id
            .clone()
            .map(|fw| (fw, status.task_id.clone()));
        if let Some(send) = self.updates.push(status, Instant::now()) {
            self.send(send);
        }
        // The default executor's policy: a task of a group that fails takes the others down.
        if let Some((fw, task)) = member.filter(|_| failed) {
            if let Some(group) = self.groups.get(&(fw.clone(), task.clone())).cloned() {
                for other in group.iter().filter(|t| **t != task) {
                    info!(task_id = %other, failed = %task, "killing a task of a group whose other task failed");
                    self.kill(&fw, other, 0.0);
                }
            }
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

    fn agent_info(&self) -> AgentInfo {
        AgentInfo {
            id: self.agent_id.clone(),
            hostname: self.hostname.clone(),
            port: self.port,
            resources: self.resources.clone(),
            attributes: self.attributes.clone(),
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
        for executor in recovered.executors {
            // Not recovered: the executor would need its event stream back, which the previous
            // run held. Its container is killed and its unfinished tasks reported failed.
            warn!(container_id = %executor.ckpt.container_id, executor_id = %executor.ckpt.task.task_id,
                  framework_id = ?executor.ckpt.framework.id,
                  "custom executors are not recovered across agent restarts: killing the executor's container");
            if let Some(pid) = executor.supervisor_pid.filter(|_| executor.alive) {
                self.containerizer.terminate(pid);
            }
            self.containerizer.kill_all(&executor.ckpt.container_id);
            if let Some(framework_id) = executor.ckpt.framework.id.clone() {
                if let Ok(executor_id) = ExecutorId::new(executor.ckpt.task.task_id.as_str()) {
                    self.unreported_exits.push(ToMaster::ExecutorExited {
                        framework_id,
                        executor_id,
                        status: libc::SIGKILL,
                    });
                }
            }
            let containerizer = self.containerizer.clone();
            let resources = executor.ckpt.task.resources.clone();
            tokio::task::spawn_blocking(move || containerizer.destroy(&executor.ckpt, &resources));
        }
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
                delivered: false,
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
        if let Some(e) = custom_executor(&c.ckpt.task) {
            let mut status = Self::status(
                c,
                if stream.kill_requested {
                    TaskState::Killed
                } else {
                    TaskState::Failed
                },
                StatusSource::Agent,
                format!(
                    "the agent restarted and does not recover custom executors: executor {} was \
                     killed",
                    e.executor_id
                ),
            );
            status.reason = Some("REASON_EXECUTOR_TERMINATED".to_string());
            self.update(&id, status);
            return None;
        }
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
                let mut fws: Vec<FrameworkId> =
                    self.by_task.keys().map(|(f, _)| f.clone()).collect();
                fws.extend(self.executors.keys().map(|(f, _)| f.clone()));
                fws.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
                fws.dedup();
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
            Msg::LaunchGroup {
                framework,
                executor,
                tasks,
            } => self.launch_group(*framework, *executor, tasks),
            Msg::FrameworkMessage {
                framework_id,
                executor_id,
                data,
            } => self.framework_message((framework_id, executor_id), &data),
            Msg::ShutdownExecutor {
                framework_id,
                executor_id,
            } => self.shutdown_executor(&(framework_id, executor_id)),
            Msg::ExecutorCall { call, reply } => {
                let _ = reply.send(self.executor_call(call));
            }
            Msg::ExecutorTasksReady {
                key,
                pending,
                result,
            } => self.executor_tasks_ready(&key, pending, result),
            Msg::ExecutorEscalate { container_id } => {
                if self.executor_containers.contains_key(&container_id) {
                    info!(container_id = %container_id, "executor shutdown grace period over: killing its container");
                    self.containerizer.kill_all(&container_id);
                }
            }
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
            } if self.executor_containers.contains_key(&container_id) => {
                if let Some(e) = self
                    .executor_containers
                    .get(&container_id)
                    .and_then(|key| self.executors.get(key))
                {
                    info!(executor_id = %e.info.executor_id, init_pid, "executor running");
                    self.containerizer.isolate(&e.ckpt, &e.resources, init_pid);
                }
            }
            ContainerEvent::Exited {
                container_id,
                status,
            } if self.executor_containers.contains_key(&container_id) => {
                if let Some(key) = self.executor_containers.get(&container_id).cloned() {
                    self.executor_terminated(&key, status.as_ref(), None);
                }
            }
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
        for exited in std::mem::take(&mut self.unreported_exits) {
            let _ = self.to_master.send(exited);
        }
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
        if let Some(executor) = custom_executor(&task).cloned() {
            self.launch_on_executor(framework, executor, vec![task], false);
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
                delivered: false,
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
        if let Some(key) = self.executor_containers.get(id).cloned() {
            self.executor_launched(&key, result);
            return;
        }
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
        if custom_executor(&c.ckpt.task).is_some() {
            self.kill_on_executor(&id);
            return;
        }
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
        if let Some(status) = &acked {
            if let Some(id) = self.by_task.get(&(fw.clone(), task.clone())).cloned() {
                self.checkpoint_record(&id, &Record::Ack(*uuid));
                // An executor's update: the executor hears that it was acknowledged.
                let executor = self
                    .containers
                    .get(&id)
                    .and_then(|c| custom_executor(&c.ckpt.task))
                    .map(|e| (fw.clone(), e.executor_id.clone()));
                if let Some(e) = executor
                    .filter(|_| status.source == StatusSource::Executor)
                    .and_then(|key| self.executors.get_mut(&key))
                {
                    e.send(exec::acknowledged_event(task, uuid));
                }
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
            if let Some(fw) = &c.ckpt.framework.id {
                self.groups
                    .remove(&(fw.clone(), c.ckpt.task.task_id.clone()));
            }
            let containerizer = self.containerizer.clone();
            if let Some(e) = custom_executor(&c.ckpt.task) {
                // A task of an executor has only its checkpoint dir: the executor's container
                // goes with the executor.
                let key = c
                    .ckpt
                    .framework
                    .id
                    .clone()
                    .map(|f| (f, e.executor_id.clone()));
                if let Some(executor) = key.and_then(|k| self.executors.get_mut(&k)) {
                    executor.tasks.retain(|t| t != id);
                }
                let id = id.clone();
                tokio::task::spawn_blocking(move || containerizer.remove_checkpoint(&id));
                self.completed.push_back(c);
                while self.completed.len() > MAX_COMPLETED {
                    self.completed.pop_front();
                }
                return;
            }
            // Teardown may wait for a cgroup to empty: keep it off the actor, like launches.
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
        // Its executors go at once; their exits end their tasks.
        for (key, e) in self.executors.iter_mut().filter(|((f, _), _)| f == fw) {
            if !e.shutting_down {
                info!(executor_id = %key.1, "killing the framework's executor");
                e.shutting_down = true;
            }
            if let Some(pid) = e.supervisor_pid {
                self.containerizer.terminate(pid);
            }
            self.containerizer.kill_all(&e.ckpt.container_id);
        }
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
            "executor_id": custom_executor(&c.ckpt.task)
                .map(|e| e.executor_id.to_string())
                .unwrap_or_else(|| c.ckpt.task.task_id.to_string()),
            "slave_id": c.ckpt.agent_id,
            "state": c.state,
            "resources": c.ckpt.task.resources.to_json(),
        })
    }

    /// The agent's `/state`, in Mesos' shape.
    pub fn state_json(&self) -> Json {
        let mut frameworks: HashMap<String, (Json, Vec<Json>, Vec<Json>)> = HashMap::new();
        // Live containers go under "executors", completed ones under "completed_executors".
        // A running custom executor's tasks are listed under it, not as containers.
        let under_executor = |c: &Container| {
            custom_executor(&c.ckpt.task).is_some_and(|e| {
                c.ckpt.framework.id.as_ref().is_some_and(|f| {
                    self.executors
                        .contains_key(&(f.clone(), e.executor_id.clone()))
                })
            })
        };
        let live = self
            .containers
            .values()
            .filter(|c| !under_executor(c))
            .map(|c| (c, false));
        for (key, e) in &self.executors {
            let fw = &e.ckpt.framework;
            let entry = frameworks
                .entry(key.0.to_string())
                .or_insert_with(|| (json!({"name": fw.name, "user": fw.user}), vec![], vec![]));
            let tasks: Vec<&Container> = e
                .tasks
                .iter()
                .filter_map(|id| self.containers.get(id))
                .collect();
            entry.1.push(json!({
                "id": key.1,
                "name": e.info.name,
                "type": e.info.kind.mesos_name(),
                "container": e.ckpt.container_id,
                "directory": e.ckpt.sandbox,
                "framework_id": key.0,
                "resources": e.resources.to_json(),
                "subscribed": e.stream.is_some(),
                "tasks": tasks.iter().filter(|c| !c.exited).map(|c| Self::task_json(c)).collect::<Vec<_>>(),
                "completed_tasks": tasks.iter().filter(|c| c.exited).map(|c| Self::task_json(c)).collect::<Vec<_>>(),
            }));
        }
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
        for e in self.executors.values() {
            used.add(&e.info.resources);
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

/// Custom executors and task groups (see [`crate::executor`]).
impl Agent {
    /// Hands `tasks` to the custom executor `info`, starting it first if it does not run here.
    /// Each task gets a checkpoint dir of its own (no supervisor); once those are written the
    /// tasks go to the executor (LAUNCH, or one LAUNCH_GROUP when `group`).
    fn launch_on_executor(
        &mut self,
        framework: FrameworkInfo,
        info: ExecutorInfo,
        tasks: Vec<TaskInfo>,
        group: bool,
    ) {
        let Some(fw_id) = framework.id.clone() else {
            warn!(executor_id = %info.executor_id, "launch without a framework id ignored");
            return;
        };
        let key: ExecutorKey = (fw_id.clone(), info.executor_id.clone());
        let mut fresh = Vec::new();
        for mut task in tasks {
            if self
                .by_task
                .contains_key(&(fw_id.clone(), task.task_id.clone()))
            {
                warn!(task_id = %task.task_id, "duplicate launch ignored");
                continue;
            }
            task.executor = Some(Box::new(info.clone()));
            fresh.push(task);
        }
        let Some(first) = fresh.first() else {
            return;
        };
        let agent_id = first.agent_id.clone();
        let mut task_resources = Resources::new();
        for task in &fresh {
            task_resources.add(&task.resources);
        }
        // A framework new here (or with new info) is checkpointed before its tasks start.
        let framework_ckpt =
            (self.frameworks.get(&fw_id) != Some(&framework)).then(|| framework.clone());
        if let Some(info) = &framework_ckpt {
            self.frameworks.insert(fw_id.clone(), info.clone());
        }
        match self.executors.get_mut(&key) {
            Some(e) => {
                e.resources.add(&task_resources);
                self.resize_executor(&key);
            }
            None => {
                if let Err(err) =
                    self.start_executor(&key, &info, &framework, &agent_id, &task_resources)
                {
                    warn!(executor_id = %info.executor_id, cause = %err, "cannot start the executor");
                }
            }
        }
        let sandbox = self
            .executors
            .get(&key)
            .map(|e| e.ckpt.sandbox.clone())
            .unwrap_or_else(|| {
                let id = TaskId::new(info.executor_id.as_str())
                    .unwrap_or_else(|_| first.task_id.clone());
                self.paths
                    .sandbox(&agent_id, &fw_id, &id, &ContainerId::random())
            });
        let mut ckpts = Vec::new();
        for task in fresh {
            let container_id = ContainerId::random();
            let ckpt = TaskCheckpoint {
                container_id: container_id.clone(),
                agent_id: task.agent_id.clone(),
                framework: framework.clone(),
                task,
                sandbox: sandbox.clone(),
            };
            self.by_task.insert(
                (fw_id.clone(), ckpt.task.task_id.clone()),
                container_id.clone(),
            );
            self.containers.insert(
                container_id.clone(),
                Container {
                    ckpt: ckpt.clone(),
                    state: TaskState::Staging,
                    supervisor_pid: None,
                    kill_requested: false,
                    exited: false,
                    launched: Instant::now(),
                    resources: ckpt.task.resources.clone(),
                    delivered: false,
                },
            );
            if let Some(e) = self.executors.get_mut(&key) {
                e.tasks.push(container_id);
            }
            ckpts.push(ckpt);
        }
        let ids: Vec<ContainerId> = ckpts.iter().map(|c| c.container_id.clone()).collect();
        let pending = if group {
            Pending::Group(ids)
        } else {
            Pending::Task(ids[0].clone())
        };
        let paths = self.paths.clone();
        let to_self = self.to_self.clone();
        tokio::task::spawn_blocking(move || {
            let mut result = Ok(());
            for ckpt in &ckpts {
                result = checkpoint::prepare_launch(&paths, ckpt, framework_ckpt.as_ref())
                    .and_then(|()| {
                        checkpoint::ensure_task(&paths, ckpt)
                            .map_err(|e| format!("failed to checkpoint the task: {e}"))
                    });
                if result.is_err() {
                    break;
                }
            }
            if result.is_err() {
                for ckpt in &ckpts {
                    if let Err(err) = checkpoint::ensure_task(&paths, ckpt) {
                        error!(task_id = %ckpt.task.task_id, cause = %err, "failed to checkpoint the task");
                    }
                }
            }
            let _ = to_self.send(Msg::ExecutorTasksReady {
                key,
                pending,
                result,
            });
        });
    }

    /// Starts an executor's container (off the actor); its pid comes back in `Msg::Launched`.
    fn start_executor(
        &mut self,
        key: &ExecutorKey,
        info: &ExecutorInfo,
        framework: &FrameworkInfo,
        agent_id: &AgentId,
        task_resources: &Resources,
    ) -> Result<(), String> {
        let mut env = exec::executor_environment(&self.endpoint, framework);
        env.extend(self.executor_env.iter().cloned());
        let container_id = ContainerId::random();
        // Under --authenticate-http-executors: the token that proves this executor (Mesos' name
        // and claims fid/eid/cid).
        if let Some(token) = self
            .auth
            .as_ref()
            .and_then(|a| a.executor_token(&key.0, &info.executor_id, container_id.as_str()))
        {
            env.push((crate::auth::EXECUTOR_TOKEN_ENV.to_string(), token));
        }
        let task = exec::executor_task(info, agent_id, task_resources, env)?;
        let sandbox = self
            .paths
            .sandbox(agent_id, &key.0, &task.task_id, &container_id);
        let ckpt = TaskCheckpoint {
            container_id: container_id.clone(),
            agent_id: agent_id.clone(),
            framework: framework.clone(),
            task,
            sandbox,
        };
        info!(executor_id = %info.executor_id, framework_id = %key.0, container_id = %container_id, "starting executor");
        self.executors.insert(
            key.clone(),
            Executor {
                info: info.clone(),
                resources: ckpt.task.resources.clone(),
                ckpt: ckpt.clone(),
                supervisor_pid: None,
                stream: None,
                queued: Vec::new(),
                tasks: Vec::new(),
                shutting_down: false,
            },
        );
        self.executor_containers
            .insert(container_id.clone(), key.clone());
        let containerizer = self.containerizer.clone();
        let to_self = self.to_self.clone();
        let marker = self
            .paths
            .container_dir(&container_id)
            .join(exec::EXECUTOR_FILE);
        let info = info.clone();
        tokio::task::spawn_blocking(move || {
            // The marker first: a restarted agent must never take the executor for a task.
            let data = serde_json::to_vec_pretty(&info).unwrap_or_default();
            let result = write_atomic(&marker, &data)
                .map_err(|e| format!("failed to write {}: {e}", marker.display()))
                .and_then(|()| containerizer.launch(&ckpt).map_err(|e| e.to_string()));
            let _ = to_self.send(Msg::Launched {
                container_id: ckpt.container_id,
                result,
            });
        });
        Ok(())
    }

    /// Applies an executor's resources (its own and its tasks') to its running container.
    fn resize_executor(&self, key: &ExecutorKey) {
        let Some(e) = self.executors.get(key) else {
            return;
        };
        if e.supervisor_pid.is_none() {
            // Still launching: `executor_launched` resizes it once it runs.
            return;
        }
        let (containerizer, ckpt, resources) = (
            self.containerizer.clone(),
            e.ckpt.clone(),
            e.resources.clone(),
        );
        tokio::task::spawn_blocking(move || {
            if let Err(err) = containerizer.update(&ckpt, &resources) {
                warn!(container_id = %ckpt.container_id, cause = %err, "failed to resize an executor's container");
            }
        });
    }

    fn executor_launched(&mut self, key: &ExecutorKey, result: Result<u32, String>) {
        match result {
            Ok(pid) => {
                let Some(e) = self.executors.get_mut(key) else {
                    return;
                };
                e.supervisor_pid = Some(pid as i32);
                if e.shutting_down {
                    self.containerizer.terminate(pid as i32);
                    self.schedule_executor_escalation(key);
                } else if e.resources != e.ckpt.task.resources {
                    self.resize_executor(key);
                }
            }
            Err(err) => {
                warn!(executor_id = %key.1, cause = %err, "failed to launch the executor");
                self.executor_terminated(key, None, Some(err));
            }
        }
    }

    fn schedule_executor_escalation(&self, key: &ExecutorKey) {
        let Some(e) = self.executors.get(key) else {
            return;
        };
        let to_self = self.to_self.clone();
        let container_id = e.ckpt.container_id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(exec::SHUTDOWN_GRACE).await;
            let _ = to_self.send(Msg::ExecutorEscalate { container_id });
        });
    }

    /// An executor is gone (or never started): its unfinished tasks end (TASK_FAILED, or
    /// TASK_KILLED if it was shut down or they were being killed), the master hears of it, and
    /// its container is removed.
    fn executor_terminated(
        &mut self,
        key: &ExecutorKey,
        exit: Option<&crate::supervisor::ExitStatus>,
        launch_error: Option<String>,
    ) {
        let Some(e) = self.executors.remove(key) else {
            return;
        };
        self.executor_containers.remove(&e.ckpt.container_id);
        let how = match (&launch_error, exit) {
            (Some(err), _) => format!("failed to launch: {err}"),
            (None, Some(s)) => s.message.clone(),
            (None, None) => "its supervisor exited without reporting its status".to_string(),
        };
        info!(executor_id = %key.1, framework_id = %key.0, %how, "executor terminated");
        let queued: Vec<&ContainerId> = e
            .queued
            .iter()
            .flat_map(|p| match p {
                Pending::Task(id) => std::slice::from_ref(id),
                Pending::Group(ids) => ids.as_slice(),
            })
            .collect();
        for id in &e.tasks {
            let Some(c) = self.containers.get(id) else {
                continue;
            };
            // A task whose checkpoint is still being written is ended by
            // `executor_tasks_ready` once it is (its update needs the log).
            if c.exited || !(c.delivered || queued.contains(&id)) {
                continue;
            }
            let state = if c.kill_requested || e.shutting_down {
                TaskState::Killed
            } else {
                TaskState::Failed
            };
            let mut status = Self::status(
                c,
                state,
                StatusSource::Agent,
                format!("executor {} terminated: {how}", key.1),
            );
            status.reason = Some(
                if launch_error.is_some() {
                    "REASON_CONTAINER_LAUNCH_FAILED"
                } else {
                    "REASON_EXECUTOR_TERMINATED"
                }
                .to_string(),
            );
            self.update(id, status);
        }
        self.containerizer.kill_all(&e.ckpt.container_id);
        let exited = ToMaster::ExecutorExited {
            framework_id: key.0.clone(),
            executor_id: key.1.clone(),
            status: exec::wait_status(exit),
        };
        if self.connected {
            let _ = self.to_master.send(exited);
        } else {
            self.unreported_exits.push(exited);
        }
        let containerizer = self.containerizer.clone();
        tokio::task::spawn_blocking(move || containerizer.destroy(&e.ckpt, &e.resources));
    }

    /// The task containers of `pending` are checkpointed: hand them to their executor (or keep
    /// them until it subscribes); end those killed meanwhile or without an executor.
    fn executor_tasks_ready(
        &mut self,
        key: &ExecutorKey,
        pending: Pending,
        result: Result<(), String>,
    ) {
        let ids = match &pending {
            Pending::Task(id) => vec![id.clone()],
            Pending::Group(ids) => ids.clone(),
        };
        let running = self.executors.get(key).is_some_and(|e| !e.shutting_down);
        let shut_down = self.executors.get(key).is_some_and(|e| e.shutting_down);
        for id in &ids {
            let Some(c) = self.containers.get(id) else {
                continue;
            };
            if c.exited {
                continue;
            }
            let ended = match &result {
                Err(err) => Some((
                    TaskState::Failed,
                    format!("failed to checkpoint the task: {err}"),
                    Some("REASON_CONTAINER_LAUNCH_FAILED"),
                )),
                Ok(()) if c.kill_requested => Some((
                    TaskState::Killed,
                    "killed before its executor received it".to_string(),
                    None,
                )),
                Ok(()) if shut_down => Some((
                    TaskState::Killed,
                    format!("executor {} was shut down", key.1),
                    Some("REASON_EXECUTOR_TERMINATED"),
                )),
                Ok(()) if !running => Some((
                    TaskState::Failed,
                    format!("executor {} is not running on this agent", key.1),
                    Some("REASON_EXECUTOR_TERMINATED"),
                )),
                Ok(()) => None,
            };
            if let Some((state, message, reason)) = ended {
                let mut status = Self::status(c, state, StatusSource::Agent, message);
                status.reason = reason.map(str::to_string);
                self.update(id, status);
            }
        }
        if result.is_ok() && running {
            self.deliver(key, pending);
        }
    }

    /// Sends the tasks of `pending` still to run to the executor, or queues them until it
    /// subscribes.
    fn deliver(&mut self, key: &ExecutorKey, pending: Pending) {
        let group = matches!(pending, Pending::Group(_));
        let ids: Vec<ContainerId> = match pending {
            Pending::Task(id) => vec![id],
            Pending::Group(ids) => ids,
        };
        let ids: Vec<ContainerId> = ids
            .into_iter()
            .filter(|id| self.containers.get(id).is_some_and(|c| !c.exited))
            .collect();
        if ids.is_empty() {
            return;
        }
        let tasks: Vec<&TaskInfo> = ids
            .iter()
            .filter_map(|id| self.containers.get(id).map(|c| &c.ckpt.task))
            .collect();
        let event = if group {
            exec::launch_group_event(&tasks)
        } else {
            exec::launch_event(tasks[0])
        };
        let Some(e) = self.executors.get_mut(key) else {
            return;
        };
        if e.send(event) {
            for id in &ids {
                if let Some(c) = self.containers.get_mut(id) {
                    c.delivered = true;
                }
            }
        } else {
            e.queued.push(if group {
                Pending::Group(ids)
            } else {
                Pending::Task(ids[0].clone())
            });
        }
    }

    /// A kill (already checkpointed as requested) of a task of a custom executor: a KILL event
    /// if the executor has the task, else the task ends here.
    fn kill_on_executor(&mut self, id: &ContainerId) {
        self.checkpoint_record(id, &Record::Kill);
        let Some(c) = self.containers.get(id) else {
            return;
        };
        let task_id = c.ckpt.task.task_id.clone();
        let delivered = c.delivered;
        let key = custom_executor(&c.ckpt.task)
            .zip(c.ckpt.framework.id.clone())
            .map(|(e, f)| (f, e.executor_id.clone()));
        info!(task_id = %task_id, "killing a task of an executor");
        let Some(e) = key.as_ref().and_then(|k| self.executors.get_mut(k)) else {
            if delivered {
                // Its executor is gone and already ended its tasks.
                return;
            }
            // Not checkpointed yet: `executor_tasks_ready` ends it.
            return;
        };
        let mut queued = false;
        for p in &mut e.queued {
            match p {
                Pending::Task(t) if t == id => queued = true,
                Pending::Group(ids) if ids.contains(id) => {
                    ids.retain(|t| t != id);
                    queued = true;
                }
                _ => {}
            }
        }
        e.queued.retain(|p| match p {
            Pending::Task(t) => t != id,
            Pending::Group(ids) => !ids.is_empty(),
        });
        if queued {
            if let Some(c) = self.containers.get(id) {
                let status = Self::status(
                    c,
                    TaskState::Killed,
                    StatusSource::Agent,
                    "killed before its executor received it".to_string(),
                );
                self.update(id, status);
            }
        } else if delivered && !e.send(exec::kill_event(&task_id)) {
            warn!(task_id = %task_id, executor_id = %e.info.executor_id,
                  "the executor is not connected: the kill waits for its exit or shutdown");
        }
    }

    fn launch_group(
        &mut self,
        framework: FrameworkInfo,
        executor: ExecutorInfo,
        tasks: Vec<TaskInfo>,
    ) {
        match executor.kind {
            ExecutorKind::Custom => self.launch_on_executor(framework, executor, tasks, true),
            ExecutorKind::Default => {
                // The default executor's semantics: each task in a container of its own; one
                // failing kills the others.
                let Some(fw_id) = framework.id.clone() else {
                    warn!("launch group without a framework id ignored");
                    return;
                };
                let ids: Vec<TaskId> = tasks.iter().map(|t| t.task_id.clone()).collect();
                info!(executor_id = %executor.executor_id, tasks = ids.len(), "launching a task group with the default executor");
                for task in &tasks {
                    self.groups
                        .insert((fw_id.clone(), task.task_id.clone()), ids.clone());
                }
                for task in tasks {
                    self.launch(framework.clone(), task);
                }
            }
        }
    }

    fn framework_message(&mut self, key: ExecutorKey, data: &[u8]) {
        match self
            .executors
            .get_mut(&key)
            .map(|e| e.send(exec::message_event(data)))
        {
            Some(true) => {}
            Some(false) => {
                warn!(executor_id = %key.1, framework_id = %key.0, "framework message dropped: the executor is not subscribed")
            }
            None => {
                warn!(executor_id = %key.1, framework_id = %key.0, "framework message dropped: no such executor on this agent")
            }
        }
    }

    fn shutdown_executor(&mut self, key: &ExecutorKey) {
        let Some(e) = self.executors.get_mut(key) else {
            warn!(executor_id = %key.1, framework_id = %key.0, "shutdown of an unknown executor ignored");
            return;
        };
        if e.shutting_down {
            return;
        }
        info!(executor_id = %key.1, framework_id = %key.0, "shutting down the executor");
        e.shutting_down = true;
        // Tasks waiting for it to subscribe end now (those still being checkpointed end in
        // `executor_tasks_ready`).
        let undelivered: Vec<ContainerId> = std::mem::take(&mut e.queued)
            .into_iter()
            .flat_map(|p| match p {
                Pending::Task(id) => vec![id],
                Pending::Group(ids) => ids,
            })
            .collect();
        if !e.send(exec::shutdown_event()) {
            if let Some(pid) = e.supervisor_pid {
                self.containerizer.terminate(pid);
            }
        }
        self.schedule_executor_escalation(key);
        for id in undelivered {
            if let Some(c) = self.containers.get(&id).filter(|c| !c.exited) {
                let mut status = Self::status(
                    c,
                    TaskState::Killed,
                    StatusSource::Agent,
                    format!("executor {} was shut down", key.1),
                );
                status.reason = Some("REASON_EXECUTOR_TERMINATED".to_string());
                self.update(&id, status);
            }
        }
    }

    /// A call of the executor API, carried out: `Some(events)` for SUBSCRIBE.
    fn executor_call(
        &mut self,
        call: exec::Call,
    ) -> Result<Option<mpsc::UnboundedReceiver<Json>>, ApiError> {
        let key = call.key();
        if !self.executors.contains_key(&key) {
            return Err(ApiError::Forbidden(format!(
                "executor {} of framework {} is not running on this agent",
                key.1, key.0
            )));
        }
        match call {
            exec::Call::Subscribe {
                unacknowledged_tasks,
                ..
            } => {
                let agent = self.agent_info();
                let framework = self.frameworks.get(&key.0).cloned();
                let Some(e) = self.executors.get_mut(&key) else {
                    return Err(ApiError::Forbidden(format!("executor {} is gone", key.1)));
                };
                let framework = framework.unwrap_or_else(|| e.ckpt.framework.clone());
                info!(executor_id = %key.1, framework_id = %key.0, resubscribe = e.stream.is_some(),
                      unacknowledged_tasks = unacknowledged_tasks.len(), "executor subscribed");
                // A new subscription replaces the old one (whose stream then ends).
                let (tx, rx) = mpsc::unbounded_channel();
                e.stream = Some(tx);
                e.send(exec::subscribed_event(
                    &e.info,
                    &key.0,
                    &framework,
                    &agent,
                    &e.ckpt.container_id,
                ));
                if e.shutting_down {
                    e.send(exec::shutdown_event());
                }
                for pending in std::mem::take(&mut e.queued) {
                    self.deliver(&key, pending);
                }
                Ok(Some(rx))
            }
            exec::Call::Update { status, .. } => self.executor_update(&key, status).map(|()| None),
            exec::Call::Message { data, .. } => {
                if self.connected {
                    let _ = self.to_master.send(ToMaster::FrameworkMessage {
                        framework_id: key.0.clone(),
                        executor_id: key.1.clone(),
                        data,
                    });
                } else {
                    warn!(executor_id = %key.1, "executor message dropped: not connected to the master");
                }
                Ok(None)
            }
        }
    }

    /// An executor's UPDATE: checkpointed and queued on the task's reliable stream (with the
    /// executor's uuid, which comes back in ACKNOWLEDGED) before the call is answered.
    fn executor_update(&mut self, key: &ExecutorKey, update: TaskStatus) -> Result<(), ApiError> {
        let task_id = update.task_id.clone();
        let id = self
            .by_task
            .get(&(key.0.clone(), task_id.clone()))
            .cloned()
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "task {task_id} of framework {} is unknown on this agent",
                    key.0
                ))
            })?;
        let c = self.containers.get(&id).ok_or_else(|| {
            ApiError::BadRequest(format!("task {task_id} is unknown on this agent"))
        })?;
        if custom_executor(&c.ckpt.task).map(|e| &e.executor_id) != Some(&key.1) {
            return Err(ApiError::BadRequest(format!(
                "task {task_id} is not a task of executor {}",
                key.1
            )));
        }
        if c.exited {
            return Err(ApiError::BadRequest(format!(
                "task {task_id} already ended ({}): no update follows a terminal one",
                c.state
            )));
        }
        let container = self.executors.get(key).map(|e| e.ckpt.container_id.clone());
        let mut status = Self::status(c, update.state, StatusSource::Executor, update.message);
        status.uuid = update.uuid;
        status.reason = update.reason;
        status.container_id = container.or(status.container_id);
        self.update(&id, status);
        Ok(())
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
