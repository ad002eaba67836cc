//! `strata tasks`, `strata agents` and `strata kill`: operator calls on the master's HTTP API.

use crate::args::{AgentsArgs, FrameworksArgs, KillArgs, TasksArgs};
use crate::master::{self, server_error_text};
use crate::tables::{self, array, text, AGENT_HEADERS, FRAMEWORK_HEADERS, TASK_HEADERS};
use anyhow::Context;
use serde_json::Value;
use strata_client::http::{self, HttpError};

pub async fn tasks(addr: &str, args: TasksArgs) -> anyhow::Result<u8> {
    let state = master::state(addr).await?;
    if args.json {
        let list: Vec<Value> = tables::select_tasks(&state, args.all)
            .into_iter()
            .map(|(task, _)| task.clone())
            .collect();
        print_json(&Value::Array(list))?;
    } else {
        print!(
            "{}",
            tables::render(&TASK_HEADERS, &tables::task_rows(&state, args.all))
        );
    }
    Ok(0)
}

pub async fn agents(addr: &str, args: AgentsArgs) -> anyhow::Result<u8> {
    let state = master::state(addr).await?;
    if args.json {
        print_json(&Value::Array(array(&state, "slaves").to_vec()))?;
    } else {
        print!(
            "{}",
            tables::render(&AGENT_HEADERS, &tables::agent_rows(&state))
        );
    }
    Ok(0)
}

pub async fn frameworks(addr: &str, args: FrameworksArgs) -> anyhow::Result<u8> {
    let state = master::state(addr).await?;
    if args.json {
        let mut list = array(&state, "frameworks").to_vec();
        if args.all {
            list.extend(array(&state, "completed_frameworks").iter().cloned());
        }
        print_json(&Value::Array(list))?;
    } else {
        print!(
            "{}",
            tables::render(
                &FRAMEWORK_HEADERS,
                &tables::framework_rows(&state, args.all)
            )
        );
    }
    Ok(0)
}

pub async fn kill(addr: &str, args: KillArgs) -> anyhow::Result<u8> {
    // Task and framework ids hold only [A-Za-z0-9-_.:@], all of which are literal in a query.
    let mut path = format!("/tasks/kill?task_id={}", args.task_id);
    if let Some(framework) = &args.framework {
        path.push_str(&format!("&framework_id={framework}"));
    }
    match http::post(addr, &path).await {
        Ok(answer) => {
            println!("{}", kill_report(args.task_id.as_str(), &answer));
            Ok(0)
        }
        Err(HttpError::Status {
            status: status @ (404 | 409),
            body,
            ..
        }) => {
            eprintln!("error: {}", server_error_text(status, &body));
            Ok(1)
        }
        Err(err) => Err(master::http_error(addr, err)),
    }
}

/// `kill sent to task T (framework F) on agent A`.
pub fn kill_report(task_id: &str, answer: &Value) -> String {
    let mut line = format!("kill sent to task {task_id}");
    let framework = text(answer, "framework_id");
    if !framework.is_empty() {
        line.push_str(&format!(" (framework {framework})"));
    }
    let agent = text(answer, "agent_id");
    if !agent.is_empty() {
        line.push_str(&format!(" on agent {agent}"));
    }
    line
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("cannot format JSON")?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kill_reports() {
        let answer = json!({"task_id": "t", "framework_id": "F1", "agent_id": "S0"});
        assert_eq!(
            kill_report("t", &answer),
            "kill sent to task t (framework F1) on agent S0"
        );
        assert_eq!(kill_report("t", &Value::Null), "kill sent to task t");
    }
}
