//! Following a task's sandbox `stdout` and `stderr` through the agent's `/files/read`, the way
//! Mesos' CLI does: find the agent in the master's `/state`, the sandbox in the agent's `/state`,
//! then poll each file from the last offset.

use crate::tables::{array, number, text};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;
use strata_client::http::{self, HttpError};
use strata_schema::{AgentId, FrameworkId, TaskId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const POLL: Duration = Duration::from_millis(100);
/// Bytes asked for per `/files/read`.
const CHUNK: i64 = 1 << 20;
/// How long the sandbox may stay unknown after the task ended before we give up on its output.
const FIND_AFTER_END: Duration = Duration::from_secs(5);

/// A running follower; [`Follower::finish`] reads what is left and stops it.
pub struct Follower {
    done: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Follower {
    pub fn spawn(
        master: String,
        agent_id: AgentId,
        framework_id: FrameworkId,
        task_id: TaskId,
    ) -> Self {
        let (done, done_rx) = watch::channel(false);
        let handle = tokio::spawn(async move {
            let target = Target {
                master,
                agent_id,
                framework_id,
                task_id,
            };
            let streams = [Stream::Stdout, Stream::Stderr];
            if let Err(err) = follow(&target, &streams, done_rx).await {
                eprintln!(
                    "strata: warning: cannot show the output of task {}: {err}",
                    target.task_id
                );
            }
        });
        Self { done, handle }
    }

    /// Tells the follower the task has ended and waits (at most `limit`) for it to copy the rest.
    pub async fn finish(self, limit: Duration) {
        let _ = self.done.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(limit, &mut handle).await.is_err() {
            handle.abort();
            eprintln!("strata: warning: gave up reading the rest of the task's output");
        }
    }
}

/// A task whose sandbox is read.
pub struct Target {
    /// `--master` as given: `host:port` or `zk://…`.
    pub master: String,
    pub agent_id: AgentId,
    pub framework_id: FrameworkId,
    pub task_id: TaskId,
}

/// A sandbox file copied to the same stream of this process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn file(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Copies the task's `streams` from their start, then what is appended, until `done` is true
/// (after which what is left is copied once more).
pub async fn follow(
    target: &Target,
    streams: &[Stream],
    mut done: watch::Receiver<bool>,
) -> Result<(), String> {
    let (agent, directory) = locate(target, &mut done).await?;
    tracing::debug!(agent = %agent, directory = %directory, "following the sandbox");
    let mut files: Vec<(String, u64, Stream)> = streams
        .iter()
        .map(|stream| (format!("{directory}/{}", stream.file()), 0u64, *stream))
        .collect();
    loop {
        let ending = *done.borrow();
        for (path, offset, stream) in &mut files {
            match drain(&agent, path, offset, *stream).await {
                Ok(()) => {}
                Err(err) if ending => return Err(err),
                Err(err) => {
                    tracing::debug!(cause = %err, path = %path, "reading the sandbox failed")
                }
            }
        }
        if ending {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = done.changed() => {}
        }
    }
}

/// Copies everything from `offset` to the end of the file and advances `offset`.
async fn drain(agent: &str, path: &str, offset: &mut u64, stream: Stream) -> Result<(), String> {
    loop {
        let (data, at) = match http::read_file(agent, path, *offset, CHUNK).await {
            Ok(read) => read,
            // Not created yet.
            Err(HttpError::Status { status: 404, .. }) => return Ok(()),
            Err(err) => return Err(crate::master::error_chain(&err)),
        };
        if data.is_empty() {
            return Ok(());
        }
        *offset = at + data.len() as u64;
        // A closed stdout (`strata run … | head`) is not an error of the task: drop the output.
        let _ = match stream {
            Stream::Stdout => write_all(std::io::stdout().lock(), &data),
            Stream::Stderr => write_all(std::io::stderr().lock(), &data),
        };
    }
}

fn write_all(mut out: impl Write, data: &[u8]) -> std::io::Result<()> {
    out.write_all(data)?;
    out.flush()
}

/// Finds the agent's address and the task's sandbox, retrying while the task runs and for
/// [`FIND_AFTER_END`] after it ended.
async fn locate(
    target: &Target,
    done: &mut watch::Receiver<bool>,
) -> Result<(String, String), String> {
    let mut give_up: Option<Instant> = None;
    loop {
        let err = match try_locate(target).await {
            Ok(found) => return Ok(found),
            Err(err) => err,
        };
        tracing::debug!(cause = %err, "sandbox not found yet");
        if *done.borrow() {
            let limit = *give_up.get_or_insert_with(|| Instant::now() + FIND_AFTER_END);
            if Instant::now() >= limit {
                return Err(err);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = done.changed() => {}
        }
    }
}

async fn try_locate(target: &Target) -> Result<(String, String), String> {
    // The leader now: with `zk://…` it may have changed since the run began.
    let master = crate::resolve_master(&target.master)
        .await
        .map_err(|err| format!("{err:#}"))?;
    let state = http::get_json(&master, "/state")
        .await
        .map_err(|err| crate::master::error_chain(&err))?;
    let agent = agent_address(&state, target.agent_id.as_str())
        .ok_or_else(|| format!("the master does not list agent {}", target.agent_id))?;
    let agent_state = http::get_json(&agent, "/state")
        .await
        .map_err(|err| crate::master::error_chain(&err))?;
    let directory = sandbox_directory(
        &agent_state,
        target.framework_id.as_str(),
        target.task_id.as_str(),
    )
    .ok_or_else(|| format!("agent {agent} does not list task {} yet", target.task_id))?;
    Ok((agent, directory))
}

/// `host:port` of an agent in the master's `/state`: from its pid (`slave(1)@host:port`) unless
/// that names a wildcard address, else its hostname and port.
pub fn agent_address(state: &Value, agent_id: &str) -> Option<String> {
    let agent = array(state, "slaves")
        .iter()
        .find(|a| text(a, "id") == agent_id)?;
    if let Some((_, addr)) = text(agent, "pid").split_once('@') {
        let host = addr.rsplit_once(':').map(|(host, _)| host).unwrap_or("");
        if !addr.is_empty() && !matches!(host, "" | "0.0.0.0" | "[::]") {
            return Some(addr.to_string());
        }
    }
    let hostname = text(agent, "hostname");
    let port = number(agent, "port");
    (!hostname.is_empty() && port > 0.0).then(|| format!("{hostname}:{port}"))
}

/// The sandbox directory of a task in an agent's `/state`: the (possibly completed) executor whose
/// id is the task id, or that holds the task, in the framework's (possibly completed) entry.
pub fn sandbox_directory(state: &Value, framework_id: &str, task_id: &str) -> Option<String> {
    let frameworks = array(state, "frameworks")
        .iter()
        .chain(array(state, "completed_frameworks"));
    for framework in frameworks.filter(|f| text(f, "id") == framework_id) {
        let executors = array(framework, "executors")
            .iter()
            .chain(array(framework, "completed_executors"));
        for executor in executors {
            let holds_task = array(executor, "tasks")
                .iter()
                .chain(array(executor, "completed_tasks"))
                .any(|t| text(t, "id") == task_id);
            let directory = text(executor, "directory");
            if (text(executor, "id") == task_id || holds_task) && !directory.is_empty() {
                return Some(directory.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_addresses() {
        let state = json!({"slaves": [
            {"id": "S0", "hostname": "node1", "port": 5051, "pid": "slave(1)@10.0.0.5:5051"},
            {"id": "S1", "hostname": "node2", "port": 5052, "pid": "slave(1)@0.0.0.0:5052"},
            {"id": "S2", "hostname": "node3", "port": 5053}
        ]});
        assert_eq!(agent_address(&state, "S0").unwrap(), "10.0.0.5:5051");
        assert_eq!(agent_address(&state, "S1").unwrap(), "node2:5052");
        assert_eq!(agent_address(&state, "S2").unwrap(), "node3:5053");
        assert_eq!(agent_address(&state, "S9"), None);
    }

    #[test]
    fn sandbox_directories() {
        let state = json!({
            "frameworks": [{"id": "F1", "executors": [
                {"id": "other", "directory": "/a"},
                {"id": "t1", "container": "c1", "directory": "/sandboxes/t1"}
            ], "completed_executors": [
                {"id": "e9", "directory": "/sandboxes/e9", "completed_tasks": [{"id": "t2"}]}
            ]}],
            "completed_frameworks": [{"id": "F0", "completed_executors": [
                {"id": "t3", "directory": "/sandboxes/t3"}
            ]}]
        });
        assert_eq!(
            sandbox_directory(&state, "F1", "t1").unwrap(),
            "/sandboxes/t1"
        );
        assert_eq!(
            sandbox_directory(&state, "F1", "t2").unwrap(),
            "/sandboxes/e9"
        );
        assert_eq!(
            sandbox_directory(&state, "F0", "t3").unwrap(),
            "/sandboxes/t3"
        );
        // another framework's task of the same id is not ours
        assert_eq!(sandbox_directory(&state, "F0", "t1"), None);
        assert_eq!(sandbox_directory(&json!({}), "F1", "t1"), None);
    }
}
