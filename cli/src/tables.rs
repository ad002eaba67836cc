//! Tables of tasks and agents drawn from the master's `/state` (Mesos' shape), and of roles,
//! quotas and weights from `/roles`, `/quota` and `/weights`. Pure: JSON in, text out.

use crate::units::{format_cpus, format_decimal, format_mem, format_resources};
use serde_json::Value;
use std::collections::HashMap;

/// Left-aligned columns separated by two spaces; no trailing blanks.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let width = widths.get(i).copied().unwrap_or(0);
            line.extend(std::iter::repeat_n(
                ' ',
                width.saturating_sub(cell.chars().count()),
            ));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub const TASK_HEADERS: [&str; 7] = ["ID", "NAME", "STATE", "CPUS", "MEM", "AGENT", "FRAMEWORK"];
pub const AGENT_HEADERS: [&str; 6] = ["ID", "HOSTNAME:PORT", "STATE", "CPUS", "MEM", "TASKS"];

/// The task objects of `/state` with the name of their framework: active tasks of active
/// frameworks; with `all`, also completed tasks and the tasks of completed frameworks.
pub fn select_tasks(state: &Value, all: bool) -> Vec<(&Value, &str)> {
    let mut tasks = Vec::new();
    let mut frameworks: Vec<&Value> = array(state, "frameworks").iter().collect();
    if all {
        frameworks.extend(array(state, "completed_frameworks"));
    }
    for framework in frameworks {
        let name = text(framework, "name");
        let mut lists = vec![array(framework, "tasks")];
        if all {
            lists.push(array(framework, "completed_tasks"));
        }
        for task in lists.into_iter().flatten() {
            tasks.push((task, name));
        }
    }
    tasks
}

/// Rows for [`TASK_HEADERS`].
pub fn task_rows(state: &Value, all: bool) -> Vec<Vec<String>> {
    let hostnames: HashMap<&str, &str> = array(state, "slaves")
        .iter()
        .map(|agent| (text(agent, "id"), text(agent, "hostname")))
        .collect();
    select_tasks(state, all)
        .into_iter()
        .map(|(task, framework)| {
            let resources = task.get("resources").unwrap_or(&Value::Null);
            let agent_id = text(task, "slave_id");
            let agent = match hostnames.get(agent_id) {
                Some(host) if !host.is_empty() => host,
                _ => agent_id,
            };
            vec![
                cell(text(task, "id")),
                cell(text(task, "name")),
                cell(text(task, "state")),
                format_cpus(number(resources, "cpus")),
                format_mem(number(resources, "mem")),
                cell(agent),
                cell(framework),
            ]
        })
        .collect()
}

/// Rows for [`AGENT_HEADERS`]: CPUS and MEM as used/total; TASKS counts the agent's active tasks.
pub fn agent_rows(state: &Value) -> Vec<Vec<String>> {
    let mut task_counts: HashMap<&str, usize> = HashMap::new();
    for (task, _) in select_tasks(state, false) {
        *task_counts.entry(text(task, "slave_id")).or_default() += 1;
    }
    array(state, "slaves")
        .iter()
        .map(|agent| {
            let id = text(agent, "id");
            let total = agent.get("resources").unwrap_or(&Value::Null);
            let used = agent.get("used_resources").unwrap_or(&Value::Null);
            let state = match text(agent, "state") {
                "" if agent.get("active").and_then(Value::as_bool) == Some(true) => "active",
                "" => "inactive",
                state => state,
            };
            vec![
                cell(id),
                format!("{}:{}", text(agent, "hostname"), number(agent, "port")),
                state.to_string(),
                format!(
                    "{}/{}",
                    format_cpus(number(used, "cpus")),
                    format_cpus(number(total, "cpus"))
                ),
                format!(
                    "{}/{}",
                    format_mem(number(used, "mem")),
                    format_mem(number(total, "mem"))
                ),
                task_counts.get(id).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect()
}

pub const FRAMEWORK_HEADERS: [&str; 8] = [
    "ID", "NAME", "USER", "ROLES", "STATE", "TASKS", "CPUS", "MEM",
];

/// Rows for [`FRAMEWORK_HEADERS`] from `/state`; with `all`, completed frameworks too. CPUS
/// and MEM are used (+ offered).
pub fn framework_rows(state: &Value, all: bool) -> Vec<Vec<String>> {
    let mut frameworks: Vec<(&Value, bool)> = array(state, "frameworks")
        .iter()
        .map(|f| (f, false))
        .collect();
    if all {
        frameworks.extend(
            array(state, "completed_frameworks")
                .iter()
                .map(|f| (f, true)),
        );
    }
    frameworks
        .into_iter()
        .map(|(fw, completed)| {
            let used = fw.get("used_resources").unwrap_or(&Value::Null);
            let offered = fw.get("offered_resources").unwrap_or(&Value::Null);
            let with_offered = |key: &str, format: fn(f64) -> String| {
                let (u, o) = (number(used, key), number(offered, key));
                if o > 0.0 {
                    format!("{} (+{} offered)", format(u), format(o))
                } else {
                    format(u)
                }
            };
            let roles: Vec<&str> = array(fw, "roles")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let state = if completed {
                "completed"
            } else if fw.get("active").and_then(Value::as_bool) == Some(true) {
                "active"
            } else {
                "disconnected"
            };
            vec![
                cell(text(fw, "id")),
                cell(text(fw, "name")),
                cell(text(fw, "user")),
                cell(&roles.join(",")),
                state.to_string(),
                array(fw, "tasks").len().to_string(),
                with_offered("cpus", format_cpus),
                with_offered("mem", format_mem),
            ]
        })
        .collect()
}

pub const ROLE_HEADERS: [&str; 8] = [
    "NAME",
    "WEIGHT",
    "FRAMEWORKS",
    "ALLOCATED",
    "RESERVED",
    "GUARANTEE",
    "LIMIT",
    "CONSUMED",
];
pub const QUOTA_HEADERS: [&str; 3] = ["ROLE", "GUARANTEE", "LIMIT"];
pub const WEIGHT_HEADERS: [&str; 2] = ["ROLE", "WEIGHT"];

/// Rows for [`ROLE_HEADERS`] from `GET /roles`; a role without quota shows `-` in the last three.
pub fn role_rows(roles: &Value) -> Vec<Vec<String>> {
    array(roles, "roles")
        .iter()
        .map(|role| {
            let quota = role.get("quota").unwrap_or(&Value::Null);
            vec![
                cell(text(role, "name")),
                format_decimal(number(role, "weight")),
                array(role, "frameworks").len().to_string(),
                format_resources(scalars(role, "allocated")),
                format_resources(scalars(role, "reserved")),
                format_resources(scalars(quota, "guarantee")),
                format_resources(scalars(quota, "limit")),
                format_resources(scalars(quota, "consumed")),
            ]
        })
        .collect()
}

/// Rows for [`QUOTA_HEADERS`] from `GET /quota` (Mesos' QuotaConfig: `{"cpus": {"value": 2}}`).
pub fn quota_rows(quota: &Value) -> Vec<Vec<String>> {
    array(quota, "configs")
        .iter()
        .map(|config| {
            vec![
                cell(text(config, "role")),
                format_resources(quantities(config, "guarantees")),
                format_resources(quantities(config, "limits")),
            ]
        })
        .collect()
}

/// Rows for [`WEIGHT_HEADERS`] from `GET /weights` (`[{"role": "eng", "weight": 2}]`).
pub fn weight_rows(weights: &Value) -> Vec<Vec<String>> {
    weights
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|w| vec![cell(text(w, "role")), format_decimal(number(w, "weight"))])
        .collect()
}

/// The numbers of the map `value[key]` (`{"cpus": 1, "mem": 256}`), by name.
fn scalars<'a>(value: &'a Value, key: &str) -> Vec<(&'a str, f64)> {
    value
        .get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| Some((name.as_str(), v.as_f64()?)))
        .collect()
}

/// The values of the map `value[key]` of Mesos' quantities (`{"cpus": {"value": 2}}`), by name.
fn quantities<'a>(value: &'a Value, key: &str) -> Vec<(&'a str, f64)> {
    value
        .get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, v)| Some((name.as_str(), v.get("value")?.as_f64()?)))
        .collect()
}

/// `value[key]` as an array, empty when absent.
pub fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `value[key]` as a string, empty when absent.
pub fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `value[key]` as a number, 0 when absent.
pub fn number(value: &Value, key: &str) -> f64 {
    value.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn cell(value: &str) -> String {
    if value.is_empty() {
        "-".to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> Value {
        json!({
            "slaves": [
                {"id": "m-S0", "hostname": "node1", "port": 5051, "active": true, "state": "active",
                 "resources": {"cpus": 2.0, "mem": 1536.0},
                 "used_resources": {"cpus": 0.5, "mem": 64.0}},
                {"id": "m-S1", "hostname": "node2", "port": 5052, "active": false,
                 "resources": {"cpus": 4.0, "mem": 4096.0}, "used_resources": {}}
            ],
            "frameworks": [
                {"id": "m-0001", "name": "strata-run",
                 "tasks": [{"id": "run-1a2b3c4d", "name": "run", "framework_id": "m-0001",
                            "slave_id": "m-S0", "state": "TASK_RUNNING",
                            "resources": {"cpus": 0.5, "mem": 64.0}}],
                 "completed_tasks": [{"id": "old", "name": "old", "slave_id": "m-S9",
                                      "state": "TASK_FINISHED", "resources": {"cpus": 1.0}}]}
            ],
            "completed_frameworks": [
                {"id": "m-0000", "name": "gone", "tasks": [],
                 "completed_tasks": [{"id": "older", "name": "x", "slave_id": "m-S0",
                                      "state": "TASK_KILLED", "resources": {"mem": 2048.0}}]}
            ]
        })
    }

    #[test]
    fn renders_aligned_columns() {
        let table = render(
            &["ID", "NAME"],
            &[vec!["a".into(), "bb".into()], vec!["ccc".into()]],
        );
        assert_eq!(table, "ID   NAME\na    bb\nccc\n");
    }

    #[test]
    fn task_table() {
        let state = state();
        let rows = task_rows(&state, false);
        assert_eq!(
            rows,
            vec![vec![
                "run-1a2b3c4d",
                "run",
                "TASK_RUNNING",
                "0.5",
                "64 MiB",
                "node1",
                "strata-run"
            ]]
        );
        let rows = task_rows(&state, true);
        let ids: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(ids, ["run-1a2b3c4d", "old", "older"]);
        // an agent the master no longer lists is shown by its id
        assert_eq!(rows[1][5], "m-S9");
        assert_eq!(rows[2][4], "2 GiB");
        assert_eq!(rows[2][6], "gone");
        let table = render(&TASK_HEADERS, &task_rows(&state, false));
        assert_eq!(
            table,
            "ID            NAME  STATE         CPUS  MEM     AGENT  FRAMEWORK\n\
             run-1a2b3c4d  run   TASK_RUNNING  0.5   64 MiB  node1  strata-run\n"
        );
    }

    #[test]
    fn agent_table() {
        let rows = agent_rows(&state());
        assert_eq!(
            rows[0],
            [
                "m-S0",
                "node1:5051",
                "active",
                "0.5/2",
                "64 MiB/1.5 GiB",
                "1"
            ]
        );
        assert_eq!(
            rows[1],
            ["m-S1", "node2:5052", "inactive", "0/4", "0 MiB/4 GiB", "0"]
        );
    }

    #[test]
    fn role_table() {
        let roles = json!({"roles": [
            {"name": "eng", "weight": 2.0, "frameworks": ["m-0001", "m-0002"],
             "allocated": {"cpus": 1.5, "mem": 512.0}, "offered": {"cpus": 0.5},
             "reserved": {"cpus": 2.0, "disk": 2048.0},
             "quota": {"role": "eng", "guarantee": {"cpus": 2.0}, "limit": {"cpus": 4.0},
                       "consumed": {"cpus": 1.5, "mem": 512.0}}},
            {"name": "*", "weight": 1.0, "frameworks": [], "allocated": {}, "offered": {},
             "reserved": {}}
        ]});
        assert_eq!(
            render(&ROLE_HEADERS, &role_rows(&roles)),
            "NAME  WEIGHT  FRAMEWORKS  ALLOCATED          RESERVED            GUARANTEE  LIMIT   CONSUMED\n\
             eng   2       2           1.5 cpus, 512 MiB  2 cpus, 2 GiB disk  2 cpus     4 cpus  1.5 cpus, 512 MiB\n\
             *     1       0           -                  -                   -          -       -\n"
        );
    }

    #[test]
    fn quota_and_weight_tables() {
        let quota = json!({"configs": [{"role": "eng",
            "guarantees": {"cpus": {"value": 2.0}, "mem": {"value": 1024.0}},
            "limits": {"cpus": {"value": 4.0}}}]});
        assert_eq!(
            render(&QUOTA_HEADERS, &quota_rows(&quota)),
            "ROLE  GUARANTEE      LIMIT\neng   2 cpus, 1 GiB  4 cpus\n"
        );
        let weights = json!([{"role": "eng", "weight": 2.0}, {"role": "ops", "weight": 0.5}]);
        assert_eq!(
            render(&WEIGHT_HEADERS, &weight_rows(&weights)),
            "ROLE  WEIGHT\neng   2\nops   0.5\n"
        );
        assert!(weight_rows(&json!({})).is_empty());
        assert!(quota_rows(&json!({})).is_empty());
    }

    #[test]
    fn missing_fields_do_not_panic() {
        assert_eq!(
            role_rows(&json!({"roles": [{}]}))[0],
            ["-", "0", "0", "-", "-", "-", "-", "-"]
        );
        assert!(task_rows(&json!({}), true).is_empty());
        let rows = task_rows(&json!({"frameworks": [{"tasks": [{}]}]}), false);
        assert_eq!(rows[0], ["-", "-", "-", "0", "0 MiB", "-", "-"]);
        assert_eq!(agent_rows(&json!({"slaves": [{}]}))[0][1], ":0");
    }
}
