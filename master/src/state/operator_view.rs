//! What the Mesos operator endpoints read, computed on the actor: the v0 endpoints
//! (`/master/state-summary`, `/master/frameworks`, `/master/slaves`, `/master/tasks`,
//! `/metrics/snapshot`) and the v1 operator API's GET_* answers in Mesos' v1 JSON (ids as
//! `{"value": ..}`, times as `{"nanoseconds": ..}`, resources as `Resource` lists). The operator's
//! teardown of a framework is here too.

use super::{Agent, AgentState, Framework, Master, Task};
use serde_json::{json, Map, Value as Json};
use strata_schema::v1::nanos_json as nanos;
use strata_schema::{v1, FrameworkId, FrameworkInfo, Resources, TaskState, TaskStatus};

/// `/master/tasks`' query (Mesos' names): `limit` (default 100), `offset`, `order` (`asc` or
/// `desc`, the default: newest first), and the `framework_id` and `task_id` filters.
#[derive(Debug, Clone, Default)]
pub struct TasksQuery {
    pub limit: Option<usize>,
    pub offset: usize,
    pub ascending: bool,
    pub framework_id: Option<String>,
    pub task_id: Option<String>,
}

/// Every task state, in Mesos' order (the counters of `state-summary` and the metrics).
const ALL_STATES: [TaskState; 14] = [
    TaskState::Staging,
    TaskState::Starting,
    TaskState::Running,
    TaskState::Killing,
    TaskState::Finished,
    TaskState::Failed,
    TaskState::Killed,
    TaskState::Error,
    TaskState::Lost,
    TaskState::Dropped,
    TaskState::Unreachable,
    TaskState::Gone,
    TaskState::GoneByOperator,
    TaskState::Unknown,
];

/// Mesos' metric suffix of a task state: `TASK_GONE_BY_OPERATOR` is `tasks_gone_by_operator`.
fn metric_name(state: TaskState) -> String {
    format!(
        "tasks_{}",
        state
            .mesos_name()
            .trim_start_matches("TASK_")
            .to_lowercase()
    )
}

pub(super) fn value(id: impl std::fmt::Display) -> Json {
    strata_schema::v1::id_json(&id.to_string())
}

/// A task's start: the time of its first status.
fn started(task: &Task) -> f64 {
    task.statuses.first().map_or(0.0, |(_, t, _)| *t)
}

impl Master {
    fn tasks_of(fw: &Framework) -> impl Iterator<Item = &Task> {
        fw.tasks
            .values()
            .chain(fw.completed_tasks.iter())
            .map(|t| &**t)
    }

    fn all_frameworks(&self) -> impl Iterator<Item = &Framework> {
        self.frameworks
            .values()
            .chain(self.completed_frameworks.iter())
    }

    /// `/metrics/snapshot`: Mesos' `master/...` names, computed from the state; the counters of
    /// terminal tasks count every task that ended since this master began leading.
    pub fn metrics_json(&self) -> Json {
        let mut m = Map::new();
        let mut put = |name: &str, v: f64| {
            m.insert(name.to_string(), json!(v));
        };
        put("master/elected", 1.0);
        put(
            "master/uptime_secs",
            (TaskStatus::now() - self.start_time).max(0.0),
        );
        let agents = |f: &dyn Fn(&Agent) -> bool| self.agents.values().filter(|a| f(a)).count();
        let active = agents(&|a| a.state == AgentState::Active && a.drain.is_none() && !a.down);
        put("master/slaves_active", active as f64);
        put(
            "master/slaves_inactive",
            agents(&|a| a.state == AgentState::Active && (a.drain.is_some() || a.down)) as f64,
        );
        put(
            "master/slaves_connected",
            agents(&|a| a.state == AgentState::Active) as f64,
        );
        put(
            "master/slaves_disconnected",
            agents(&|a| matches!(a.state, AgentState::Disconnected | AgentState::Recovering))
                as f64,
        );
        put(
            "master/slaves_unreachable",
            agents(&|a| a.state == AgentState::Unreachable) as f64,
        );
        let connected = self.frameworks.values().filter(|f| f.active()).count();
        put("master/frameworks_active", connected as f64);
        put("master/frameworks_connected", connected as f64);
        put(
            "master/frameworks_inactive",
            (self.frameworks.len() - connected) as f64,
        );
        put(
            "master/frameworks_disconnected",
            (self.frameworks.len() - connected) as f64,
        );
        put("master/outstanding_offers", self.offers.len() as f64);
        // Live tasks by their state now; terminal ones counted as they ended.
        let mut live: std::collections::HashMap<TaskState, u64> = Default::default();
        for task in self.frameworks.values().flat_map(|f| f.tasks.values()) {
            *live.entry(task.state).or_default() += 1;
        }
        for state in ALL_STATES {
            let n = if state.is_terminal() {
                self.terminal_tasks.get(&state).copied().unwrap_or(0)
            } else {
                live.get(&state).copied().unwrap_or(0)
            };
            put(&format!("master/{}", metric_name(state)), n as f64);
        }
        let (mut total, mut used) = (Resources::new(), Resources::new());
        for a in self
            .agents
            .values()
            .filter(|a| a.state != AgentState::Unreachable)
        {
            total.add(&a.total());
            used.add(&a.used);
        }
        for name in ["cpus", "mem", "disk", "gpus"] {
            let (t, u) = (total.scalar(name), used.scalar(name));
            put(&format!("master/{name}_total"), t);
            put(&format!("master/{name}_used"), u);
            put(
                &format!("master/{name}_percent"),
                if t > 0.0 { u / t } else { 0.0 },
            );
            put(&format!("master/{name}_revocable_total"), 0.0);
            put(&format!("master/{name}_revocable_used"), 0.0);
            put(&format!("master/{name}_revocable_percent"), 0.0);
        }
        Json::Object(m)
    }

    /// `/master/state-summary`: the agents and frameworks without their tasks, with per-state
    /// task counts (`TASK_RUNNING`: n) and who runs where.
    pub fn state_summary_json(&self) -> Json {
        let state = self.state_json();
        let counts = |tasks: &mut dyn Iterator<Item = &Task>, entry: &mut Map<String, Json>| {
            let mut n: std::collections::BTreeMap<&str, u64> =
                ALL_STATES.iter().map(|s| (s.mesos_name(), 0)).collect();
            for t in tasks {
                *n.entry(t.state.mesos_name()).or_default() += 1;
            }
            for (k, v) in n {
                entry.insert(k.to_string(), json!(v));
            }
        };
        let mut slaves = Vec::new();
        for mut agent in state["slaves"].as_array().cloned().unwrap_or_default() {
            let id = agent["id"].as_str().unwrap_or_default().to_string();
            if let Some(entry) = agent.as_object_mut() {
                let on_agent = |t: &&Task| t.info.agent_id.as_str() == id;
                counts(
                    &mut self
                        .all_frameworks()
                        .flat_map(Self::tasks_of)
                        .filter(on_agent),
                    entry,
                );
                let frameworks: Vec<&str> = self
                    .frameworks
                    .values()
                    .filter(|f| f.tasks.values().any(|t| on_agent(&&**t)))
                    .map(|f| f.id.as_str())
                    .collect();
                entry.insert("framework_ids".into(), json!(frameworks));
                entry.insert("version".into(), json!(self.info.version));
            }
            slaves.push(agent);
        }
        let mut frameworks = Vec::new();
        let mut ids: Vec<&FrameworkId> = self.frameworks.keys().collect();
        ids.sort();
        for id in ids {
            let Some(fw) = self.frameworks.get(id) else {
                continue;
            };
            let mut entry = Map::new();
            entry.insert("id".into(), json!(fw.id));
            entry.insert("name".into(), json!(fw.info.name));
            entry.insert("hostname".into(), json!(fw.info.hostname));
            entry.insert("active".into(), json!(fw.active()));
            entry.insert("connected".into(), json!(fw.active()));
            entry.insert("role".into(), json!(fw.info.effective_roles().first()));
            entry.insert("webui_url".into(), json!(fw.info.webui_url));
            entry.insert("recovered".into(), json!(false));
            entry.insert(
                "capabilities".into(),
                Self::framework_info_v1(&fw.info, &fw.id)["capabilities"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| c["type"].clone())
                    .collect(),
            );
            entry.insert("used_resources".into(), fw.used.to_json());
            entry.insert("offered_resources".into(), fw.offered.to_json());
            counts(&mut Self::tasks_of(fw), &mut entry);
            let mut agents: Vec<&str> = fw
                .tasks
                .values()
                .map(|t| t.info.agent_id.as_str())
                .collect();
            agents.sort_unstable();
            agents.dedup();
            entry.insert("slave_ids".into(), json!(agents));
            frameworks.push(Json::Object(entry));
        }
        json!({
            "hostname": self.info.hostname,
            "slaves": slaves,
            "frameworks": frameworks,
        })
    }

    /// `/master/frameworks`: `/state`'s frameworks, optionally only `framework_id`.
    pub fn frameworks_json(&self, framework_id: Option<&str>) -> Json {
        let mut state = self.state_json();
        let pick = |list: Json| -> Json {
            Json::Array(
                list.as_array()
                    .into_iter()
                    .flatten()
                    .filter(|f| framework_id.is_none_or(|id| f["id"] == id))
                    .cloned()
                    .collect(),
            )
        };
        json!({
            "frameworks": pick(state["frameworks"].take()),
            "completed_frameworks": pick(state["completed_frameworks"].take()),
            "unregistered_frameworks": [],
        })
    }

    /// `/master/slaves`: `/state`'s agents, optionally only `slave_id`.
    pub fn agents_json(&self, agent_id: Option<&str>) -> Json {
        let mut state = self.state_json();
        let slaves: Vec<Json> = state["slaves"]
            .take()
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| agent_id.is_none_or(|id| a["id"] == id))
            .cloned()
            .collect();
        json!({ "slaves": slaves, "recovered_slaves": [] })
    }

    /// `/master/tasks`: live and completed tasks ordered by their start, filtered and paged.
    pub fn tasks_json(&self, q: &TasksQuery) -> Json {
        let mut tasks: Vec<&Task> = self
            .all_frameworks()
            .filter(|f| {
                q.framework_id
                    .as_deref()
                    .is_none_or(|id| f.id.as_str() == id)
            })
            .flat_map(Self::tasks_of)
            .filter(|t| {
                q.task_id
                    .as_deref()
                    .is_none_or(|id| t.info.task_id.as_str() == id)
            })
            .collect();
        tasks.sort_by(|a, b| {
            started(a)
                .total_cmp(&started(b))
                .then_with(|| a.info.task_id.cmp(&b.info.task_id))
        });
        if !q.ascending {
            tasks.reverse();
        }
        let page: Vec<Json> = tasks
            .into_iter()
            .skip(q.offset)
            .take(q.limit.unwrap_or(100))
            .map(Self::task_json)
            .collect();
        json!({ "tasks": page })
    }

    // ---- v1 -------------------------------------------------------------------------------

    /// Mesos' v1 `FrameworkInfo` ([`v1::framework_info_to_json`]), with its id.
    pub(super) fn framework_info_v1(info: &FrameworkInfo, id: &FrameworkId) -> Json {
        if info.id.as_ref() == Some(id) {
            return v1::framework_info_to_json(info);
        }
        let mut info = info.clone();
        info.id = Some(id.clone());
        v1::framework_info_to_json(&info)
    }

    pub(super) fn task_v1(task: &Task) -> Json {
        let latest = task.latest.as_ref();
        let statuses: Vec<Json> = task
            .statuses
            .iter()
            .map(|(state, timestamp, message)| {
                let mut s = json!({
                    "task_id": value(&task.info.task_id),
                    "agent_id": value(&task.info.agent_id),
                    "state": state.mesos_name(),
                    "timestamp": timestamp,
                });
                if !message.is_empty() {
                    s["message"] = json!(message);
                }
                if let Some(c) = latest.and_then(|l| l.container_id.as_ref()) {
                    s["container_status"] = json!({ "container_id": value(c) });
                }
                s
            })
            .collect();
        let mut v = json!({
            "name": task.info.name,
            "task_id": value(&task.info.task_id),
            "framework_id": value(&task.framework_id),
            "agent_id": value(&task.info.agent_id),
            "state": task.state.mesos_name(),
            "resources": task.info.resources.to_mesos_json(),
            "statuses": statuses,
            "role": task.role,
        });
        if let Some(executor) = &task.info.executor {
            v["executor_id"] = value(&executor.executor_id);
        }
        if let Some(l) = latest {
            v["status_update_state"] = json!(l.state.mesos_name());
        }
        v
    }

    /// A v1 `TaskStatus` of an update (TASK_UPDATED's `status`).
    pub(super) fn status_v1(status: &TaskStatus) -> Json {
        v1::task_status_to_json(&v1::StatusJson::from(status.clone()))
    }

    pub(super) fn framework_v1(fw: &Framework, active: bool) -> Json {
        json!({
            "framework_info": Self::framework_info_v1(&fw.info, &fw.id),
            "active": active && fw.active(),
            "connected": fw.active(),
            "recovered": false,
            "registered_time": nanos(fw.registered_time),
            "offers": [],
            "allocated_resources": fw.used.to_mesos_json(),
            "offered_resources": fw.offered.to_mesos_json(),
        })
    }

    pub(super) fn agent_v1(&self, a: &Agent) -> Json {
        let mut v = json!({
            "agent_info": {
                "id": value(&a.id),
                "hostname": a.info.hostname,
                "port": a.info.port,
                "resources": a.info.resources.to_mesos_json(),
                "attributes": v1::attributes_to_json(&a.info.attributes),
            },
            "active": a.state == AgentState::Active,
            "deactivated": a.drain.is_some() || a.down,
            "version": self.info.version,
            "pid": format!("slave(1)@{}:{}", a.info.hostname, a.info.port),
            "registered_time": nanos(a.registered_time),
            "total_resources": a.total().to_mesos_json(),
            "allocated_resources": a.used.to_mesos_json(),
            "offered_resources": a.offered.to_mesos_json(),
        });
        if let Some(drain) = &a.drain {
            let mut config = json!({ "mark_gone": drain.mark_gone });
            if let Some(g) = drain.max_grace_period_secs {
                config["max_grace_period"] = nanos(g);
            }
            v["drain_info"] = json!({
                "state": self.agent_service(&a.id),
                "config": config,
            });
        }
        v
    }

    /// GET_AGENTS' answer.
    pub fn get_agents_v1(&self) -> Json {
        let mut agents: Vec<&Agent> = self
            .agents
            .values()
            .filter(|a| a.state != AgentState::Recovering)
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        let recovered: Vec<Json> = self
            .agents
            .values()
            .filter(|a| a.state == AgentState::Recovering)
            .map(|a| {
                json!({"id": value(&a.id), "hostname": a.info.hostname, "port": a.info.port,
                       "resources": a.info.resources.to_mesos_json()})
            })
            .collect();
        json!({
            "agents": agents.iter().map(|a| self.agent_v1(a)).collect::<Vec<_>>(),
            "recovered_agents": recovered,
        })
    }

    /// GET_FRAMEWORKS' answer.
    pub fn get_frameworks_v1(&self) -> Json {
        let mut frameworks: Vec<&Framework> = self.frameworks.values().collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        json!({
            "frameworks": frameworks.iter().map(|f| Self::framework_v1(f, true)).collect::<Vec<_>>(),
            "completed_frameworks": self.completed_frameworks.iter().map(|f| Self::framework_v1(f, false)).collect::<Vec<_>>(),
        })
    }

    /// GET_TASKS' answer.
    pub fn get_tasks_v1(&self) -> Json {
        let mut live = Vec::new();
        let mut unreachable = Vec::new();
        for fw in self.frameworks.values() {
            for t in fw.tasks.values() {
                if t.state == TaskState::Unreachable {
                    unreachable.push(Self::task_v1(t));
                } else {
                    live.push(Self::task_v1(t));
                }
            }
        }
        let completed: Vec<Json> = self
            .all_frameworks()
            .flat_map(|f| f.completed_tasks.iter())
            .map(|t| Self::task_v1(t))
            .collect();
        json!({
            "pending_tasks": [],
            "tasks": live,
            "unreachable_tasks": unreachable,
            "completed_tasks": completed,
            "orphan_tasks": [],
        })
    }

    /// GET_EXECUTORS' answer: the custom executors of live tasks.
    pub fn get_executors_v1(&self) -> Json {
        let mut seen = std::collections::BTreeSet::new();
        let mut executors = Vec::new();
        for fw in self.frameworks.values() {
            for t in fw.tasks.values() {
                let Some(e) = &t.info.executor else { continue };
                if !seen.insert((
                    fw.id.clone(),
                    t.info.agent_id.clone(),
                    e.executor_id.clone(),
                )) {
                    continue;
                }
                executors.push(json!({
                    "agent_id": value(&t.info.agent_id),
                    "executor_info": v1::executor_info_to_json(e, Some(&fw.id)),
                }));
            }
        }
        json!({ "executors": executors, "orphan_executors": [] })
    }

    /// GET_STATE's answer (also SUBSCRIBED's `get_state`).
    pub fn get_state_v1(&self) -> Json {
        json!({
            "get_tasks": self.get_tasks_v1(),
            "get_executors": self.get_executors_v1(),
            "get_frameworks": self.get_frameworks_v1(),
            "get_agents": self.get_agents_v1(),
        })
    }

    /// GET_MASTER's answer.
    pub fn get_master_v1(&self) -> Json {
        let mut info = v1::master_info_to_json(&self.info);
        info["pid"] = json!(format!("master@{}:{}", self.info.ip, self.info.port));
        json!({
            "master_info": info,
            "start_time": self.start_time,
            "elected_time": self.start_time,
        })
    }

    /// GET_ROLES' answer, from `/roles`.
    pub fn get_roles_v1(&self) -> Json {
        let roles = self.roles_json();
        let list: Vec<Json> = roles["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                json!({
                    "name": r["name"],
                    "weight": r["weight"].as_f64().unwrap_or(1.0),
                    "frameworks": r["frameworks"].as_array().into_iter().flatten()
                        .map(|f| value(f.as_str().unwrap_or_default())).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({ "roles": list })
    }

    /// The operator's TEARDOWN: removes a framework as its own teardown would.
    pub fn operator_teardown(&mut self, id: &FrameworkId) -> Result<(), super::OperatorError> {
        if !self.frameworks.contains_key(id) {
            return Err(super::OperatorError::NotFound(format!(
                "no framework has id {id}"
            )));
        }
        tracing::info!(framework_id = %id, "framework torn down by the operator");
        self.remove_framework(id);
        Ok(())
    }
}
