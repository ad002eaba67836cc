//! The actor that owns the master's state: one task with a mailbox. The RPC and HTTP front ends
//! send it [`Msg`]s; it applies them to [`Master`] in order, allocates after each batch of
//! messages, and runs the timers (pings, heartbeats, failover timeouts, filter expiry).

use crate::state::{
    AgentLink, CallError, ConnId, Master, OperatorKillError, ReportedTask, SchedulerLink,
};
use std::time::{Duration, Instant};
use strata_schema::{
    AgentId, AgentInfo, FrameworkId, FrameworkInfo, MasterInfo, OfferId, TaskId, TaskInfo,
    TaskStatus, UpdateUuid,
};
use tokio::sync::{mpsc, oneshot};

pub type Reply<T> = oneshot::Sender<T>;

/// Everything the front ends can ask of the master.
pub enum Msg {
    RegisterAgent {
        conn: ConnId,
        info: AgentInfo,
        link: AgentLink,
        running: Vec<ReportedTask>,
        reply: Reply<Result<(AgentId, MasterInfo), String>>,
    },
    StatusUpdate {
        conn: ConnId,
        agent_id: AgentId,
        status: TaskStatus,
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
    OperatorKill {
        task_id: String,
        framework_id: Option<String>,
        reply: Reply<Result<(FrameworkId, AgentId), OperatorKillError>>,
    },
    GetState {
        reply: Reply<serde_json::Value>,
    },
}

/// A subscribed framework's calls.
pub enum Call {
    Accept {
        offer_ids: Vec<OfferId>,
        launches: Vec<TaskInfo>,
        refuse_seconds: f64,
    },
    Decline {
        offer_ids: Vec<OfferId>,
        refuse_seconds: f64,
    },
    Kill {
        task_id: TaskId,
    },
    Acknowledge {
        agent_id: AgentId,
        task_id: TaskId,
        uuid: UpdateUuid,
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
}

/// Timer periods of the actor.
#[derive(Debug, Clone)]
pub struct Timers {
    pub agent_ping_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub allocation_interval: Duration,
}

fn handle(master: &mut Master, msg: Msg, now: Instant) {
    match msg {
        Msg::RegisterAgent {
            conn,
            info,
            link,
            running,
            reply,
        } => {
            let result = master
                .register_agent(conn, info, link, running)
                .map(|id| (id, master.info.clone()));
            let _ = reply.send(result);
        }
        Msg::StatusUpdate {
            conn,
            agent_id,
            status,
            reply,
        } => {
            let _ = reply.send(master.status_update(conn, &agent_id, status));
        }
        Msg::UnregisterAgent { conn, agent_id } => master.unregister_agent(conn, &agent_id),
        Msg::Pong { agent_id, seq } => master.pong(&agent_id, seq),
        Msg::Subscribe {
            conn,
            info,
            link,
            reply,
        } => {
            let _ = reply.send(master.subscribe(conn, info, link));
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
                    launches,
                    refuse_seconds,
                } => master.accept(conn, &id, &offer_ids, launches, refuse_seconds, now),
                Call::Decline {
                    offer_ids,
                    refuse_seconds,
                } => master.decline(conn, &id, &offer_ids, refuse_seconds, now),
                Call::Kill { task_id } => master.kill(conn, &id, &task_id),
                Call::Acknowledge {
                    agent_id,
                    task_id,
                    uuid,
                } => master.acknowledge(conn, &id, &agent_id, task_id, uuid),
                Call::Reconcile { tasks } => master.reconcile(conn, &id, tasks),
                Call::Revive { roles } => master.revive(conn, &id, roles),
                Call::Suppress { roles } => master.suppress(conn, &id, roles),
                Call::Teardown => master.teardown(conn, &id),
            };
            let _ = reply.send(result);
        }
        Msg::ConnectionClosed { conn } => master.connection_closed(conn, now),
        Msg::OperatorKill {
            task_id,
            framework_id,
            reply,
        } => {
            let _ = reply.send(master.operator_kill(&task_id, framework_id.as_deref()));
        }
        Msg::GetState { reply } => {
            let _ = reply.send(master.state_json());
        }
    }
}

/// Runs the actor until `shutdown` resolves or every sender is gone.
pub async fn run(
    mut master: Master,
    mut mailbox: mpsc::UnboundedReceiver<Msg>,
    timers: Timers,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut ping = tokio::time::interval(timers.agent_ping_timeout);
    let mut heartbeat = tokio::time::interval(timers.heartbeat_interval);
    let mut allocation = tokio::time::interval(timers.allocation_interval);
    let mut failover = tokio::time::interval(Duration::from_secs(1));
    for t in [&mut ping, &mut heartbeat, &mut allocation, &mut failover] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            msg = mailbox.recv() => {
                let Some(msg) = msg else { break };
                let now = Instant::now();
                handle(&mut master, msg, now);
                // Drain what is already queued, then allocate once for the whole batch.
                while let Ok(msg) = mailbox.try_recv() {
                    handle(&mut master, msg, now);
                }
            }
            _ = ping.tick() => master.ping_tick(),
            _ = heartbeat.tick() => master.heartbeat(),
            _ = allocation.tick() => {
                master.expire_filters(Instant::now());
                // The batched allocation also re-offers what filters held back.
                master.allocate(Instant::now());
                continue;
            }
            _ = failover.tick() => master.failover_tick(Instant::now()),
            _ = &mut shutdown => break,
        }
        if master.needs_allocation() {
            master.allocate(Instant::now());
        }
    }
}
