//! Tasks, their states (Mesos' set) and status updates, and framework descriptions.

use crate::{AgentId, ContainerId, FrameworkId, Resources, TaskId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Mesos' task states, with Mesos' names (`TASK_RUNNING`, …) on the wire and in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    #[serde(rename = "TASK_STAGING")]
    Staging,
    #[serde(rename = "TASK_STARTING")]
    Starting,
    #[serde(rename = "TASK_RUNNING")]
    Running,
    #[serde(rename = "TASK_KILLING")]
    Killing,
    #[serde(rename = "TASK_FINISHED")]
    Finished,
    #[serde(rename = "TASK_FAILED")]
    Failed,
    #[serde(rename = "TASK_KILLED")]
    Killed,
    #[serde(rename = "TASK_ERROR")]
    Error,
    #[serde(rename = "TASK_LOST")]
    Lost,
    #[serde(rename = "TASK_DROPPED")]
    Dropped,
    #[serde(rename = "TASK_UNREACHABLE")]
    Unreachable,
    #[serde(rename = "TASK_GONE")]
    Gone,
    #[serde(rename = "TASK_GONE_BY_OPERATOR")]
    GoneByOperator,
    #[serde(rename = "TASK_UNKNOWN")]
    Unknown,
}

impl TaskState {
    pub const ALL: [TaskState; 14] = [
        Self::Staging,
        Self::Starting,
        Self::Running,
        Self::Killing,
        Self::Finished,
        Self::Failed,
        Self::Killed,
        Self::Error,
        Self::Lost,
        Self::Dropped,
        Self::Unreachable,
        Self::Gone,
        Self::GoneByOperator,
        Self::Unknown,
    ];

    /// A terminal state is final: the task's resources are free and no later update follows.
    /// (TASK_UNREACHABLE and TASK_UNKNOWN are not terminal, as in Mesos.)
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Finished
                | Self::Failed
                | Self::Killed
                | Self::Error
                | Self::Lost
                | Self::Dropped
                | Self::Gone
                | Self::GoneByOperator
        )
    }

    /// Mesos' name, e.g. `TASK_RUNNING`.
    pub fn mesos_name(self) -> &'static str {
        match self {
            Self::Staging => "TASK_STAGING",
            Self::Starting => "TASK_STARTING",
            Self::Running => "TASK_RUNNING",
            Self::Killing => "TASK_KILLING",
            Self::Finished => "TASK_FINISHED",
            Self::Failed => "TASK_FAILED",
            Self::Killed => "TASK_KILLED",
            Self::Error => "TASK_ERROR",
            Self::Lost => "TASK_LOST",
            Self::Dropped => "TASK_DROPPED",
            Self::Unreachable => "TASK_UNREACHABLE",
            Self::Gone => "TASK_GONE",
            Self::GoneByOperator => "TASK_GONE_BY_OPERATOR",
            Self::Unknown => "TASK_UNKNOWN",
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mesos_name())
    }
}

/// Who generated a status update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusSource {
    #[serde(rename = "SOURCE_MASTER")]
    Master,
    #[serde(rename = "SOURCE_AGENT")]
    Agent,
    #[serde(rename = "SOURCE_EXECUTOR")]
    Executor,
}

/// The 16-byte id of a status update that must be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UpdateUuid(pub [u8; 16]);

impl UpdateUuid {
    pub fn random() -> Self {
        Self(*uuid::Uuid::new_v4().as_bytes())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 16]>::try_from(bytes).ok().map(Self)
    }
}

impl fmt::Display for UpdateUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        uuid::Uuid::from_bytes(self.0).fmt(f)
    }
}

/// A status update for one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: TaskId,
    pub state: TaskState,
    pub message: String,
    pub source: StatusSource,
    /// Mesos reason name (`REASON_…`), if any.
    pub reason: Option<String>,
    pub agent_id: Option<AgentId>,
    pub framework_id: Option<FrameworkId>,
    pub container_id: Option<ContainerId>,
    /// Seconds since the epoch.
    pub timestamp: f64,
    /// Present when the update must be acknowledged by the framework.
    pub uuid: Option<UpdateUuid>,
    pub exit_code: Option<i32>,
}

impl TaskStatus {
    pub fn now() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// Mesos' CommandInfo.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CommandInfo {
    /// With `shell`, `value` runs through `/bin/sh -c`; otherwise `value` is the executable and
    /// `arguments` the whole argv (argv[0] included).
    pub shell: bool,
    pub value: String,
    pub arguments: Vec<String>,
    pub environment: Vec<(String, String)>,
    pub user: Option<String>,
}

impl CommandInfo {
    /// A shell command, as Mesos' default.
    pub fn shell(value: impl Into<String>) -> Self {
        Self {
            shell: true,
            value: value.into(),
            ..Self::default()
        }
    }

    /// An argv executed directly (no shell): `argv[0]` is the executable.
    pub fn argv(argv: Vec<String>) -> Self {
        Self {
            shell: false,
            value: argv.first().cloned().unwrap_or_default(),
            arguments: argv,
            ..Self::default()
        }
    }

    /// Why this command cannot run, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.value.trim().is_empty() {
            return Err(if self.shell {
                "the shell command is empty".to_string()
            } else {
                "the command has no executable (value is empty)".to_string()
            });
        }
        if self.value.contains('\0') || self.arguments.iter().any(|a| a.contains('\0')) {
            return Err("the command contains a NUL byte".to_string());
        }
        for (name, value) in &self.environment {
            if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0')
            {
                return Err(format!("invalid environment variable name {name:?}"));
            }
        }
        if let Some(user) = &self.user {
            if user.is_empty() || user.contains('\0') || user.contains('/') {
                return Err(format!("invalid user {user:?}"));
            }
        }
        Ok(())
    }
}

/// A task description, as a framework sends it in a LAUNCH operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub task_id: TaskId,
    pub name: String,
    pub agent_id: AgentId,
    pub resources: Resources,
    pub command: CommandInfo,
    /// Seconds between SIGTERM and SIGKILL on a kill; `None` = the agent's default.
    pub kill_grace_period_secs: Option<f64>,
    /// The container's hostname; `None` = the task id.
    pub hostname: Option<String>,
    /// Mesos' `ContainerInfo`: the image the task's root filesystem comes from, and volumes;
    /// `None`: the task runs on the agent's own filesystem.
    #[serde(default)]
    pub container: Option<crate::ContainerInfo>,
    /// The executor that runs the task (Mesos' `TaskInfo.executor`); `None`: the agent's command
    /// executor runs `command`. A task has a command or an executor, never both.
    #[serde(default)]
    pub executor: Option<Box<ExecutorInfo>>,
    /// Opaque bytes for the task's executor (Mesos' `TaskInfo.data`).
    #[serde(default)]
    pub data: Vec<u8>,
    /// Mesos' `TaskInfo.labels`: free-form key/value pairs, shown in `/state`.
    #[serde(default)]
    pub labels: Vec<(String, String)>,
}

impl TaskInfo {
    /// The image the task runs in, if any.
    pub fn image(&self) -> Option<&crate::container::Image> {
        self.container.as_ref().and_then(|c| c.image.as_ref())
    }

    /// Why this task cannot run, if it cannot: its container, and its command (which may be
    /// empty for a task with an image, which then runs the image's entrypoint and cmd).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(container) = &self.container {
            container.validate()?;
        }
        validate_labels(&self.labels)?;
        if let Some(executor) = &self.executor {
            if !self.command.value.is_empty() || !self.command.arguments.is_empty() {
                return Err(format!(
                    "the task has both a command and an executor ({}); give one",
                    executor.executor_id
                ));
            }
            return executor.validate();
        }
        let command = &self.command;
        if self.image().is_some() && command.value.is_empty() && !command.shell {
            let mut rest = command.clone();
            rest.value = "-".to_string();
            return rest.validate();
        }
        command.validate()
    }
}

fn validate_labels(labels: &[(String, String)]) -> Result<(), String> {
    for (key, value) in labels {
        if key.contains('\0') || value.contains('\0') {
            return Err(format!("label {key:?} contains a NUL byte"));
        }
    }
    Ok(())
}

/// Mesos' `ExecutorInfo.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExecutorKind {
    /// Mesos' default executor: runs the tasks of a task group (LAUNCH_GROUP), each in its own
    /// container; the agent provides it, so `command` is empty.
    #[serde(rename = "DEFAULT")]
    Default,
    /// A framework's own executor program (`command`), which speaks the executor API to the
    /// agent and runs the tasks the agent hands it.
    #[default]
    #[serde(rename = "CUSTOM")]
    Custom,
}

impl ExecutorKind {
    /// Mesos' name: `DEFAULT` or `CUSTOM`.
    pub fn mesos_name(self) -> &'static str {
        match self {
            Self::Default => "DEFAULT",
            Self::Custom => "CUSTOM",
        }
    }
}

/// Mesos' `ExecutorInfo`: what runs a framework's tasks on an agent when it is not the agent's
/// command executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    pub kind: ExecutorKind,
    pub executor_id: crate::ExecutorId,
    pub name: String,
    /// The executor's program (CUSTOM); empty for DEFAULT.
    pub command: CommandInfo,
    /// What the executor itself uses, besides its tasks' resources.
    pub resources: Resources,
    pub container: Option<crate::ContainerInfo>,
    /// Opaque bytes for the executor (Mesos' `ExecutorInfo.data`).
    #[serde(default)]
    pub data: Vec<u8>,
}

impl ExecutorInfo {
    /// Why this executor cannot run, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(container) = &self.container {
            container.validate()?;
        }
        match self.kind {
            ExecutorKind::Custom => self
                .command
                .validate()
                .map_err(|e| format!("executor {}: {e}", self.executor_id)),
            ExecutorKind::Default if !self.command.value.is_empty() => Err(format!(
                "executor {} is of type DEFAULT and must have no command",
                self.executor_id
            )),
            ExecutorKind::Default => Ok(()),
        }
    }
}

/// A framework's description.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FrameworkInfo {
    pub id: Option<FrameworkId>,
    pub name: String,
    pub user: String,
    pub roles: Vec<String>,
    pub failover_timeout_secs: f64,
    pub checkpoint: bool,
    pub hostname: String,
    pub partition_aware: bool,
    /// Mesos' `principal`: who the framework authenticates as.
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub webui_url: Option<String>,
    /// Mesos' capability names (`MULTI_ROLE`, `PARTITION_AWARE`, `TASK_KILLING_STATE`, …).
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub labels: Vec<(String, String)>,
}

impl FrameworkInfo {
    /// The roles the framework subscribes with (Mesos' default role is `*`).
    pub fn effective_roles(&self) -> Vec<String> {
        if self.roles.is_empty() {
            vec![crate::DEFAULT_ROLE.to_string()]
        } else {
            self.roles.clone()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states() {
        let terminal: Vec<_> = TaskState::ALL.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal.len(), 8);
        assert!(!TaskState::Running.is_terminal());
        assert!(!TaskState::Unreachable.is_terminal());
        assert_eq!(
            serde_json::to_string(&TaskState::Running).unwrap(),
            "\"TASK_RUNNING\""
        );
    }

    #[test]
    fn command_validation() {
        assert!(CommandInfo::shell("  ").validate().is_err());
        assert!(CommandInfo::argv(vec![]).validate().is_err());
        assert!(CommandInfo::shell("echo hi").validate().is_ok());
        let mut c = CommandInfo::shell("x");
        c.environment.push(("A=B".into(), "c".into()));
        assert!(c.validate().unwrap_err().contains("A=B"));
    }
}

/// One operation of an ACCEPT call, applied in order on what the ones before it left.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Launch(Vec<TaskInfo>),
    /// Reserve these resources (each item naming the offer's role) out of its unreserved ones.
    Reserve(crate::Resources),
    /// Give dynamically reserved resources back to `*`.
    Unreserve(crate::Resources),
    /// Make persistent volumes (`disk(ROLE)[ID:PATH]:SIZE`) out of reserved disk.
    Create(crate::Resources),
    /// Delete persistent volumes and their data; the disk stays reserved.
    Destroy(crate::Resources),
    /// Launch a task group (Mesos' LAUNCH_GROUP): all of the tasks or none, with one executor.
    LaunchGroup {
        executor: Box<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    },
}

impl Operation {
    /// Mesos' name of the operation type.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Launch(_) => "LAUNCH",
            Self::Reserve(_) => "RESERVE",
            Self::Unreserve(_) => "UNRESERVE",
            Self::Create(_) => "CREATE",
            Self::Destroy(_) => "DESTROY",
            Self::LaunchGroup { .. } => "LAUNCH_GROUP",
        }
    }
}
