//! The agent's link to the master over Cap'n Proto, on a thread of its own (capnp-rpc is
//! `!Send`). It connects with backoff, registers with a snapshot taken from the actor, serves the
//! `Agent` capability the master calls, and sends the actor's status updates on the session. When
//! the connection drops it tells the actor and starts over.

use crate::agent::{Msg, ToMaster};
use capnp::capability::Rc;
use capnp_rpc::{rpc_twoparty_capnp, twoparty, RpcSystem};
use futures::AsyncReadExt;
use std::time::Duration;
use strata_ha::zk::Follower;
use strata_ha::MasterAddress;
use strata_schema::agent_capnp::{agent, agent_session};
use strata_schema::scheduler_capnp::master;
use strata_schema::wire;
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::TokioAsyncReadCompatExt;
use tracing::{debug, info, warn};

type Actor = mpsc::UnboundedSender<Msg>;

/// How the agent reaches and authenticates to the master.
#[derive(Clone, Default)]
pub struct MasterLink {
    /// `--tls-ca` (and the client certificate of `--tls-cert`): the link is TLS.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// `--credential`: sent with each registration.
    pub credential: Option<strata_security::credentials::Credential>,
}

/// Starts the RPC thread.
pub fn spawn(
    master_addr: String,
    actor: Actor,
    outbound: mpsc::UnboundedReceiver<ToMaster>,
    backoff_max: Duration,
    master_link: MasterLink,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("agent-rpc".to_string())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &runtime,
                link(master_addr, actor, outbound, backoff_max, master_link),
            );
        })?;
    Ok(())
}

fn gone() -> capnp::Error {
    capnp::Error::failed("the agent is shutting down".to_string())
}

/// The agent's ZooKeeper session timeout when it follows the leader through `zk://`.
const ZK_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

async fn link(
    master: String,
    actor: Actor,
    mut outbound: mpsc::UnboundedReceiver<ToMaster>,
    backoff_max: Duration,
    master_link: MasterLink,
) {
    // The flags were validated: a bad address cannot get here.
    let address = master
        .parse::<MasterAddress>()
        .unwrap_or(MasterAddress::Direct(master.clone()));
    let mut follower = Follower::new(&address, ZK_SESSION_TIMEOUT);
    let mut backoff = Duration::from_millis(50);
    // The last failure logged at warn: a new reason is logged again, a repeated one at debug.
    let mut warned: Option<String> = None;
    loop {
        let Some(master_addr) = follower.resolve().await else {
            return;
        };
        match session(
            &master_addr,
            &master_link,
            &actor,
            &mut outbound,
            &mut follower,
        )
        .await
        {
            Ok(()) => {
                backoff = Duration::from_millis(50);
                warned = None;
            }
            Err(err) => {
                if warned.as_deref() != Some(err.as_str()) {
                    warn!(master = %master_addr, cause = %err, "cannot register with the master; retrying");
                    warned = Some(err);
                } else {
                    debug!(master = %master_addr, cause = %err, "registration attempt failed");
                }
            }
        }
        if actor.send(Msg::Disconnected).is_err() {
            return;
        }
        // Updates queued while disconnected are resent from the actor after re-registering.
        while outbound.try_recv().is_ok() {}
        // Retry after the backoff, or at once when ZooKeeper names a new leader.
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = follower.changed() => backoff = Duration::from_millis(50),
        }
        backoff = (backoff * 2).min(backoff_max);
    }
}

/// One connection: register, then serve until it drops.
/// A connection to the master, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Io for T {}

async fn session(
    master_addr: &str,
    master_link: &MasterLink,
    actor: &Actor,
    outbound: &mut mpsc::UnboundedReceiver<ToMaster>,
    follower: &mut Follower,
) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(master_addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let stream: Box<dyn Io> = match &master_link.tls {
        Some(config) => Box::new(
            strata_security::tls::connect(std::sync::Arc::clone(config), stream, master_addr)
                .await
                .map_err(|e| format!("TLS handshake with {master_addr}: {e}"))?,
        ),
        None => Box::new(stream),
    };
    let plain = master_link.tls.is_none();
    let (reader, writer) = stream.compat().split();
    let network = twoparty::VatNetwork::new(
        futures::io::BufReader::new(reader),
        futures::io::BufWriter::new(writer),
        rpc_twoparty_capnp::Side::Client,
        strata_schema::wire::rpc_reader_options(),
    );
    let mut rpc = RpcSystem::new(Box::new(network), None);
    let master: master::Client = rpc.bootstrap(rpc_twoparty_capnp::Side::Server);
    let (closed_tx, mut closed) = oneshot::channel::<()>();
    tokio::task::spawn_local(async move {
        let _ = rpc.await;
        let _ = closed_tx.send(());
    });

    let (reply, snapshot) = oneshot::channel();
    actor
        .send(Msg::Snapshot { reply })
        .map_err(|_| "the agent is shutting down".to_string())?;
    let (info, running) = snapshot
        .await
        .map_err(|_| "the agent is shutting down".to_string())?;
    let mut req = master.register_agent_request();
    {
        let mut b = req.get();
        wire::set_agent(b.reborrow().init_info(), &info);
        b.set_agent(capnp_rpc::new_client(AgentImpl {
            actor: actor.clone(),
        }));
        if let Some(credential) = &master_link.credential {
            let mut c = b.reborrow().init_credential();
            c.set_principal(credential.principal.as_str());
            c.set_secret(credential.secret.as_str());
        }
        let mut list = b.init_running(running.len() as u32);
        for (i, t) in running.iter().enumerate() {
            let mut r = list.reborrow().get(i as u32);
            r.set_framework_id(t.framework.id.as_ref().map(|f| f.as_str()).unwrap_or(""));
            wire::set_framework(r.reborrow().init_framework(), &t.framework);
            wire::set_task(r.reborrow().init_task(), &t.task);
            r.set_state(wire::state_to(t.state));
        }
    }
    let response = tokio::select! {
        r = req.send().promise => r.map_err(|e| format!("register: {e}"))?,
        _ = &mut closed => return Err(if plain {
            "the connection closed during registration (a master with --tls-cert refuses plain \
             connections: give the agent --tls-ca)"
                .to_string()
        } else {
            "the connection closed during registration".to_string()
        }),
        _ = follower.changed() => {
            return Err("the leading master changed during registration".to_string())
        }
    };
    let (agent_id, master_info, session) = (|| -> Result<_, wire::WireError> {
        let r = response.get()?;
        Ok((
            wire::agent_id(r.get_agent_id())?,
            wire::master(r.get_master()?)?,
            r.get_session()?,
        ))
    })()
    .map_err(|e| format!("register: {e}"))?;
    let session: agent_session::Client = session;
    info!(agent_id = %agent_id, "connected to the master");
    actor
        .send(Msg::Registered {
            agent_id,
            master: master_info,
        })
        .map_err(|_| "the agent is shutting down".to_string())?;
    // Whether the master serves `statusUpdates` (one of an older release does not).
    let batches = std::rc::Rc::new(std::cell::Cell::new(true));
    loop {
        tokio::select! {
            msg = outbound.recv() => match msg {
                Some(first) => {
                    let mut ready = vec![first];
                    while ready.len() < OUTBOUND_BATCH {
                        match outbound.try_recv() {
                            Ok(msg) => ready.push(msg),
                            Err(_) => break,
                        }
                    }
                    send_to_master(&session, ready, &batches);
                }
                None => return Ok(()),
            },
            _ = &mut closed => return Ok(()),
            _ = follower.changed() => {
                info!("the leading master changed: re-registering with the new one");
                return Ok(());
            }
        }
    }
}

/// At most this many messages for the master are taken at once; the status updates among them
/// go in one `statusUpdates` call.
const OUTBOUND_BATCH: usize = 256;

/// Sends what the agent has ready for the master, in order: consecutive status updates as one
/// `statusUpdates` call (each alone to a master without it: `batches` is cleared when the master
/// answers that it does not serve it).
fn send_to_master(
    session: &agent_session::Client,
    ready: Vec<ToMaster>,
    batches: &std::rc::Rc<std::cell::Cell<bool>>,
) {
    let mut updates = Vec::new();
    for msg in ready {
        match msg {
            ToMaster::StatusUpdate(status) => updates.push(status),
            other => {
                send_updates(session, std::mem::take(&mut updates), batches);
                send_other(session, other);
            }
        }
    }
    send_updates(session, updates, batches);
}

fn send_updates(
    session: &agent_session::Client,
    updates: Vec<strata_schema::TaskStatus>,
    batches: &std::rc::Rc<std::cell::Cell<bool>>,
) {
    if updates.is_empty() {
        return;
    }
    if !batches.get() {
        for status in updates {
            send_other(session, ToMaster::StatusUpdate(status));
        }
        return;
    }
    let mut req = session.status_updates_request();
    let mut list = req.get().init_updates(updates.len() as u32);
    for (i, status) in updates.iter().enumerate() {
        wire::set_status(list.reborrow().get(i as u32), status);
    }
    let promise = req.send().promise;
    let (session, batches) = (session.clone(), std::rc::Rc::clone(batches));
    tokio::task::spawn_local(async move {
        match promise.await {
            Err(err) if err.kind == capnp::ErrorKind::Unimplemented => {
                debug!("the master has no statusUpdates: sending each update alone");
                batches.set(false);
                for status in updates {
                    send_other(&session, ToMaster::StatusUpdate(status));
                }
            }
            Err(err) => {
                debug!(updates = updates.len(), first = %updates[0].task_id, cause = %err, "status updates not taken; will retry")
            }
            Ok(_) => {}
        }
    });
}

fn send_other(session: &agent_session::Client, msg: ToMaster) {
    match msg {
        ToMaster::FrameworkMessage {
            framework_id,
            executor_id,
            data,
        } => {
            let mut req = session.framework_message_request();
            let mut b = req.get();
            b.set_framework_id(framework_id.as_str());
            b.set_executor_id(executor_id.as_str());
            b.set_data(&data);
            let promise = req.send().promise;
            tokio::task::spawn_local(async move {
                if let Err(err) = promise.await {
                    debug!(executor_id = %executor_id, cause = %err, "executor message not taken");
                }
            });
        }
        ToMaster::ExecutorExited {
            framework_id,
            executor_id,
            status,
        } => {
            let mut req = session.executor_exited_request();
            let mut b = req.get();
            b.set_framework_id(framework_id.as_str());
            b.set_executor_id(executor_id.as_str());
            b.set_status(status);
            let promise = req.send().promise;
            tokio::task::spawn_local(async move {
                if let Err(err) = promise.await {
                    debug!(executor_id = %executor_id, cause = %err, "executor exit not taken");
                }
            });
        }
        ToMaster::StatusUpdate(status) => {
            let mut req = session.status_update_request();
            wire::set_status(req.get().init_update(), &status);
            let promise = req.send().promise;
            tokio::task::spawn_local(async move {
                if let Err(err) = promise.await {
                    debug!(task_id = %status.task_id, cause = %err, "status update not taken; will retry");
                }
            });
        }
    }
}

/// The actor's message for one acknowledgement the master forwarded.
fn acknowledgement(
    framework_id: capnp::Result<capnp::text::Reader<'_>>,
    task_id: capnp::Result<capnp::text::Reader<'_>>,
    uuid: capnp::Result<&[u8]>,
) -> Result<Msg, capnp::Error> {
    let uuid = wire::update_uuid(uuid?, "acknowledgement uuid")?;
    Ok(Msg::Acknowledge {
        framework_id: wire::framework_id(framework_id)?,
        task_id: wire::task_id(task_id)?,
        uuid,
    })
}

struct AgentImpl {
    actor: Actor,
}

impl AgentImpl {
    fn tell(&self, msg: Msg) -> Result<(), capnp::Error> {
        self.actor.send(msg).map_err(|_| gone())
    }
}

impl agent::Server for AgentImpl {
    async fn ping(
        self: Rc<Self>,
        _: agent::PingParams,
        _: agent::PingResults,
    ) -> Result<(), capnp::Error> {
        Ok(())
    }

    async fn launch(
        self: Rc<Self>,
        params: agent::LaunchParams,
        _: agent::LaunchResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let framework = wire::framework(p.get_framework()?)?;
        let task = wire::task(p.get_task()?)?;
        self.tell(Msg::Launch {
            framework: Box::new(framework),
            task: Box::new(task),
        })
    }

    async fn launch_tasks(
        self: Rc<Self>,
        params: agent::LaunchTasksParams,
        _: agent::LaunchTasksResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let framework = wire::framework(p.get_framework()?)?;
        let list = p.get_tasks()?;
        wire::check_len(list.len(), "tasks")?;
        // All read before any is launched: a malformed list launches nothing.
        let tasks = list.iter().map(wire::task).collect::<Result<Vec<_>, _>>()?;
        for task in tasks {
            self.tell(Msg::Launch {
                framework: Box::new(framework.clone()),
                task: Box::new(task),
            })?;
        }
        Ok(())
    }

    async fn kill(
        self: Rc<Self>,
        params: agent::KillParams,
        _: agent::KillResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let grace = p.get_grace_period_secs();
        self.tell(Msg::Kill {
            framework_id: wire::framework_id(p.get_framework_id())?,
            task_id: wire::task_id(p.get_task_id())?,
            grace_period_secs: if grace.is_finite() && grace > 0.0 {
                grace
            } else {
                0.0
            },
        })
    }

    async fn acknowledge(
        self: Rc<Self>,
        params: agent::AcknowledgeParams,
        _: agent::AcknowledgeResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.tell(acknowledgement(
            p.get_framework_id(),
            p.get_task_id(),
            p.get_uuid(),
        )?)
    }

    async fn acknowledge_all(
        self: Rc<Self>,
        params: agent::AcknowledgeAllParams,
        _: agent::AcknowledgeAllResults,
    ) -> Result<(), capnp::Error> {
        let list = params.get()?.get_acks()?;
        wire::check_len(list.len(), "acknowledgements")?;
        let acks = list
            .iter()
            .map(|a| acknowledgement(a.get_framework_id(), a.get_task_id(), a.get_uuid()))
            .collect::<Result<Vec<_>, _>>()?;
        for ack in acks {
            self.tell(ack)?;
        }
        Ok(())
    }

    async fn shutdown(
        self: Rc<Self>,
        params: agent::ShutdownParams,
        _: agent::ShutdownResults,
    ) -> Result<(), capnp::Error> {
        let reason = wire::text(params.get()?.get_reason())?;
        self.tell(Msg::Shutdown { reason })
    }

    async fn shutdown_framework(
        self: Rc<Self>,
        params: agent::ShutdownFrameworkParams,
        _: agent::ShutdownFrameworkResults,
    ) -> Result<(), capnp::Error> {
        let framework_id = wire::framework_id(params.get()?.get_framework_id())?;
        self.tell(Msg::ShutdownFramework { framework_id })
    }

    async fn launch_group(
        self: Rc<Self>,
        params: agent::LaunchGroupParams,
        _: agent::LaunchGroupResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let framework = wire::framework(p.get_framework()?)?;
        let executor = wire::executor(p.get_executor()?)?;
        let mut tasks = Vec::new();
        for t in p.get_tasks()?.iter() {
            tasks.push(wire::task(t)?);
        }
        if tasks.is_empty() {
            return Err(capnp::Error::failed(
                "a task group must hold at least one task".to_string(),
            ));
        }
        self.tell(Msg::LaunchGroup {
            framework: Box::new(framework),
            executor: Box::new(executor),
            tasks,
        })
    }

    async fn framework_message(
        self: Rc<Self>,
        params: agent::FrameworkMessageParams,
        _: agent::FrameworkMessageResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.tell(Msg::FrameworkMessage {
            framework_id: wire::framework_id(p.get_framework_id())?,
            executor_id: wire::executor_id(p.get_executor_id())?,
            data: p.get_data()?.to_vec(),
        })
    }

    async fn shutdown_executor(
        self: Rc<Self>,
        params: agent::ShutdownExecutorParams,
        _: agent::ShutdownExecutorResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.tell(Msg::ShutdownExecutor {
            framework_id: wire::framework_id(p.get_framework_id())?,
            executor_id: wire::executor_id(p.get_executor_id())?,
        })
    }

    async fn destroy_volumes(
        self: Rc<Self>,
        params: agent::DestroyVolumesParams,
        _: agent::DestroyVolumesResults,
    ) -> Result<(), capnp::Error> {
        let volumes = wire::resources(params.get()?.get_volumes())?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tell(Msg::DestroyVolumes { volumes, reply })?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(|err| capnp::Error::failed(err.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc as StdRc;
    use strata_schema::{FrameworkId, TaskState};

    fn status(task: &str) -> ToMaster {
        ToMaster::StatusUpdate(crate::status::tests::status(task, TaskState::Running))
    }

    /// A master's session that records the calls it gets; `batches`: whether it serves
    /// `statusUpdates` (a master of an older release does not).
    struct Recorder {
        calls: StdRc<RefCell<Vec<String>>>,
        batches: bool,
    }

    impl agent_session::Server for Recorder {
        async fn status_update(
            self: Rc<Self>,
            params: agent_session::StatusUpdateParams,
            _: agent_session::StatusUpdateResults,
        ) -> Result<(), capnp::Error> {
            let s = wire::status(params.get()?.get_update()?)?;
            self.calls
                .borrow_mut()
                .push(format!("statusUpdate {}", s.task_id));
            Ok(())
        }

        async fn status_updates(
            self: Rc<Self>,
            params: agent_session::StatusUpdatesParams,
            _: agent_session::StatusUpdatesResults,
        ) -> Result<(), capnp::Error> {
            if !self.batches {
                return Err(capnp::Error::unimplemented("statusUpdates".to_string()));
            }
            let mut ids = Vec::new();
            for s in params.get()?.get_updates()?.iter() {
                ids.push(wire::status(s)?.task_id.to_string());
            }
            self.calls
                .borrow_mut()
                .push(format!("statusUpdates {}", ids.join(",")));
            Ok(())
        }

        async fn framework_message(
            self: Rc<Self>,
            _: agent_session::FrameworkMessageParams,
            _: agent_session::FrameworkMessageResults,
        ) -> Result<(), capnp::Error> {
            self.calls.borrow_mut().push("frameworkMessage".to_string());
            Ok(())
        }
    }

    fn send(batches: bool, rounds: Vec<Vec<ToMaster>>) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let calls = StdRc::new(RefCell::new(Vec::new()));
            let session: agent_session::Client = capnp_rpc::new_client(Recorder {
                calls: StdRc::clone(&calls),
                batches,
            });
            let flag = StdRc::new(std::cell::Cell::new(true));
            for ready in rounds {
                send_to_master(&session, ready, &flag);
                for _ in 0..20 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            let calls = calls.borrow().clone();
            calls
        })
    }

    fn message() -> ToMaster {
        ToMaster::FrameworkMessage {
            framework_id: FrameworkId::new("f").unwrap(),
            executor_id: strata_schema::ExecutorId::new("e").unwrap(),
            data: vec![1],
        }
    }

    #[test]
    fn ready_status_updates_go_in_one_call_in_order() {
        let calls = send(
            true,
            vec![vec![status("a"), status("b"), message(), status("c")]],
        );
        assert_eq!(
            calls,
            ["statusUpdates a,b", "frameworkMessage", "statusUpdates c"]
        );
    }

    #[test]
    fn a_master_without_status_updates_gets_each_alone() {
        let calls = send(
            false,
            vec![
                vec![status("a"), status("b")],
                vec![status("c"), status("d")],
            ],
        );
        assert_eq!(
            calls,
            [
                "statusUpdate a",
                "statusUpdate b",
                "statusUpdate c",
                "statusUpdate d"
            ]
        );
    }
}
