//! The master's state machine: agents, frameworks, offers and tasks. It is driven by the actor
//! ([`crate::actor`]) one message at a time, holds no sockets and reads no clock (`now` is passed
//! in). Its only effects are messages pushed onto the per-connection channels ([`AgentLink`],
//! [`SchedulerLink`]), which the RPC front end turns into Cap'n Proto calls.

use crate::allocator::{self, AgentView, FrameworkView, RefuseFilter};
use crate::registry::{DrainConfig, RegisteredAgent, Registry};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_schema::{
    AgentId, AgentInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, MasterInfo, OfferId,
    Resources, StatusSource, TaskId, TaskInfo, TaskState, TaskStatus, UpdateUuid,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Identifies one accepted TCP connection; sessions are bound to the connection they came on.
pub type ConnId = u64;

/// Commands for one agent connection.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    Ping {
        agent_id: AgentId,
        seq: u64,
    },
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
    Shutdown {
        reason: String,
    },
    ShutdownFramework {
        framework_id: FrameworkId,
    },
    /// Delete the data of these persistent volumes (DESTROY).
    DestroyVolumes {
        volumes: Resources,
    },
    /// Launch a group of tasks under one executor (LAUNCH_GROUP; Mesos' RunTaskGroup).
    LaunchGroup {
        framework: Box<FrameworkInfo>,
        executor: Box<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    },
    /// A framework's message for one of its executors on this agent.
    FrameworkMessage {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    },
    /// Stop one executor of a framework, and its tasks (SHUTDOWN).
    ShutdownExecutor {
        framework_id: FrameworkId,
        executor_id: ExecutorId,
    },
}
pub type AgentLink = mpsc::UnboundedSender<AgentCommand>;

/// An offer as sent to a framework.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferEvent {
    pub id: OfferId,
    pub framework_id: FrameworkId,
    /// The role the resources are allocated to (Mesos' `allocation_info.role`).
    pub role: String,
    /// The maintenance window of the agent's machine, if it is in the schedule.
    pub unavailability: Option<crate::registry::MaintenanceWindow>,
    pub agent_id: AgentId,
    pub hostname: String,
    pub resources: Resources,
    pub attributes: strata_schema::Attributes,
    /// The agent's dynamic reservations and volumes (from the registry): what of `resources`
    /// they cover is a DYNAMIC reservation, the rest of the reserved resources STATIC.
    pub dynamic: Resources,
}

/// Events for one framework's callback capability, delivered in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerEvent {
    Subscribed {
        framework_id: FrameworkId,
        heartbeat_interval_secs: f64,
        master: MasterInfo,
    },
    Offers(Vec<OfferEvent>),
    Rescind(OfferId),
    Update(TaskStatus),
    Error(String),
    Heartbeat,
    /// An executor's message (Mesos' Event.Message).
    Message {
        agent_id: AgentId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    },
    /// Inverse offers: agents the framework is asked to leave for maintenance.
    InverseOffers(Vec<InverseOfferEvent>),
    RescindInverseOffer(OfferId),
    /// An executor ended, or an agent was removed (Mesos' Event.Failure).
    Failure {
        agent_id: Option<AgentId>,
        executor_id: Option<ExecutorId>,
        status: Option<i32>,
    },
}
pub type SchedulerLink = mpsc::UnboundedSender<SchedulerEvent>;

/// Tunables of the state machine (from the master's flags).
#[derive(Debug, Clone)]
pub struct StateConfig {
    pub max_agent_ping_timeouts: u32,
    pub heartbeat_interval: Duration,
    pub max_completed_frameworks: usize,
    pub max_completed_tasks_per_framework: usize,
    /// Upper bound on a decline's `refuse_seconds` (Mesos caps filters too).
    pub max_refuse: Duration,
    /// How long agents of the registry have to re-register with a new leader.
    pub agent_reregister_timeout: Duration,
    /// Outstanding offers are rescinded after this long (`--offer-timeout`; none by default).
    pub offer_timeout: Option<Duration>,
    /// An offer must hold at least one of these (`--min-allocatable-resources`).
    pub min_allocatable: Vec<Resources>,
    /// Mesos' ACLs (`--acls`): `register_frameworks` and `run_tasks` are decided here.
    pub acls: Arc<strata_security::acl::Acls>,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            max_agent_ping_timeouts: 5,
            heartbeat_interval: Duration::from_secs(15),
            max_completed_frameworks: 50,
            max_completed_tasks_per_framework: 1000,
            max_refuse: Duration::from_secs(31 * 24 * 3600),
            agent_reregister_timeout: Duration::from_secs(600),
            offer_timeout: None,
            min_allocatable: allocator::default_min_allocatable(),
            // The master always sets these from `--acls`; the default (unit tests) lets every
            // principal run tasks as root, as the test harness's ACL file does.
            acls: Arc::new(strata_security::acl::Acls::allow_all_with_root()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentState {
    Active,
    /// Admitted by an earlier leader (it is in the registry) and not re-registered with this
    /// one yet; unreachable if it does not within `--agent-reregister-timeout`.
    Recovering,
    /// The connection dropped; pings are counted as missed until it comes back.
    Disconnected,
    /// Missed too many pings; its tasks were reported unreachable (or lost).
    Unreachable,
}

impl AgentState {
    fn name(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Recovering => "recovering",
            Self::Disconnected => "disconnected",
            Self::Unreachable => "unreachable",
        }
    }
}

#[derive(Debug)]
struct Agent {
    info: AgentInfo,
    id: AgentId,
    link: Option<AgentLink>,
    conn: Option<ConnId>,
    state: AgentState,
    registered_time: f64,
    missed_pings: u32,
    ping_outstanding: Option<u64>,
    used: Resources,
    offered: Resources,
    /// While [`AgentState::Recovering`]: when it is given up as unreachable.
    reregister_deadline: Option<Instant>,
    /// Dynamic reservations (kept in the registry).
    reservations: Resources,
    /// Persistent volumes, carved out of reserved disk (kept in the registry).
    volumes: Resources,
    /// Being drained (or drained): no offers, its tasks killed.
    drain: Option<DrainConfig>,
    /// Taken down by the operator: no offers, its tasks killed.
    down: bool,
    /// Who it authenticated as when it (re-)registered, if it did.
    principal: Option<String>,
}

impl Agent {
    fn new(
        info: AgentInfo,
        id: AgentId,
        state: AgentState,
        entry: Option<&RegisteredAgent>,
    ) -> Agent {
        Agent {
            info,
            id,
            link: None,
            conn: None,
            state,
            registered_time: TaskStatus::now(),
            missed_pings: 0,
            ping_outstanding: None,
            used: Resources::new(),
            offered: Resources::new(),
            reregister_deadline: None,
            reservations: entry.map(|e| e.reservations.clone()).unwrap_or_default(),
            volumes: entry.map(|e| e.volumes.clone()).unwrap_or_default(),
            drain: entry.and_then(|e| e.drain.clone()),
            down: entry.is_some_and(|e| e.down),
            principal: None,
        }
    }

    /// What the agent reports, with the dynamic reservations and volumes applied.
    fn total(&self) -> Resources {
        operations::apply_reservations(&self.info.resources, &self.reservations, &self.volumes)
    }

    fn available(&self) -> Resources {
        self.total()
            .saturating_sub(&self.used)
            .saturating_sub(&self.offered)
    }

    /// Whether its resources may be offered.
    fn offerable(&self) -> bool {
        self.state == AgentState::Active
            && self.link.is_some()
            && self.drain.is_none()
            && !self.down
    }
}

#[derive(Debug, Clone)]
struct Task {
    info: TaskInfo,
    framework_id: FrameworkId,
    /// The role its resources are allocated to (that of the offer it was launched from).
    role: String,
    state: TaskState,
    statuses: Vec<(TaskState, f64, String)>,
    /// Boxed: most tasks are looked at rarely, and a `TaskStatus` is 184 bytes.
    latest: Option<Box<TaskStatus>>,
}

#[derive(Debug)]
struct Framework {
    info: FrameworkInfo,
    id: FrameworkId,
    link: Option<SchedulerLink>,
    conn: Option<ConnId>,
    registered_time: f64,
    disconnected_at: Option<Instant>,
    /// Boxed: a table slot is then 32 bytes, not a whole `Task` (~600), and at 10,000 tasks a
    /// framework's table (sized to a power of two) kept ~100 MB at 100,000 tasks in all.
    tasks: HashMap<TaskId, Box<Task>>,
    completed_tasks: VecDeque<Box<Task>>,
    /// Shared with the allocator's view (copied only when changed while a view holds it).
    filters: Arc<HashMap<AgentId, RefuseFilter>>,
    suppressed_roles: HashSet<String>,
    offers: HashSet<OfferId>,
    used: Resources,
    offered: Resources,
    /// Per role: the scalars of used plus offered (what shares and quotas are computed from).
    allocated: BTreeMap<String, Resources>,
}

impl Framework {
    /// Adds to what the framework holds in `role`: scalars only, the quantities shares and
    /// quotas are computed from (ranges and sets of several agents would merge and be lost).
    fn charge(&mut self, role: &str, res: &Resources) {
        self.allocated
            .entry(role.to_string())
            .or_default()
            .add(&operations::scalars(res));
    }

    fn release(&mut self, role: &str, res: &Resources) {
        if let Some(held) = self.allocated.get_mut(role) {
            *held = held.saturating_sub(&operations::scalars(res));
            if held.is_empty() {
                self.allocated.remove(role);
            }
        }
    }

    /// The role an agent's report of one of its tasks is charged to: the role of its reserved
    /// resources if they have one the framework is subscribed to, else its first role.
    fn role_of(&self, task: &TaskInfo) -> String {
        let roles = self.info.effective_roles();
        task.resources
            .iter()
            .map(|r| r.role.as_str())
            .find(|r| *r != strata_schema::DEFAULT_ROLE && roles.iter().any(|x| x == r))
            .map(str::to_string)
            .or_else(|| roles.first().cloned())
            .unwrap_or_else(|| strata_schema::DEFAULT_ROLE.to_string())
    }

    /// A framework the master knows of (from the registry, or an agent's report) but that is
    /// not subscribed: its failover timeout runs from `since`.
    fn disconnected(info: FrameworkInfo, id: FrameworkId, since: Instant) -> Framework {
        Framework {
            info,
            id,
            link: None,
            conn: None,
            registered_time: TaskStatus::now(),
            disconnected_at: Some(since),
            tasks: HashMap::new(),
            completed_tasks: VecDeque::new(),
            filters: Default::default(),
            suppressed_roles: HashSet::new(),
            offers: HashSet::new(),
            used: Resources::new(),
            offered: Resources::new(),
            allocated: BTreeMap::new(),
        }
    }

    /// Gives back most of the live tasks' table once it is mostly empty: a burst of tasks that
    /// finished would otherwise keep its slots (hundreds of bytes each) for good. Amortized
    /// constant: the table is rebuilt only after it lost three quarters of its capacity.
    fn shrink_tasks(&mut self) {
        if self.tasks.capacity() > 64 && self.tasks.len() * 4 < self.tasks.capacity() {
            self.tasks.shrink_to(self.tasks.len() * 2);
        }
    }

    fn send(&self, event: SchedulerEvent) {
        if let Some(link) = &self.link {
            let _ = link.send(event);
        }
    }
    fn active(&self) -> bool {
        self.link.is_some()
    }
}

#[derive(Debug)]
struct Offer {
    framework_id: FrameworkId,
    agent_id: AgentId,
    role: String,
    resources: Resources,
    /// When `--offer-timeout` rescinds it.
    expires: Option<Instant>,
}

/// Why a framework call was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("framework {0} is not subscribed")]
    UnknownFramework(FrameworkId),
    #[error("framework {0} has failed over to another connection; this session is stale")]
    StaleSession(FrameworkId),
    #[error("framework {0} has been torn down")]
    Removed(FrameworkId),
    #[error("invalid offers: {0}")]
    InvalidOffers(String),
    #[error("{0}")]
    Invalid(String),
    /// Refused by an ACL (or a principal mismatch); the message names the rule.
    #[error("{0}")]
    Unauthorized(String),
}

/// Why an operator's kill was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OperatorKillError {
    #[error("no live task has id {0}")]
    NotFound(String),
    #[error(
        "task id {task} is used by several frameworks ({frameworks}); say which with framework_id"
    )]
    Ambiguous { task: String, frameworks: String },
}

/// A task an agent reports running when it re-registers.
#[derive(Debug, Clone)]
pub struct ReportedTask {
    pub framework: FrameworkInfo,
    pub task: TaskInfo,
    pub state: TaskState,
}

pub struct Master {
    pub info: MasterInfo,
    config: StateConfig,
    /// The buffers of `/state` answers, kept for the next one while answers come.
    state_buffers: json::BufferPool,
    agents: HashMap<AgentId, Agent>,
    frameworks: HashMap<FrameworkId, Framework>,
    completed_frameworks: VecDeque<Framework>,
    offers: HashMap<OfferId, Offer>,
    next_agent: u64,
    next_framework: u64,
    next_offer: u64,
    next_ping: u64,
    dirty: bool,
    start_time: f64,
    /// What a new leader must know; committed by the actor before it acts on a change.
    registry: Registry,
    registry_dirty: bool,
    /// Tasks the master gave up on (reported TASK_LOST) that a returning agent was told to
    /// kill: their agent updates are acknowledged here, not forwarded again.
    given_up: HashSet<(FrameworkId, TaskId)>,
    /// The allocator's view of the agents, recomputed only where an agent changed.
    agent_views: views::AgentViews,
    /// What follows from registry changes not committed yet, done by [`Master::after_commit`]:
    /// agents marked unreachable (their tasks' updates) and removed frameworks (their shutdown
    /// on agents). A master that cannot commit exits before any of it reaches anyone.
    pending: Vec<Pending>,
    /// The last hour of utilisation samples (`GET /master/utilization`).
    utilization: utilization::Ring,
    /// Inverse offers outstanding and frameworks' answers (`inverse.rs`).
    inverse: inverse::InverseOffers,
    /// The operator API's event streams (v1 SUBSCRIBE; see `events.rs`).
    operator_subscribers: Vec<events::OperatorLink>,
    /// The custom executors launched on agents, with the role and resources charged for them
    /// (released when the agent reports the executor's exit or the framework is removed).
    executors: HashMap<(FrameworkId, AgentId, ExecutorId), (String, Resources)>,
    /// Tasks that reached each terminal state since this master started leading (the
    /// `master/tasks_<state>` counters).
    terminal_tasks: HashMap<TaskState, u64>,
}

/// An effect held until the registry change it follows from is committed.
#[derive(Debug)]
enum Pending {
    Unreachable(AgentId),
    ShutdownFramework(AgentId, FrameworkId),
}

/// Why a framework's info cannot be accepted (SUBSCRIBE, UPDATE_FRAMEWORK), if it cannot.
fn validate_framework_info(info: &FrameworkInfo) -> Result<(), CallError> {
    if info.name.trim().is_empty() {
        return Err(CallError::Invalid(
            "the framework's name is empty".to_string(),
        ));
    }
    for role in &info.roles {
        if role.is_empty()
            || role.starts_with('/')
            || role.ends_with('/')
            || role.contains(char::is_whitespace)
            || role == "."
            || role == ".."
        {
            return Err(CallError::Invalid(format!("invalid role {role:?}")));
        }
    }
    if !info.failover_timeout_secs.is_finite() || info.failover_timeout_secs < 0.0 {
        return Err(CallError::Invalid(format!(
            "invalid failover timeout {}",
            info.failover_timeout_secs
        )));
    }
    Ok(())
}

fn master_status(
    task: &TaskInfo,
    fw: &FrameworkId,
    state: TaskState,
    reason: &str,
    message: String,
) -> TaskStatus {
    TaskStatus {
        task_id: task.task_id.clone(),
        state,
        message,
        source: StatusSource::Master,
        reason: Some(reason.to_string()),
        agent_id: Some(task.agent_id.clone()),
        framework_id: Some(fw.clone()),
        container_id: None,
        timestamp: TaskStatus::now(),
        uuid: None,
        exit_code: None,
    }
}

impl Master {
    pub fn new(info: MasterInfo, config: StateConfig) -> Self {
        Self {
            info,
            config,
            state_buffers: json::BufferPool::default(),
            agents: HashMap::new(),
            frameworks: HashMap::new(),
            completed_frameworks: VecDeque::new(),
            offers: HashMap::new(),
            next_agent: 0,
            next_framework: 0,
            next_offer: 0,
            next_ping: 0,
            dirty: false,
            start_time: TaskStatus::now(),
            registry: Registry::default(),
            registry_dirty: false,
            given_up: HashSet::new(),
            agent_views: views::AgentViews::default(),
            pending: Vec::new(),
            utilization: utilization::Ring::default(),
            inverse: inverse::InverseOffers::default(),
            operator_subscribers: Vec::new(),
            terminal_tasks: HashMap::new(),
            executors: HashMap::new(),
        }
    }

    // ---- registry -----------------------------------------------------------------------------

    /// The registry to commit, if it changed since the last call.
    pub fn take_registry_change(&mut self) -> Option<Registry> {
        if !self.registry_dirty {
            return None;
        }
        self.registry_dirty = false;
        Some(self.registry.clone())
    }

    /// Carries out what waited for the registry to be committed (the actor calls it after every
    /// successful commit, or when there was nothing to commit): the tasks of agents marked
    /// unreachable are reported TASK_UNREACHABLE (or TASK_LOST), and agents are told to shut
    /// down removed frameworks.
    pub fn after_commit(&mut self) {
        for effect in std::mem::take(&mut self.pending) {
            match effect {
                Pending::Unreachable(id) => {
                    // It may have come back in the same batch: then its tasks run on.
                    if self
                        .agents
                        .get(&id)
                        .is_some_and(|a| a.state == AgentState::Unreachable)
                    {
                        self.mark_agent_tasks(
                            &id,
                            TaskState::Unreachable,
                            TaskState::Lost,
                            "REASON_AGENT_REMOVED",
                            "the agent is unreachable",
                        );
                    }
                }
                Pending::ShutdownFramework(agent_id, framework_id) => {
                    if let Some(link) = self.agents.get(&agent_id).and_then(|a| a.link.clone()) {
                        let _ = link.send(AgentCommand::ShutdownFramework { framework_id });
                    }
                }
            }
        }
    }

    /// Takes over what an earlier leader admitted: its frameworks wait to re-subscribe within
    /// their failover timeout (from now), its agents to re-register within
    /// `--agent-reregister-timeout`; agents it had found unreachable stay so.
    pub fn recover(&mut self, registry: Registry, now: Instant) {
        for (id, info) in &registry.frameworks {
            if self.frameworks.contains_key(id) {
                continue;
            }
            info!(framework_id = %id, failover_timeout = info.failover_timeout_secs, "framework recovered from the registry");
            self.frameworks.insert(
                id.clone(),
                Framework::disconnected(info.clone(), id.clone(), now),
            );
        }
        for (id, entry) in &registry.agents {
            if self.agents.contains_key(id) {
                continue;
            }
            let unreachable = entry.unreachable_since.is_some();
            info!(agent_id = %id, hostname = %entry.info.hostname, unreachable, "agent recovered from the registry");
            let state = if unreachable {
                AgentState::Unreachable
            } else {
                AgentState::Recovering
            };
            let mut agent = Agent::new(entry.info.clone(), id.clone(), state, Some(entry));
            agent.reregister_deadline =
                (!unreachable).then(|| now + self.config.agent_reregister_timeout);
            self.agents.insert(id.clone(), agent);
        }
        self.registry = registry;
    }

    /// Agents of the registry that did not re-register in time become unreachable (their tasks,
    /// unknown to this master, reconcile as TASK_UNREACHABLE or TASK_LOST).
    pub fn reregister_tick(&mut self, now: Instant) {
        let late: Vec<AgentId> = self
            .agents
            .values()
            .filter(|a| {
                a.state == AgentState::Recovering && a.reregister_deadline.is_some_and(|d| now >= d)
            })
            .map(|a| a.id.clone())
            .collect();
        for id in late {
            warn!(agent_id = %id, timeout = ?self.config.agent_reregister_timeout, "agent did not re-register with the new leader: unreachable");
            self.mark_unreachable(&id);
        }
    }

    /// Marks an agent unreachable: in the registry, its offers rescinded, and once that is
    /// committed ([`Master::after_commit`]) its known tasks reported TASK_UNREACHABLE
    /// (partition-aware frameworks) or TASK_LOST.
    fn mark_unreachable(&mut self, id: &AgentId) {
        self.rescind_agent_offers(id);
        if let Some(agent) = self.agents.get_mut(id) {
            agent.state = AgentState::Unreachable;
            agent.link = None;
            agent.conn = None;
            agent.reregister_deadline = None;
        }
        if let Some(entry) = self.registry.agents.get_mut(id) {
            if entry.unreachable_since.is_none() {
                entry.unreachable_since = Some(TaskStatus::now());
                self.registry_dirty = true;
            }
        }
        self.pending.push(Pending::Unreachable(id.clone()));
        self.emit_agent_removed(id);
    }

    fn registry_admit_agent(&mut self, id: &AgentId, info: &AgentInfo) {
        // Who it is and where, not what it has: an agent re-registers with its resources, and
        // the registry stays small (it is rewritten whole on every change).
        let kept = self.registry.agents.get(id);
        let entry = RegisteredAgent {
            info: AgentInfo {
                id: Some(id.clone()),
                hostname: info.hostname.clone(),
                port: info.port,
                resources: Resources::new(),
                attributes: info.attributes.clone(),
            },
            unreachable_since: None,
            reservations: kept.map(|e| e.reservations.clone()).unwrap_or_default(),
            volumes: kept.map(|e| e.volumes.clone()).unwrap_or_default(),
            destroyed: kept.map(|e| e.destroyed.clone()).unwrap_or_default(),
            drain: kept.and_then(|e| e.drain.clone()),
            down: kept.is_some_and(|e| e.down),
        };
        let same = self
            .registry
            .agents
            .get(id)
            .is_some_and(|e| e.unreachable_since.is_none() && e.info == entry.info);
        if !same {
            self.registry.agents.insert(id.clone(), entry);
            self.registry_dirty = true;
        }
    }

    fn registry_admit_framework(&mut self, id: &FrameworkId, info: &FrameworkInfo) {
        if self.registry.frameworks.get(id) != Some(info) {
            self.registry.frameworks.insert(id.clone(), info.clone());
            self.registry_dirty = true;
        }
    }

    fn new_id<T: std::str::FromStr>(&self, sep: &str, n: u64) -> T
    where
        T::Err: std::fmt::Debug,
    {
        // The master id is a UUID, so these are always valid ids.
        #[allow(clippy::unwrap_used)]
        format!("{}-{sep}{n}", self.info.id).parse().unwrap()
    }

    // ---- agents -------------------------------------------------------------------------------

    /// An agent (re-)registers on connection `conn`. Returns its id.
    /// Refuses an agent re-registering with the id of an agent that authenticated as another
    /// principal (one agent cannot take over another's id and tasks).
    pub fn check_agent_principal(
        &self,
        info: &AgentInfo,
        principal: Option<&str>,
    ) -> Result<(), String> {
        let known = info
            .id
            .as_ref()
            .and_then(|id| self.agents.get(id))
            .and_then(|a| a.principal.as_deref());
        match known {
            Some(known) if Some(known) != principal => Err(format!(
                "agent {} registered as principal {known:?}; it cannot re-register as {}",
                info.id.as_ref().map_or("", |id| id.as_str()),
                principal.map_or("an unauthenticated agent".to_string(), |p| format!("{p:?}"))
            )),
            _ => Ok(()),
        }
    }

    /// Records who a registered agent authenticated as (`/state`'s `principal`).
    pub fn set_agent_principal(&mut self, id: &AgentId, principal: Option<String>) {
        if let Some(agent) = self.agents.get_mut(id) {
            agent.principal = principal;
        }
    }

    pub fn register_agent(
        &mut self,
        conn: ConnId,
        mut info: AgentInfo,
        link: AgentLink,
        running: Vec<ReportedTask>,
    ) -> Result<AgentId, String> {
        if info.hostname.is_empty() {
            return Err("the agent's hostname is empty".to_string());
        }
        let id = match info.id.clone() {
            Some(id) => id,
            None => {
                self.next_agent += 1;
                self.new_id("S", self.next_agent)
            }
        };
        info.id = Some(id.clone());
        let now = TaskStatus::now();
        let reregistered = self.agents.contains_key(&id);
        let was_unreachable = self
            .agents
            .get(&id)
            .is_some_and(|a| a.state == AgentState::Unreachable);
        if let Some(agent) = self.agents.get_mut(&id) {
            info!(agent_id = %id, hostname = %info.hostname, "agent re-registered");
            agent.info = info;
            agent.link = Some(link);
            agent.conn = Some(conn);
            agent.state = AgentState::Active;
            agent.missed_pings = 0;
            agent.ping_outstanding = None;
        } else {
            info!(agent_id = %id, hostname = %info.hostname, resources = %info.resources, "agent registered");
            let mut agent = Agent::new(
                info,
                id.clone(),
                AgentState::Active,
                self.registry.agents.get(&id),
            );
            agent.link = Some(link);
            agent.conn = Some(conn);
            agent.registered_time = now;
            self.agents.insert(id.clone(), agent);
        }
        let info = self.agents.get(&id).map(|a| a.info.clone());
        if let Some(info) = info {
            self.registry_admit_agent(&id, &info);
        }
        if let Some(agent) = self.agents.get_mut(&id) {
            agent.reregister_deadline = None;
        }
        if was_unreachable {
            info!(agent_id = %id, "an unreachable agent came back");
        }
        self.reconcile_agent_tasks(&id, running, reregistered, was_unreachable);
        self.destroy_left_volumes(&id);
        self.emit_agent_added(&id);
        self.dirty = true;
        Ok(id)
    }

    /// Brings the master's view of an agent's tasks in line with what the agent reports. The
    /// tasks of an agent coming back from unreachable that this master never knew (it became
    /// leader meanwhile) are treated as if it had marked them: a partition-aware framework's run
    /// again (TASK_RUNNING, `REASON_AGENT_REREGISTERED`), the others' are killed and gone.
    fn reconcile_agent_tasks(
        &mut self,
        agent_id: &AgentId,
        running: Vec<ReportedTask>,
        reregistered: bool,
        was_unreachable: bool,
    ) {
        let reported: HashSet<(FrameworkId, TaskId)> = running
            .iter()
            .filter_map(|t| t.framework.id.clone().map(|f| (f, t.task.task_id.clone())))
            .collect();
        // Tasks the agent reports that the master does not know (e.g. after a master restart).
        for rt in running {
            let Some(fw_id) = rt.framework.id.clone() else {
                continue;
            };
            if rt.state.is_terminal() {
                continue;
            }
            if self.completed_frameworks.iter().any(|f| f.id == fw_id) {
                if let Some(link) = self.agents.get(agent_id).and_then(|a| a.link.clone()) {
                    let _ = link.send(AgentCommand::ShutdownFramework {
                        framework_id: fw_id,
                    });
                }
                continue;
            }
            let fw = self.frameworks.entry(fw_id.clone()).or_insert_with(|| {
                Framework::disconnected(rt.framework.clone(), fw_id.clone(), Instant::now())
            });
            let unknown = !fw.tasks.contains_key(&rt.task.task_id);
            let given_up =
                unknown
                    && (fw.completed_tasks.iter().any(|t| {
                        t.info.task_id == rt.task.task_id && t.info.agent_id == *agent_id
                    }) || (was_unreachable && !fw.info.partition_aware));
            if given_up {
                // The master reported it TASK_LOST while the agent was unreachable: it is
                // killed on the agent and reported gone (Mesos kills the tasks of frameworks
                // that are not partition-aware when their agent comes back).
                info!(framework_id = %fw_id, task_id = %rt.task.task_id, "killing a task the master gave up on");
                if let Some(link) = self.agents.get(agent_id).and_then(|a| a.link.clone()) {
                    let _ = link.send(AgentCommand::Kill {
                        framework_id: fw_id.clone(),
                        task_id: rt.task.task_id.clone(),
                        grace_period_secs: 0.0,
                    });
                }
                self.given_up
                    .insert((fw_id.clone(), rt.task.task_id.clone()));
                let status = master_status(
                    &rt.task,
                    &fw_id,
                    TaskState::Gone,
                    "REASON_AGENT_REREGISTERED",
                    "the agent came back after the task was reported lost; it was killed"
                        .to_string(),
                );
                fw.send(SchedulerEvent::Update(status));
                continue;
            }
            if let Some(task) = fw.tasks.get_mut(&rt.task.task_id) {
                if task.state == TaskState::Unreachable && rt.state != TaskState::Unreachable {
                    // Partition-aware: it was reported unreachable; it is running again.
                    let status = master_status(
                        &task.info,
                        &fw_id,
                        rt.state,
                        "REASON_AGENT_REREGISTERED",
                        "the agent re-registered".to_string(),
                    );
                    self.apply_status(&status);
                } else {
                    task.state = rt.state;
                }
            } else {
                fw.used.add(&rt.task.resources);
                let role = fw.role_of(&rt.task);
                fw.charge(&role, &rt.task.resources);
                if let Some(agent) = self.agents.get_mut(agent_id) {
                    agent.used.add(&rt.task.resources);
                }
                // Back from unreachable: the framework may have been told so by reconciliation.
                let back = was_unreachable.then(|| {
                    master_status(
                        &rt.task,
                        &fw_id,
                        rt.state,
                        "REASON_AGENT_REREGISTERED",
                        "the agent re-registered".to_string(),
                    )
                });
                fw.tasks.insert(
                    rt.task.task_id.clone(),
                    Box::new(Task {
                        info: rt.task,
                        framework_id: fw_id,
                        role,
                        state: rt.state,
                        statuses: vec![(rt.state, TaskStatus::now(), String::new())],
                        latest: None,
                    }),
                );
                if let Some(status) = back {
                    self.apply_status(&status);
                }
            }
        }
        if !reregistered {
            return;
        }
        // Tasks the master knows on this agent that the agent no longer has: lost (Mesos).
        let mut lost = Vec::new();
        for fw in self.frameworks.values() {
            for task in fw.tasks.values() {
                if task.info.agent_id == *agent_id
                    && task.state != TaskState::Staging
                    && !reported.contains(&(fw.id.clone(), task.info.task_id.clone()))
                {
                    lost.push((fw.id.clone(), task.info.clone(), fw.info.partition_aware));
                }
            }
        }
        for (fw_id, task, partition_aware) in lost {
            let state = if partition_aware {
                TaskState::Gone
            } else {
                TaskState::Lost
            };
            let status = master_status(
                &task,
                &fw_id,
                state,
                "REASON_RECONCILIATION",
                "the agent re-registered without this task".to_string(),
            );
            self.apply_status(&status);
        }
    }

    /// The connection `conn` closed: agents on it are disconnected, frameworks on it inactive.
    pub fn connection_closed(&mut self, conn: ConnId, now: Instant) {
        let agent_ids: Vec<AgentId> = self
            .agents
            .values()
            .filter(|a| a.conn == Some(conn))
            .map(|a| a.id.clone())
            .collect();
        for id in agent_ids {
            self.agent_disconnected(&id);
        }
        let fw_ids: Vec<FrameworkId> = self
            .frameworks
            .values()
            .filter(|f| f.conn == Some(conn))
            .map(|f| f.id.clone())
            .collect();
        for id in fw_ids {
            self.framework_disconnected(&id, now);
        }
    }

    fn agent_disconnected(&mut self, id: &AgentId) {
        let Some(agent) = self.agents.get_mut(id) else {
            return;
        };
        warn!(agent_id = %id, "agent disconnected");
        agent.link = None;
        agent.conn = None;
        if agent.state == AgentState::Active {
            agent.state = AgentState::Disconnected;
        }
        self.rescind_agent_offers(id);
    }

    /// An agent that shuts down for good.
    pub fn unregister_agent(&mut self, conn: ConnId, id: &AgentId) {
        if self.agents.get(id).is_some_and(|a| a.conn == Some(conn)) {
            info!(agent_id = %id, "agent unregistered");
            self.rescind_agent_offers(id);
            self.mark_agent_tasks(
                id,
                TaskState::Gone,
                TaskState::Lost,
                "REASON_AGENT_REMOVED",
                "the agent was shut down",
            );
            self.agents.remove(id);
            if self.registry.agents.remove(id).is_some() {
                self.registry_dirty = true;
            }
            self.emit_agent_removed(id);
        }
    }

    fn rescind_agent_offers(&mut self, agent: &AgentId) {
        let ids: Vec<OfferId> = self
            .offers
            .iter()
            .filter(|(_, o)| o.agent_id == *agent)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.rescind(&id);
        }
    }

    fn rescind(&mut self, offer_id: &OfferId) {
        if let Some(offer) = self.remove_offer(offer_id) {
            if let Some(fw) = self.frameworks.get(&offer.framework_id) {
                fw.send(SchedulerEvent::Rescind(offer_id.clone()));
            }
        }
    }

    /// Removes an offer and returns its resources to the agent.
    fn remove_offer(&mut self, offer_id: &OfferId) -> Option<Offer> {
        let offer = self.offers.remove(offer_id)?;
        if let Some(agent) = self.agents.get_mut(&offer.agent_id) {
            agent.offered = agent.offered.saturating_sub(&offer.resources);
        }
        if let Some(fw) = self.frameworks.get_mut(&offer.framework_id) {
            fw.offers.remove(offer_id);
            fw.offered = fw.offered.saturating_sub(&offer.resources);
            fw.release(&offer.role, &offer.resources);
        }
        self.dirty = true;
        Some(offer)
    }

    /// The answer to ping `seq` arrived.
    pub fn pong(&mut self, id: &AgentId, seq: u64) {
        if let Some(agent) = self.agents.get_mut(id) {
            if agent.ping_outstanding == Some(seq) {
                agent.ping_outstanding = None;
                agent.missed_pings = 0;
            }
        }
    }

    /// Every ping timeout: counts unanswered pings, marks agents unreachable, pings again.
    pub fn ping_tick(&mut self) {
        let mut unreachable = Vec::new();
        let max = self.config.max_agent_ping_timeouts;
        for agent in self.agents.values_mut() {
            if matches!(
                agent.state,
                AgentState::Unreachable | AgentState::Recovering
            ) {
                continue;
            }
            if agent.ping_outstanding.is_some() || agent.link.is_none() {
                agent.missed_pings += 1;
            }
            if agent.missed_pings >= max {
                unreachable.push(agent.id.clone());
                continue;
            }
            if let Some(link) = &agent.link {
                self.next_ping += 1;
                agent.ping_outstanding = Some(self.next_ping);
                let _ = link.send(AgentCommand::Ping {
                    agent_id: agent.id.clone(),
                    seq: self.next_ping,
                });
            }
        }
        for id in unreachable {
            warn!(agent_id = %id, pings = max, "agent missed too many pings: unreachable");
            self.mark_unreachable(&id);
        }
    }

    /// Reports every live task of an agent as `aware` (partition-aware frameworks) or `unaware`.
    fn mark_agent_tasks(
        &mut self,
        id: &AgentId,
        aware: TaskState,
        unaware: TaskState,
        reason: &str,
        message: &str,
    ) {
        // The agent's executors are gone with it: their resources come back.
        let executors: Vec<_> = self
            .executors
            .keys()
            .filter(|(_, a, _)| a == id)
            .cloned()
            .collect();
        for key in executors {
            if let Some((role, res)) = self.executors.remove(&key) {
                if let Some(agent) = self.agents.get_mut(id) {
                    agent.used = agent.used.saturating_sub(&res);
                }
                if let Some(fw) = self.frameworks.get_mut(&key.0) {
                    fw.used = fw.used.saturating_sub(&res);
                    fw.release(&role, &res);
                }
            }
        }
        let mut updates = Vec::new();
        for fw in self.frameworks.values() {
            for task in fw.tasks.values() {
                if task.info.agent_id == *id && task.state != aware {
                    let state = if fw.info.partition_aware {
                        aware
                    } else {
                        unaware
                    };
                    updates.push(master_status(
                        &task.info,
                        &fw.id,
                        state,
                        reason,
                        message.to_string(),
                    ));
                }
            }
        }
        for status in updates {
            self.apply_status(&status);
        }
    }

    // ---- frameworks ---------------------------------------------------------------------------

    /// A framework subscribes (or re-subscribes with its id) on connection `conn`.
    pub fn subscribe(
        &mut self,
        conn: ConnId,
        mut info: FrameworkInfo,
        link: SchedulerLink,
    ) -> Result<FrameworkId, CallError> {
        validate_framework_info(&info)?;
        if let Some(id) = &info.id {
            if self.completed_frameworks.iter().any(|f| f.id == *id) {
                return Err(CallError::Removed(id.clone()));
            }
            // A framework's id does not let another principal take it over.
            if let Some(fw) = self.frameworks.get(id) {
                if fw.info.principal != info.principal {
                    warn!(framework_id = %id, principal = info.principal.as_deref().unwrap_or("<none>"), "re-subscription by another principal refused");
                    return Err(CallError::Unauthorized(format!(
                        "framework {id} belongs to principal {:?}; {:?} may not subscribe as it",
                        fw.info.principal.as_deref().unwrap_or(""),
                        info.principal.as_deref().unwrap_or("")
                    )));
                }
            }
        }
        self.authorize_roles(&info)?;
        let id = match info.id.clone() {
            Some(id) => id,
            None => {
                self.next_framework += 1;
                self.new_id("", self.next_framework)
            }
        };
        info.id = Some(id.clone());
        let added = !self.frameworks.contains_key(&id);
        let subscribed = SchedulerEvent::Subscribed {
            framework_id: id.clone(),
            heartbeat_interval_secs: self.config.heartbeat_interval.as_secs_f64(),
            master: self.info.clone(),
        };
        if let Some(fw) = self.frameworks.get_mut(&id) {
            info!(framework_id = %id, name = %info.name, "framework re-subscribed");
            if fw.conn != Some(conn) {
                fw.send(SchedulerEvent::Error("framework failed over".to_string()));
            }
            fw.info = info;
            fw.link = Some(link);
            fw.conn = Some(conn);
            fw.disconnected_at = None;
            fw.send(subscribed);
            // Outstanding offers went to the old connection: rescind them so they are re-offered.
            let offers: Vec<OfferId> = fw.offers.iter().cloned().collect();
            for offer in offers {
                self.remove_offer(&offer);
            }
        } else {
            info!(framework_id = %id, name = %info.name, "framework subscribed");
            let fw = Framework {
                info,
                id: id.clone(),
                link: Some(link),
                conn: Some(conn),
                registered_time: TaskStatus::now(),
                disconnected_at: None,
                tasks: HashMap::new(),
                completed_tasks: VecDeque::new(),
                filters: Default::default(),
                suppressed_roles: HashSet::new(),
                offers: HashSet::new(),
                used: Resources::new(),
                offered: Resources::new(),
                allocated: BTreeMap::new(),
            };
            fw.send(subscribed);
            self.frameworks.insert(id.clone(), fw);
        }
        let info = self.frameworks.get(&id).map(|f| f.info.clone());
        if let Some(info) = info {
            self.registry_admit_framework(&id, &info);
        }
        self.emit_framework(&id, added);
        self.dirty = true;
        Ok(id)
    }

    fn framework_disconnected(&mut self, id: &FrameworkId, now: Instant) {
        let Some(fw) = self.frameworks.get_mut(id) else {
            return;
        };
        info!(framework_id = %id, failover_timeout = fw.info.failover_timeout_secs, "framework disconnected");
        fw.link = None;
        fw.conn = None;
        fw.disconnected_at = Some(now);
        let offers: Vec<OfferId> = fw.offers.iter().cloned().collect();
        for offer in offers {
            self.remove_offer(&offer);
        }
        self.emit_framework(id, false);
        self.failover_tick(now);
    }

    /// Tears down frameworks that stayed disconnected past their failover timeout.
    pub fn failover_tick(&mut self, now: Instant) {
        let expired: Vec<FrameworkId> = self
            .frameworks
            .values()
            .filter(|f| {
                f.disconnected_at.is_some_and(|t| {
                    now.saturating_duration_since(t).as_secs_f64() >= f.info.failover_timeout_secs
                })
            })
            .map(|f| f.id.clone())
            .collect();
        for id in expired {
            info!(framework_id = %id, "framework failover timeout expired: tearing it down");
            self.remove_framework(&id);
        }
    }

    /// Checks that a call on `conn` may act for framework `id`.
    fn authorize_roles(&self, info: &FrameworkInfo) -> Result<(), CallError> {
        authorize_roles(&self.config.acls, info)
    }

    fn caller(&self, conn: ConnId, id: &FrameworkId) -> Result<(), CallError> {
        match self.frameworks.get(id) {
            Some(fw) if fw.conn == Some(conn) => Ok(()),
            Some(_) => Err(CallError::StaleSession(id.clone())),
            None if self.completed_frameworks.iter().any(|f| f.id == *id) => {
                Err(CallError::Removed(id.clone()))
            }
            None => Err(CallError::UnknownFramework(id.clone())),
        }
    }

    /// MESSAGE: relays `data` to one of the framework's executors on `agent_id`. Like Mesos,
    /// delivery is best effort: a message for an agent that is not connected is dropped.
    pub fn framework_message(
        &mut self,
        conn: ConnId,
        id: &FrameworkId,
        agent_id: &AgentId,
        executor_id: &ExecutorId,
        data: Vec<u8>,
    ) -> Result<(), CallError> {
        self.caller(conn, id)?;
        let agent = self
            .agents
            .get(agent_id)
            .ok_or_else(|| CallError::Invalid(format!("unknown agent {agent_id}")))?;
        match &agent.link {
            Some(link) => {
                let _ = link.send(AgentCommand::FrameworkMessage {
                    framework_id: id.clone(),
                    executor_id: executor_id.clone(),
                    data,
                });
            }
            None => {
                warn!(framework_id = %id, agent_id = %agent_id, "framework message dropped: the agent is not connected")
            }
        }
        Ok(())
    }

    /// SHUTDOWN: asks `agent_id` to stop one of the framework's executors (its tasks end
    /// TASK_KILLED, reported by the agent as usual).
    pub fn shutdown_executor(
        &mut self,
        conn: ConnId,
        id: &FrameworkId,
        agent_id: &AgentId,
        executor_id: &ExecutorId,
    ) -> Result<(), CallError> {
        self.caller(conn, id)?;
        let agent = self
            .agents
            .get(agent_id)
            .ok_or_else(|| CallError::Invalid(format!("unknown agent {agent_id}")))?;
        if let Some(link) = &agent.link {
            let _ = link.send(AgentCommand::ShutdownExecutor {
                framework_id: id.clone(),
                executor_id: executor_id.clone(),
            });
        }
        Ok(())
    }

    /// UPDATE_FRAMEWORK: replaces the framework's info without a failover, as Mesos does: the
    /// name, roles, capabilities, labels, hostname, webui_url and failover timeout may change;
    /// `user`, `principal` and `checkpoint` may not (refused naming the field). Offers allocated
    /// to a role the framework left are rescinded, and its suppression of such roles forgotten;
    /// `suppressed_roles` (a subset of the roles), when given, become the suppressed roles and
    /// the others are revived. The allocator sees the new roles at its next run.
    pub fn update_framework(
        &mut self,
        conn: ConnId,
        id: &FrameworkId,
        mut info: FrameworkInfo,
        suppressed_roles: Option<Vec<String>>,
    ) -> Result<(), CallError> {
        self.caller(conn, id)?;
        match &info.id {
            Some(given) if given != id => {
                return Err(CallError::Invalid(format!(
                    "framework_info.id {given} is not the framework's id {id}"
                )))
            }
            _ => info.id = Some(id.clone()),
        }
        validate_framework_info(&info)?;
        let Some(fw) = self.frameworks.get_mut(id) else {
            return Err(CallError::UnknownFramework(id.clone()));
        };
        let old = &fw.info;
        if info.user != old.user {
            return Err(CallError::Invalid(format!(
                "framework_info.user cannot be changed (it is {:?}, not {:?})",
                old.user, info.user
            )));
        }
        if info.principal != old.principal {
            return Err(CallError::Invalid(format!(
                "framework_info.principal cannot be changed (it is {:?})",
                old.principal.as_deref().unwrap_or("")
            )));
        }
        if info.checkpoint != old.checkpoint {
            return Err(CallError::Invalid(format!(
                "framework_info.checkpoint cannot be changed (it is {})",
                old.checkpoint
            )));
        }
        let acls = Arc::clone(&self.config.acls);
        authorize_roles(&acls, &info)?;
        let roles = info.effective_roles();
        if let Some(role) = suppressed_roles
            .iter()
            .flatten()
            .find(|r| !roles.contains(r))
        {
            return Err(CallError::Invalid(format!(
                "suppressed_roles: {role:?} is not one of the framework's roles {roles:?}"
            )));
        }
        match suppressed_roles {
            Some(suppressed) => fw.suppressed_roles = suppressed.into_iter().collect(),
            None => fw.suppressed_roles.retain(|r| roles.contains(r)),
        }
        info!(framework_id = %id, name = %info.name, roles = ?roles, "framework updated");
        fw.info = info.clone();
        let left: Vec<OfferId> = fw
            .offers
            .iter()
            .filter(|o| {
                self.offers
                    .get(*o)
                    .is_some_and(|offer| !roles.contains(&offer.role))
            })
            .cloned()
            .collect();
        for offer in left {
            self.rescind(&offer);
        }
        self.registry_admit_framework(id, &info);
        self.emit_framework(id, false);
        self.dirty = true;
        Ok(())
    }

    /// An executor's message, relayed to its framework if the agent speaking is that agent.
    pub fn executor_message(
        &mut self,
        conn: ConnId,
        agent_id: &AgentId,
        framework_id: &FrameworkId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    ) {
        if self.agents.get(agent_id).and_then(|a| a.conn) != Some(conn) {
            warn!(agent_id = %agent_id, "executor message from a stale agent connection dropped");
            return;
        }
        match self.frameworks.get(framework_id) {
            Some(fw) => fw.send(SchedulerEvent::Message {
                agent_id: agent_id.clone(),
                executor_id,
                data,
            }),
            None => {
                warn!(framework_id = %framework_id, "executor message for an unknown framework dropped")
            }
        }
    }

    /// A custom executor ended: its framework hears a FAILURE event.
    pub fn executor_exited(
        &mut self,
        conn: ConnId,
        agent_id: &AgentId,
        framework_id: &FrameworkId,
        executor_id: ExecutorId,
        status: Option<i32>,
    ) {
        if self.agents.get(agent_id).and_then(|a| a.conn) != Some(conn) {
            return;
        }
        let key = (framework_id.clone(), agent_id.clone(), executor_id.clone());
        if let Some((role, res)) = self.executors.remove(&key) {
            if let Some(agent) = self.agents.get_mut(agent_id) {
                agent.used = agent.used.saturating_sub(&res);
            }
            if let Some(fw) = self.frameworks.get_mut(framework_id) {
                fw.used = fw.used.saturating_sub(&res);
                fw.release(&role, &res);
            }
            self.dirty = true;
        }
        if let Some(fw) = self.frameworks.get(framework_id) {
            fw.send(SchedulerEvent::Failure {
                agent_id: Some(agent_id.clone()),
                executor_id: Some(executor_id),
                status,
            });
        }
    }

    pub fn teardown(&mut self, conn: ConnId, id: &FrameworkId) -> Result<(), CallError> {
        self.caller(conn, id)?;
        info!(framework_id = %id, "framework teardown");
        self.remove_framework(id);
        Ok(())
    }

    /// Removes a framework: its offers go back, its tasks are killed on their agents and kept as
    /// completed (TASK_KILLED), and the framework moves to the completed list.
    fn remove_framework(&mut self, id: &FrameworkId) {
        if self.registry.frameworks.remove(id).is_some() {
            self.registry_dirty = true;
        }
        self.drop_inverse_offers_of(id);
        let Some(fw) = self.frameworks.get(id) else {
            return;
        };
        let offers: Vec<OfferId> = fw.offers.iter().cloned().collect();
        for offer in offers {
            self.remove_offer(&offer);
        }
        let Some(mut fw) = self.frameworks.remove(id) else {
            return;
        };
        let mut agents = HashSet::new();
        let executors: Vec<_> = self
            .executors
            .keys()
            .filter(|(f, _, _)| f == id)
            .cloned()
            .collect();
        for key in executors {
            if let Some((_, res)) = self.executors.remove(&key) {
                agents.insert(key.1.clone());
                if let Some(agent) = self.agents.get_mut(&key.1) {
                    agent.used = agent.used.saturating_sub(&res);
                }
            }
        }
        for (_, mut task) in fw.tasks.drain() {
            agents.insert(task.info.agent_id.clone());
            if let Some(agent) = self.agents.get_mut(&task.info.agent_id) {
                agent.used = agent.used.saturating_sub(&task.info.resources);
            }
            task.state = TaskState::Killed;
            task.statuses.push((
                TaskState::Killed,
                TaskStatus::now(),
                "framework removed".to_string(),
            ));
            *self.terminal_tasks.entry(TaskState::Killed).or_default() += 1;
            fw.completed_tasks.push_back(task);
        }
        for agent_id in agents {
            self.pending
                .push(Pending::ShutdownFramework(agent_id, id.clone()));
        }
        fw.used = Resources::new();
        fw.allocated.clear();
        fw.link = None;
        fw.conn = None;
        while fw.completed_tasks.len() > self.config.max_completed_tasks_per_framework {
            fw.completed_tasks.pop_front();
        }
        self.emit_framework_removed(id, &fw.info);
        self.completed_frameworks.push_back(fw);
        while self.completed_frameworks.len() > self.config.max_completed_frameworks {
            self.completed_frameworks.pop_front();
        }
        self.dirty = true;
    }

    pub fn revive(
        &mut self,
        conn: ConnId,
        id: &FrameworkId,
        roles: Vec<String>,
    ) -> Result<(), CallError> {
        self.caller(conn, id)?;
        if let Some(fw) = self.frameworks.get_mut(id) {
            if !fw.filters.is_empty() {
                fw.filters = Default::default();
            }
            if roles.is_empty() {
                fw.suppressed_roles.clear();
            } else {
                for role in roles {
                    fw.suppressed_roles.remove(&role);
                }
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// Makes `roles` the framework's suppressed roles (Mesos' `suppressed_roles` of SUBSCRIBE):
    /// the others are revived. The caller checked that they are among its roles.
    pub fn set_suppressed_roles(&mut self, id: &FrameworkId, roles: Vec<String>) {
        if let Some(fw) = self.frameworks.get_mut(id) {
            fw.suppressed_roles = roles.into_iter().collect();
        }
        self.dirty = true;
    }

    pub fn suppress(
        &mut self,
        conn: ConnId,
        id: &FrameworkId,
        roles: Vec<String>,
    ) -> Result<(), CallError> {
        self.caller(conn, id)?;
        if let Some(fw) = self.frameworks.get_mut(id) {
            let roles = if roles.is_empty() {
                fw.info.effective_roles()
            } else {
                roles
            };
            fw.suppressed_roles.extend(roles);
        }
        Ok(())
    }

    // ---- offers -------------------------------------------------------------------------------

    fn add_filter(
        &mut self,
        fw_id: &FrameworkId,
        agent: &AgentId,
        resources: Resources,
        refuse_seconds: f64,
        now: Instant,
    ) {
        if refuse_seconds.is_nan() || refuse_seconds <= 0.0 || resources.is_empty() {
            return;
        }
        let refuse =
            Duration::from_secs_f64(refuse_seconds.min(self.config.max_refuse.as_secs_f64()));
        if let Some(fw) = self.frameworks.get_mut(fw_id) {
            Arc::make_mut(&mut fw.filters).insert(
                agent.clone(),
                RefuseFilter {
                    resources,
                    expires: now + refuse,
                },
            );
        }
    }

    pub fn decline(
        &mut self,
        conn: ConnId,
        id: &FrameworkId,
        offer_ids: &[OfferId],
        refuse_seconds: f64,
        now: Instant,
    ) -> Result<(), CallError> {
        self.caller(conn, id)?;
        for offer_id in offer_ids {
            if self
                .offers
                .get(offer_id)
                .is_some_and(|o| o.framework_id == *id)
            {
                if let Some(offer) = self.remove_offer(offer_id) {
                    self.add_filter(id, &offer.agent_id, offer.resources, refuse_seconds, now);
                }
            }
        }
        Ok(())
    }

    /// Accepts offers with operations, applied in order (LAUNCH, RESERVE, UNRESERVE, CREATE,
    /// DESTROY), each on what the ones before it left. Unknown or foreign offers fail the whole
    /// call (and every offer named in it is recovered); an invalid task gets TASK_ERROR and the
    /// others go on; an invalid reservation or volume operation is dropped, the others applied,
    /// and the call answers an error naming what was dropped.
    pub fn accept(
        &mut self,
        conn: ConnId,
        id: &FrameworkId,
        offer_ids: &[OfferId],
        operations: Vec<Operation>,
        refuse_seconds: f64,
        now: Instant,
    ) -> Result<(), CallError> {
        let launches: Vec<&TaskInfo> = operations
            .iter()
            .filter_map(|op| match op {
                Operation::Launch(tasks) | Operation::LaunchGroup { tasks, .. } => {
                    Some(tasks.iter())
                }
                _ => None,
            })
            .flatten()
            .collect();
        self.caller(conn, id)?;
        if offer_ids.is_empty() {
            return Err(CallError::InvalidOffers(
                "no offer ids were given".to_string(),
            ));
        }
        let mut problem = None;
        let mut seen = HashSet::new();
        let mut agent_id: Option<AgentId> = None;
        let mut role: Option<String> = None;
        for offer_id in offer_ids {
            if !seen.insert(offer_id.clone()) {
                problem = Some(format!("offer {offer_id} appears more than once"));
                break;
            }
            match self.offers.get(offer_id) {
                None => {
                    problem = Some(format!("offer {offer_id} is unknown or no longer valid"));
                    break;
                }
                Some(o) if o.framework_id != *id => {
                    problem = Some(format!("offer {offer_id} was not made to framework {id}"));
                    break;
                }
                Some(o) => {
                    match &agent_id {
                        Some(a) if *a != o.agent_id => {
                            problem = Some("the offers are on different agents".to_string());
                            break;
                        }
                        _ => agent_id = Some(o.agent_id.clone()),
                    }
                    match &role {
                        Some(r) if *r != o.role => {
                            problem = Some(
                                "aggregated offers must be allocated to the same role".to_string(),
                            );
                            break;
                        }
                        _ => role = Some(o.role.clone()),
                    }
                }
            }
        }
        // Remove (recover) every valid offer named in the call.
        let mut offered = Resources::new();
        for offer_id in offer_ids {
            if self
                .offers
                .get(offer_id)
                .is_some_and(|o| o.framework_id == *id)
            {
                if let Some(offer) = self.remove_offer(offer_id) {
                    offered.add(&offer.resources);
                }
            }
        }
        if let Some(problem) = problem {
            for task in launches {
                let status = master_status(
                    task,
                    id,
                    TaskState::Dropped,
                    "REASON_INVALID_OFFERS",
                    format!("invalid offers: {problem}"),
                );
                if let Some(fw) = self.frameworks.get(id) {
                    fw.send(SchedulerEvent::Update(status));
                }
            }
            return Err(CallError::InvalidOffers(problem));
        }
        let (Some(agent_id), Some(role)) = (agent_id, role) else {
            return Err(CallError::InvalidOffers(
                "no offer ids were given".to_string(),
            ));
        };
        let mut remaining = offered;
        let mut batch_ids = HashSet::new();
        let mut dropped = Vec::new();
        for (n, operation) in operations.into_iter().enumerate() {
            let tasks = match operation {
                Operation::Launch(tasks) => tasks,
                Operation::LaunchGroup { executor, tasks } => {
                    let ids: Vec<TaskId> = tasks.iter().map(|t| t.task_id.clone()).collect();
                    match self
                        .validate_group(id, &agent_id, &executor, &tasks, &remaining, &batch_ids)
                    {
                        Ok(needed) => {
                            remaining = remaining.saturating_sub(&needed);
                            self.launch_group(id, &agent_id, &role, *executor, tasks);
                        }
                        Err(message) => {
                            warn!(framework_id = %id, executor_id = %executor.executor_id, %message, "task group refused");
                            for task in &tasks {
                                let status = master_status(
                                    task,
                                    id,
                                    TaskState::Error,
                                    "REASON_TASK_GROUP_INVALID",
                                    message.clone(),
                                );
                                if let Some(fw) = self.frameworks.get(id) {
                                    fw.send(SchedulerEvent::Update(status));
                                }
                            }
                        }
                    }
                    batch_ids.extend(ids);
                    continue;
                }
                other => {
                    let name = other.name();
                    match self.apply_operation(id, &agent_id, &role, other, &mut remaining) {
                        Ok(()) => {}
                        Err(why) => {
                            warn!(framework_id = %id, agent_id = %agent_id, operation = name, %why, "operation dropped");
                            dropped.push(format!("operation {} ({name}): {why}", n + 1));
                        }
                    }
                    continue;
                }
            };
            for task in tasks {
                if let Some(message) = self.unauthorized_task(id, &task, None) {
                    batch_ids.insert(task.task_id.clone());
                    let status = master_status(
                        &task,
                        id,
                        TaskState::Error,
                        "REASON_TASK_UNAUTHORIZED",
                        message,
                    );
                    if let Some(fw) = self.frameworks.get(id) {
                        fw.send(SchedulerEvent::Update(status));
                    }
                    continue;
                }
                let error = self.validate_task(id, &agent_id, &task, &remaining, &batch_ids);
                batch_ids.insert(task.task_id.clone());
                if let Some(message) = error {
                    warn!(framework_id = %id, task_id = %task.task_id, %message, "task refused");
                    let status =
                        master_status(&task, id, TaskState::Error, "REASON_TASK_INVALID", message);
                    if let Some(fw) = self.frameworks.get(id) {
                        fw.send(SchedulerEvent::Update(status));
                    }
                    continue;
                }
                remaining = remaining.saturating_sub(&task.resources);
                // A custom executor started by this task takes its own resources too.
                if let Some(e) = task
                    .executor
                    .as_ref()
                    .filter(|e| e.kind == strata_schema::ExecutorKind::Custom)
                {
                    let key = (id.clone(), agent_id.clone(), e.executor_id.clone());
                    if !self.executors.contains_key(&key) {
                        remaining = remaining.saturating_sub(&e.resources);
                    }
                }
                self.launch(id, &agent_id, &role, task);
            }
        }
        self.add_filter(id, &agent_id, remaining, refuse_seconds, now);
        self.dirty = true;
        if dropped.is_empty() {
            Ok(())
        } else {
            Err(CallError::Invalid(format!(
                "{}; the other operations were applied",
                dropped.join("; ")
            )))
        }
    }

    /// `run_tasks` (Mesos' RUN_TASK, object: the task's user — CommandInfo.user, else the
    /// executor's, else FrameworkInfo.user) and Strata's root rule: a task that runs as root —
    /// it names root, or names no user and so runs as the agent's user — needs a `run_tasks` ACL
    /// naming root for the framework's principal ([`Acls::allows_root`]); `permissive` never
    /// grants it. Answers the refusal's message; denials are logged.
    ///
    /// [`Acls::allows_root`]: strata_security::acl::Acls::allows_root
    fn unauthorized_task(
        &self,
        fw_id: &FrameworkId,
        task: &TaskInfo,
        group_executor: Option<&ExecutorInfo>,
    ) -> Option<String> {
        use strata_security::acl::Action;
        let fw = self.frameworks.get(fw_id)?;
        let principal = fw.info.principal.as_deref().filter(|p| !p.is_empty());
        let named = task
            .command
            .user
            .clone()
            .or_else(|| task.executor.as_ref().and_then(|e| e.command.user.clone()))
            .or_else(|| group_executor.and_then(|e| e.command.user.clone()))
            .filter(|u| !u.is_empty());
        let user = named
            .clone()
            .or_else(|| Some(fw.info.user.clone()).filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "root".to_string());
        let acls = &self.config.acls;
        let decision = acls.authorize(principal, Action::RunTask, Some(&user));
        if !decision.allowed {
            crate::auth::denied(principal, &decision, Some(&user));
            return Some(format!(
                "principal {:?} is not authorized to run task {} as user {user:?}: {decision}",
                principal.unwrap_or(""),
                task.task_id
            ));
        }
        if user == "root" || named.is_none() {
            let decision = acls.allows_root(principal);
            if !decision.allowed {
                crate::auth::denied(principal, &decision, Some("root"));
                let why = if named.is_none() {
                    "it names no user, so it would run as the agent's user (root)"
                } else {
                    "it runs as root"
                };
                return Some(format!(
                    "principal {:?} may not run task {} as root ({why}): running as root needs a \
                     run_tasks ACL naming \"root\" in its users for this principal ({decision})",
                    principal.unwrap_or(""),
                    task.task_id
                ));
            }
        }
        None
    }

    fn validate_task(
        &self,
        fw_id: &FrameworkId,
        agent_id: &AgentId,
        task: &TaskInfo,
        remaining: &Resources,
        batch: &HashSet<TaskId>,
    ) -> Option<String> {
        let fw = self.frameworks.get(fw_id)?;
        if task.agent_id != *agent_id {
            return Some(format!(
                "task {} names agent {} but the offers are on agent {agent_id}",
                task.task_id, task.agent_id
            ));
        }
        if fw.tasks.contains_key(&task.task_id) || batch.contains(&task.task_id) {
            return Some(format!(
                "task id {} is already in use by a live task of this framework",
                task.task_id
            ));
        }
        if task.resources.is_empty() {
            return Some("the task uses no resources (give it cpus and mem)".to_string());
        }
        // A custom executor not running there yet needs its own resources too.
        let mut needed = task.resources.clone();
        if let Some(e) = task
            .executor
            .as_ref()
            .filter(|e| e.kind == strata_schema::ExecutorKind::Custom)
        {
            let key = (fw_id.clone(), agent_id.clone(), e.executor_id.clone());
            if !self.executors.contains_key(&key) {
                needed.add(&e.resources);
            }
        }
        if !remaining.contains(&needed) {
            return Some(format!(
                "the task needs {} but the offers hold only {}",
                needed, remaining
            ));
        }
        if let Some(Err(why)) = task.container.as_ref().map(|c| c.validate()) {
            return Some(format!("invalid container: {why}"));
        }
        if let Err(why) = task.validate() {
            return Some(format!("invalid command: {why}"));
        }
        if let Some(grace) = task.kill_grace_period_secs {
            if !grace.is_finite() || grace < 0.0 {
                return Some(
                    "the kill grace period must be a non-negative number of seconds".to_string(),
                );
            }
        }
        None
    }

    /// Why a task group cannot launch (all of it or none), or what it takes of the offers: its
    /// tasks' resources and, for a custom executor not running there yet, the executor's.
    fn validate_group(
        &self,
        fw_id: &FrameworkId,
        agent_id: &AgentId,
        executor: &ExecutorInfo,
        tasks: &[TaskInfo],
        remaining: &Resources,
        batch: &HashSet<TaskId>,
    ) -> Result<Resources, String> {
        executor
            .validate()
            .map_err(|why| format!("invalid executor: {why}"))?;
        if tasks.is_empty() {
            return Err("the task group holds no task".to_string());
        }
        for task in tasks {
            if let Some(message) = self.unauthorized_task(fw_id, task, Some(executor)) {
                return Err(message);
            }
        }
        let mut needed = Resources::new();
        if executor.kind == strata_schema::ExecutorKind::Custom
            && !self.executors.contains_key(&(
                fw_id.clone(),
                agent_id.clone(),
                executor.executor_id.clone(),
            ))
        {
            needed.add(&executor.resources);
        }
        let mut seen = batch.clone();
        for task in tasks {
            if task.executor.is_some() {
                return Err(format!(
                    "task {} names an executor: the tasks of a group run under the group's",
                    task.task_id
                ));
            }
            let left = remaining.saturating_sub(&needed);
            // A custom executor's task needs no command (its resources are counted above).
            let mut probe = task.clone();
            if executor.kind == strata_schema::ExecutorKind::Custom {
                probe.executor = Some(Box::new(ExecutorInfo {
                    resources: Resources::new(),
                    ..executor.clone()
                }));
            }
            if let Some(why) = self.validate_task(fw_id, agent_id, &probe, &left, &seen) {
                return Err(format!("task {}: {why}", task.task_id));
            }
            seen.insert(task.task_id.clone());
            needed.add(&task.resources);
        }
        if !remaining.contains(&needed) {
            return Err(format!(
                "the group needs {needed} but the offers hold only {remaining}"
            ));
        }
        Ok(needed)
    }

    /// Charges a custom executor's resources the first time it is launched on an agent.
    fn charge_executor(
        &mut self,
        fw_id: &FrameworkId,
        agent_id: &AgentId,
        role: &str,
        executor: &ExecutorInfo,
    ) {
        if executor.kind != strata_schema::ExecutorKind::Custom {
            return;
        }
        let key = (
            fw_id.clone(),
            agent_id.clone(),
            executor.executor_id.clone(),
        );
        if self.executors.contains_key(&key) {
            return;
        }
        let (Some(agent), Some(fw)) = (
            self.agents.get_mut(agent_id),
            self.frameworks.get_mut(fw_id),
        ) else {
            return;
        };
        agent.used.add(&executor.resources);
        fw.used.add(&executor.resources);
        fw.charge(role, &executor.resources);
        self.executors
            .insert(key, (role.to_string(), executor.resources.clone()));
    }

    /// LAUNCH_GROUP, validated: the tasks are recorded and charged, and the agent gets them in
    /// one command.
    fn launch_group(
        &mut self,
        fw_id: &FrameworkId,
        agent_id: &AgentId,
        role: &str,
        executor: ExecutorInfo,
        tasks: Vec<TaskInfo>,
    ) {
        self.charge_executor(fw_id, agent_id, role, &executor);
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        let Some(fw) = self.frameworks.get_mut(fw_id) else {
            return;
        };
        info!(framework_id = %fw_id, executor_id = %executor.executor_id, agent_id = %agent_id, tasks = tasks.len(), "launching task group");
        for task in &tasks {
            agent.used.add(&task.resources);
            fw.used.add(&task.resources);
            fw.charge(role, &task.resources);
            fw.tasks.insert(
                task.task_id.clone(),
                Box::new(Task {
                    info: task.clone(),
                    framework_id: fw_id.clone(),
                    role: role.to_string(),
                    state: TaskState::Staging,
                    statuses: vec![(TaskState::Staging, TaskStatus::now(), String::new())],
                    latest: None,
                }),
            );
        }
        let ids: Vec<TaskId> = tasks.iter().map(|t| t.task_id.clone()).collect();
        if let Some(link) = &agent.link {
            let _ = link.send(AgentCommand::LaunchGroup {
                framework: Box::new(fw.info.clone()),
                executor: Box::new(executor),
                tasks,
            });
        }
        for task_id in &ids {
            self.emit_task_added(fw_id, task_id);
        }
    }

    fn launch(&mut self, fw_id: &FrameworkId, agent_id: &AgentId, role: &str, task: TaskInfo) {
        if let Some(executor) = &task.executor {
            self.charge_executor(fw_id, agent_id, role, executor);
        }
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        let Some(fw) = self.frameworks.get_mut(fw_id) else {
            return;
        };
        agent.used.add(&task.resources);
        fw.used.add(&task.resources);
        fw.charge(role, &task.resources);
        info!(framework_id = %fw_id, task_id = %task.task_id, agent_id = %agent_id, "launching task");
        if let Some(link) = &agent.link {
            let _ = link.send(AgentCommand::Launch {
                framework: Box::new(fw.info.clone()),
                task: Box::new(task.clone()),
            });
        }
        let task_id = task.task_id.clone();
        fw.tasks.insert(
            task.task_id.clone(),
            Box::new(Task {
                info: task,
                framework_id: fw_id.clone(),
                role: role.to_string(),
                state: TaskState::Staging,
                statuses: vec![(TaskState::Staging, TaskStatus::now(), String::new())],
                latest: None,
            }),
        );
        self.emit_task_added(fw_id, &task_id);
    }

    // ---- tasks --------------------------------------------------------------------------------

    pub fn kill(
        &mut self,
        conn: ConnId,
        fw_id: &FrameworkId,
        task_id: &TaskId,
    ) -> Result<(), CallError> {
        self.caller(conn, fw_id)?;
        self.kill_task(fw_id, task_id);
        Ok(())
    }

    fn kill_task(&mut self, fw_id: &FrameworkId, task_id: &TaskId) {
        let Some(fw) = self.frameworks.get(fw_id) else {
            return;
        };
        match fw.tasks.get(task_id) {
            Some(task) => {
                let agent_link = self
                    .agents
                    .get(&task.info.agent_id)
                    .and_then(|a| a.link.clone());
                match agent_link {
                    Some(link) => {
                        info!(framework_id = %fw_id, task_id = %task_id, "killing task");
                        let _ = link.send(AgentCommand::Kill {
                            framework_id: fw_id.clone(),
                            task_id: task_id.clone(),
                            grace_period_secs: task.info.kill_grace_period_secs.unwrap_or(0.0),
                        });
                    }
                    None => {
                        warn!(task_id = %task_id, "cannot kill: the task's agent is not connected")
                    }
                }
            }
            None => {
                // Mesos: killing an unknown task answers TASK_LOST (TASK_UNKNOWN if partition aware).
                let state = if fw.info.partition_aware {
                    TaskState::Unknown
                } else {
                    TaskState::Lost
                };
                let status = TaskStatus {
                    task_id: task_id.clone(),
                    state,
                    message: "attempted to kill an unknown task".to_string(),
                    source: StatusSource::Master,
                    reason: Some("REASON_RECONCILIATION".to_string()),
                    agent_id: None,
                    framework_id: Some(fw_id.clone()),
                    container_id: None,
                    timestamp: TaskStatus::now(),
                    uuid: None,
                    exit_code: None,
                };
                fw.send(SchedulerEvent::Update(status));
            }
        }
    }

    /// An operator asks to kill a task by id (optionally naming the framework).
    pub fn operator_kill(
        &mut self,
        task_id: &str,
        framework: Option<&str>,
    ) -> Result<(FrameworkId, AgentId), OperatorKillError> {
        let matches: Vec<(FrameworkId, AgentId)> = self
            .frameworks
            .values()
            .filter(|f| framework.is_none_or(|want| f.id.as_str() == want))
            .filter_map(|f| {
                f.tasks
                    .values()
                    .find(|t| t.info.task_id.as_str() == task_id)
                    .map(|t| (f.id.clone(), t.info.agent_id.clone()))
            })
            .collect();
        match matches.as_slice() {
            [] => Err(OperatorKillError::NotFound(task_id.to_string())),
            [(fw, agent)] => {
                let (fw, agent) = (fw.clone(), agent.clone());
                if let Ok(tid) = TaskId::new(task_id) {
                    self.kill_task(&fw, &tid);
                }
                Ok((fw, agent))
            }
            many => Err(OperatorKillError::Ambiguous {
                task: task_id.to_string(),
                frameworks: many
                    .iter()
                    .map(|(f, _)| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Status updates from the agent registered on `conn`, each as by [`Self::status_update`];
    /// the error names the first refused (the others were applied).
    pub fn status_updates(
        &mut self,
        conn: ConnId,
        agent_id: &AgentId,
        statuses: Vec<TaskStatus>,
    ) -> Result<(), String> {
        let total = statuses.len();
        let mut refused = 0;
        let mut first = None;
        for status in statuses {
            let task = status.task_id.clone();
            if let Err(why) = self.status_update(conn, agent_id, status) {
                refused += 1;
                first.get_or_insert((task, why));
            }
        }
        match first {
            None => Ok(()),
            Some((_, why)) if total == 1 => Err(why),
            Some((task, why)) => Err(format!(
                "{refused} of {total} status updates refused; the first, of task {task}: {why}"
            )),
        }
    }

    /// A status update from the agent registered on `conn`.
    pub fn status_update(
        &mut self,
        conn: ConnId,
        agent_id: &AgentId,
        status: TaskStatus,
    ) -> Result<(), String> {
        let Some(agent) = self.agents.get(agent_id) else {
            return Err(format!("agent {agent_id} is not registered"));
        };
        if agent.conn != Some(conn) {
            return Err(format!(
                "agent {agent_id} is registered on another connection"
            ));
        }
        let link = agent.link.clone();
        let Some(fw_id) = status.framework_id.clone() else {
            return Err("the status update names no framework".to_string());
        };
        if status.agent_id.as_ref() != Some(agent_id) {
            return Err(format!(
                "the status update is for another agent than {agent_id}"
            ));
        }
        let given_up = self
            .given_up
            .contains(&(fw_id.clone(), status.task_id.clone()));
        if given_up && status.state.is_terminal() {
            self.given_up
                .remove(&(fw_id.clone(), status.task_id.clone()));
        }
        if given_up || !self.frameworks.contains_key(&fw_id) {
            // The framework is gone, or already told the task is gone: acknowledge on its
            // behalf so the agent stops retrying.
            if let (Some(link), Some(uuid)) = (link, status.uuid) {
                let _ = link.send(AgentCommand::Acknowledge {
                    framework_id: fw_id,
                    task_id: status.task_id,
                    uuid,
                });
            }
            return Ok(());
        }
        let mut status = status;
        let mark_gone = self
            .agents
            .get(agent_id)
            .and_then(|a| a.drain.as_ref())
            .is_some_and(|d| d.mark_gone);
        if mark_gone && status.state == TaskState::Killed {
            // Mesos' DRAIN_AGENT with mark_gone: the tasks it kills are gone by operator.
            status.state = TaskState::GoneByOperator;
            status.reason = Some("REASON_AGENT_DRAINING".to_string());
        }
        self.apply_status(&status);
        Ok(())
    }

    /// Records a task's new state (recovering its resources when terminal) and forwards it.
    fn apply_status(&mut self, status: &TaskStatus) {
        let Some(fw_id) = &status.framework_id else {
            return;
        };
        let Some(fw) = self.frameworks.get_mut(fw_id) else {
            return;
        };
        if let Some(task) = fw.tasks.get_mut(&status.task_id) {
            let was_terminal = task.state.is_terminal();
            if task.state != status.state {
                task.statuses
                    .push((status.state, status.timestamp, status.message.clone()));
            }
            task.state = status.state;
            task.latest = Some(Box::new(status.clone()));
            if status.state.is_terminal() && !was_terminal {
                if let Some(task) = fw.tasks.remove(&status.task_id) {
                    fw.used = fw.used.saturating_sub(&task.info.resources);
                    fw.release(&task.role, &task.info.resources);
                    if let Some(agent) = self.agents.get_mut(&task.info.agent_id) {
                        agent.used = agent.used.saturating_sub(&task.info.resources);
                    }
                    *self.terminal_tasks.entry(status.state).or_default() += 1;
                    fw.completed_tasks.push_back(task);
                    while fw.completed_tasks.len() > self.config.max_completed_tasks_per_framework {
                        fw.completed_tasks.pop_front();
                    }
                    fw.shrink_tasks();
                }
                self.dirty = true;
            }
        }
        fw.send(SchedulerEvent::Update(status.clone()));
        self.emit_task_updated(status);
    }

    /// Acknowledgements, each as by [`Self::acknowledge`]; the error is the first refusal (the
    /// others were forwarded).
    pub fn acknowledge_all(
        &mut self,
        conn: ConnId,
        fw_id: &FrameworkId,
        acks: Vec<(AgentId, TaskId, UpdateUuid)>,
    ) -> Result<(), CallError> {
        let mut first = Ok(());
        for (agent_id, task_id, uuid) in acks {
            if let Err(err) = self.acknowledge(conn, fw_id, &agent_id, task_id, uuid) {
                if first.is_ok() {
                    first = Err(err);
                }
            }
        }
        first
    }

    pub fn acknowledge(
        &mut self,
        conn: ConnId,
        fw_id: &FrameworkId,
        agent_id: &AgentId,
        task_id: TaskId,
        uuid: UpdateUuid,
    ) -> Result<(), CallError> {
        self.caller(conn, fw_id)?;
        match self.agents.get(agent_id) {
            Some(agent) => {
                if let Some(link) = &agent.link {
                    let _ = link.send(AgentCommand::Acknowledge {
                        framework_id: fw_id.clone(),
                        task_id,
                        uuid,
                    });
                }
                Ok(())
            }
            None => Err(CallError::Invalid(format!("agent {agent_id} is unknown"))),
        }
    }

    /// Explicit (named tasks) or implicit (empty list: all live tasks) reconciliation.
    pub fn reconcile(
        &mut self,
        conn: ConnId,
        fw_id: &FrameworkId,
        tasks: Vec<(TaskId, Option<AgentId>)>,
    ) -> Result<(), CallError> {
        self.caller(conn, fw_id)?;
        let Some(fw) = self.frameworks.get(fw_id) else {
            return Ok(());
        };
        let status_of = |task: &Task| {
            let mut s = task.latest.as_deref().cloned().unwrap_or_else(|| {
                master_status(
                    &task.info,
                    fw_id,
                    task.state,
                    "REASON_RECONCILIATION",
                    String::new(),
                )
            });
            s.uuid = None;
            s.reason = Some("REASON_RECONCILIATION".to_string());
            s.timestamp = TaskStatus::now();
            s
        };
        let mut updates = Vec::new();
        if tasks.is_empty() {
            updates.extend(fw.tasks.values().map(|t| status_of(t)));
        } else {
            for (task_id, agent_id) in tasks {
                if let Some(task) = fw.tasks.get(&task_id) {
                    updates.push(status_of(task));
                } else if let Some(task) = fw
                    .completed_tasks
                    .iter()
                    .rev()
                    .find(|t| t.info.task_id == task_id)
                {
                    updates.push(status_of(task));
                } else {
                    // A task this master does not know: what its agent's state says, as Mesos
                    // answers. An agent of the registry that has not re-registered yet may still
                    // report it, so that question gets no answer until it does or is given up.
                    let agent = agent_id.as_ref().and_then(|id| self.agents.get(id));
                    let (aware, message) = match agent.map(|a| a.state) {
                        Some(AgentState::Recovering) => continue,
                        Some(AgentState::Unreachable) => (
                            TaskState::Unreachable,
                            "reconciliation: the task's agent is unreachable",
                        ),
                        Some(AgentState::Active | AgentState::Disconnected) => (
                            TaskState::Gone,
                            "reconciliation: the task is unknown to its agent",
                        ),
                        None => (TaskState::Unknown, "reconciliation: task is unknown"),
                    };
                    let state = if fw.info.partition_aware {
                        aware
                    } else {
                        TaskState::Lost
                    };
                    updates.push(TaskStatus {
                        task_id,
                        state,
                        message: message.to_string(),
                        source: StatusSource::Master,
                        reason: Some("REASON_RECONCILIATION".to_string()),
                        agent_id,
                        framework_id: Some(fw_id.clone()),
                        container_id: None,
                        timestamp: TaskStatus::now(),
                        uuid: None,
                        exit_code: None,
                    });
                }
            }
        }
        for u in updates {
            fw.send(SchedulerEvent::Update(u));
        }
        Ok(())
    }

    pub fn heartbeat(&self) {
        for fw in self.frameworks.values() {
            fw.send(SchedulerEvent::Heartbeat);
        }
    }

    // ---- allocation ---------------------------------------------------------------------------

    /// Whether something changed that may allow new offers.
    pub fn needs_allocation(&self) -> bool {
        self.dirty
    }

    /// The allocator's view of the agents that may be offered and of every framework.
    pub(super) fn allocator_views(&self) -> (Vec<AgentView>, Vec<FrameworkView>) {
        let mut agents: Vec<AgentView> = self
            .agents
            .values()
            .filter(|a| a.offerable())
            .map(|a| AgentView {
                id: a.id.clone(),
                available: a.available(),
                total: a.total(),
            })
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        (agents, self.framework_views())
    }

    /// The allocator's view of every framework, sorted by id.
    fn framework_views(&self) -> Vec<FrameworkView> {
        let mut frameworks: Vec<FrameworkView> = self
            .frameworks
            .values()
            .map(|f| FrameworkView {
                id: f.id.clone(),
                roles: f.info.effective_roles(),
                active: f.active(),
                suppressed_roles: f.suppressed_roles.iter().cloned().collect(),
                allocated: f.allocated.clone(),
                filters: Arc::clone(&f.filters),
            })
            .collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        frameworks
    }

    /// Runs the allocator and sends the resulting offers.
    pub fn allocate(&mut self, now: Instant) {
        self.dirty = false;
        let mut views = std::mem::take(&mut self.agent_views);
        let agents = views.refresh(self);
        #[cfg(debug_assertions)]
        views::assert_same(agents, &self.allocator_views().0);
        let frameworks = self.framework_views();
        let roles = self.role_configs();
        let allocations = allocator::allocate(&allocator::View {
            agents,
            frameworks: &frameworks,
            roles: &roles,
            min_allocatable: &self.config.min_allocatable,
            now,
        });
        self.agent_views = views;
        let mut by_framework: HashMap<FrameworkId, Vec<OfferEvent>> = HashMap::new();
        for alloc in allocations {
            self.next_offer += 1;
            let offer_id: OfferId = self.new_id("O", self.next_offer);
            let unavailability = self
                .agents
                .get(&alloc.agent)
                .and_then(|a| self.window_of(&a.info.hostname));
            let dynamic = self
                .registry
                .agents
                .get(&alloc.agent)
                .map(|a| a.reservations.clone())
                .unwrap_or_default();
            let Some(agent) = self.agents.get_mut(&alloc.agent) else {
                continue;
            };
            let Some(fw) = self.frameworks.get_mut(&alloc.framework) else {
                continue;
            };
            let role = alloc.role.clone();
            agent.offered.add(&alloc.resources);
            fw.offered.add(&alloc.resources);
            fw.charge(&role, &alloc.resources);
            fw.offers.insert(offer_id.clone());
            by_framework
                .entry(alloc.framework.clone())
                .or_default()
                .push(OfferEvent {
                    id: offer_id.clone(),
                    framework_id: alloc.framework.clone(),
                    role: role.clone(),
                    unavailability,
                    agent_id: alloc.agent.clone(),
                    hostname: agent.info.hostname.clone(),
                    resources: alloc.resources.clone(),
                    attributes: agent.info.attributes.clone(),
                    dynamic,
                });
            self.offers.insert(
                offer_id,
                Offer {
                    framework_id: alloc.framework,
                    agent_id: alloc.agent,
                    role,
                    resources: alloc.resources,
                    expires: self.config.offer_timeout.map(|t| now + t),
                },
            );
        }
        for (fw_id, offers) in by_framework {
            if let Some(fw) = self.frameworks.get(&fw_id) {
                fw.send(SchedulerEvent::Offers(offers));
            }
        }
        self.reconcile_inverse_offers(now);
    }

    /// When the earliest refuse filter expires (so the actor can allocate again then).
    pub fn next_filter_expiry(&self) -> Option<Instant> {
        self.frameworks
            .values()
            .flat_map(|f| f.filters.values().map(|x| x.expires))
            .chain(self.next_inverse_expiry())
            .min()
    }

    /// Rescinds the offers outstanding for longer than `--offer-timeout` (their resources go
    /// back to the allocator; no filter is installed, as in Mesos).
    pub fn expire_offers(&mut self, now: Instant) {
        let expired: Vec<OfferId> = self
            .offers
            .iter()
            .filter(|(_, o)| o.expires.is_some_and(|e| e <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            info!(offer_id = %id, "offer timed out: rescinded");
            self.rescind(&id);
        }
    }

    /// Drops expired filters; marks the state dirty if any expired.
    pub fn expire_filters(&mut self, now: Instant) {
        for fw in self.frameworks.values_mut() {
            if fw.filters.values().any(|f| f.expires <= now) {
                Arc::make_mut(&mut fw.filters).retain(|_, f| f.expires > now);
                self.dirty = true;
            }
        }
        self.expire_inverse_filters(now);
    }

    // ---- views --------------------------------------------------------------------------------

    fn task_json(task: &Task) -> Json {
        let mut json = json!({
            "id": task.info.task_id,
            "name": task.info.name,
            "framework_id": task.framework_id,
            "slave_id": task.info.agent_id,
            "state": task.state,
            "resources": task.info.resources.to_json(),
            "statuses": task.statuses.iter().map(|(s, t, m)| json!({"state": s, "timestamp": t, "message": m})).collect::<Vec<_>>(),
            "container_id": task.latest.as_ref().and_then(|s| s.container_id.clone()),
        });
        if let Some(container) = &task.info.container {
            json["container"] = json!(container);
        }
        json
    }

    fn framework_json(fw: &Framework, active: bool) -> Json {
        json!({
            "id": fw.id,
            "name": fw.info.name,
            "user": fw.info.user,
            "role": fw.info.effective_roles().first().cloned().unwrap_or_default(),
            "roles": fw.info.effective_roles(),
            "hostname": fw.info.hostname,
            "failover_timeout": fw.info.failover_timeout_secs,
            "checkpoint": fw.info.checkpoint,
            "principal": fw.info.principal,
            "webui_url": fw.info.webui_url,
            "capabilities": fw.info.capabilities,
            "labels": fw.info.labels.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
            "active": active && fw.active(),
            "connected": fw.active(),
            "registered_time": fw.registered_time,
            "used_resources": fw.used.to_json(),
            "offered_resources": fw.offered.to_json(),
            "tasks": fw.tasks.values().map(|t| Self::task_json(t)).collect::<Vec<_>>(),
            "completed_tasks": fw.completed_tasks.iter().map(|t| Self::task_json(t)).collect::<Vec<_>>(),
            "offers": fw.offers.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
        })
    }

    /// The `/state` document, in Mesos' shape.
    fn agent_json(&self, a: &Agent) -> Json {
        let total = a.total();
        let mut reserved = serde_json::Map::new();
        for role in total
            .iter()
            .map(|r| r.role.as_str())
            .filter(|r| *r != strata_schema::DEFAULT_ROLE)
        {
            reserved.insert(role.to_string(), total.reserved(role).to_json());
        }
        let service = self.agent_service(&a.id);
        let mut json = json!({
            "id": a.id,
            "hostname": a.info.hostname,
            "port": a.info.port,
            "pid": format!("slave(1)@{}:{}", a.info.hostname, a.info.port),
            "resources": total.to_json(),
            "used_resources": a.used.to_json(),
            "offered_resources": a.offered.to_json(),
            "free_resources": total.saturating_sub(&a.used).to_json(),
            "unreserved_resources": total.unreserved().to_json(),
            "reserved_resources": reserved,
            "dynamic_reservations": a.reservations.to_string(),
            "attributes": a.info.attributes.to_json(),
            "active": a.state == AgentState::Active,
            "deactivated": a.drain.is_some() || a.down,
            "state": a.state.name(),
            "maintenance": service,
            "registered_time": a.registered_time,
        });
        if let Some(principal) = &a.principal {
            json["principal"] = json!(principal);
        }
        if let Some(drain) = &a.drain {
            json["drain_info"] = json!({
                "state": service,
                "config": {
                    "max_grace_period": drain.max_grace_period_secs,
                    "mark_gone": drain.mark_gone,
                },
            });
        }
        json
    }

    pub fn state_json(&self) -> Json {
        let mut agents: Vec<&Agent> = self.agents.values().collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        let mut frameworks: Vec<&Framework> = self.frameworks.values().collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        let count = |s| self.agents.values().filter(|a| a.state == s).count();
        let (mut total, mut used, mut offered) =
            (Resources::new(), Resources::new(), Resources::new());
        for a in self
            .agents
            .values()
            .filter(|a| a.state != AgentState::Unreachable)
        {
            total.add(&a.total());
            used.add(&a.used);
            offered.add(&a.offered);
        }
        json!({
            "version": self.info.version,
            "id": self.info.id,
            "hostname": self.info.hostname,
            "port": self.info.port,
            "pid": format!("master@{}:{}", self.info.ip, self.info.port),
            "start_time": self.start_time,
            "elected_time": self.start_time,
            "activated_slaves": count(AgentState::Active),
            "deactivated_slaves": count(AgentState::Disconnected),
            "unreachable_slaves": count(AgentState::Unreachable),
            "total_resources": total.to_json(),
            "used_resources": used.to_json(),
            "offered_resources": offered.to_json(),
            "free_resources": total.saturating_sub(&used).to_json(),
            "slaves": agents.iter().map(|a| self.agent_json(a)).collect::<Vec<_>>(),
            "weights": self.weights_json(),
            "quota": self.quota_json()["configs"],
            "maintenance_status": self.maintenance_json(),
            "frameworks": frameworks.iter().map(|f| Self::framework_json(f, true)).collect::<Vec<_>>(),
            "completed_frameworks": self.completed_frameworks.iter().map(|f| Self::framework_json(f, false)).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
pub(crate) mod tests;

mod events;
mod inverse;
pub mod json;
mod operations;
mod operator_view;
pub mod utilization;
mod views;
pub use events::OperatorLink;
pub use inverse::InverseOfferEvent;
pub use operations::{MachineId, Operation, OperatorError};
pub use operator_view::TasksQuery;

/// `register_frameworks` (Mesos' REGISTER_FRAMEWORK, object: each role) for the framework's
/// principal; the refusal names the role and the rule.
fn authorize_roles(
    acls: &strata_security::acl::Acls,
    info: &FrameworkInfo,
) -> Result<(), CallError> {
    let principal = info.principal.as_deref().filter(|p| !p.is_empty());
    for role in info.effective_roles() {
        let decision = acls.authorize(
            principal,
            strata_security::acl::Action::RegisterFramework,
            Some(&role),
        );
        if !decision.allowed {
            crate::auth::denied(principal, &decision, Some(&role));
            return Err(CallError::Unauthorized(format!(
                "principal {:?} is not authorized to register with role {role:?}: {decision}",
                principal.unwrap_or("")
            )));
        }
    }
    Ok(())
}
