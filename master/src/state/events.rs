//! The operator API's event stream (v1 SUBSCRIBE): the subscribers' channels, and the events
//! the state machine emits where tasks, agents and frameworks are added, updated or removed.
//! Each hook in `state.rs` is one call to a method here; with no subscriber they cost a check.

use super::operator_view::value;
use super::{FrameworkId, Master, TaskId, TaskStatus};
use serde_json::{json, Value as Json};
use strata_schema::{AgentId, FrameworkInfo};
use tokio::sync::mpsc;

/// One operator's event stream: v1 `Event`s as JSON.
pub type OperatorLink = mpsc::UnboundedSender<Json>;

impl Master {
    /// Adds a subscriber and answers its SUBSCRIBED event (with the whole state): events after
    /// it come on `link`, in order.
    pub fn operator_subscribe(&mut self, link: OperatorLink) -> Json {
        self.operator_subscribers.retain(|s| !s.is_closed());
        self.operator_subscribers.push(link);
        json!({
            "type": "SUBSCRIBED",
            "subscribed": {
                "get_state": self.get_state_v1(),
                "heartbeat_interval_seconds": 15.0,
            },
        })
    }

    fn emit(&mut self, kind: &str, body: Json) {
        let event = json!({ "type": kind.to_uppercase(), kind: body });
        // A subscriber whose stream was closed is dropped here.
        self.operator_subscribers
            .retain(|s| s.send(event.clone()).is_ok());
    }

    pub(super) fn emit_task_added(&mut self, framework_id: &FrameworkId, task_id: &TaskId) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(task) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.tasks.get(task_id))
        else {
            return;
        };
        let task = Self::task_v1(task);
        self.emit("task_added", json!({ "task": task }));
    }

    pub(super) fn emit_task_updated(&mut self, status: &TaskStatus) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(framework_id) = &status.framework_id else {
            return;
        };
        let body = json!({
            "framework_id": value(framework_id),
            "status": Self::status_v1(status),
            "state": status.state.mesos_name(),
        });
        self.emit("task_updated", body);
    }

    pub(super) fn emit_agent_added(&mut self, agent_id: &AgentId) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(agent) = self.agents.get(agent_id) else {
            return;
        };
        let agent = self.agent_v1(agent);
        self.emit("agent_added", json!({ "agent": agent }));
    }

    pub(super) fn emit_agent_removed(&mut self, agent_id: &AgentId) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        self.emit("agent_removed", json!({ "agent_id": value(agent_id) }));
    }

    /// FRAMEWORK_ADDED for a new framework, FRAMEWORK_UPDATED for one that re-subscribed.
    pub(super) fn emit_framework(&mut self, framework_id: &FrameworkId, added: bool) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let Some(fw) = self.frameworks.get(framework_id) else {
            return;
        };
        let framework = Self::framework_v1(fw, true);
        if added {
            self.emit("framework_added", json!({ "framework": framework }));
        } else {
            self.emit("framework_updated", json!({ "framework": framework }));
        }
    }

    pub(super) fn emit_framework_removed(&mut self, id: &FrameworkId, info: &FrameworkInfo) {
        if self.operator_subscribers.is_empty() {
            return;
        }
        let info = Self::framework_info_v1(info, id);
        self.emit("framework_removed", json!({ "framework_info": info }));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{AgentCommand, Operation, SchedulerEvent, TasksQuery};
    use super::*;
    use std::time::Instant;
    use strata_schema::{CommandInfo, Resources, StatusSource, TaskInfo, TaskState, UpdateUuid};
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    use super::super::tests::{agent, drain, master};

    fn types(rx: &mut UnboundedReceiver<Json>) -> Vec<String> {
        drain(rx)
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    }

    /// A master with an agent, a framework and a task it launched (TASK_RUNNING), and an
    /// operator subscribed before any of it.
    #[allow(clippy::type_complexity)]
    fn cluster() -> (
        Master,
        UnboundedReceiver<Json>,
        Json,
        AgentId,
        FrameworkId,
        UnboundedReceiver<AgentCommand>,
        UnboundedReceiver<SchedulerEvent>,
    ) {
        let mut m = master();
        let (op_tx, op_rx) = unbounded_channel();
        let subscribed = m.operator_subscribe(op_tx);
        let (agent, arx) = agent(&mut m, 1, "cpus:4;mem:1024");
        let (ftx, mut frx) = unbounded_channel();
        let fw_info = FrameworkInfo {
            name: "f".into(),
            user: "root".into(),
            failover_timeout_secs: 60.0,
            ..Default::default()
        };
        let fw = m.subscribe(2, fw_info, ftx).unwrap();
        m.allocate(Instant::now());
        let offer = drain(&mut frx)
            .into_iter()
            .find_map(|e| match e {
                SchedulerEvent::Offers(o) => Some(o[0].id.clone()),
                _ => None,
            })
            .unwrap();
        let task = TaskInfo {
            task_id: TaskId::new("t1").unwrap(),
            name: "t1".into(),
            agent_id: agent.clone(),
            resources: Resources::parse("cpus:1;mem:128").unwrap(),
            command: CommandInfo::shell("true"),
            kill_grace_period_secs: None,
            hostname: None,
            container: None,
            executor: None,
            data: Vec::new(),
            labels: Vec::new(),
        };
        m.accept(
            2,
            &fw,
            &[offer],
            vec![Operation::Launch(vec![task])],
            0.0,
            Instant::now(),
        )
        .unwrap();
        let status = TaskStatus {
            task_id: TaskId::new("t1").unwrap(),
            state: TaskState::Running,
            message: String::new(),
            source: StatusSource::Executor,
            reason: None,
            agent_id: Some(agent.clone()),
            framework_id: Some(fw.clone()),
            container_id: None,
            timestamp: TaskStatus::now(),
            uuid: Some(UpdateUuid::random()),
            exit_code: None,
        };
        m.status_update(1, &agent, status).unwrap();
        (m, op_rx, subscribed, agent, fw, arx, frx)
    }

    #[test]
    fn subscribers_see_agents_frameworks_and_tasks() {
        let (mut m, mut rx, subscribed, agent, fw, _arx, _frx) = cluster();
        assert_eq!(subscribed["type"], "SUBSCRIBED");
        assert!(subscribed["subscribed"]["get_state"]["get_agents"]["agents"].is_array());
        let events = drain(&mut rx);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "AGENT_ADDED",
                "FRAMEWORK_ADDED",
                "TASK_ADDED",
                "TASK_UPDATED"
            ]
        );
        assert_eq!(
            events[0]["agent_added"]["agent"]["agent_info"]["id"]["value"],
            agent.as_str()
        );
        assert_eq!(
            events[1]["framework_added"]["framework"]["framework_info"]["id"]["value"],
            fw.as_str()
        );
        let task = &events[2]["task_added"]["task"];
        assert_eq!(task["task_id"]["value"], "t1");
        assert_eq!(task["state"], "TASK_STAGING");
        assert_eq!(task["resources"][0]["type"], "SCALAR");
        assert_eq!(events[3]["task_updated"]["state"], "TASK_RUNNING");
        assert_eq!(
            events[3]["task_updated"]["status"]["source"],
            "SOURCE_EXECUTOR"
        );
        // The framework's connection drops: it is updated (inactive).
        m.connection_closed(2, Instant::now());
        let events = drain(&mut rx);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["type"], "FRAMEWORK_UPDATED");
        assert_eq!(events[0]["framework_updated"]["framework"]["active"], false);
        // The operator tears the framework down; a dropped subscriber is forgotten.
        m.operator_teardown(&fw).unwrap();
        assert_eq!(types(&mut rx), ["FRAMEWORK_REMOVED"]);
        assert!(m.operator_teardown(&fw).is_err());
        drop(rx);
        m.unregister_agent(1, &agent);
        assert!(m.operator_subscribers.is_empty());
    }

    #[test]
    fn v0_views_and_metrics() {
        let (m, _rx, _s, agent, fw, _arx, _frx) = cluster();
        let metrics = m.metrics_json();
        assert_eq!(metrics["master/tasks_running"], 1.0);
        assert_eq!(metrics["master/tasks_finished"], 0.0);
        assert_eq!(metrics["master/cpus_total"], 4.0);
        assert_eq!(metrics["master/cpus_used"], 1.0);
        assert_eq!(metrics["master/mem_total"], 1024.0);
        assert_eq!(metrics["master/slaves_active"], 1.0);
        assert_eq!(metrics["master/frameworks_active"], 1.0);
        assert_eq!(metrics["master/elected"], 1.0);
        let summary = m.state_summary_json();
        assert_eq!(summary["slaves"][0]["TASK_RUNNING"], 1);
        assert_eq!(summary["slaves"][0]["framework_ids"][0], fw.as_str());
        assert_eq!(summary["frameworks"][0]["slave_ids"][0], agent.as_str());
        assert_eq!(
            summary["frameworks"][0]["capabilities"],
            json!(["MULTI_ROLE"])
        );
        assert_eq!(summary["slaves"][0]["version"], "0");
        let q = |q: TasksQuery| m.tasks_json(&q)["tasks"].as_array().unwrap().len();
        assert_eq!(q(TasksQuery::default()), 1);
        assert_eq!(
            q(TasksQuery {
                offset: 1,
                ..Default::default()
            }),
            0
        );
        assert_eq!(
            q(TasksQuery {
                task_id: Some("t2".into()),
                ..Default::default()
            }),
            0
        );
        assert_eq!(m.frameworks_json(Some("nope"))["frameworks"], json!([]));
        assert_eq!(m.agents_json(None)["slaves"][0]["id"], agent.as_str());
        let tasks = m.get_tasks_v1();
        assert_eq!(tasks["tasks"][0]["state"], "TASK_RUNNING");
        assert_eq!(m.get_master_v1()["master_info"]["ip"], 16777343u32);
    }
}
