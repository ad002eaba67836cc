//! The Cap'n Proto front end. capnp-rpc is `!Send`, so it runs on a thread of its own with a
//! current-thread runtime and a `LocalSet`; it talks to the actor over channels only. Incoming
//! calls become [`Msg`]s; the actor's per-connection commands and events become outgoing calls,
//! issued in order on the peer's capability.

use crate::actor::{Call, Msg};
use crate::net::{RpcConn, RpcStream};
use crate::state::{AgentCommand, CallError, ConnId, ReportedTask, SchedulerEvent};
use capnp::capability::Rc;
use capnp_rpc::{rpc_twoparty_capnp, twoparty, RpcSystem};
use futures::AsyncReadExt;
use strata_ha::zk::Leadership;
use strata_schema::agent_capnp::{agent, agent_session};
use strata_schema::scheduler_capnp::{master, scheduler, scheduler_session};
use strata_schema::{wire, AgentId, FrameworkId, OfferId, TaskId, UpdateUuid};
use strata_security::credentials::Credentials;
use strata_security::tls::PeerIdentity;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::compat::TokioAsyncReadCompatExt;
use tracing::{debug, warn};

type Actor = mpsc::UnboundedSender<Msg>;

/// The read and write buffers of one connection (futures' default is 8 KiB each), held only
/// while bytes are in them ([`crate::lazy_io`]): every agent holds a connection, idle nearly
/// all the time; larger messages bypass the buffers.
const CONNECTION_BUFFER: usize = 4 * 1024;

fn gone() -> capnp::Error {
    capnp::Error::failed("the master is shutting down".to_string())
}

fn call_error(err: CallError) -> capnp::Error {
    capnp::Error::failed(err.to_string())
}

/// How agents authenticate to register (`--authenticate-agents`, `--credentials`, and the
/// client certificates `--tls-ca` verifies).
#[derive(Debug, Default)]
pub struct AgentAuth {
    /// `--authenticate-agents`: an agent without a principal is refused.
    pub required: bool,
    /// `--credentials`: what an agent's `credential` is checked against.
    pub credentials: Option<Credentials>,
}

impl AgentAuth {
    /// The principal an agent registers as (`None`: unauthenticated, which only a master without
    /// `--authenticate-agents` admits), or why it may not register. A verified client
    /// certificate names its principal by its subject CN; otherwise the credential must match
    /// `--credentials`. A credential that does not match is refused even where authentication
    /// is optional, as Mesos does with a failed authentication.
    pub fn principal(
        &self,
        peer: Option<&PeerIdentity>,
        credential: Option<(String, String)>,
    ) -> Result<Option<String>, String> {
        if let Some(cn) = peer.and_then(|p| p.common_name.clone()) {
            return Ok(Some(cn));
        }
        match (credential, &self.credentials) {
            (Some((principal, secret)), Some(known)) => {
                if known.verify(&principal, &secret) {
                    Ok(Some(principal))
                } else {
                    Err(format!(
                        "agent authentication failed: the credential of principal {principal:?} \
                         does not match the master's --credentials"
                    ))
                }
            }
            (Some((principal, _)), None) if self.required => Err(format!(
                "agent authentication failed: principal {principal:?} sent a credential, but the \
                 master has no --credentials to check it against; use a client certificate \
                 signed by the master's --tls-ca"
            )),
            (Some(_), None) => Ok(None),
            (None, _) if self.required => Err(
                "agent authentication required (--authenticate-agents): present a client \
                 certificate signed by the master's --tls-ca (strata-agent --tls-cert/--tls-key) \
                 or a credential (strata-agent --credential)"
                    .to_string(),
            ),
            (None, _) => Ok(None),
        }
    }
}

/// Starts the RPC thread. Connections handed to the returned sender are served on it.
pub fn spawn(
    actor: Actor,
    leadership: watch::Receiver<Leadership>,
    auth: AgentAuth,
    framework_auth: crate::auth::SharedAuth,
) -> std::io::Result<mpsc::UnboundedSender<RpcConn>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<RpcConn>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("master-rpc".to_string())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            let auth = std::rc::Rc::new(auth);
            local.block_on(&runtime, async move {
                while let Some(RpcConn { stream, conn, peer }) = rx.recv().await {
                    let peer = Peer {
                        identity: peer,
                        auth: std::rc::Rc::clone(&auth),
                    };
                    match stream {
                        RpcStream::Plain(stream) => match tokio::net::TcpStream::from_std(stream) {
                            Ok(stream) => {
                                let _ = stream.set_nodelay(true);
                                serve(
                                    stream,
                                    conn,
                                    peer,
                                    actor.clone(),
                                    leadership.clone(),
                                    std::sync::Arc::clone(&framework_auth),
                                )
                            }
                            Err(err) => warn!(cause = %err, "failed to adopt an RPC connection"),
                        },
                        // The TLS stream stays registered with the accepting runtime's reactor
                        // (the master's main runtime, alive as long as the master).
                        RpcStream::Tls(stream) => serve(
                            *stream,
                            conn,
                            peer,
                            actor.clone(),
                            leadership.clone(),
                            std::sync::Arc::clone(&framework_auth),
                        ),
                    }
                }
            });
        })?;
    Ok(tx)
}

/// Who is at the other end of a connection, as far as the transport tells.
struct Peer {
    identity: Option<PeerIdentity>,
    auth: std::rc::Rc<AgentAuth>,
}

/// Serves one connection; tells the actor when it closes.
/// Closes a connection when dropped.
struct CloseOnDrop(std::rc::Rc<tokio::sync::Notify>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

fn serve<S>(
    stream: S,
    conn: ConnId,
    peer: Peer,
    actor: Actor,
    leadership: watch::Receiver<Leadership>,
    auth: crate::auth::SharedAuth,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (reader, writer) = stream.compat().split();
    // A message past the limits ends this connection only (wire::RPC_TRAVERSAL_LIMIT_WORDS).
    let options = wire::rpc_reader_options();
    let network = twoparty::VatNetwork::new(
        crate::lazy_io::LazyBufReader::with_capacity(CONNECTION_BUFFER, reader),
        crate::lazy_io::LazyBufWriter::with_capacity(CONNECTION_BUFFER, writer),
        rpc_twoparty_capnp::Side::Server,
        options,
    );
    let closer = std::rc::Rc::new(tokio::sync::Notify::new());
    let bootstrap: master::Client = capnp_rpc::new_client(MasterImpl {
        actor: actor.clone(),
        conn,
        leadership,
        closer: std::rc::Rc::clone(&closer),
        peer,
        auth,
    });
    let rpc = RpcSystem::new(Box::new(network), Some(bootstrap.client));
    tokio::task::spawn_local(async move {
        tokio::select! {
            result = rpc => {
                if let Err(err) = result {
                    debug!(conn, cause = %err, "rpc connection ended");
                }
            }
            _ = closer.notified() => debug!(conn, "closing the connection of an agent the master let go"),
        }
        let _ = actor.send(Msg::ConnectionClosed { conn });
    });
}

struct MasterImpl {
    actor: Actor,
    conn: ConnId,
    leadership: watch::Receiver<Leadership>,
    closer: std::rc::Rc<tokio::sync::Notify>,
    peer: Peer,
    auth: crate::auth::SharedAuth,
}

impl MasterImpl {
    /// Only the leader admits agents and frameworks; a standby names the leader.
    fn require_leading(&self) -> Result<(), capnp::Error> {
        let current = self.leadership.borrow().clone();
        match current {
            Leadership::Leading => Ok(()),
            Leadership::Following(Some(leader)) => Err(capnp::Error::failed(format!(
                "not the leading master; the leader is {}",
                leader.endpoint()
            ))),
            Leadership::Following(None) | Leadership::Lost(_) => Err(capnp::Error::failed(
                "not the leading master; no leader is elected yet".to_string(),
            )),
        }
    }
}

impl master::Server for MasterImpl {
    async fn register_agent(
        self: Rc<Self>,
        params: master::RegisterAgentParams,
        mut results: master::RegisterAgentResults,
    ) -> Result<(), capnp::Error> {
        self.require_leading()?;
        let p = params.get()?;
        let credential = if p.has_credential() {
            let c = p.get_credential()?;
            Some((wire::text(c.get_principal())?, wire::text(c.get_secret())?))
        } else {
            None
        };
        let principal = match self
            .peer
            .auth
            .principal(self.peer.identity.as_ref(), credential)
        {
            Ok(principal) => principal,
            Err(reason) => {
                warn!(conn = self.conn, %reason, "refused an agent's registration");
                return Err(capnp::Error::failed(reason));
            }
        };
        let info = wire::agent(p.get_info()?)?;
        let client: agent::Client = p.get_agent()?;
        let mut running = Vec::new();
        let reported = p.get_running()?;
        wire::check_len(reported.len(), "running tasks")?;
        for r in reported.iter() {
            running.push(ReportedTask {
                framework: wire::framework(r.get_framework()?)?,
                task: wire::task(r.get_task()?)?,
                state: wire::task_state(r.get_state())?,
            });
        }
        let (link, commands) = mpsc::unbounded_channel();
        let (reply, answer) = oneshot::channel();
        self.actor
            .send(Msg::RegisterAgent {
                conn: self.conn,
                info,
                link,
                running,
                principal,
                reply,
            })
            .map_err(|_| gone())?;
        let (agent_id, master_info) = answer
            .await
            .map_err(|_| gone())?
            .map_err(capnp::Error::failed)?;
        tokio::task::spawn_local(drive_agent(
            client,
            commands,
            self.actor.clone(),
            std::rc::Rc::clone(&self.closer),
        ));
        let mut r = results.get();
        r.set_agent_id(agent_id.as_str());
        wire::set_master(r.reborrow().init_master(), &master_info);
        r.set_session(capnp_rpc::new_client(AgentSessionImpl {
            actor: self.actor.clone(),
            conn: self.conn,
            agent_id,
        }));
        Ok(())
    }

    async fn subscribe(
        self: Rc<Self>,
        params: master::SubscribeParams,
        mut results: master::SubscribeResults,
    ) -> Result<(), capnp::Error> {
        self.require_leading()?;
        let p = params.get()?;
        let mut info = wire::framework(p.get_framework()?)?;
        // The framework's credential, checked against --credentials (issue 11).
        let mut authenticated = None;
        if p.has_credential() {
            let credential = p.get_credential()?;
            let principal = credential.get_principal()?.to_str()?;
            let secret = credential.get_secret()?.to_str()?;
            if !principal.is_empty() {
                if !self.auth.verify_credential(principal, secret) {
                    warn!(principal, "framework authentication failed");
                    return Err(capnp::Error::failed(format!(
                        "framework authentication failed for principal {principal:?}"
                    )));
                }
                authenticated = Some(principal.to_string());
            }
        }
        if let Err(why) =
            self.auth
                .admit_framework(authenticated.as_deref(), self.auth.frameworks, &mut info)
        {
            warn!(principal = authenticated.as_deref().unwrap_or("<none>"), %why, "subscribe refused");
            return Err(capnp::Error::failed(why));
        }
        let client: scheduler::Client = p.get_scheduler()?;
        let (link, events) = mpsc::unbounded_channel();
        let (reply, answer) = oneshot::channel();
        self.actor
            .send(Msg::Subscribe {
                conn: self.conn,
                info,
                link,
                suppressed_roles: None,
                reply,
            })
            .map_err(|_| gone())?;
        let framework_id = answer.await.map_err(|_| gone())?.map_err(call_error)?;
        tokio::task::spawn_local(drive_scheduler(client, events));
        let mut r = results.get();
        r.set_framework_id(framework_id.as_str());
        r.set_session(capnp_rpc::new_client(SchedulerSessionImpl {
            actor: self.actor.clone(),
            conn: self.conn,
            framework_id,
        }));
        Ok(())
    }
}

/// Calls a driver keeps outstanding on one agent's or one scheduler's capability at most; the
/// events after them wait in the actor's channel, as they came (a few hundred bytes each), rather
/// than as built Cap'n Proto messages (8 KiB each) queued on a peer that reads slowly.
const AGENT_WINDOW: usize = 128;
const SCHEDULER_WINDOW: usize = 1024;

/// Like [`spawn_call`], holding `permit` of its driver's window until the call is answered.
fn spawn_call_in<T: 'static>(
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    what: &'static str,
    promise: capnp::capability::Promise<T, capnp::Error>,
) {
    tokio::task::spawn_local(async move {
        if let Err(err) = promise.await {
            debug!(call = what, cause = %err, "call failed");
        }
        drop(permit);
    });
}

/// Whether a peer serves the batch calls (`launchTasks`, `acknowledgeAll`, `updates`): cleared
/// when one is answered "unimplemented", by a peer of an older release, after which each item
/// goes by its single call.
type Batches = std::rc::Rc<std::cell::Cell<bool>>;

fn unimplemented(err: &capnp::Error) -> bool {
    err.kind == capnp::ErrorKind::Unimplemented
}

/// Awaits a batch call; if the peer does not serve it, marks `batches` and hands the items to
/// `singly`. `permit` is held until the call is answered.
fn spawn_batch<T: 'static, I: 'static>(
    permit: tokio::sync::OwnedSemaphorePermit,
    what: &'static str,
    promise: capnp::capability::Promise<T, capnp::Error>,
    batches: Batches,
    items: I,
    singly: impl FnOnce(tokio::sync::OwnedSemaphorePermit, I) + 'static,
) {
    tokio::task::spawn_local(async move {
        match promise.await {
            Err(err) if unimplemented(&err) => {
                debug!(
                    call = what,
                    "the peer has no batch calls: sending each item alone"
                );
                batches.set(false);
                singly(permit, items);
            }
            Err(err) => debug!(call = what, cause = %err, "call failed"),
            Ok(_) => {}
        }
    });
}

/// Logs the failure of a one-way call.
fn spawn_call<T: 'static>(
    what: &'static str,
    promise: capnp::capability::Promise<T, capnp::Error>,
) {
    spawn_call_in(None, what, promise);
}

/// At most this many commands or events a driver takes from its channel at once, to send those
/// that go together (launches, acknowledgements, updates) in one call.
const BATCH: usize = 256;

/// Up to [`BATCH`] items: the one received and those already waiting behind it.
fn take_ready<T>(first: T, rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut items = vec![first];
    while items.len() < BATCH {
        match rx.try_recv() {
            Ok(item) => items.push(item),
            Err(_) => break,
        }
    }
    items
}

/// Splits `items` into runs of consecutive items that `together` pairs, keeping their order.
fn runs<T>(items: Vec<T>, together: impl Fn(&T, &T) -> bool) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    for item in items {
        match out.last_mut() {
            Some(run) if run.last().is_some_and(|last| together(last, &item)) => run.push(item),
            _ => out.push(vec![item]),
        }
    }
    out
}

/// Launches of one framework, and acknowledgements, go to an agent together.
fn agent_commands_together(a: &AgentCommand, b: &AgentCommand) -> bool {
    match (a, b) {
        (AgentCommand::Launch { framework: x, .. }, AgentCommand::Launch { framework: y, .. }) => {
            x.id == y.id
        }
        (AgentCommand::Acknowledge { .. }, AgentCommand::Acknowledge { .. }) => true,
        _ => false,
    }
}

async fn drive_agent(
    client: agent::Client,
    mut commands: mpsc::UnboundedReceiver<AgentCommand>,
    actor: Actor,
    closer: std::rc::Rc<tokio::sync::Notify>,
) {
    // The master lets the agent go (found unreachable, or re-registered on another connection)
    // by dropping its link: then this connection is closed, so that an agent cut off by a
    // partition sees it end when the network heals, and registers again.
    let _close_on_exit = CloseOnDrop(closer);
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(AGENT_WINDOW));
    let batches: Batches = std::rc::Rc::new(std::cell::Cell::new(true));
    while let Some(first) = commands.recv().await {
        let ready = take_ready(first, &mut commands);
        for run in runs(ready, agent_commands_together) {
            let Ok(permit) = std::sync::Arc::clone(&window).acquire_owned().await else {
                return;
            };
            send_to_agent(&client, &actor, permit, run, &batches);
        }
    }
}

/// Sends one run of [`runs`] to an agent: its launches or acknowledgements as one call (to an
/// agent that serves the batch calls), any other command as its own.
fn send_to_agent(
    client: &agent::Client,
    actor: &Actor,
    permit: tokio::sync::OwnedSemaphorePermit,
    run: Vec<AgentCommand>,
    batches: &Batches,
) {
    match run.first() {
        Some(AgentCommand::Launch { .. }) if batches.get() => {
            launch_tasks(client, actor, permit, run, batches)
        }
        Some(AgentCommand::Acknowledge { .. }) if batches.get() => {
            acknowledge_all(client, actor, permit, run, batches)
        }
        _ => agent_singly(client, actor, permit, run),
    }
}

/// Each command of `run` by its own call; the first holds `permit`.
fn agent_singly(
    client: &agent::Client,
    actor: &Actor,
    permit: tokio::sync::OwnedSemaphorePermit,
    run: Vec<AgentCommand>,
) {
    let mut permit = Some(permit);
    for cmd in run {
        send_command(client, actor, permit.take(), cmd);
    }
}

/// `launchTasks` with the tasks of `run`'s launches (all of one framework).
fn launch_tasks(
    client: &agent::Client,
    actor: &Actor,
    permit: tokio::sync::OwnedSemaphorePermit,
    run: Vec<AgentCommand>,
    batches: &Batches,
) {
    let Some(AgentCommand::Launch { framework, .. }) = run.first() else {
        return;
    };
    let mut req = client.launch_tasks_request();
    let mut b = req.get();
    wire::set_framework(b.reborrow().init_framework(), framework);
    let mut list = b.init_tasks(run.len() as u32);
    for (i, cmd) in run.iter().enumerate() {
        if let AgentCommand::Launch { task, .. } = cmd {
            wire::set_task(list.reborrow().get(i as u32), task);
        }
    }
    let (client, actor) = (client.clone(), actor.clone());
    spawn_batch(
        permit,
        "launchTasks",
        req.send().promise,
        std::rc::Rc::clone(batches),
        run,
        move |permit, run| agent_singly(&client, &actor, permit, run),
    );
}

/// `acknowledgeAll` with `run`'s acknowledgements.
fn acknowledge_all(
    client: &agent::Client,
    actor: &Actor,
    permit: tokio::sync::OwnedSemaphorePermit,
    run: Vec<AgentCommand>,
    batches: &Batches,
) {
    let mut req = client.acknowledge_all_request();
    let mut list = req.get().init_acks(run.len() as u32);
    for (i, cmd) in run.iter().enumerate() {
        if let AgentCommand::Acknowledge {
            framework_id,
            task_id,
            uuid,
        } = cmd
        {
            let mut b = list.reborrow().get(i as u32);
            b.set_framework_id(framework_id.as_str());
            b.set_task_id(task_id.as_str());
            b.set_uuid(&uuid.0[..]);
        }
    }
    let (client, actor) = (client.clone(), actor.clone());
    spawn_batch(
        permit,
        "acknowledgeAll",
        req.send().promise,
        std::rc::Rc::clone(batches),
        run,
        move |permit, run| agent_singly(&client, &actor, permit, run),
    );
}

/// One command by its own call, holding `permit` (if given) until a windowed call is answered.
fn send_command(
    client: &agent::Client,
    actor: &Actor,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    cmd: AgentCommand,
) {
    match cmd {
        AgentCommand::Ping { agent_id, seq } => {
            let promise = client.ping_request().send().promise;
            let actor = actor.clone();
            tokio::task::spawn_local(async move {
                if promise.await.is_ok() {
                    let _ = actor.send(Msg::Pong { agent_id, seq });
                }
            });
        }
        AgentCommand::Launch { framework, task } => {
            let mut req = client.launch_request();
            let mut b = req.get();
            wire::set_framework(b.reborrow().init_framework(), &framework);
            wire::set_task(b.init_task(), &task);
            spawn_call_in(permit, "launch", req.send().promise);
        }
        AgentCommand::Acknowledge {
            framework_id,
            task_id,
            uuid,
        } => {
            let mut req = client.acknowledge_request();
            let mut b = req.get();
            b.set_framework_id(framework_id.as_str());
            b.set_task_id(task_id.as_str());
            b.set_uuid(&uuid.0[..]);
            spawn_call_in(permit, "acknowledge", req.send().promise);
        }
        AgentCommand::Kill {
            framework_id,
            task_id,
            grace_period_secs,
        } => {
            let mut req = client.kill_request();
            let mut b = req.get();
            b.set_framework_id(framework_id.as_str());
            b.set_task_id(task_id.as_str());
            b.set_grace_period_secs(grace_period_secs);
            spawn_call("kill", req.send().promise);
        }
        AgentCommand::Shutdown { reason } => {
            let mut req = client.shutdown_request();
            req.get().set_reason(reason.as_str());
            spawn_call("shutdown", req.send().promise);
        }
        AgentCommand::ShutdownFramework { framework_id } => {
            let mut req = client.shutdown_framework_request();
            req.get().set_framework_id(framework_id.as_str());
            spawn_call("shutdownFramework", req.send().promise);
        }
        AgentCommand::DestroyVolumes { volumes } => {
            let mut req = client.destroy_volumes_request();
            wire::set_resources(req.get().init_volumes(wire::len(&volumes)), &volumes);
            spawn_call("destroyVolumes", req.send().promise);
        }
        AgentCommand::LaunchGroup {
            framework,
            executor,
            tasks,
        } => {
            let mut req = client.launch_group_request();
            let mut b = req.get();
            wire::set_framework(b.reborrow().init_framework(), &framework);
            wire::set_executor(b.reborrow().init_executor(), &executor);
            let mut list = b.init_tasks(tasks.len() as u32);
            for (i, task) in tasks.iter().enumerate() {
                wire::set_task(list.reborrow().get(i as u32), task);
            }
            spawn_call_in(permit, "launchGroup", req.send().promise);
        }
        AgentCommand::FrameworkMessage {
            framework_id,
            executor_id,
            data,
        } => {
            let mut req = client.framework_message_request();
            let mut b = req.get();
            b.set_framework_id(framework_id.as_str());
            b.set_executor_id(executor_id.as_str());
            b.set_data(&data);
            spawn_call_in(permit, "frameworkMessage", req.send().promise);
        }
        AgentCommand::ShutdownExecutor {
            framework_id,
            executor_id,
        } => {
            let mut req = client.shutdown_executor_request();
            let mut b = req.get();
            b.set_framework_id(framework_id.as_str());
            b.set_executor_id(executor_id.as_str());
            spawn_call("shutdownExecutor", req.send().promise);
        }
    }
}

async fn drive_scheduler(
    client: scheduler::Client,
    mut events: mpsc::UnboundedReceiver<SchedulerEvent>,
) {
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(SCHEDULER_WINDOW));
    let batches: Batches = std::rc::Rc::new(std::cell::Cell::new(true));
    while let Some(first) = events.recv().await {
        let ready = take_ready(first, &mut events);
        let together = |a: &SchedulerEvent, b: &SchedulerEvent| {
            matches!(
                (a, b),
                (SchedulerEvent::Update(_), SchedulerEvent::Update(_))
            )
        };
        for run in runs(ready, together) {
            let Ok(permit) = std::sync::Arc::clone(&window).acquire_owned().await else {
                return;
            };
            if batches.get() && matches!(run.first(), Some(SchedulerEvent::Update(_))) {
                send_updates(&client, permit, run, &batches);
            } else {
                scheduler_singly(&client, permit, run);
            }
        }
    }
}

/// Each event of `run` by its own call; the first holds `permit`.
fn scheduler_singly(
    client: &scheduler::Client,
    permit: tokio::sync::OwnedSemaphorePermit,
    run: Vec<SchedulerEvent>,
) {
    let mut permit = Some(permit);
    for event in run {
        send_event(client, permit.take(), event);
    }
}

/// `updates` with the status updates of `run`, in order.
fn send_updates(
    client: &scheduler::Client,
    permit: tokio::sync::OwnedSemaphorePermit,
    run: Vec<SchedulerEvent>,
    batches: &Batches,
) {
    let mut req = client.updates_request();
    let mut list = req.get().init_statuses(run.len() as u32);
    for (i, event) in run.iter().enumerate() {
        if let SchedulerEvent::Update(status) = event {
            wire::set_status(list.reborrow().get(i as u32), status);
        }
    }
    let client = client.clone();
    spawn_batch(
        permit,
        "updates",
        req.send().promise,
        std::rc::Rc::clone(batches),
        run,
        move |permit, run| scheduler_singly(&client, permit, run),
    );
}

/// One event by its own call, holding `permit` (if given) until a windowed call is answered.
fn send_event(
    client: &scheduler::Client,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    event: SchedulerEvent,
) {
    match event {
        SchedulerEvent::Subscribed {
            framework_id,
            heartbeat_interval_secs,
            master,
        } => {
            let mut req = client.subscribed_request();
            let mut b = req.get();
            b.set_framework_id(framework_id.as_str());
            b.set_heartbeat_interval_secs(heartbeat_interval_secs);
            wire::set_master(b.init_master(), &master);
            spawn_call("subscribed", req.send().promise);
        }
        SchedulerEvent::Offers(offers) => {
            let mut req = client.offers_request();
            let mut list = req.get().init_offers(offers.len() as u32);
            for (i, o) in offers.iter().enumerate() {
                let mut b = list.reborrow().get(i as u32);
                b.set_id(o.id.as_str());
                b.set_framework_id(o.framework_id.as_str());
                b.set_agent_id(o.agent_id.as_str());
                b.set_hostname(o.hostname.as_str());
                b.set_allocation_role(o.role.as_str());
                if let Some(w) = &o.unavailability {
                    b.set_has_unavailability(true);
                    b.set_unavailability_start(w.start);
                    b.set_unavailability_duration(w.duration.unwrap_or(-1.0));
                }
                wire::set_resources(
                    b.reborrow().init_resources(wire::len(&o.resources)),
                    &o.resources,
                );
                wire::set_attributes(
                    b.init_attributes(o.attributes.0.len() as u32),
                    &o.attributes,
                );
            }
            spawn_call_in(permit, "offers", req.send().promise);
        }
        SchedulerEvent::Rescind(offer_id) => {
            let mut req = client.rescind_request();
            req.get().set_offer_id(offer_id.as_str());
            spawn_call("rescind", req.send().promise);
        }
        SchedulerEvent::Update(status) => {
            let mut req = client.update_request();
            wire::set_status(req.get().init_status(), &status);
            spawn_call_in(permit, "update", req.send().promise);
        }
        SchedulerEvent::Error(message) => {
            let mut req = client.error_request();
            req.get().set_message(message.as_str());
            spawn_call("error", req.send().promise);
        }
        SchedulerEvent::Heartbeat => {
            spawn_call("heartbeat", client.heartbeat_request().send().promise)
        }
        SchedulerEvent::Message {
            agent_id,
            executor_id,
            data,
        } => {
            let mut req = client.message_request();
            let mut b = req.get();
            b.set_agent_id(agent_id.as_str());
            b.set_executor_id(executor_id.as_str());
            b.set_data(&data);
            spawn_call_in(permit, "message", req.send().promise);
        }
        SchedulerEvent::InverseOffers(offers) => {
            let mut req = client.inverse_offers_request();
            let mut list = req.get().init_offers(offers.len() as u32);
            for (i, o) in offers.iter().enumerate() {
                let mut b = list.reborrow().get(i as u32);
                b.set_id(o.id.as_str());
                b.set_framework_id(o.framework_id.as_str());
                b.set_agent_id(o.agent_id.as_str());
                b.set_hostname(o.hostname.as_str());
                b.set_unavailability_start(o.unavailability.start);
                b.set_unavailability_duration(o.unavailability.duration.unwrap_or(-1.0));
            }
            spawn_call_in(permit, "inverseOffers", req.send().promise);
        }
        SchedulerEvent::RescindInverseOffer(offer_id) => {
            let mut req = client.rescind_inverse_offer_request();
            req.get().set_inverse_offer_id(offer_id.as_str());
            spawn_call("rescindInverseOffer", req.send().promise);
        }
        SchedulerEvent::Failure {
            agent_id,
            executor_id,
            status,
        } => {
            let mut req = client.failure_request();
            let mut b = req.get();
            b.set_agent_id(agent_id.as_ref().map_or("", |a| a.as_str()));
            b.set_executor_id(executor_id.as_ref().map_or("", |e| e.as_str()));
            b.set_has_status(status.is_some());
            b.set_status(status.unwrap_or(0));
            spawn_call("failure", req.send().promise);
        }
    }
}

struct AgentSessionImpl {
    actor: Actor,
    conn: ConnId,
    agent_id: AgentId,
}

impl AgentSessionImpl {
    /// Hands `statuses` to the actor; answers once it applied them.
    async fn updates(&self, statuses: Vec<strata_schema::TaskStatus>) -> Result<(), capnp::Error> {
        let (reply, answer) = oneshot::channel();
        self.actor
            .send(Msg::StatusUpdates {
                conn: self.conn,
                agent_id: self.agent_id.clone(),
                statuses,
                reply,
            })
            .map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(capnp::Error::failed)
    }
}

impl agent_session::Server for AgentSessionImpl {
    async fn status_update(
        self: Rc<Self>,
        params: agent_session::StatusUpdateParams,
        _results: agent_session::StatusUpdateResults,
    ) -> Result<(), capnp::Error> {
        let status = wire::status(params.get()?.get_update()?)?;
        self.updates(vec![status]).await
    }

    async fn status_updates(
        self: Rc<Self>,
        params: agent_session::StatusUpdatesParams,
        _results: agent_session::StatusUpdatesResults,
    ) -> Result<(), capnp::Error> {
        let list = params.get()?.get_updates()?;
        wire::check_len(list.len(), "status updates")?;
        let statuses = list
            .iter()
            .map(wire::status)
            .collect::<Result<Vec<_>, _>>()?;
        self.updates(statuses).await
    }

    async fn unregister(
        self: Rc<Self>,
        _params: agent_session::UnregisterParams,
        _results: agent_session::UnregisterResults,
    ) -> Result<(), capnp::Error> {
        self.actor
            .send(Msg::UnregisterAgent {
                conn: self.conn,
                agent_id: self.agent_id.clone(),
            })
            .map_err(|_| gone())
    }

    async fn framework_message(
        self: Rc<Self>,
        params: agent_session::FrameworkMessageParams,
        _results: agent_session::FrameworkMessageResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.actor
            .send(Msg::ExecutorMessage {
                conn: self.conn,
                agent_id: self.agent_id.clone(),
                framework_id: wire::framework_id(p.get_framework_id())?,
                executor_id: wire::executor_id(p.get_executor_id())?,
                data: p.get_data()?.to_vec(),
            })
            .map_err(|_| gone())
    }

    async fn executor_exited(
        self: Rc<Self>,
        params: agent_session::ExecutorExitedParams,
        _results: agent_session::ExecutorExitedResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.actor
            .send(Msg::ExecutorExited {
                conn: self.conn,
                agent_id: self.agent_id.clone(),
                framework_id: wire::framework_id(p.get_framework_id())?,
                executor_id: wire::executor_id(p.get_executor_id())?,
                status: Some(p.get_status()),
            })
            .map_err(|_| gone())
    }
}

struct SchedulerSessionImpl {
    actor: Actor,
    conn: ConnId,
    framework_id: FrameworkId,
}

impl SchedulerSessionImpl {
    async fn call(&self, call: Call) -> Result<(), capnp::Error> {
        let (reply, answer) = oneshot::channel();
        self.actor
            .send(Msg::Call {
                conn: self.conn,
                framework_id: self.framework_id.clone(),
                call,
                reply,
            })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?.map_err(call_error)
    }
}

fn offer_ids(
    reader: capnp::Result<capnp::text_list::Reader<'_>>,
) -> Result<Vec<OfferId>, capnp::Error> {
    wire::text_list(reader)?
        .into_iter()
        .map(|s| OfferId::new(s).map_err(|e| capnp::Error::failed(e.to_string())))
        .collect()
}

/// One acknowledgement of a framework: the agent, the task and the update's uuid.
fn acknowledgement(
    agent_id: capnp::Result<capnp::text::Reader<'_>>,
    task_id: capnp::Result<capnp::text::Reader<'_>>,
    uuid: capnp::Result<&[u8]>,
) -> Result<(AgentId, TaskId, UpdateUuid), capnp::Error> {
    let uuid = wire::update_uuid(uuid?, "acknowledgement uuid")?;
    Ok((wire::agent_id(agent_id)?, wire::task_id(task_id)?, uuid))
}

fn refuse_seconds(value: f64) -> Result<f64, capnp::Error> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(capnp::Error::failed(format!(
            "invalid filters: refuse_seconds {value} is not a non-negative number"
        )))
    }
}

impl scheduler_session::Server for SchedulerSessionImpl {
    async fn accept(
        self: Rc<Self>,
        params: scheduler_session::AcceptParams,
        _results: scheduler_session::AcceptResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let offer_ids = offer_ids(p.get_offer_ids())?;
        let operations = p
            .get_operations()?
            .iter()
            .map(wire::operation)
            .collect::<Result<Vec<_>, _>>()?;
        let refuse_seconds = refuse_seconds(p.get_filters()?.get_refuse_seconds())?;
        self.call(Call::Accept {
            offer_ids,
            operations,
            refuse_seconds,
        })
        .await
    }

    async fn decline(
        self: Rc<Self>,
        params: scheduler_session::DeclineParams,
        _results: scheduler_session::DeclineResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let offer_ids = offer_ids(p.get_offer_ids())?;
        let refuse_seconds = refuse_seconds(p.get_filters()?.get_refuse_seconds())?;
        self.call(Call::Decline {
            offer_ids,
            refuse_seconds,
        })
        .await
    }

    async fn kill(
        self: Rc<Self>,
        params: scheduler_session::KillParams,
        _results: scheduler_session::KillResults,
    ) -> Result<(), capnp::Error> {
        let task_id = wire::task_id(params.get()?.get_task_id())?;
        self.call(Call::Kill { task_id }).await
    }

    async fn acknowledge(
        self: Rc<Self>,
        params: scheduler_session::AcknowledgeParams,
        _results: scheduler_session::AcknowledgeResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        let ack = acknowledgement(p.get_agent_id(), p.get_task_id(), p.get_uuid())?;
        self.call(Call::Acknowledge { acks: vec![ack] }).await
    }

    async fn acknowledge_all(
        self: Rc<Self>,
        params: scheduler_session::AcknowledgeAllParams,
        _results: scheduler_session::AcknowledgeAllResults,
    ) -> Result<(), capnp::Error> {
        let list = params.get()?.get_acks()?;
        wire::check_len(list.len(), "acknowledgements")?;
        let acks = list
            .iter()
            .map(|a| acknowledgement(a.get_agent_id(), a.get_task_id(), a.get_uuid()))
            .collect::<Result<Vec<_>, _>>()?;
        self.call(Call::Acknowledge { acks }).await
    }

    async fn reconcile(
        self: Rc<Self>,
        params: scheduler_session::ReconcileParams,
        _results: scheduler_session::ReconcileResults,
    ) -> Result<(), capnp::Error> {
        let mut tasks = Vec::new();
        for t in params.get()?.get_tasks()?.iter() {
            let task_id: TaskId = wire::task_id(t.get_task_id())?;
            tasks.push((task_id, wire::opt_agent_id(t.get_agent_id())?));
        }
        self.call(Call::Reconcile { tasks }).await
    }

    async fn revive(
        self: Rc<Self>,
        params: scheduler_session::ReviveParams,
        _results: scheduler_session::ReviveResults,
    ) -> Result<(), capnp::Error> {
        let roles = wire::text_list(params.get()?.get_roles())?;
        self.call(Call::Revive { roles }).await
    }

    async fn suppress(
        self: Rc<Self>,
        params: scheduler_session::SuppressParams,
        _results: scheduler_session::SuppressResults,
    ) -> Result<(), capnp::Error> {
        let roles = wire::text_list(params.get()?.get_roles())?;
        self.call(Call::Suppress { roles }).await
    }

    async fn teardown(
        self: Rc<Self>,
        _params: scheduler_session::TeardownParams,
        _results: scheduler_session::TeardownResults,
    ) -> Result<(), capnp::Error> {
        self.call(Call::Teardown).await
    }

    async fn message(
        self: Rc<Self>,
        params: scheduler_session::MessageParams,
        _results: scheduler_session::MessageResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.call(Call::Message {
            agent_id: wire::agent_id(p.get_agent_id())?,
            executor_id: wire::executor_id(p.get_executor_id())?,
            data: p.get_data()?.to_vec(),
        })
        .await
    }

    async fn shutdown(
        self: Rc<Self>,
        params: scheduler_session::ShutdownParams,
        _results: scheduler_session::ShutdownResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.call(Call::Shutdown {
            agent_id: wire::agent_id(p.get_agent_id())?,
            executor_id: wire::executor_id(p.get_executor_id())?,
        })
        .await
    }

    async fn accept_inverse_offers(
        self: Rc<Self>,
        params: scheduler_session::AcceptInverseOffersParams,
        _results: scheduler_session::AcceptInverseOffersResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.call(Call::AnswerInverseOffers {
            offer_ids: offer_ids(p.get_inverse_offer_ids())?,
            accept: true,
            refuse_seconds: refuse_seconds(p.get_filters()?.get_refuse_seconds())?,
        })
        .await
    }

    async fn decline_inverse_offers(
        self: Rc<Self>,
        params: scheduler_session::DeclineInverseOffersParams,
        _results: scheduler_session::DeclineInverseOffersResults,
    ) -> Result<(), capnp::Error> {
        let p = params.get()?;
        self.call(Call::AnswerInverseOffers {
            offer_ids: offer_ids(p.get_inverse_offer_ids())?,
            accept: false,
            refuse_seconds: refuse_seconds(p.get_filters()?.get_refuse_seconds())?,
        })
        .await
    }

    async fn update_framework(
        self: Rc<Self>,
        params: scheduler_session::UpdateFrameworkParams,
        _results: scheduler_session::UpdateFrameworkResults,
    ) -> Result<(), capnp::Error> {
        let info = wire::framework(params.get()?.get_framework()?)?;
        self.call(Call::UpdateFramework {
            info: Box::new(info),
            suppressed_roles: None,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use strata_security::credentials::Credential;

    fn auth(required: bool, with_credentials: bool) -> AgentAuth {
        AgentAuth {
            required,
            credentials: with_credentials.then(|| {
                Credentials::from_list([Credential {
                    principal: "agent".to_string(),
                    secret: "s3cret".to_string(),
                }])
            }),
        }
    }

    #[test]
    fn runs_group_only_neighbours_and_keep_the_order() {
        let together = |a: &u32, b: &u32| a % 2 == 0 && b % 2 == 0;
        assert_eq!(
            runs(vec![2, 4, 1, 6, 8, 10, 3, 3], together),
            [vec![2, 4], vec![1], vec![6, 8, 10], vec![3], vec![3]]
        );
        assert!(runs(Vec::<u32>::new(), together).is_empty());
    }

    fn launch_cmd(fw: &str, task: &str) -> AgentCommand {
        use strata_schema::FrameworkInfo;
        AgentCommand::Launch {
            framework: Box::new(FrameworkInfo {
                id: Some(FrameworkId::new(fw).unwrap()),
                ..FrameworkInfo::default()
            }),
            task: Box::new(crate::state::tests::task(
                task,
                &AgentId::new("agent").unwrap(),
                "cpus:1",
            )),
        }
    }

    fn ack_cmd(task: &str) -> AgentCommand {
        AgentCommand::Acknowledge {
            framework_id: FrameworkId::new("a").unwrap(),
            task_id: TaskId::new(task).unwrap(),
            uuid: UpdateUuid::random(),
        }
    }

    #[test]
    fn launches_go_together_only_within_a_framework() {
        let kill = || AgentCommand::Kill {
            framework_id: FrameworkId::new("a").unwrap(),
            task_id: TaskId::new("t").unwrap(),
            grace_period_secs: 0.0,
        };
        let sizes: Vec<usize> = runs(
            vec![
                launch_cmd("a", "t1"),
                launch_cmd("a", "t2"),
                launch_cmd("b", "t3"),
                ack_cmd("t1"),
                ack_cmd("t2"),
                kill(),
                kill(),
                ack_cmd("t3"),
            ],
            agent_commands_together,
        )
        .iter()
        .map(Vec::len)
        .collect();
        assert_eq!(sizes, [2, 1, 2, 1, 1, 1]);
    }

    /// Runs `f` on a current-thread runtime's `LocalSet` (capnp-rpc is `!Send`).
    fn on_local<F: std::future::Future>(f: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&runtime, f)
    }

    /// Lets the calls in flight on this `LocalSet` be answered.
    async fn settle() {
        for _ in 0..20 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    /// An agent's capability that records the calls it gets; `batches`: whether it serves
    /// `launchTasks` and `acknowledgeAll` (an agent of an older release does not).
    struct Recorder {
        calls: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
        batches: bool,
    }

    impl agent::Server for Recorder {
        async fn launch(
            self: Rc<Self>,
            params: agent::LaunchParams,
            _: agent::LaunchResults,
        ) -> Result<(), capnp::Error> {
            let task = wire::task(params.get()?.get_task()?)?;
            self.calls
                .borrow_mut()
                .push(format!("launch {}", task.task_id));
            Ok(())
        }

        async fn acknowledge(
            self: Rc<Self>,
            params: agent::AcknowledgeParams,
            _: agent::AcknowledgeResults,
        ) -> Result<(), capnp::Error> {
            let task = wire::text(params.get()?.get_task_id())?;
            self.calls.borrow_mut().push(format!("ack {task}"));
            Ok(())
        }

        async fn launch_tasks(
            self: Rc<Self>,
            params: agent::LaunchTasksParams,
            _: agent::LaunchTasksResults,
        ) -> Result<(), capnp::Error> {
            if !self.batches {
                return Err(capnp::Error::unimplemented("launchTasks".to_string()));
            }
            let mut ids = Vec::new();
            for t in params.get()?.get_tasks()?.iter() {
                ids.push(wire::task(t)?.task_id.to_string());
            }
            self.calls
                .borrow_mut()
                .push(format!("launchTasks {}", ids.join(",")));
            Ok(())
        }

        async fn acknowledge_all(
            self: Rc<Self>,
            params: agent::AcknowledgeAllParams,
            _: agent::AcknowledgeAllResults,
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

    /// Drives an agent capability with `commands` (sent at once), then with `later`, and
    /// returns the calls it got.
    fn drive(batches: bool, commands: Vec<AgentCommand>, later: Vec<AgentCommand>) -> Vec<String> {
        on_local(async move {
            let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let client: agent::Client = capnp_rpc::new_client(Recorder {
                calls: std::rc::Rc::clone(&calls),
                batches,
            });
            let (tx, rx) = mpsc::unbounded_channel();
            let (actor, _actor_rx) = mpsc::unbounded_channel();
            let closer = std::rc::Rc::new(tokio::sync::Notify::new());
            let driver = tokio::task::spawn_local(drive_agent(client, rx, actor, closer));
            for cmd in commands {
                tx.send(cmd).unwrap();
            }
            settle().await;
            for cmd in later {
                tx.send(cmd).unwrap();
            }
            settle().await;
            drop(tx);
            driver.await.unwrap();
            let calls = calls.borrow().clone();
            calls
        })
    }

    #[test]
    fn an_agent_gets_launches_and_acknowledgements_in_batches() {
        let calls = drive(
            true,
            vec![
                launch_cmd("a", "t1"),
                launch_cmd("a", "t2"),
                ack_cmd("t0"),
                ack_cmd("t1"),
            ],
            vec![launch_cmd("a", "t3")],
        );
        assert_eq!(
            calls,
            [
                "launchTasks t1,t2",
                "acknowledgeAll t0,t1",
                "launchTasks t3"
            ]
        );
    }

    #[test]
    fn an_agent_without_batch_calls_gets_each_command_alone() {
        let calls = drive(
            false,
            vec![
                launch_cmd("a", "t1"),
                launch_cmd("a", "t2"),
                ack_cmd("t0"),
                ack_cmd("t1"),
            ],
            vec![launch_cmd("a", "t3"), launch_cmd("a", "t4")],
        );
        assert_eq!(
            calls,
            [
                "launch t1",
                "launch t2",
                "ack t0",
                "ack t1",
                "launch t3",
                "launch t4"
            ]
        );
    }

    /// A framework's scheduler capability recording the updates it gets; `batches`: whether it
    /// serves `updates` (a framework on an older client does not).
    struct SchedulerRecorder {
        calls: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
        batches: bool,
    }

    impl scheduler::Server for SchedulerRecorder {
        async fn update(
            self: Rc<Self>,
            params: scheduler::UpdateParams,
            _: scheduler::UpdateResults,
        ) -> Result<(), capnp::Error> {
            let s = wire::status(params.get()?.get_status()?)?;
            self.calls
                .borrow_mut()
                .push(format!("update {}", s.task_id));
            Ok(())
        }

        async fn updates(
            self: Rc<Self>,
            params: scheduler::UpdatesParams,
            _: scheduler::UpdatesResults,
        ) -> Result<(), capnp::Error> {
            if !self.batches {
                return Err(capnp::Error::unimplemented("updates".to_string()));
            }
            let mut ids = Vec::new();
            for s in params.get()?.get_statuses()?.iter() {
                ids.push(wire::status(s)?.task_id.to_string());
            }
            self.calls
                .borrow_mut()
                .push(format!("updates {}", ids.join(",")));
            Ok(())
        }
    }

    fn update(task: &str) -> SchedulerEvent {
        SchedulerEvent::Update(crate::state::tests::status(
            &FrameworkId::new("f").unwrap(),
            &AgentId::new("agent").unwrap(),
            task,
            strata_schema::TaskState::Running,
        ))
    }

    fn drive_updates(batches: bool, rounds: Vec<Vec<SchedulerEvent>>) -> Vec<String> {
        on_local(async move {
            let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let client: scheduler::Client = capnp_rpc::new_client(SchedulerRecorder {
                calls: std::rc::Rc::clone(&calls),
                batches,
            });
            let (tx, rx) = mpsc::unbounded_channel();
            let driver = tokio::task::spawn_local(drive_scheduler(client, rx));
            for round in rounds {
                for event in round {
                    tx.send(event).unwrap();
                }
                settle().await;
            }
            drop(tx);
            driver.await.unwrap();
            let calls = calls.borrow().clone();
            calls
        })
    }

    #[test]
    fn a_framework_gets_ready_updates_in_one_call() {
        let calls = drive_updates(
            true,
            vec![vec![
                update("t1"),
                update("t2"),
                SchedulerEvent::Heartbeat,
                update("t3"),
            ]],
        );
        assert_eq!(calls, ["updates t1,t2", "updates t3"]);
    }

    #[test]
    fn a_framework_without_updates_gets_each_alone() {
        let calls = drive_updates(
            false,
            vec![
                vec![update("t1"), update("t2")],
                vec![update("t3"), update("t4")],
            ],
        );
        assert_eq!(calls, ["update t1", "update t2", "update t3", "update t4"]);
    }

    #[tokio::test]
    async fn take_ready_takes_what_waits_up_to_a_batch() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..BATCH + 10 {
            tx.send(i).unwrap();
        }
        let first = rx.recv().await.unwrap();
        let ready = take_ready(first, &mut rx);
        assert_eq!(ready.len(), BATCH);
        assert_eq!(ready[..3], [0, 1, 2]);
        let rest = take_ready(rx.recv().await.unwrap(), &mut rx);
        assert_eq!(rest.len(), 10);
    }

    fn cert(cn: &str) -> PeerIdentity {
        PeerIdentity {
            common_name: Some(cn.to_string()),
            alt_names: vec![],
        }
    }

    fn cred(principal: &str, secret: &str) -> Option<(String, String)> {
        Some((principal.to_string(), secret.to_string()))
    }

    #[test]
    fn agents_authenticate_by_certificate_or_credential() {
        let required = auth(true, true);
        assert_eq!(
            required.principal(Some(&cert("node-1")), None).unwrap(),
            Some("node-1".to_string())
        );
        assert_eq!(
            required.principal(None, cred("agent", "s3cret")).unwrap(),
            Some("agent".to_string())
        );
        let err = required
            .principal(None, cred("agent", "wrong"))
            .unwrap_err();
        assert!(
            err.contains("\"agent\"") && err.contains("--credentials"),
            "{err}"
        );
        let err = required.principal(None, None).unwrap_err();
        assert!(err.contains("--authenticate-agents"), "{err}");
        // A certificate without a CN is no identity.
        let anonymous = PeerIdentity {
            common_name: None,
            alt_names: vec!["node".to_string()],
        };
        assert!(required.principal(Some(&anonymous), None).is_err());
        // Without --credentials, a credential cannot be checked.
        assert!(auth(true, false)
            .principal(None, cred("agent", "s3cret"))
            .is_err());
    }

    #[test]
    fn optional_authentication_still_refuses_a_wrong_credential() {
        let optional = auth(false, true);
        assert_eq!(optional.principal(None, None).unwrap(), None);
        assert!(optional.principal(None, cred("agent", "wrong")).is_err());
        assert_eq!(
            optional.principal(None, cred("agent", "s3cret")).unwrap(),
            Some("agent".to_string())
        );
        assert_eq!(
            auth(false, false).principal(None, cred("x", "y")).unwrap(),
            None
        );
    }
}
