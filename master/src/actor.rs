//! The actor that owns the master's state: one task with a mailbox. The RPC and HTTP front ends
//! send it [`Msg`]s; it applies them to [`Master`] in order, allocates after each batch of
//! messages, and runs the timers (pings, heartbeats, failover timeouts, filter expiry).

use crate::registry::Registry;
use crate::registry::{DrainConfig, QuotaConfig};
use crate::state::{
    AgentLink, CallError, ConnId, MachineId, Master, Operation, OperatorError, OperatorKillError,
    ReportedTask, SchedulerLink,
};
use std::time::{Duration, Instant};
use strata_ha::registry::Store;
use strata_ha::zk::Leadership;
use strata_schema::{
    AgentId, AgentInfo, ExecutorId, FrameworkId, FrameworkInfo, MasterInfo, OfferId, Resources,
    TaskId, TaskStatus, UpdateUuid,
};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::info;

pub type Reply<T> = oneshot::Sender<T>;

/// Everything the front ends can ask of the master.
pub enum Msg {
    RegisterAgent {
        conn: ConnId,
        info: AgentInfo,
        link: AgentLink,
        running: Vec<ReportedTask>,
        /// Who the agent authenticated as (a client certificate's CN or a credential's
        /// principal), if it did.
        principal: Option<String>,
        reply: Reply<Result<(AgentId, MasterInfo), String>>,
    },
    /// Status updates of one agent, in order (one call of `statusUpdate` or `statusUpdates`).
    StatusUpdates {
        conn: ConnId,
        agent_id: AgentId,
        statuses: Vec<TaskStatus>,
        reply: Reply<Result<(), String>>,
    },
    UnregisterAgent {
        conn: ConnId,
        agent_id: AgentId,
    },
    Pong {
        agent_id: AgentId,
        seq: u64,
    },
    Subscribe {
        conn: ConnId,
        info: FrameworkInfo,
        link: SchedulerLink,
        /// The roles the framework subscribes suppressed in (Mesos' `subscribe.suppressed_roles`;
        /// a subset of its roles, checked by the front end); the others are not suppressed.
        /// `None`: a re-subscription keeps what was suppressed.
        suppressed_roles: Option<Vec<String>>,
        reply: Reply<Result<FrameworkId, CallError>>,
    },
    Call {
        conn: ConnId,
        framework_id: FrameworkId,
        call: Call,
        reply: Reply<Result<(), CallError>>,
    },
    ConnectionClosed {
        conn: ConnId,
    },
    /// An executor's message for its framework, relayed by its agent.
    ExecutorMessage {
        conn: ConnId,
        agent_id: AgentId,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    },
    /// A custom executor ended (its agent tells; its tasks' updates come on their own).
    ExecutorExited {
        conn: ConnId,
        agent_id: AgentId,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        /// The wait status, as Mesos' `Event.Failure.status`.
        status: Option<i32>,
    },
    OperatorKill {
        task_id: String,
        framework_id: Option<String>,
        reply: Reply<Result<(FrameworkId, AgentId), OperatorKillError>>,
    },
    /// `/state`, serialized on the actor ([`Master::state_json_chunks`]).
    GetState {
        reply: Reply<crate::state::json::Chunks>,
    },
    /// The utilisation samples of the last hour (`GET /master/utilization`).
    GetUtilization {
        reply: Reply<serde_json::Value>,
    },
    /// An operator's request about roles, reservations or maintenance.
    Operator {
        call: OperatorCall,
        reply: Reply<Result<serde_json::Value, OperatorError>>,
    },
}

/// What an operator may read or change besides tasks.
#[derive(Debug, Clone)]
pub enum OperatorCall {
    Roles,
    Quota,
    Weights,
    Maintenance,
    Schedule,
    SetSchedule(Vec<crate::registry::MaintenanceWindow>),
    SetQuota {
        role: String,
        quota: QuotaConfig,
    },
    SetWeights(Vec<(String, f64)>),
    Reserve {
        agent_id: AgentId,
        resources: Resources,
    },
    Unreserve {
        agent_id: AgentId,
        resources: Resources,
    },
    CreateVolumes {
        agent_id: AgentId,
        volumes: Resources,
    },
    DestroyVolumes {
        agent_id: AgentId,
        volumes: Resources,
    },
    Drain {
        agent_id: AgentId,
        config: DrainConfig,
    },
    Reactivate {
        agent_id: AgentId,
    },
    MachinesDown(Vec<MachineId>),
    MachinesUp(Vec<MachineId>),
    /// The Mesos operator endpoints' reads (`state/operator_view.rs`).
    View(View),
    /// The operator's TEARDOWN of a framework.
    Teardown(FrameworkId),
    /// The v1 operator SUBSCRIBE: answers SUBSCRIBED; the events follow on the link.
    Subscribe(crate::state::OperatorLink),
}

/// What the Mesos operator endpoints read (v0 and v1).
#[derive(Debug, Clone)]
pub enum View {
    Summary,
    Frameworks(Option<String>),
    Agents(Option<String>),
    Tasks(crate::state::TasksQuery),
    Metrics,
    State,
    V1Agents,
    V1Frameworks,
    V1Tasks,
    V1Executors,
    V1Master,
    V1Roles,
}

impl View {
    fn read(self, master: &Master) -> serde_json::Value {
        match self {
            Self::Summary => master.state_summary_json(),
            Self::Frameworks(id) => master.frameworks_json(id.as_deref()),
            Self::Agents(id) => master.agents_json(id.as_deref()),
            Self::Tasks(q) => master.tasks_json(&q),
            Self::Metrics => master.metrics_json(),
            Self::State => master.get_state_v1(),
            Self::V1Agents => master.get_agents_v1(),
            Self::V1Frameworks => master.get_frameworks_v1(),
            Self::V1Tasks => master.get_tasks_v1(),
            Self::V1Executors => master.get_executors_v1(),
            Self::V1Master => master.get_master_v1(),
            Self::V1Roles => master.get_roles_v1(),
        }
    }
}

impl OperatorCall {
    /// Answers a read, or applies a change (answering `{}`).
    fn apply(self, master: &mut Master) -> Result<serde_json::Value, OperatorError> {
        let done = |r: Result<(), OperatorError>| r.map(|()| serde_json::json!({}));
        match self {
            Self::Roles => Ok(master.roles_json()),
            Self::Quota => Ok(master.quota_json()),
            Self::Weights => Ok(master.weights_json()),
            Self::Maintenance => Ok(master.maintenance_json()),
            Self::Schedule => Ok(master.schedule_json()),
            Self::SetSchedule(windows) => done(master.set_schedule(windows)),
            Self::SetQuota { role, quota } => done(master.set_quota(&role, quota)),
            Self::SetWeights(weights) => done(master.set_weights(weights)),
            Self::Reserve {
                agent_id,
                resources,
            } => done(master.operator_reserve(&agent_id, resources)),
            Self::Unreserve {
                agent_id,
                resources,
            } => done(master.operator_unreserve(&agent_id, resources)),
            Self::CreateVolumes { agent_id, volumes } => {
                done(master.operator_create_volumes(&agent_id, volumes))
            }
            Self::DestroyVolumes { agent_id, volumes } => {
                done(master.operator_destroy_volumes(&agent_id, volumes))
            }
            Self::Drain { agent_id, config } => done(master.drain_agent(&agent_id, config)),
            Self::Reactivate { agent_id } => done(master.reactivate_agent(&agent_id)),
            Self::MachinesDown(machines) => done(master.machines_down(&machines)),
            Self::MachinesUp(machines) => done(master.machines_up(&machines)),
            Self::View(view) => Ok(view.read(master)),
            Self::Teardown(id) => done(master.operator_teardown(&id)),
            Self::Subscribe(link) => Ok(master.operator_subscribe(link)),
        }
    }
}

/// A subscribed framework's calls.
pub enum Call {
    Accept {
        offer_ids: Vec<OfferId>,
        operations: Vec<Operation>,
        refuse_seconds: f64,
    },
    Decline {
        offer_ids: Vec<OfferId>,
        refuse_seconds: f64,
    },
    Kill {
        task_id: TaskId,
    },
    /// Acknowledgements of status updates: (agent, task, update uuid), in order.
    Acknowledge {
        acks: Vec<(AgentId, TaskId, UpdateUuid)>,
    },
    Reconcile {
        tasks: Vec<(TaskId, Option<AgentId>)>,
    },
    Revive {
        roles: Vec<String>,
    },
    Suppress {
        roles: Vec<String>,
    },
    Teardown,
    /// A framework message for one of its executors (Mesos' MESSAGE).
    Message {
        agent_id: AgentId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    },
    /// Stop one of the framework's executors and its tasks (Mesos' SHUTDOWN).
    Shutdown {
        agent_id: AgentId,
        executor_id: ExecutorId,
    },
    /// Answer inverse offers: ACCEPT_INVERSE_OFFERS (`accept`) or DECLINE_INVERSE_OFFERS.
    AnswerInverseOffers {
        offer_ids: Vec<OfferId>,
        accept: bool,
        refuse_seconds: f64,
    },
    /// Change the framework's info without failing over (Mesos' UPDATE_FRAMEWORK).
    UpdateFramework {
        info: Box<FrameworkInfo>,
        /// Mesos' `update_framework.suppressed_roles`: the roles suppressed from now on (the
        /// others are revived); `None` keeps the suppression as it is.
        suppressed_roles: Option<Vec<String>>,
    },
}

/// Timer periods of the actor.
#[derive(Debug, Clone)]
pub struct Timers {
    pub agent_ping_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub allocation_interval: Duration,
}

/// Makes the registry's store once this master leads.
pub type StoreSource = Box<dyn FnOnce() -> Store + Send>;

/// Commits the registry if it changed, then carries out what waited for it: a master never acts
/// on a change it could not commit, so a failed write ends the actor (and the master: a standby
/// takes over) before any of it is sent.
async fn commit(master: &mut Master, store: &mut Store) -> Result<(), String> {
    if let Some(registry) = master.take_registry_change() {
        store
            .store(&registry.to_json())
            .await
            .map_err(|err| format!("cannot commit the registry to {}: {err}", store.location()))?;
    }
    master.after_commit();
    Ok(())
}

/// Replies held until the registry holding what they admit is committed.
type Deferred = Vec<Box<dyn FnOnce() + Send>>;

/// Applies `msg`. Replies that admit an agent or a framework are pushed to `deferred`: they go
/// out once the registry holding the admission is committed (one commit per batch of messages).
fn handle(master: &mut Master, msg: Msg, now: Instant, deferred: &mut Deferred) {
    match msg {
        Msg::RegisterAgent {
            conn,
            info,
            link,
            running,
            principal,
            reply,
        } => {
            let result = master
                .check_agent_principal(&info, principal.as_deref())
                .and_then(|()| master.register_agent(conn, info, link, running))
                .map(|id| {
                    master.set_agent_principal(&id, principal);
                    (id, master.info.clone())
                });
            deferred.push(Box::new(move || {
                let _ = reply.send(result);
            }));
        }
        Msg::StatusUpdates {
            conn,
            agent_id,
            statuses,
            reply,
        } => {
            let _ = reply.send(master.status_updates(conn, &agent_id, statuses));
        }
        Msg::UnregisterAgent { conn, agent_id } => master.unregister_agent(conn, &agent_id),
        Msg::Pong { agent_id, seq } => master.pong(&agent_id, seq),
        Msg::Subscribe {
            conn,
            info,
            link,
            suppressed_roles,
            reply,
        } => {
            let result = master.subscribe(conn, info, link);
            // In the same batch: no allocation runs between the two.
            if let (Ok(id), Some(roles)) = (&result, suppressed_roles) {
                master.set_suppressed_roles(id, roles);
            }
            deferred.push(Box::new(move || {
                let _ = reply.send(result);
            }));
        }
        Msg::Call {
            conn,
            framework_id: id,
            call,
            reply,
        } => {
            let result = match call {
                Call::Accept {
                    offer_ids,
                    operations,
                    refuse_seconds,
                } => master.accept(conn, &id, &offer_ids, operations, refuse_seconds, now),
                Call::Decline {
                    offer_ids,
                    refuse_seconds,
                } => master.decline(conn, &id, &offer_ids, refuse_seconds, now),
                Call::Kill { task_id } => master.kill(conn, &id, &task_id),
                Call::Acknowledge { acks } => master.acknowledge_all(conn, &id, acks),
                Call::Reconcile { tasks } => master.reconcile(conn, &id, tasks),
                Call::Revive { roles } => master.revive(conn, &id, roles),
                Call::Suppress { roles } => master.suppress(conn, &id, roles),
                Call::Teardown => master.teardown(conn, &id),
                Call::Message {
                    agent_id,
                    executor_id,
                    data,
                } => master.framework_message(conn, &id, &agent_id, &executor_id, data),
                Call::Shutdown {
                    agent_id,
                    executor_id,
                } => master.shutdown_executor(conn, &id, &agent_id, &executor_id),
                Call::UpdateFramework {
                    info,
                    suppressed_roles,
                } => master.update_framework(conn, &id, *info, suppressed_roles),
                Call::AnswerInverseOffers {
                    offer_ids,
                    accept,
                    refuse_seconds,
                } => {
                    master.answer_inverse_offers(conn, &id, &offer_ids, accept, refuse_seconds, now)
                }
            };
            let _ = reply.send(result);
        }
        Msg::ConnectionClosed { conn } => master.connection_closed(conn, now),
        Msg::ExecutorMessage {
            conn,
            agent_id,
            framework_id,
            executor_id,
            data,
        } => master.executor_message(conn, &agent_id, &framework_id, executor_id, data),
        Msg::ExecutorExited {
            conn,
            agent_id,
            framework_id,
            executor_id,
            status,
        } => master.executor_exited(conn, &agent_id, &framework_id, executor_id, status),
        Msg::OperatorKill {
            task_id,
            framework_id,
            reply,
        } => {
            let _ = reply.send(master.operator_kill(&task_id, framework_id.as_deref()));
        }
        Msg::GetState { reply } => {
            let _ = reply.send(master.state_json_chunks());
        }
        Msg::GetUtilization { reply } => {
            let _ = reply.send(master.utilization_json());
        }
        Msg::Operator { call, reply } => {
            // A change is answered once the registry holding it is committed.
            let result = call.apply(master);
            deferred.push(Box::new(move || {
                let _ = reply.send(result);
            }));
        }
    }
}

/// Runs the actor until `shutdown` resolves or every sender is gone: it waits to lead, takes over
/// the registry, then serves. An error ends the master: leadership lost, or a registry that
/// cannot be read or written.
pub async fn run(
    mut master: Master,
    mut mailbox: mpsc::UnboundedReceiver<Msg>,
    timers: Timers,
    shutdown: impl std::future::Future<Output = ()>,
    mut leadership: watch::Receiver<Leadership>,
    store: StoreSource,
) -> Result<(), String> {
    tokio::pin!(shutdown);
    loop {
        let current = leadership.borrow_and_update().clone();
        match current {
            Leadership::Leading => break,
            Leadership::Lost(reason) => return Err(format!("lost the election: {reason}")),
            Leadership::Following(leader) => {
                info!(leader = ?leader.as_ref().map(|l| l.endpoint()), "standing by");
            }
        }
        tokio::select! {
            changed = leadership.changed() => {
                if changed.is_err() {
                    return Err("the election ended".to_string());
                }
            }
            _ = &mut shutdown => return Ok(()),
        }
    }
    // The store of the session that won (a standby may have rejoined with a new one).
    let mut store = store();
    let registry = match store
        .load()
        .await
        .map_err(|err| format!("cannot read the registry: {err}"))?
    {
        Some(data) => {
            Registry::from_json(&data).map_err(|err| format!("{} ({})", err, store.location()))?
        }
        None => Registry::default(),
    };
    info!(
        agents = registry.agents.len(),
        frameworks = registry.frameworks.len(),
        registry = %store.location(),
        "leading: recovered the registry"
    );
    master.recover(registry, Instant::now());
    let mut ping = tokio::time::interval(timers.agent_ping_timeout);
    let mut heartbeat = tokio::time::interval(timers.heartbeat_interval);
    let mut allocation = tokio::time::interval(timers.allocation_interval);
    let mut failover = tokio::time::interval(Duration::from_secs(1));
    let mut utilization = tokio::time::interval(crate::state::utilization::SAMPLE_PERIOD);
    for t in [
        &mut ping,
        &mut heartbeat,
        &mut allocation,
        &mut failover,
        &mut utilization,
    ] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    // Allocation on events runs at most every MIN_ALLOCATION_GAP: a storm of small batches (a
    // thousand agents re-registering with a new leader) then costs a few allocations over all
    // agents instead of one per batch.
    let mut last_allocation = Instant::now() - MIN_ALLOCATION_GAP;
    // The gap after the last allocation: longer when allocating is slow (many agents), so that
    // under a stream of events the actor spends most of its time on the events.
    let mut allocation_gap = MIN_ALLOCATION_GAP;
    let mut allocate_soon: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            _ = async { allocate_soon.as_mut().expect("guarded").await }, if allocate_soon.is_some() => {
                allocate_soon = None;
            }
            msg = mailbox.recv() => {
                let Some(msg) = msg else { break };
                let now = Instant::now();
                let mut deferred = Deferred::new();
                handle(&mut master, msg, now, &mut deferred);
                // Drain what is already queued, commit the registry once for the whole batch,
                // then answer the admissions and allocate once.
                while let Ok(msg) = mailbox.try_recv() {
                    handle(&mut master, msg, now, &mut deferred);
                }
                commit(&mut master, &mut store).await?;
                for reply in deferred {
                    reply();
                }
            }
            changed = leadership.changed() => {
                let current = leadership.borrow_and_update().clone();
                match current {
                    Leadership::Leading => {}
                    Leadership::Lost(reason) => return Err(format!("lost leadership: {reason}")),
                    Leadership::Following(leader) => {
                        return Err(format!(
                            "lost leadership to {}",
                            leader.map_or("another master".to_string(), |l| l.endpoint())
                        ))
                    }
                }
                if changed.is_err() {
                    return Err("lost leadership: the election ended".to_string());
                }
            }
            _ = ping.tick() => master.ping_tick(),
            _ = heartbeat.tick() => master.heartbeat(),
            _ = allocation.tick() => {
                master.expire_filters(Instant::now());
                master.expire_offers(Instant::now());
                // Take back offers the quotas need (a guarantee unmet, a limit lowered).
                master.quota_tick(Instant::now());
                // The batched allocation also re-offers what filters held back.
                master.allocate(Instant::now());
                last_allocation = Instant::now();
                continue;
            }
            _ = failover.tick() => {
                master.failover_tick(Instant::now());
                master.reregister_tick(Instant::now());
            }
            _ = utilization.tick() => {
                master.sample_utilization();
                master.expire_state_buffers(Instant::now());
            }
            _ = &mut shutdown => break,
        }
        // Ticks change the registry too (agents found unreachable, frameworks torn down).
        commit(&mut master, &mut store).await?;
        if master.needs_allocation() {
            let now = Instant::now();
            if now.duration_since(last_allocation) >= allocation_gap {
                master.allocate(now);
                last_allocation = now;
                allocation_gap = gap_after(now.elapsed());
            } else if allocate_soon.is_none() {
                allocate_soon = Some(Box::pin(tokio::time::sleep_until(
                    (last_allocation + allocation_gap).into(),
                )));
            }
        }
    }
    Ok(())
}

/// The shortest time between two event-driven allocations.
const MIN_ALLOCATION_GAP: Duration = Duration::from_millis(10);

/// The gap (start to start) after an event-driven allocation that took `took`: at least
/// [`MIN_ALLOCATION_GAP`], and five times the allocation's own time, so that allocating takes at
/// most a fifth of the actor's time however many agents there are (ten thousand agents take
/// milliseconds an allocation).
fn gap_after(took: Duration) -> Duration {
    MIN_ALLOCATION_GAP.max(took.saturating_mul(5))
}
