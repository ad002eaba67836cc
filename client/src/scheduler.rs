//! The scheduler driver: subscribes a framework to the master over Cap'n Proto and turns the
//! master's callbacks into a stream of [`Event`]s. capnp-rpc is `!Send`, so the connection lives
//! on a thread of its own; [`SchedulerDriver`] is a cheap, `Send` handle that sends it calls.

use capnp::capability::Rc;
use capnp_rpc::{rpc_twoparty_capnp, twoparty, RpcSystem};
use futures::AsyncReadExt;
use std::sync::Arc;
use strata_schema::scheduler_capnp::{master, scheduler, scheduler_session};
use strata_schema::{
    wire, AgentId, Attributes, ExecutorId, FrameworkId, FrameworkInfo, OfferId, Resources, TaskId,
    TaskStatus,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::TokioAsyncReadCompatExt;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the master at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("the master refused the call: {0}")]
    Rpc(String),
    #[error("the connection to the master is closed")]
    Disconnected,
    #[error("the master sent an invalid message: {0}")]
    Protocol(String),
}

fn rpc_error(err: capnp::Error) -> ClientError {
    match err.kind {
        capnp::ErrorKind::Disconnected => ClientError::Disconnected,
        _ => ClientError::Rpc(err.extra),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub id: OfferId,
    pub framework_id: FrameworkId,
    pub agent_id: AgentId,
    pub hostname: String,
    /// The role the resources are allocated to (Mesos' `allocation_info.role`).
    pub role: String,
    /// When the agent's machine is scheduled for maintenance: (start, duration), seconds since
    /// the epoch and seconds (`None`: indefinitely).
    pub unavailability: Option<(f64, Option<f64>)>,
    pub resources: Resources,
    pub attributes: Attributes,
}

pub use strata_schema::Operation;

/// What the master tells a subscribed framework, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Subscribed {
        framework_id: FrameworkId,
        heartbeat_interval_secs: f64,
    },
    Offers(Vec<Offer>),
    Rescind(OfferId),
    Update(TaskStatus),
    Error(String),
    Heartbeat,
    /// A message from one of the framework's executors.
    Message {
        agent_id: AgentId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    },
    /// One of the framework's executors ended (`executor_id`, with its wait status if known),
    /// or an agent was removed (`executor_id` None).
    Failure {
        agent_id: AgentId,
        executor_id: Option<ExecutorId>,
        status: Option<i32>,
    },
    /// Agents the master asks the framework to leave for maintenance (Mesos' inverse offers);
    /// answer with [`SchedulerDriver::accept_inverse_offers`] or `decline_inverse_offers`.
    InverseOffers(Vec<InverseOffer>),
    /// An inverse offer that no longer applies.
    RescindInverseOffer(OfferId),
    /// The connection to the master is gone; no further events follow.
    Disconnected(String),
}

/// An agent the master wants back for a maintenance window.
#[derive(Debug, Clone, PartialEq)]
pub struct InverseOffer {
    pub id: OfferId,
    pub framework_id: FrameworkId,
    pub agent_id: AgentId,
    pub hostname: String,
    /// (start, duration): seconds since the epoch and seconds (`None`: indefinitely).
    pub unavailability: (f64, Option<f64>),
}

type Reply = oneshot::Sender<Result<(), ClientError>>;

enum Cmd {
    Accept {
        offer_ids: Vec<OfferId>,
        operations: Vec<Operation>,
        refuse_seconds: f64,
        reply: Reply,
    },
    Decline {
        offer_ids: Vec<OfferId>,
        refuse_seconds: f64,
        reply: Reply,
    },
    Kill {
        task_id: TaskId,
        agent_id: Option<AgentId>,
        reply: Reply,
    },
    Acknowledge {
        status: TaskStatus,
        reply: Reply,
    },
    Reconcile {
        tasks: Vec<(TaskId, Option<AgentId>)>,
        reply: Reply,
    },
    Revive {
        roles: Vec<String>,
        reply: Reply,
    },
    Suppress {
        roles: Vec<String>,
        reply: Reply,
    },
    Teardown {
        reply: Reply,
    },
    Message {
        agent_id: AgentId,
        executor_id: ExecutorId,
        data: Vec<u8>,
        reply: Reply,
    },
    Shutdown {
        agent_id: AgentId,
        executor_id: ExecutorId,
        reply: Reply,
    },
    AnswerInverseOffers {
        ids: Vec<OfferId>,
        accept: bool,
        refuse_seconds: f64,
        reply: Reply,
    },
}

/// Options of [`SchedulerDriver::subscribe_with`].
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    /// The framework's principal and secret (Mesos' `Credential`), for a master that
    /// authenticates frameworks.
    pub credential: Option<Credential>,
}

pub use strata_security::credentials::Credential;

/// A subscribed framework. Cheap to clone; `Send`. Dropping every clone closes the connection
/// (the master then starts the framework's failover timeout).
#[derive(Clone)]
pub struct SchedulerDriver {
    cmds: mpsc::UnboundedSender<Cmd>,
    framework_id: Arc<FrameworkId>,
}

impl SchedulerDriver {
    /// Connects to the master at `addr` (`host:port`, or `zk://host:port/path` to follow the
    /// leading master across failovers) and subscribes `framework`.
    pub async fn subscribe(
        addr: &str,
        framework: FrameworkInfo,
    ) -> Result<(SchedulerDriver, mpsc::UnboundedReceiver<Event>), ClientError> {
        Self::subscribe_with(addr, framework, SubscribeOptions::default()).await
    }

    /// [`SchedulerDriver::subscribe`] with options: a `credential` (principal and secret,
    /// checked against the master's `--credentials`; the framework's principal is then that
    /// principal).
    pub async fn subscribe_with(
        addr: &str,
        framework: FrameworkInfo,
        options: SubscribeOptions,
    ) -> Result<(SchedulerDriver, mpsc::UnboundedReceiver<Event>), ClientError> {
        let credential = options.credential;
        let (ready_tx, ready) = oneshot::channel();
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let addr = addr.to_string();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ClientError::Connect {
                addr: addr.clone(),
                source,
            })?;
        std::thread::Builder::new()
            .name("strata-client".to_string())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(
                    &runtime,
                    connection(addr, framework, credential, cmd_rx, events_tx, ready_tx),
                );
            })
            .map_err(|source| ClientError::Connect {
                addr: String::new(),
                source,
            })?;
        let framework_id = ready.await.map_err(|_| ClientError::Disconnected)??;
        Ok((
            SchedulerDriver {
                cmds,
                framework_id: Arc::new(framework_id),
            },
            events,
        ))
    }

    pub fn framework_id(&self) -> &FrameworkId {
        &self.framework_id
    }

    async fn call(&self, make: impl FnOnce(Reply) -> Cmd) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.cmds
            .send(make(reply))
            .map_err(|_| ClientError::Disconnected)?;
        answer.await.map_err(|_| ClientError::Disconnected)?
    }

    /// Accepts offers (all on one agent) with operations; the unused remainder is refused for
    /// `refuse_seconds`.
    pub async fn accept(
        &self,
        offer_ids: Vec<OfferId>,
        operations: Vec<Operation>,
        refuse_seconds: f64,
    ) -> Result<(), ClientError> {
        self.call(|reply| Cmd::Accept {
            offer_ids,
            operations,
            refuse_seconds,
            reply,
        })
        .await
    }

    pub async fn decline(
        &self,
        offer_ids: Vec<OfferId>,
        refuse_seconds: f64,
    ) -> Result<(), ClientError> {
        self.call(|reply| Cmd::Decline {
            offer_ids,
            refuse_seconds,
            reply,
        })
        .await
    }

    pub async fn kill(
        &self,
        task_id: TaskId,
        agent_id: Option<AgentId>,
    ) -> Result<(), ClientError> {
        self.call(|reply| Cmd::Kill {
            task_id,
            agent_id,
            reply,
        })
        .await
    }

    /// Acknowledges `status` if it carries a uuid; a no-op otherwise.
    pub async fn acknowledge(&self, status: &TaskStatus) -> Result<(), ClientError> {
        if status.uuid.is_none() || status.agent_id.is_none() {
            return Ok(());
        }
        let status = status.clone();
        self.call(|reply| Cmd::Acknowledge { status, reply }).await
    }

    /// Explicit reconciliation of the named tasks, or implicit (all tasks) with an empty list.
    pub async fn reconcile(
        &self,
        tasks: Vec<(TaskId, Option<AgentId>)>,
    ) -> Result<(), ClientError> {
        self.call(|reply| Cmd::Reconcile { tasks, reply }).await
    }

    pub async fn revive(&self, roles: Vec<String>) -> Result<(), ClientError> {
        self.call(|reply| Cmd::Revive { roles, reply }).await
    }

    pub async fn suppress(&self, roles: Vec<String>) -> Result<(), ClientError> {
        self.call(|reply| Cmd::Suppress { roles, reply }).await
    }

    pub async fn teardown(&self) -> Result<(), ClientError> {
        self.call(|reply| Cmd::Teardown { reply }).await
    }

    /// Sends `data` to one of the framework's executors on `agent_id` (best effort, as Mesos'
    /// MESSAGE: dropped if the agent or the executor is not there).
    pub async fn message(
        &self,
        agent_id: AgentId,
        executor_id: ExecutorId,
        data: Vec<u8>,
    ) -> Result<(), ClientError> {
        self.call(|reply| Cmd::Message {
            agent_id,
            executor_id,
            data,
            reply,
        })
        .await
    }

    /// Agrees to leave the agents of these inverse offers in time for their maintenance
    /// (ACCEPT_INVERSE_OFFERS); no new inverse offer for them before `refuse_seconds`.
    pub async fn accept_inverse_offers(
        &self,
        ids: Vec<OfferId>,
        refuse_seconds: f64,
    ) -> Result<(), ClientError> {
        self.call(|reply| Cmd::AnswerInverseOffers {
            ids,
            accept: true,
            refuse_seconds,
            reply,
        })
        .await
    }

    /// Refuses to leave the agents of these inverse offers (DECLINE_INVERSE_OFFERS).
    pub async fn decline_inverse_offers(
        &self,
        ids: Vec<OfferId>,
        refuse_seconds: f64,
    ) -> Result<(), ClientError> {
        self.call(|reply| Cmd::AnswerInverseOffers {
            ids,
            accept: false,
            refuse_seconds,
            reply,
        })
        .await
    }

    /// Shuts one of the framework's executors down (SHUTDOWN): its tasks are killed and a
    /// `Failure` event follows once it has exited.
    pub async fn shutdown(
        &self,
        agent_id: AgentId,
        executor_id: ExecutorId,
    ) -> Result<(), ClientError> {
        self.call(|reply| Cmd::Shutdown {
            agent_id,
            executor_id,
            reply,
        })
        .await
    }
}

/// How a framework's ZooKeeper session is kept when it follows the leader through `zk://`.
const ZK_SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How one connection ended.
enum Ended {
    /// The driver was dropped.
    Done,
    /// Subscribing failed.
    Refused(ClientError),
    /// The connection dropped or the leader changed after subscribing.
    Lost(String),
}

/// The connection thread: subscribe, then turn commands into calls until either side goes. With
/// a `zk://` master it follows the leader: when the connection drops or another master is
/// elected, it re-subscribes there with the framework id (failing over within the framework's
/// failover timeout, as Mesos' drivers do); commands wait meanwhile.
async fn connection(
    addr: String,
    mut framework: FrameworkInfo,
    credential: Option<Credential>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<Event>,
    ready: oneshot::Sender<Result<FrameworkId, ClientError>>,
) {
    let address = match addr.parse::<strata_ha::MasterAddress>() {
        Ok(address) => address,
        Err(err) => {
            let _ = ready.send(Err(ClientError::Rpc(err)));
            return;
        }
    };
    let mut follower = strata_ha::zk::Follower::new(&address, ZK_SESSION_TIMEOUT);
    let mut ready = Some(ready);
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        let Some(endpoint) = follower.resolve().await else {
            return;
        };
        match session(
            &endpoint,
            &mut framework,
            credential.as_ref(),
            &mut cmds,
            &events,
            &mut ready,
            &mut follower,
        )
        .await
        {
            Ended::Done => return,
            Ended::Refused(err) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(err));
                    return;
                }
                if !follower.follows_leader() {
                    let _ = events.send(Event::Disconnected(err.to_string()));
                    break;
                }
            }
            Ended::Lost(reason) => {
                let _ = events.send(Event::Disconnected(reason));
                if !follower.follows_leader() {
                    break;
                }
                backoff = std::time::Duration::from_millis(100);
            }
        }
        // Re-subscribe as the same framework.
        if framework.id.is_none() {
            return;
        }
        // Retry after the backoff, or at once when ZooKeeper names a new leader.
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = follower.changed() => {}
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
    }
    // Answer whatever is still asked with Disconnected.
    cmds.close();
    while let Some(cmd) = cmds.recv().await {
        drop(cmd);
    }
}

/// A connection to the master, plain or TLS ([`crate::tls::use_tls`]).
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Io for T {}

/// One connection: subscribe (the first time reporting to `ready`), then serve commands.
async fn session(
    addr: &str,
    framework: &mut FrameworkInfo,
    credential: Option<&Credential>,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    events: &mpsc::UnboundedSender<Event>,
    ready: &mut Option<oneshot::Sender<Result<FrameworkId, ClientError>>>,
    follower: &mut strata_ha::zk::Follower,
) -> Ended {
    let stream = match tokio::net::TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(source) => {
            return Ended::Refused(ClientError::Connect {
                addr: addr.to_string(),
                source,
            })
        }
    };
    let _ = stream.set_nodelay(true);
    let stream: Box<dyn Io> = match crate::tls::config() {
        Some(config) => match strata_security::tls::connect(config, stream, addr).await {
            Ok(tls) => Box::new(tls),
            Err(source) => {
                return Ended::Refused(ClientError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
        },
        None => Box::new(stream),
    };
    let (reader, writer) = stream.compat().split();
    let network = twoparty::VatNetwork::new(
        futures::io::BufReader::new(reader),
        futures::io::BufWriter::new(writer),
        rpc_twoparty_capnp::Side::Client,
        strata_schema::wire::rpc_reader_options(),
    );
    let mut rpc = RpcSystem::new(Box::new(network), None);
    let master: master::Client = rpc.bootstrap(rpc_twoparty_capnp::Side::Server);
    let (closed_tx, mut closed) = oneshot::channel::<String>();
    tokio::task::spawn_local(async move {
        let reason = match rpc.await {
            Ok(()) => "the master closed the connection".to_string(),
            Err(err) => err.to_string(),
        };
        let _ = closed_tx.send(reason);
    });
    let mut req = master.subscribe_request();
    wire::set_framework(req.get().init_framework(), framework);
    if let Some(credential) = credential {
        let mut c = req.get().init_credential();
        c.set_principal(credential.principal.as_str());
        c.set_secret(credential.secret.as_str());
    }
    req.get()
        .set_scheduler(capnp_rpc::new_client(SchedulerImpl {
            events: events.clone(),
        }));
    let subscribed = tokio::select! {
        r = req.send().promise => r,
        reason = &mut closed => {
            return Ended::Refused(ClientError::Rpc(reason.unwrap_or_default()));
        }
        _ = follower.changed() => {
            return Ended::Refused(ClientError::Rpc("the leading master changed".to_string()));
        }
    };
    let (framework_id, session) = match subscribed.map_err(rpc_error).and_then(|r| {
        let r = r.get().map_err(rpc_error)?;
        let id = wire::framework_id(r.get_framework_id())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let session: scheduler_session::Client = r.get_session().map_err(rpc_error)?;
        Ok((id, session))
    }) {
        Ok(ok) => ok,
        Err(err) => return Ended::Refused(err),
    };
    framework.id = Some(framework_id.clone());
    if let Some(ready) = ready.take() {
        if ready.send(Ok(framework_id)).is_err() {
            return Ended::Done;
        }
    }
    // Whether the master serves `acknowledgeAll` (one of an older release does not).
    let batches = std::rc::Rc::new(std::cell::Cell::new(true));
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(cmd) => issue_ready(&session, cmd, cmds, &batches),
                None => return Ended::Done,
            },
            reason = &mut closed => return Ended::Lost(reason.unwrap_or_default()),
            _ = follower.changed() => {
                return Ended::Lost("the leading master changed".to_string());
            }
        }
    }
}

fn finish<T: 'static>(promise: capnp::capability::Promise<T, capnp::Error>, reply: Reply) {
    tokio::task::spawn_local(async move {
        let _ = reply.send(promise.await.map(|_| ()).map_err(rpc_error));
    });
}

fn set_ids(mut list: capnp::text_list::Builder<'_>, ids: &[OfferId]) {
    for (i, id) in ids.iter().enumerate() {
        list.set(i as u32, id.as_str());
    }
}

/// At most this many commands are taken from the queue at once.
const BATCH: usize = 256;

/// Issues `first` and the commands already queued behind it, in order; consecutive
/// acknowledgements go in one `acknowledgeAll` call (a framework acknowledges every update, and
/// the master sends them in batches).
fn issue_ready(
    session: &scheduler_session::Client,
    first: Cmd,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    batches: &Batches,
) {
    let mut ready = vec![first];
    while ready.len() < BATCH {
        match cmds.try_recv() {
            Ok(cmd) => ready.push(cmd),
            Err(_) => break,
        }
    }
    let mut acks: Vec<(TaskStatus, Reply)> = Vec::new();
    for cmd in ready {
        match cmd {
            Cmd::Acknowledge { status, reply } => acks.push((status, reply)),
            other => {
                acknowledge_all(session, std::mem::take(&mut acks), batches);
                issue(session, other);
            }
        }
    }
    acknowledge_all(session, acks, batches);
}

/// Whether the master serves `acknowledgeAll`: cleared when it answers that it does not.
type Batches = std::rc::Rc<std::cell::Cell<bool>>;

/// `acknowledgeAll` with `acks`, each reply getting its answer; each alone to a master without
/// it.
fn acknowledge_all(
    session: &scheduler_session::Client,
    acks: Vec<(TaskStatus, Reply)>,
    batches: &Batches,
) {
    if acks.is_empty() {
        return;
    }
    if !batches.get() {
        for (status, reply) in acks {
            issue(session, Cmd::Acknowledge { status, reply });
        }
        return;
    }
    let mut req = session.acknowledge_all_request();
    let mut list = req.get().init_acks(acks.len() as u32);
    for (i, (status, _)) in acks.iter().enumerate() {
        let mut b = list.reborrow().get(i as u32);
        b.set_agent_id(status.agent_id.as_ref().map(|a| a.as_str()).unwrap_or(""));
        b.set_task_id(status.task_id.as_str());
        b.set_uuid(status.uuid.as_ref().map(|u| &u.0[..]).unwrap_or(&[]));
    }
    let promise = req.send().promise;
    let (session, batches) = (session.clone(), std::rc::Rc::clone(batches));
    tokio::task::spawn_local(async move {
        match promise.await {
            Err(err) if err.kind == capnp::ErrorKind::Unimplemented => {
                batches.set(false);
                for (status, reply) in acks {
                    issue(&session, Cmd::Acknowledge { status, reply });
                }
            }
            result => {
                let result = result.map(|_| ());
                for (_, reply) in acks {
                    let _ = reply.send(result.clone().map_err(rpc_error));
                }
            }
        }
    });
}

fn issue(session: &scheduler_session::Client, cmd: Cmd) {
    match cmd {
        Cmd::Accept {
            offer_ids,
            operations,
            refuse_seconds,
            reply,
        } => {
            let mut req = session.accept_request();
            let mut b = req.get();
            set_ids(
                b.reborrow().init_offer_ids(offer_ids.len() as u32),
                &offer_ids,
            );
            b.reborrow()
                .init_filters()
                .set_refuse_seconds(refuse_seconds);
            let mut ops = b.init_operations(operations.len() as u32);
            for (i, op) in operations.iter().enumerate() {
                wire::set_operation(ops.reborrow().get(i as u32), op);
            }
            finish(req.send().promise, reply);
        }
        Cmd::Decline {
            offer_ids,
            refuse_seconds,
            reply,
        } => {
            let mut req = session.decline_request();
            let mut b = req.get();
            set_ids(
                b.reborrow().init_offer_ids(offer_ids.len() as u32),
                &offer_ids,
            );
            b.init_filters().set_refuse_seconds(refuse_seconds);
            finish(req.send().promise, reply);
        }
        Cmd::Kill {
            task_id,
            agent_id,
            reply,
        } => {
            let mut req = session.kill_request();
            let mut b = req.get();
            b.set_task_id(task_id.as_str());
            b.set_agent_id(agent_id.as_ref().map(|a| a.as_str()).unwrap_or(""));
            finish(req.send().promise, reply);
        }
        Cmd::Acknowledge { status, reply } => {
            let mut req = session.acknowledge_request();
            let mut b = req.get();
            b.set_agent_id(status.agent_id.as_ref().map(|a| a.as_str()).unwrap_or(""));
            b.set_task_id(status.task_id.as_str());
            b.set_uuid(status.uuid.as_ref().map(|u| &u.0[..]).unwrap_or(&[]));
            finish(req.send().promise, reply);
        }
        Cmd::Reconcile { tasks, reply } => {
            let mut req = session.reconcile_request();
            let mut list = req.get().init_tasks(tasks.len() as u32);
            for (i, (task, agent)) in tasks.iter().enumerate() {
                let mut t = list.reborrow().get(i as u32);
                t.set_task_id(task.as_str());
                t.set_agent_id(agent.as_ref().map(|a| a.as_str()).unwrap_or(""));
            }
            finish(req.send().promise, reply);
        }
        Cmd::Revive { roles, reply } => {
            let mut req = session.revive_request();
            wire::set_text_list(req.get().init_roles(roles.len() as u32), &roles);
            finish(req.send().promise, reply);
        }
        Cmd::Suppress { roles, reply } => {
            let mut req = session.suppress_request();
            wire::set_text_list(req.get().init_roles(roles.len() as u32), &roles);
            finish(req.send().promise, reply);
        }
        Cmd::Teardown { reply } => finish(session.teardown_request().send().promise, reply),
        Cmd::Message {
            agent_id,
            executor_id,
            data,
            reply,
        } => {
            let mut req = session.message_request();
            let mut b = req.get();
            b.set_agent_id(agent_id.as_str());
            b.set_executor_id(executor_id.as_str());
            b.set_data(&data);
            finish(req.send().promise, reply);
        }
        Cmd::Shutdown {
            agent_id,
            executor_id,
            reply,
        } => {
            let mut req = session.shutdown_request();
            let mut b = req.get();
            b.set_agent_id(agent_id.as_str());
            b.set_executor_id(executor_id.as_str());
            finish(req.send().promise, reply);
        }
        Cmd::AnswerInverseOffers {
            ids,
            accept,
            refuse_seconds,
            reply,
        } => {
            let texts: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            if accept {
                let mut req = session.accept_inverse_offers_request();
                let mut b = req.get();
                wire::set_text_list(
                    b.reborrow().init_inverse_offer_ids(texts.len() as u32),
                    &texts,
                );
                b.init_filters().set_refuse_seconds(refuse_seconds);
                finish(req.send().promise, reply);
            } else {
                let mut req = session.decline_inverse_offers_request();
                let mut b = req.get();
                wire::set_text_list(
                    b.reborrow().init_inverse_offer_ids(texts.len() as u32),
                    &texts,
                );
                b.init_filters().set_refuse_seconds(refuse_seconds);
                finish(req.send().promise, reply);
            }
        }
    }
}

/// The callback capability the master calls with events.
struct SchedulerImpl {
    events: mpsc::UnboundedSender<Event>,
}

impl SchedulerImpl {
    fn emit(&self, event: Event) -> Result<(), capnp::Error> {
        // A receiver that went away just means nobody listens any more.
        let _ = self.events.send(event);
        Ok(())
    }
}

impl scheduler::Server for SchedulerImpl {
    async fn subscribed(
        self: Rc<Self>,
        params: scheduler::SubscribedParams,
        _: scheduler::SubscribedResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let framework_id = wire::framework_id(p.get_framework_id())?;
        self.emit(Event::Subscribed {
            framework_id,
            heartbeat_interval_secs: p.get_heartbeat_interval_secs(),
        })
    }

    async fn offers(
        self: Rc<Self>,
        params: scheduler::OffersParams,
        _: scheduler::OffersResults,
    ) -> Result<(), capnp::Error> {
        let mut offers = Vec::new();
        for o in params.get()?.get_offers()?.iter() {
            offers.push(Offer {
                id: OfferId::new(wire::text(o.get_id())?)
                    .map_err(|e| capnp::Error::failed(e.to_string()))?,
                framework_id: wire::framework_id(o.get_framework_id())?,
                agent_id: wire::agent_id(o.get_agent_id())?,
                hostname: wire::text(o.get_hostname())?,
                role: wire::text(o.get_allocation_role())?,
                unavailability: o.get_has_unavailability().then(|| {
                    let d = o.get_unavailability_duration();
                    (o.get_unavailability_start(), (d >= 0.0).then_some(d))
                }),
                resources: wire::resources(o.get_resources())?,
                attributes: wire::attributes(o.get_attributes())?,
            });
        }
        self.emit(Event::Offers(offers))
    }

    async fn rescind(
        self: Rc<Self>,
        params: scheduler::RescindParams,
        _: scheduler::RescindResults,
    ) -> Result<(), capnp::Error> {
        let id = OfferId::new(wire::text(params.get()?.get_offer_id())?)
            .map_err(|e| capnp::Error::failed(e.to_string()))?;
        self.emit(Event::Rescind(id))
    }

    async fn update(
        self: Rc<Self>,
        params: scheduler::UpdateParams,
        _: scheduler::UpdateResults,
    ) -> Result<(), capnp::Error> {
        let status = wire::status(params.get()?.get_status()?)?;
        self.emit(Event::Update(status))
    }

    async fn updates(
        self: Rc<Self>,
        params: scheduler::UpdatesParams,
        _: scheduler::UpdatesResults,
    ) -> Result<(), capnp::Error> {
        let list = params.get()?.get_statuses()?;
        wire::check_len(list.len(), "status updates")?;
        let statuses = list
            .iter()
            .map(wire::status)
            .collect::<Result<Vec<_>, _>>()?;
        for status in statuses {
            self.emit(Event::Update(status))?;
        }
        Ok(())
    }

    async fn error(
        self: Rc<Self>,
        params: scheduler::ErrorParams,
        _: scheduler::ErrorResults,
    ) -> Result<(), capnp::Error> {
        let message = wire::text(params.get()?.get_message())?;
        self.emit(Event::Error(message))
    }

    async fn heartbeat(
        self: Rc<Self>,
        _: scheduler::HeartbeatParams,
        _: scheduler::HeartbeatResults,
    ) -> Result<(), capnp::Error> {
        self.emit(Event::Heartbeat)
    }

    async fn message(
        self: Rc<Self>,
        params: scheduler::MessageParams,
        _: scheduler::MessageResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.emit(Event::Message {
            agent_id: wire::agent_id(p.get_agent_id())?,
            executor_id: wire::executor_id(p.get_executor_id())?,
            data: p.get_data()?.to_vec(),
        })
    }

    async fn inverse_offers(
        self: Rc<Self>,
        params: scheduler::InverseOffersParams,
        _: scheduler::InverseOffersResults,
    ) -> Result<(), capnp::Error> {
        let mut offers = Vec::new();
        for o in params.get()?.get_offers()?.iter() {
            let duration = o.get_unavailability_duration();
            offers.push(InverseOffer {
                id: OfferId::new(wire::text(o.get_id())?)
                    .map_err(|e| capnp::Error::failed(e.to_string()))?,
                framework_id: wire::framework_id(o.get_framework_id())?,
                agent_id: wire::agent_id(o.get_agent_id())?,
                hostname: wire::text(o.get_hostname())?,
                unavailability: (
                    o.get_unavailability_start(),
                    (duration >= 0.0).then_some(duration),
                ),
            });
        }
        self.emit(Event::InverseOffers(offers))
    }

    async fn rescind_inverse_offer(
        self: Rc<Self>,
        params: scheduler::RescindInverseOfferParams,
        _: scheduler::RescindInverseOfferResults,
    ) -> Result<(), capnp::Error> {
        let id = OfferId::new(wire::text(params.get()?.get_inverse_offer_id())?)
            .map_err(|e| capnp::Error::failed(e.to_string()))?;
        self.emit(Event::RescindInverseOffer(id))
    }

    async fn failure(
        self: Rc<Self>,
        params: scheduler::FailureParams,
        _: scheduler::FailureResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.emit(Event::Failure {
            agent_id: wire::agent_id(p.get_agent_id())?,
            executor_id: wire::opt_executor_id(p.get_executor_id())?,
            status: p.get_has_status().then(|| p.get_status()),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc as StdRc;
    use strata_schema::{StatusSource, TaskId, TaskState, UpdateUuid};

    /// A master's scheduler session that records the acknowledgements it gets; `batches`:
    /// whether it serves `acknowledgeAll` (a master of an older release does not).
    struct Recorder {
        calls: StdRc<RefCell<Vec<String>>>,
        batches: bool,
    }

    impl scheduler_session::Server for Recorder {
        async fn acknowledge(
            self: Rc<Self>,
            params: scheduler_session::AcknowledgeParams,
            _: scheduler_session::AcknowledgeResults,
        ) -> Result<(), capnp::Error> {
            let task = wire::text(params.get()?.get_task_id())?;
            self.calls.borrow_mut().push(format!("acknowledge {task}"));
            Ok(())
        }

        async fn acknowledge_all(
            self: Rc<Self>,
            params: scheduler_session::AcknowledgeAllParams,
            _: scheduler_session::AcknowledgeAllResults,
        ) -> Result<(), capnp::Error> {
            if !self.batches {
                return Err(capnp::Error::unimplemented("acknowledgeAll".to_string()));
            }
            let mut ids = Vec::new();
            for a in params.get()?.get_acks()?.iter() {
                ids.push(wire::text(a.get_task_id())?);
            }
            self.calls
                .borrow_mut()
                .push(format!("acknowledgeAll {}", ids.join(",")));
            Ok(())
        }
    }

    fn ack(task: &str) -> (Cmd, oneshot::Receiver<Result<(), ClientError>>) {
        let (reply, answer) = oneshot::channel();
        let status = TaskStatus {
            task_id: TaskId::new(task).unwrap(),
            state: TaskState::Running,
            message: String::new(),
            source: StatusSource::Executor,
            reason: None,
            agent_id: Some(AgentId::new("a").unwrap()),
            framework_id: None,
            container_id: None,
            timestamp: 0.0,
            uuid: Some(UpdateUuid::random()),
            exit_code: None,
        };
        (Cmd::Acknowledge { status, reply }, answer)
    }

    /// Queues acknowledgements of `rounds`' tasks, issues each round as the driver does, and
    /// returns the calls the master got; every acknowledgement must be answered Ok.
    fn acknowledge(batches: bool, rounds: &[&[&str]]) -> Vec<String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let calls = StdRc::new(RefCell::new(Vec::new()));
            let session: scheduler_session::Client = capnp_rpc::new_client(Recorder {
                calls: StdRc::clone(&calls),
                batches,
            });
            let flag = std::rc::Rc::new(std::cell::Cell::new(true));
            for round in rounds {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let mut answers = Vec::new();
                for task in round.iter() {
                    let (cmd, answer) = ack(task);
                    tx.send(cmd).unwrap();
                    answers.push(answer);
                }
                let first = rx.recv().await.unwrap();
                issue_ready(&session, first, &mut rx, &flag);
                for answer in answers {
                    answer.await.unwrap().unwrap();
                }
            }
            let calls = calls.borrow().clone();
            calls
        })
    }

    #[test]
    fn queued_acknowledgements_go_in_one_call() {
        assert_eq!(
            acknowledge(true, &[&["t1", "t2", "t3"], &["t4"]]),
            ["acknowledgeAll t1,t2,t3", "acknowledgeAll t4"]
        );
    }

    #[test]
    fn a_master_without_acknowledge_all_gets_each_alone() {
        assert_eq!(
            acknowledge(false, &[&["t1", "t2"], &["t3"]]),
            ["acknowledge t1", "acknowledge t2", "acknowledge t3"]
        );
    }
}
