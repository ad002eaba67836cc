//! `strata logs [-f] TASK`: a task's sandbox `stdout` and `stderr`, live or after it ended.

use crate::args::LogsArgs;
use crate::output::{self, Stream, Target};
use crate::tables::{array, text};
use anyhow::{anyhow, bail};
use serde_json::Value;
use std::time::Duration;
use strata_schema::{AgentId, FrameworkId, TaskId};
use tokio::sync::watch;

/// How often `-f` asks the master whether the task still runs.
const STATE_POLL: Duration = Duration::from_secs(1);

/// Where a task of the master's `/state` is: its framework, its agent and whether it still runs.
#[derive(Debug, PartialEq)]
pub struct Located {
    pub framework_id: String,
    pub agent_id: String,
    pub live: bool,
}

/// Finds task `task_id` (of `framework` when given) among live and completed tasks.
pub fn locate(state: &Value, task_id: &str, framework: Option<&str>) -> anyhow::Result<Located> {
    let mut found = Vec::new();
    let frameworks = array(state, "frameworks").iter().map(|f| (f, true)).chain(
        array(state, "completed_frameworks")
            .iter()
            .map(|f| (f, false)),
    );
    for (fw, fw_live) in frameworks {
        let fw_id = text(fw, "id");
        if framework.is_some_and(|wanted| wanted != fw_id) {
            continue;
        }
        let tasks = array(fw, "tasks")
            .iter()
            .map(|t| (t, fw_live))
            .chain(array(fw, "completed_tasks").iter().map(|t| (t, false)));
        for (task, live) in tasks {
            if text(task, "id") == task_id {
                found.push(Located {
                    framework_id: fw_id.to_string(),
                    agent_id: text(task, "slave_id").to_string(),
                    live,
                });
            }
        }
    }
    // A task id may be reused across a framework's life; the live one (listed first) wins.
    found.dedup_by(|a, b| a.framework_id == b.framework_id);
    match found.len() {
        0 => bail!("no task has id {task_id}"),
        1 => Ok(found.remove(0)),
        _ => {
            let frameworks: Vec<&str> = found.iter().map(|l| l.framework_id.as_str()).collect();
            bail!(
                "task id {task_id} is used by several frameworks ({}); say which with --framework",
                frameworks.join(", ")
            )
        }
    }
}

pub async fn logs(given: &str, master: &str, args: LogsArgs) -> anyhow::Result<u8> {
    let state = crate::master::state(master).await?;
    let task = args.task_id.as_str();
    let located = locate(&state, task, args.framework.as_ref().map(|f| f.as_str()))?;
    if located.agent_id.is_empty() {
        bail!("task {task} was never placed on an agent: it has no sandbox");
    }
    let target = Target {
        master: given.to_string(),
        agent_id: AgentId::new(located.agent_id.clone()).map_err(|e| anyhow!("{e}"))?,
        framework_id: FrameworkId::new(located.framework_id.clone()).map_err(|e| anyhow!("{e}"))?,
        task_id: TaskId::new(task.to_string()).map_err(|e| anyhow!("{e}"))?,
    };
    let streams: Vec<Stream> = match (args.stdout, args.stderr) {
        (true, _) => vec![Stream::Stdout],
        (_, true) => vec![Stream::Stderr],
        _ => vec![Stream::Stdout, Stream::Stderr],
    };
    let (done, done_rx) = watch::channel(!(args.follow && located.live));
    if args.follow && located.live {
        let master = master.to_string();
        let framework = located.framework_id.clone();
        let task = task.to_string();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(STATE_POLL).await;
                let still = match crate::master::state(&master).await {
                    Ok(state) => locate(&state, &task, Some(&framework)).is_ok_and(|l| l.live),
                    // The master may be failing over: keep following.
                    Err(_) => true,
                };
                if !still {
                    let _ = done.send(true);
                    return;
                }
            }
        });
    }
    output::follow(&target, &streams, done_rx)
        .await
        .map_err(|err| anyhow!("cannot read the sandbox of task {task}: {err}"))?;
    Ok(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tasks_are_found_live_or_completed() {
        let state = json!({
            "frameworks": [{"id": "F1", "tasks": [{"id": "a", "slave_id": "S1"}],
                            "completed_tasks": [{"id": "b", "slave_id": "S2"}]}],
            "completed_frameworks": [{"id": "F0", "tasks": [{"id": "c", "slave_id": "S3"}],
                                      "completed_tasks": [{"id": "a", "slave_id": "S9"}]}]
        });
        let live = |fw: &str, agent: &str, live| Located {
            framework_id: fw.into(),
            agent_id: agent.into(),
            live,
        };
        assert_eq!(locate(&state, "b", None).unwrap(), live("F1", "S2", false));
        // the tasks of a torn-down framework have ended
        assert_eq!(locate(&state, "c", None).unwrap(), live("F0", "S3", false));
        assert_eq!(
            locate(&state, "a", Some("F1")).unwrap(),
            live("F1", "S1", true)
        );
        let err = locate(&state, "a", None).unwrap_err().to_string();
        assert!(
            err.contains("F1, F0") && err.contains("--framework"),
            "{err}"
        );
        let err = locate(&state, "zz", None).unwrap_err().to_string();
        assert_eq!(err, "no task has id zz");
    }
}
