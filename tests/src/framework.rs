//! A small framework for tests and benchmarks, on top of the client SDK: takes offers, launches
//! tasks, acknowledges every update and remembers them.

use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::time::Duration;
use strata_client::{Event, Offer, Operation, SchedulerDriver};
use strata_schema::{
    AgentId, CommandInfo, ExecutorId, FrameworkInfo, Resources, TaskId, TaskInfo, TaskState,
    TaskStatus,
};
use tokio::sync::mpsc;

pub struct TestFramework {
    pub driver: SchedulerDriver,
    events: mpsc::UnboundedReceiver<Event>,
    /// Every update received, in order.
    pub updates: Vec<TaskStatus>,
    /// When each of `updates` arrived (before it was acknowledged).
    pub arrivals: Vec<std::time::Instant>,
    /// Latest state per task.
    pub latest: HashMap<TaskId, TaskStatus>,
    /// Offers received and not used yet.
    pub offers: Vec<Offer>,
    pub errors: Vec<String>,
    /// Whether the driver follows the leader (a `zk://` master).
    pub follows_leader: bool,
    /// Why the driver lost its master, in order (only when it follows the leader).
    pub disconnects: Vec<String>,
    /// SUBSCRIBED events seen (re-subscriptions after a failover included).
    pub subscriptions: usize,
    /// When set, updates are recorded but not acknowledged: they wait in `unacked` until
    /// [`TestFramework::acknowledge_held`].
    pub hold_acks: bool,
    pub unacked: Vec<TaskStatus>,
    /// Executors' messages received: (agent, executor, data).
    pub messages: Vec<(AgentId, ExecutorId, Vec<u8>)>,
    /// FAILURE events received: (agent, executor, wait status).
    pub failures: Vec<(AgentId, Option<ExecutorId>, Option<i32>)>,
    /// Inverse offers received and not rescinded.
    pub inverse_offers: Vec<strata_client::InverseOffer>,
}

/// A task description for `agent` (shell command).
pub fn task(id: &str, agent: &AgentId, resources: &str, command: &str) -> TaskInfo {
    TaskInfo {
        task_id: TaskId::new(id).expect("valid task id"),
        name: id.to_string(),
        agent_id: agent.clone(),
        resources: Resources::parse(resources).expect("valid resources"),
        command: CommandInfo::shell(command),
        kill_grace_period_secs: None,
        hostname: None,
        container: None,
        executor: None,
        data: Vec::new(),
        labels: Vec::new(),
    }
}

impl TestFramework {
    pub async fn subscribe(master: &str, name: &str) -> Result<Self> {
        let info = FrameworkInfo {
            name: name.to_string(),
            user: "root".to_string(),
            failover_timeout_secs: 0.0,
            ..FrameworkInfo::default()
        };
        Self::subscribe_with(master, info).await
    }

    /// Subscribes with `info` (e.g. a failover timeout). With a `zk://` master the driver follows
    /// the leader: a disconnection is then recorded in `disconnects`, not an error.
    pub async fn subscribe_with(master: &str, info: FrameworkInfo) -> Result<Self> {
        Self::subscribe_options(master, info, Default::default()).await
    }

    /// Subscribes with a credential (principal and secret) for a master that authenticates
    /// frameworks.
    pub async fn subscribe_as(
        master: &str,
        info: FrameworkInfo,
        principal: &str,
        secret: &str,
    ) -> Result<Self> {
        let options = strata_client::scheduler::SubscribeOptions {
            credential: Some(strata_client::scheduler::Credential {
                principal: principal.to_string(),
                secret: secret.to_string(),
            }),
        };
        Self::subscribe_options(master, info, options).await
    }

    async fn subscribe_options(
        master: &str,
        info: FrameworkInfo,
        options: strata_client::scheduler::SubscribeOptions,
    ) -> Result<Self> {
        let follows = master.starts_with("zk://");
        let (driver, events) = SchedulerDriver::subscribe_with(master, info, options).await?;
        Ok(Self {
            follows_leader: follows,
            disconnects: Vec::new(),
            subscriptions: 0,
            hold_acks: false,
            unacked: Vec::new(),
            messages: Vec::new(),
            failures: Vec::new(),
            driver,
            events,
            updates: Vec::new(),
            arrivals: Vec::new(),
            latest: HashMap::new(),
            offers: Vec::new(),
            errors: Vec::new(),
            inverse_offers: Vec::new(),
        })
    }

    /// Handles one event (acknowledging updates); returns false when disconnected.
    async fn absorb(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Offers(offers) => self.offers.extend(offers),
            Event::Rescind(id) => self.offers.retain(|o| o.id != id),
            Event::Update(status) => {
                let arrived = std::time::Instant::now();
                if self.hold_acks {
                    self.unacked.push(status.clone());
                } else {
                    self.driver.acknowledge(&status).await?;
                }
                self.arrivals.push(arrived);
                self.latest.insert(status.task_id.clone(), status.clone());
                self.updates.push(status);
            }
            Event::Error(e) => self.errors.push(e),
            Event::Disconnected(why) if self.follows_leader => {
                self.offers.clear();
                self.disconnects.push(why);
            }
            Event::Disconnected(why) => bail!("disconnected from the master: {why}"),
            Event::Subscribed { .. } => self.subscriptions += 1,
            Event::Heartbeat => {}
            Event::InverseOffers(offers) => self.inverse_offers.extend(offers),
            Event::RescindInverseOffer(id) => self.inverse_offers.retain(|o| o.id != id),
            Event::Message {
                agent_id,
                executor_id,
                data,
            } => self.messages.push((agent_id, executor_id, data)),
            Event::Failure {
                agent_id,
                executor_id,
                status,
            } => self.failures.push((agent_id, executor_id, status)),
        }
        Ok(())
    }

    /// Acknowledges the updates held back by `hold_acks` (each uuid once).
    pub async fn acknowledge_held(&mut self) -> Result<()> {
        let mut done = std::collections::HashSet::new();
        for status in std::mem::take(&mut self.unacked) {
            if done.insert(status.uuid) {
                self.driver.acknowledge(&status).await?;
            }
        }
        Ok(())
    }

    /// Waits for the next event and handles it.
    pub async fn step(&mut self, timeout: Duration) -> Result<()> {
        let event = tokio::time::timeout(timeout, self.events.recv())
            .await
            .map_err(|_| anyhow!("no event from the master within {timeout:?}"))?
            .ok_or_else(|| anyhow!("the event stream ended"))?;
        self.absorb(event).await
    }

    /// Waits until the driver lost its master and subscribed again (after a failover); drops
    /// offers of the old master.
    pub async fn wait_resubscribed(&mut self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let before = self.subscriptions;
        while self.disconnects.is_empty() || self.subscriptions == before {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!(
                    "not re-subscribed within {timeout:?} (disconnects: {:?})",
                    self.disconnects
                );
            }
            self.step(left).await?;
        }
        Ok(())
    }

    /// Waits until an offer holds at least `needed`; returns it (removed from `offers`).
    pub async fn offer_with(&mut self, needed: &str, timeout: Duration) -> Result<Offer> {
        let needed = Resources::parse(needed)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .offers
                .iter()
                .position(|o| o.resources.contains(&needed))
            {
                return Ok(self.offers.remove(i));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!(
                    "no offer with {needed} within {timeout:?} (have {:?})",
                    self.offers
                );
            }
            self.step(left).await?;
        }
    }

    /// Launches `tasks` on `offer` (unused resources are not filtered).
    pub async fn launch(&mut self, offer: &Offer, tasks: Vec<TaskInfo>) -> Result<()> {
        self.driver
            .accept(vec![offer.id.clone()], vec![Operation::Launch(tasks)], 0.0)
            .await?;
        Ok(())
    }

    /// Waits until `task` reaches a state satisfying `pred`.
    pub async fn wait_for(
        &mut self,
        task: &str,
        timeout: Duration,
        pred: impl Fn(TaskState) -> bool,
    ) -> Result<TaskStatus> {
        let id = TaskId::new(task)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.latest.get(&id) {
                if pred(s.state) {
                    return Ok(s.clone());
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!(
                    "task {task} did not reach the expected state within {timeout:?}; latest: {:?}",
                    self.latest.get(&id)
                );
            }
            self.step(left).await?;
        }
    }

    /// Handles events until `pred` holds on what was received; `what` names it in the error.
    pub async fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Self) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !pred(self) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                bail!("no {what} within {timeout:?}");
            }
            self.step(left).await?;
        }
        Ok(())
    }

    /// Waits for `task`'s terminal update.
    pub async fn wait_terminal(&mut self, task: &str, timeout: Duration) -> Result<TaskStatus> {
        self.wait_for(task, timeout, TaskState::is_terminal).await
    }

    /// The states `task` went through, in order.
    pub fn states(&self, task: &str) -> Vec<TaskState> {
        self.updates
            .iter()
            .filter(|s| s.task_id.as_str() == task)
            .map(|s| s.state)
            .collect()
    }
}
