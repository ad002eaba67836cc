//! Lightweight in-process agents for `cargo xtask bench failover` and `bench master`: each speaks
//! the real Cap'n Proto agent protocol (registers with its running tasks, answers pings,
//! re-registers whenever the connection drops or ZooKeeper names another leader). For `failover`
//! they run nothing ([`SimTasks::Ignore`]); for `master` they "run" what they are launched
//! ([`SimTasks::Run`]): TASK_RUNNING at once, TASK_FINISHED after a delay or on demand
//! ([`SimHandle::finish_all`]). All of them share one thread (capnp-rpc is `!Send`).

use capnp_rpc::{rpc_twoparty_capnp, twoparty, RpcSystem};
use futures::AsyncReadExt;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_schema::agent_capnp::{agent, agent_session};
use strata_schema::scheduler_capnp::master;
use strata_schema::{
    wire, AgentId, AgentInfo, FrameworkId, FrameworkInfo, Resources, StatusSource, TaskId,
    TaskInfo, TaskState, TaskStatus, UpdateUuid,
};
use tokio::sync::watch;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// What the simulated agents report, shared with the bench.
#[derive(Debug, Default)]
pub struct SimState {
    /// Per agent: when it last registered (with its tasks).
    pub registered_at: Vec<Option<Instant>>,
    /// Per agent: the id the master gave it.
    pub ids: Vec<Option<AgentId>>,
    /// With [`SimTasks::Run`]: tasks launched on the agents, all together.
    pub launched: u64,
    /// Status updates sent to the master, and those it refused (or that failed).
    pub updates_sent: u64,
    pub update_errors: u64,
    /// Acknowledgements the master forwarded to the agents.
    pub acknowledged: u64,
    /// Tasks the agents were launched and have not reported finished.
    pub running: u64,
    /// With [`SimTasks::Run`]: when each task's launch reached its agent.
    pub launched_at: std::collections::HashMap<TaskId, Instant>,
    /// Round trips of `statusUpdate` (sent -> the master's answer, given once its state machine
    /// applied the update).
    pub update_rtt: Vec<Duration>,
}

/// What the simulated agents do with the tasks the master launches on them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SimTasks {
    /// Nothing (`bench failover`: the agents only carry the tasks they registered with).
    Ignore,
    /// Report TASK_RUNNING at once; TASK_FINISHED after `finish_after` when set, else when
    /// [`SimHandle::finish_all`] asks.
    Run { finish_after: Option<Duration> },
}

/// The agents started by [`spawn_at`].
pub struct SimHandle {
    pub state: Arc<Mutex<SimState>>,
    finish: watch::Sender<u64>,
}

impl SimHandle {
    /// Every agent reports TASK_FINISHED for each task it runs.
    pub fn finish_all(&self) {
        self.finish.send_modify(|n| *n += 1);
    }
}

/// Where the agents find the master.
#[derive(Clone)]
enum Leader {
    /// Whoever ZooKeeper names.
    Zk(watch::Receiver<Option<strata_ha::LeaderInfo>>),
    /// A standalone master.
    Fixed(String),
}

impl Leader {
    async fn endpoint(&mut self) -> Option<String> {
        match self {
            Leader::Zk(leader) => {
                let endpoint = match leader.wait_for(Option::is_some).await {
                    Ok(found) => found.as_ref().map(|l| l.endpoint()),
                    Err(_) => return None,
                };
                leader.borrow_and_update();
                endpoint
            }
            Leader::Fixed(addr) => Some(addr.clone()),
        }
    }

    /// Resolves when another master leads (never for a standalone one).
    async fn changed(&mut self) {
        match self {
            // A closed channel resolves too: then `endpoint` ends the agent.
            Leader::Zk(leader) => {
                let _ = leader.changed().await;
            }
            Leader::Fixed(_) => std::future::pending::<()>().await,
        }
    }
}

/// The options of one agent.
#[derive(Clone)]
struct Spec {
    resources: Resources,
    tasks_per_agent: usize,
    framework: FrameworkInfo,
    tasks: SimTasks,
}

/// Starts `count` agents following the leader in ZooKeeper at `url`, each reporting
/// `tasks_per_agent` running tasks of `framework` once it has an id.
pub fn spawn(
    url: strata_ha::ZkUrl,
    count: usize,
    tasks_per_agent: usize,
    framework: FrameworkInfo,
) -> std::io::Result<Arc<Mutex<SimState>>> {
    let spec = Spec {
        resources: Resources::parse("cpus:16;mem:65536;ports:[31000-32000]")
            .map_err(std::io::Error::other)?,
        tasks_per_agent,
        framework,
        tasks: SimTasks::Ignore,
    };
    let handle = start(
        count,
        spec,
        Box::new(move || {
            let (detector, leader) = strata_ha::zk::Detector::start(url, Duration::from_secs(10));
            (
                Box::new(detector) as Box<dyn std::any::Any>,
                Leader::Zk(leader),
            )
        }),
    )?;
    Ok(handle.state)
}

/// Starts `count` agents with `resources` registering with the standalone master at `addr`
/// (`host:port`), doing `tasks` with what they are launched.
pub fn spawn_at(
    addr: &str,
    count: usize,
    resources: Resources,
    tasks: SimTasks,
) -> std::io::Result<SimHandle> {
    let spec = Spec {
        resources,
        tasks_per_agent: 0,
        framework: FrameworkInfo::default(),
        tasks,
    };
    let addr = addr.to_string();
    start(
        count,
        spec,
        Box::new(move || (Box::new(()) as Box<dyn std::any::Any>, Leader::Fixed(addr))),
    )
}

/// What finds the master, made on the agents' thread (ZooKeeper's detector is `!Send`); the box
/// is kept alive as long as the agents.
type MakeLeader = Box<dyn FnOnce() -> (Box<dyn std::any::Any>, Leader) + Send>;

fn start(count: usize, spec: Spec, make_leader: MakeLeader) -> std::io::Result<SimHandle> {
    let state = Arc::new(Mutex::new(SimState {
        registered_at: vec![None; count],
        ids: vec![None; count],
        ..SimState::default()
    }));
    let shared = Arc::clone(&state);
    let (finish, finish_rx) = watch::channel(0u64);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("sim-agents".to_string())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let (_keep, leader) = make_leader();
                for i in 0..count {
                    tokio::task::spawn_local(run_agent(
                        i,
                        leader.clone(),
                        spec.clone(),
                        finish_rx.clone(),
                        Arc::clone(&shared),
                    ));
                }
                std::future::pending::<()>().await;
            });
        })?;
    Ok(SimHandle { state, finish })
}

async fn run_agent(
    index: usize,
    mut leader: Leader,
    spec: Spec,
    mut finish: watch::Receiver<u64>,
    state: Arc<Mutex<SimState>>,
) {
    loop {
        let Some(endpoint) = leader.endpoint().await else {
            return;
        };
        let _ = session(index, &endpoint, &mut leader, &spec, &mut finish, &state).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn session(
    index: usize,
    endpoint: &str,
    leader: &mut Leader,
    spec: &Spec,
    finish: &mut watch::Receiver<u64>,
    state: &Arc<Mutex<SimState>>,
) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.compat().split();
    let network = twoparty::VatNetwork::new(
        futures::io::BufReader::new(reader),
        futures::io::BufWriter::new(writer),
        rpc_twoparty_capnp::Side::Client,
        Default::default(),
    );
    let mut rpc = RpcSystem::new(Box::new(network), None);
    let master: master::Client = rpc.bootstrap(rpc_twoparty_capnp::Side::Server);
    let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
    tokio::task::spawn_local(async move {
        let _ = rpc.await;
        let _ = closed_tx.send(());
    });
    let id = state.lock().map_err(|e| e.to_string())?.ids[index].clone();
    let info = AgentInfo {
        id: id.clone(),
        hostname: format!("sim-{index}"),
        port: 1,
        resources: spec.resources.clone(),
        attributes: Default::default(),
    };
    // Tasks are reported once the master has named the agent (they carry its id).
    let running: Vec<strata_schema::TaskInfo> = match &id {
        Some(agent_id) => (0..spec.tasks_per_agent)
            .map(|t| {
                crate::framework::task(
                    &format!("sim-{index}-{t}"),
                    agent_id,
                    "cpus:0.1;mem:32",
                    "sleep 1000",
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let ctx = Rc::new(Ctx {
        tasks: spec.tasks,
        session: RefCell::new(None),
        unsent: RefCell::new(Vec::new()),
        running: RefCell::new(Vec::new()),
        state: Arc::clone(state),
    });
    let framework = &spec.framework;
    let mut req = master.register_agent_request();
    {
        let mut b = req.get();
        wire::set_agent(b.reborrow().init_info(), &info);
        b.set_agent(capnp_rpc::new_client(SimAgent {
            ctx: Rc::clone(&ctx),
        }));
        let mut list = b.init_running(running.len() as u32);
        for (i, t) in running.iter().enumerate() {
            let mut r = list.reborrow().get(i as u32);
            r.set_framework_id(framework.id.as_ref().map(|f| f.as_str()).unwrap_or(""));
            wire::set_framework(r.reborrow().init_framework(), framework);
            wire::set_task(r.reborrow().init_task(), t);
            r.set_state(wire::state_to(TaskState::Running));
        }
    }
    let response = tokio::select! {
        r = req.send().promise => r.map_err(|e| e.to_string())?,
        _ = &mut closed => return Err("closed".to_string()),
    };
    let registered = response.get().map_err(|e| e.to_string())?;
    let agent_id = wire::agent_id(registered.get_agent_id()).map_err(|e| e.to_string())?;
    if spec.tasks != SimTasks::Ignore {
        let session: agent_session::Client = registered.get_session().map_err(|e| e.to_string())?;
        *ctx.session.borrow_mut() = Some(session);
        let unsent = std::mem::take(&mut *ctx.unsent.borrow_mut());
        ctx.send(unsent);
    }
    {
        let mut s = state.lock().map_err(|e| e.to_string())?;
        let first = s.ids[index].is_none();
        s.ids[index] = Some(agent_id);
        if first && spec.tasks == SimTasks::Ignore {
            // Register again at once, now with tasks (as an agent restarted with work would).
            return Ok(());
        }
        s.registered_at[index] = Some(Instant::now());
    }
    finish.borrow_and_update();
    // `spawn` drops the sender: then nobody will ask, and only the other branches count.
    let mut may_finish = true;
    loop {
        tokio::select! {
            _ = &mut closed => return Ok(()),
            _ = leader.changed() => return Ok(()),
            changed = finish.changed(), if may_finish => {
                if changed.is_err() {
                    may_finish = false;
                    continue;
                }
                let running = std::mem::take(&mut *ctx.running.borrow_mut());
                ctx.finished(running);
            }
        }
    }
}

/// One connection's agent: what it reports the master.
struct Ctx {
    tasks: SimTasks,
    /// The session the master answered the registration with.
    session: RefCell<Option<agent_session::Client>>,
    /// Updates made before the session arrived.
    unsent: RefCell<Vec<TaskStatus>>,
    /// Tasks waiting for [`SimHandle::finish_all`].
    running: RefCell<Vec<(FrameworkId, AgentId, TaskId)>>,
    state: Arc<Mutex<SimState>>,
}

impl Ctx {
    fn count(&self, f: impl FnOnce(&mut SimState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }

    /// Sends `statuses` through the session in one `statusUpdates` call (or keeps them until
    /// the session is there).
    fn send(&self, statuses: Vec<TaskStatus>) {
        if statuses.is_empty() {
            return;
        }
        let session = self.session.borrow();
        let Some(session) = session.as_ref() else {
            self.unsent.borrow_mut().extend(statuses);
            return;
        };
        let mut req = session.status_updates_request();
        let mut list = req.get().init_updates(statuses.len() as u32);
        for (i, status) in statuses.iter().enumerate() {
            wire::set_status(list.reborrow().get(i as u32), status);
        }
        let promise = req.send().promise;
        let state = Arc::clone(&self.state);
        let sent = Instant::now();
        let n = statuses.len() as u64;
        tokio::task::spawn_local(async move {
            let failed = promise.await.is_err();
            if let Ok(mut s) = state.lock() {
                s.update_rtt.push(sent.elapsed());
                s.updates_sent += n;
                if failed {
                    s.update_errors += n;
                }
            }
        });
    }

    fn finished(&self, tasks: Vec<(FrameworkId, AgentId, TaskId)>) {
        let n = tasks.len() as u64;
        self.count(|s| s.running = s.running.saturating_sub(n));
        self.send(
            tasks
                .into_iter()
                .map(|(framework_id, agent_id, task_id)| {
                    status(framework_id, agent_id, task_id, TaskState::Finished)
                })
                .collect(),
        );
    }

    /// Takes the tasks launched: TASK_RUNNING for all of them in one call, and TASK_FINISHED
    /// later as [`SimTasks::Run`] says.
    fn run(
        self: &Rc<Self>,
        framework: &FrameworkInfo,
        tasks: Vec<TaskInfo>,
    ) -> Result<(), capnp::Error> {
        let SimTasks::Run { finish_after } = self.tasks else {
            return Ok(());
        };
        let Some(framework_id) = framework.id.clone() else {
            return Err(capnp::Error::failed(
                "the launch names no framework id".to_string(),
            ));
        };
        let now = Instant::now();
        self.count(|s| {
            s.launched += tasks.len() as u64;
            s.running += tasks.len() as u64;
            for task in &tasks {
                s.launched_at.insert(task.task_id.clone(), now);
            }
        });
        self.send(
            tasks
                .iter()
                .map(|task| {
                    status(
                        framework_id.clone(),
                        task.agent_id.clone(),
                        task.task_id.clone(),
                        TaskState::Running,
                    )
                })
                .collect(),
        );
        let launched: Vec<_> = tasks
            .into_iter()
            .map(|task| (framework_id.clone(), task.agent_id, task.task_id))
            .collect();
        match finish_after {
            Some(delay) => {
                let ctx = Rc::clone(self);
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(delay).await;
                    ctx.finished(launched);
                });
            }
            None => self.running.borrow_mut().extend(launched),
        }
        Ok(())
    }
}

fn status(
    framework_id: FrameworkId,
    agent_id: AgentId,
    task_id: TaskId,
    state: TaskState,
) -> TaskStatus {
    TaskStatus {
        task_id,
        state,
        message: String::new(),
        source: StatusSource::Executor,
        reason: None,
        agent_id: Some(agent_id),
        framework_id: Some(framework_id),
        container_id: None,
        timestamp: TaskStatus::now(),
        uuid: Some(UpdateUuid::random()),
        exit_code: (state == TaskState::Finished).then_some(0),
    }
}

/// An agent that answers the master and, with [`SimTasks::Run`], pretends to run its tasks.
struct SimAgent {
    ctx: Rc<Ctx>,
}

impl agent::Server for SimAgent {
    async fn ping(
        self: capnp::capability::Rc<Self>,
        _: agent::PingParams,
        _: agent::PingResults,
    ) -> Result<(), capnp::Error> {
        Ok(())
    }

    async fn launch(
        self: capnp::capability::Rc<Self>,
        params: agent::LaunchParams,
        _: agent::LaunchResults,
    ) -> Result<(), capnp::Error> {
        if self.ctx.tasks == SimTasks::Ignore {
            return Ok(());
        }
        let p = params.get()?;
        let framework = wire::framework(p.get_framework()?)?;
        let task = wire::task(p.get_task()?)?;
        self.ctx.run(&framework, vec![task])
    }

    async fn launch_tasks(
        self: capnp::capability::Rc<Self>,
        params: agent::LaunchTasksParams,
        _: agent::LaunchTasksResults,
    ) -> Result<(), capnp::Error> {
        if self.ctx.tasks == SimTasks::Ignore {
            return Ok(());
        }
        let p = params.get()?;
        let framework = wire::framework(p.get_framework()?)?;
        let tasks = p
            .get_tasks()?
            .iter()
            .map(wire::task)
            .collect::<Result<Vec<_>, _>>()?;
        self.ctx.run(&framework, tasks)
    }

    async fn acknowledge(
        self: capnp::capability::Rc<Self>,
        _: agent::AcknowledgeParams,
        _: agent::AcknowledgeResults,
    ) -> Result<(), capnp::Error> {
        // Updates are not resent, so an acknowledgement only counts.
        self.ctx.count(|s| s.acknowledged += 1);
        Ok(())
    }

    async fn acknowledge_all(
        self: capnp::capability::Rc<Self>,
        params: agent::AcknowledgeAllParams,
        _: agent::AcknowledgeAllResults,
    ) -> Result<(), capnp::Error> {
        let n = params.get()?.get_acks()?.len();
        self.ctx.count(|s| s.acknowledged += u64::from(n));
        Ok(())
    }
}
