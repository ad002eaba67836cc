//! Custom executors: the executors the agent runs for tasks whose `TaskInfo.executor` is of type
//! CUSTOM, and the Mesos v1 JSON they speak over `POST /api/v1/executor`
//! ([`crate::executor_api`]).
//!
//! An executor runs in a container of its own (started like a command task's, with Mesos'
//! executor environment, see [`executor_environment`]); its container dir carries an
//! [`EXECUTOR_FILE`] marker so that a restarted agent tells it from a task's. Each task handed to
//! an executor keeps a checkpoint dir of its own (`task.json`, `task.updates`) without a
//! supervisor: its updates come from the executor's UPDATE calls and go through the agent's
//! reliable, checkpointed stream like any other task's.
//!
//! ```text
//!   launch ──▶ executor container starts ──▶ SUBSCRIBE ──▶ SUBSCRIBED, LAUNCH… (queued ones)
//!   UPDATE ──▶ checkpointed, sent to the master ──ack──▶ ACKNOWLEDGED to the executor
//!   executor exits ──▶ its unfinished tasks TASK_FAILED (REASON_EXECUTOR_TERMINATED),
//!                      executorExited to the master, its container removed
//! ```
//!
//! What a restart does not recover: a custom executor is killed by the next agent and its
//! unfinished tasks are reported TASK_FAILED (see `Agent::recover`).

use crate::containerizer::TaskCheckpoint;
use serde_json::{json, Map, Value as Json};
use strata_schema::v1;
use strata_schema::{
    AgentInfo, ContainerId, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, Resources,
    TaskId, TaskInfo, TaskState, TaskStatus, UpdateUuid,
};
use tokio::sync::mpsc;

/// The marker file of an executor's container dir (its `ExecutorInfo`).
pub const EXECUTOR_FILE: &str = "executor.json";

/// How long a shut-down executor gets before its container is killed.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a HEARTBEAT event waits for another event on an executor's stream.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the agent refused an executor's call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the call cannot be carried out as it is.
    #[error("{0}")]
    BadRequest(String),
    /// 403: no such executor runs here.
    #[error("{0}")]
    Forbidden(String),
}

/// A framework's executor on this agent: `(framework, executor id)`.
pub type ExecutorKey = (FrameworkId, ExecutorId);

/// A running (or starting) custom executor.
#[derive(Debug)]
pub struct Executor {
    pub info: ExecutorInfo,
    /// The executor's container: `task` is the executor's command as a task.
    pub ckpt: TaskCheckpoint,
    /// The container's resources: the executor's and those of its unfinished tasks.
    pub resources: Resources,
    pub supervisor_pid: Option<i32>,
    /// The subscribed executor's event stream.
    pub stream: Option<mpsc::UnboundedSender<Json>>,
    /// Task containers checkpointed and waiting for the executor to subscribe.
    pub queued: Vec<Pending>,
    /// Its tasks' containers (those not yet removed).
    pub tasks: Vec<ContainerId>,
    /// SHUTDOWN was asked for (its tasks then end TASK_KILLED).
    pub shutting_down: bool,
}

/// What waits for an executor to subscribe.
#[derive(Debug, Clone)]
pub enum Pending {
    Task(ContainerId),
    Group(Vec<ContainerId>),
}

impl Executor {
    /// Sends an event if the executor is subscribed; false if it is not (or its stream closed).
    pub fn send(&mut self, event: Json) -> bool {
        match &self.stream {
            Some(stream) if stream.send(event).is_ok() => true,
            Some(_) => {
                self.stream = None;
                false
            }
            None => false,
        }
    }
}

/// The TaskInfo that runs an executor's program in a container: its id is the executor's, its
/// resources the executor's plus `tasks`, its environment Mesos' executor environment.
pub fn executor_task(
    info: &ExecutorInfo,
    agent: &strata_schema::AgentId,
    tasks: &Resources,
    env: Vec<(String, String)>,
) -> Result<TaskInfo, String> {
    let task_id = TaskId::new(info.executor_id.as_str()).map_err(|e| {
        format!(
            "executor id {} cannot name a container: {e}",
            info.executor_id
        )
    })?;
    let mut resources = info.resources.clone();
    resources.add(tasks);
    let mut command = info.command.clone();
    // The executor's own variables win over the agent's.
    let mut environment = env;
    environment.append(&mut command.environment);
    command.environment = environment;
    Ok(TaskInfo {
        task_id,
        name: if info.name.is_empty() {
            format!("executor {}", info.executor_id)
        } else {
            info.name.clone()
        },
        agent_id: agent.clone(),
        resources,
        command,
        kill_grace_period_secs: None,
        hostname: None,
        container: info.container.clone(),
        executor: None,
        data: Vec::new(),
        labels: Vec::new(),
    })
}

/// Mesos' executor environment (`slave.cpp`, `executorEnvironment`), less what every container
/// gets (`MESOS_SANDBOX`, `MESOS_DIRECTORY`, `MESOS_FRAMEWORK_ID`, `MESOS_EXECUTOR_ID`,
/// `MESOS_AGENT_ID`/`MESOS_SLAVE_ID`, see `Containerizer::spec`).
pub fn executor_environment(endpoint: &str, framework: &FrameworkInfo) -> Vec<(String, String)> {
    let grace = format!("{}secs", SHUTDOWN_GRACE.as_secs());
    [
        ("MESOS_AGENT_ENDPOINT", endpoint.to_string()),
        ("MESOS_SLAVE_PID", format!("slave(1)@{endpoint}")),
        (
            "MESOS_CHECKPOINT",
            if framework.checkpoint { "1" } else { "0" }.to_string(),
        ),
        ("MESOS_HTTP_COMMAND_EXECUTOR", "0".to_string()),
        ("MESOS_RECOVERY_TIMEOUT", "15mins".to_string()),
        ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs".to_string()),
        ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", grace),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The wait status of an exited executor (as Mesos' `ExitedExecutorMessage.status`): the exit
/// code in the high byte, or the signal; -1 when unknown.
pub fn wait_status(exit: Option<&crate::supervisor::ExitStatus>) -> i32 {
    match exit {
        Some(s) => match (s.exit_code, s.signal) {
            (Some(code), _) => (code & 0xff) << 8,
            (None, Some(signal)) => signal & 0x7f,
            (None, None) => -1,
        },
        None => -1,
    }
}

// ---- Mesos v1 JSON ---------------------------------------------------------------------------

fn b64(data: &[u8]) -> String {
    v1::encode_bytes(data)
}

fn value(v: &str) -> Json {
    json!({ "value": v })
}

/// Mesos v1 `AgentInfo`.
pub fn agent_info_json(a: &AgentInfo) -> Json {
    let mut o = Map::new();
    if let Some(id) = &a.id {
        o.insert("id".into(), value(id.as_str()));
    }
    o.insert("hostname".into(), json!(a.hostname));
    o.insert("port".into(), json!(a.port));
    o.insert("resources".into(), a.resources.to_mesos_json());
    Json::Object(o)
}

// ---- events ----------------------------------------------------------------------------------

pub fn subscribed_event(
    executor: &ExecutorInfo,
    framework_id: &FrameworkId,
    framework: &FrameworkInfo,
    agent: &AgentInfo,
    container_id: &ContainerId,
) -> Json {
    json!({
        "type": "SUBSCRIBED",
        "subscribed": {
            "executor_info": v1::executor_info_to_json(executor, Some(framework_id)),
            "framework_info": v1::framework_info_to_json(framework),
            "agent_info": agent_info_json(agent),
            "container_id": value(container_id.as_str()),
        }
    })
}

pub fn launch_event(task: &TaskInfo) -> Json {
    json!({"type": "LAUNCH", "launch": {"task": v1::task_info_to_json(task)}})
}

pub fn launch_group_event(tasks: &[&TaskInfo]) -> Json {
    let tasks: Vec<Json> = tasks.iter().map(|t| v1::task_info_to_json(t)).collect();
    json!({"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": tasks}}})
}

pub fn kill_event(task: &TaskId) -> Json {
    json!({"type": "KILL", "kill": {"task_id": value(task.as_str())}})
}

pub fn acknowledged_event(task: &TaskId, uuid: &UpdateUuid) -> Json {
    json!({"type": "ACKNOWLEDGED", "acknowledged": {
        "task_id": value(task.as_str()),
        "uuid": b64(&uuid.0),
    }})
}

pub fn message_event(data: &[u8]) -> Json {
    json!({"type": "MESSAGE", "message": {"data": b64(data)}})
}

pub fn shutdown_event() -> Json {
    json!({"type": "SHUTDOWN"})
}

pub fn heartbeat_event() -> Json {
    json!({"type": "HEARTBEAT"})
}

pub use strata_schema::v1::record;

// ---- calls -----------------------------------------------------------------------------------

/// A call of `POST /api/v1/executor`, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Subscribe {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        /// Tasks the executor was given but has no acknowledged terminal update for.
        unacknowledged_tasks: Vec<TaskId>,
    },
    Update {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        status: TaskStatus,
    },
    Message {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    },
}

impl Call {
    pub fn key(&self) -> ExecutorKey {
        match self {
            Self::Subscribe {
                framework_id,
                executor_id,
                ..
            }
            | Self::Update {
                framework_id,
                executor_id,
                ..
            }
            | Self::Message {
                framework_id,
                executor_id,
                ..
            } => (framework_id.clone(), executor_id.clone()),
        }
    }
}

fn field<'a>(v: &'a Json, path: &str) -> Result<&'a Json, String> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur
            .get(part)
            .ok_or_else(|| format!("'{path}' is missing"))?;
    }
    Ok(cur)
}

fn string<'a>(v: &'a Json, path: &str) -> Result<&'a str, String> {
    field(v, path)?
        .as_str()
        .ok_or_else(|| format!("'{path}' is not a string"))
}

fn decode(v: &Json, path: &str) -> Result<Vec<u8>, String> {
    v1::decode_bytes(string(v, path)?, path).map_err(|e| e.to_string())
}

/// Reads a call's JSON body (Mesos' `executor::Call`).
pub fn parse_call(body: &[u8]) -> Result<Call, String> {
    let v: Json = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !v.is_object() {
        return Err("the body is not a JSON object".to_string());
    }
    let framework_id = FrameworkId::new(string(&v, "framework_id.value")?)
        .map_err(|e| format!("invalid framework_id: {e}"))?;
    let executor_id = ExecutorId::new(string(&v, "executor_id.value")?)
        .map_err(|e| format!("invalid executor_id: {e}"))?;
    match string(&v, "type")? {
        "SUBSCRIBE" => {
            let mut unacknowledged_tasks = Vec::new();
            if let Some(tasks) = v
                .get("subscribe")
                .and_then(|s| s.get("unacknowledged_tasks"))
            {
                let tasks = tasks
                    .as_array()
                    .ok_or("'subscribe.unacknowledged_tasks' is not an array")?;
                for t in tasks {
                    let id = TaskId::new(string(t, "task_id.value")?)
                        .map_err(|e| format!("invalid unacknowledged task id: {e}"))?;
                    unacknowledged_tasks.push(id);
                }
            }
            Ok(Call::Subscribe {
                framework_id,
                executor_id,
                unacknowledged_tasks,
            })
        }
        "UPDATE" => {
            let status = status_from_json(field(&v, "update.status")?)?;
            Ok(Call::Update {
                framework_id,
                executor_id,
                status,
            })
        }
        "MESSAGE" => Ok(Call::Message {
            framework_id,
            executor_id,
            data: decode(&v, "message.data")?,
        }),
        other => Err(format!(
            "unsupported call type {other:?} (SUBSCRIBE, UPDATE and MESSAGE are)"
        )),
    }
}

/// An executor's `TaskStatus` (Mesos v1 JSON, read by [`v1::task_status_from_json`]): a uuid
/// is required and TASK_STAGING refused, as Mesos does.
pub fn status_from_json(v: &Json) -> Result<TaskStatus, String> {
    let status = v1::task_status_from_json(v, "update.status")
        .map_err(|e| e.to_string())?
        .status;
    if status.state == TaskState::Staging {
        return Err("an executor cannot send TASK_STAGING".to_string());
    }
    if status.uuid.is_none() {
        return Err("'update.status.uuid' is missing (an executor's update needs one)".to_string());
    }
    Ok(TaskStatus {
        agent_id: None,
        framework_id: None,
        container_id: None,
        ..status
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_are_length_prefixed() {
        let r = record(&json!({"type": "HEARTBEAT"}));
        assert_eq!(r, b"20\n{\"type\":\"HEARTBEAT\"}");
    }

    #[test]
    fn calls_parse() {
        let sub = br#"{"type":"SUBSCRIBE","framework_id":{"value":"f1"},"executor_id":{"value":"e1"},
            "subscribe":{"unacknowledged_tasks":[{"task_id":{"value":"t1"},"name":"x"}],"unacknowledged_updates":[]}}"#;
        match parse_call(sub).unwrap() {
            Call::Subscribe {
                framework_id,
                executor_id,
                unacknowledged_tasks,
            } => {
                assert_eq!(framework_id.as_str(), "f1");
                assert_eq!(executor_id.as_str(), "e1");
                assert_eq!(unacknowledged_tasks[0].as_str(), "t1");
            }
            other => panic!("{other:?}"),
        }
        let uuid = b64(&[7u8; 16]);
        let upd = format!(
            r#"{{"type":"UPDATE","framework_id":{{"value":"f1"}},"executor_id":{{"value":"e1"}},
            "update":{{"status":{{"task_id":{{"value":"t1"}},"state":"TASK_RUNNING","uuid":"{uuid}","source":"SOURCE_EXECUTOR","timestamp":1}}}}}}"#
        );
        match parse_call(upd.as_bytes()).unwrap() {
            Call::Update { status, .. } => {
                assert_eq!(status.state, TaskState::Running);
                assert_eq!(status.uuid, Some(UpdateUuid([7u8; 16])));
                assert_eq!(status.source, strata_schema::StatusSource::Executor);
            }
            other => panic!("{other:?}"),
        }
        let msg = br#"{"type":"MESSAGE","framework_id":{"value":"f1"},"executor_id":{"value":"e1"},"message":{"data":"aGk="}}"#;
        assert_eq!(
            parse_call(msg).unwrap(),
            Call::Message {
                framework_id: FrameworkId::new("f1").unwrap(),
                executor_id: ExecutorId::new("e1").unwrap(),
                data: b"hi".to_vec(),
            }
        );
    }

    #[test]
    fn bad_calls_name_what_is_wrong() {
        let err = |body: &str| parse_call(body.as_bytes()).unwrap_err();
        assert!(err("nope").contains("not JSON"));
        assert!(err("[]").contains("not a JSON object"));
        assert!(err(r#"{"type":"SUBSCRIBE"}"#).contains("framework_id.value"));
        let ids = r#""framework_id":{"value":"f"},"executor_id":{"value":"e"}"#;
        assert!(err(&format!(r#"{{"type":"BOGUS",{ids}}}"#)).contains("BOGUS"));
        assert!(err(&format!(
            r#"{{"type":"MESSAGE",{ids},"message":{{"data":"%%"}}}}"#
        ))
        .contains("base64"));
        let status = |s: &str| format!(r#"{{"type":"UPDATE",{ids},"update":{{"status":{s}}}}}"#);
        assert!(err(&status(
            r#"{"task_id":{"value":"t"},"state":"TASK_RUNNING"}"#
        ))
        .contains("update.status.uuid"));
        assert!(err(&status(
            r#"{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"AAAA"}"#
        ))
        .contains("16 bytes"));
        assert!(err(&status(
            r#"{"task_id":{"value":"t"},"state":"TASK_NOPE","uuid":"AAAA"}"#
        ))
        .contains("TASK_NOPE"));
        assert!(err(&status(
            r#"{"task_id":{"value":"t"},"state":"TASK_STAGING","uuid":"AAAAAAAAAAAAAAAAAAAAAA=="}"#
        ))
        .contains("TASK_STAGING"));
    }

    #[test]
    fn events_carry_base64_and_ids() {
        let e = acknowledged_event(&TaskId::new("t").unwrap(), &UpdateUuid([1u8; 16]));
        assert_eq!(e["acknowledged"]["task_id"]["value"], "t");
        assert_eq!(e["acknowledged"]["uuid"], b64(&[1u8; 16]));
        assert_eq!(message_event(b"hi")["message"]["data"], "aGk=");
        assert_eq!(
            kill_event(&TaskId::new("t").unwrap())["kill"]["task_id"]["value"],
            "t"
        );
    }

    #[test]
    fn wait_statuses_follow_waitpid() {
        use crate::supervisor::ExitStatus;
        let exited = ExitStatus {
            exit_code: Some(3),
            ..ExitStatus::default()
        };
        assert_eq!(wait_status(Some(&exited)), 3 << 8);
        let killed = ExitStatus {
            signal: Some(9),
            ..ExitStatus::default()
        };
        assert_eq!(wait_status(Some(&killed)), 9);
        assert_eq!(wait_status(None), -1);
    }
}
