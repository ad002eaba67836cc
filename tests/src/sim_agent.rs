//! Lightweight in-process agents for `cargo xtask bench failover`: each speaks the real Cap'n
//! Proto agent protocol (registers with its running tasks, answers pings, re-registers whenever
//! the connection drops or ZooKeeper names another leader), but runs nothing. All of them share
//! one thread (capnp-rpc is `!Send`) and one leader detector.

use capnp_rpc::{rpc_twoparty_capnp, twoparty, RpcSystem};
use futures::AsyncReadExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_schema::agent_capnp::agent;
use strata_schema::scheduler_capnp::master;
use strata_schema::{wire, AgentId, AgentInfo, FrameworkInfo, Resources, TaskState};
use tokio::sync::watch;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// What the simulated agents report, shared with the bench.
#[derive(Debug, Default)]
pub struct SimState {
    /// Per agent: when it last registered (with its tasks).
    pub registered_at: Vec<Option<Instant>>,
    /// Per agent: the id the master gave it.
    pub ids: Vec<Option<AgentId>>,
}

/// Starts `count` agents following the leader in ZooKeeper at `url`, each reporting
/// `tasks_per_agent` running tasks of `framework` once it has an id.
pub fn spawn(
    url: strata_ha::ZkUrl,
    count: usize,
    tasks_per_agent: usize,
    framework: FrameworkInfo,
) -> std::io::Result<Arc<Mutex<SimState>>> {
    let state = Arc::new(Mutex::new(SimState {
        registered_at: vec![None; count],
        ids: vec![None; count],
    }));
    let shared = Arc::clone(&state);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("sim-agents".to_string())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let (_detector, leader) =
                    strata_ha::zk::Detector::start(url, Duration::from_secs(10));
                for i in 0..count {
                    tokio::task::spawn_local(run_agent(
                        i,
                        leader.clone(),
                        tasks_per_agent,
                        framework.clone(),
                        Arc::clone(&shared),
                    ));
                }
                std::future::pending::<()>().await;
            });
        })?;
    Ok(state)
}

async fn run_agent(
    index: usize,
    mut leader: watch::Receiver<Option<strata_ha::LeaderInfo>>,
    tasks_per_agent: usize,
    framework: FrameworkInfo,
    state: Arc<Mutex<SimState>>,
) {
    loop {
        let endpoint = match leader.wait_for(Option::is_some).await {
            Ok(found) => found.as_ref().map(|l| l.endpoint()),
            Err(_) => return,
        };
        leader.borrow_and_update();
        let Some(endpoint) = endpoint else { continue };
        let _ = session(
            index,
            &endpoint,
            &mut leader,
            tasks_per_agent,
            &framework,
            &state,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn session(
    index: usize,
    endpoint: &str,
    leader: &mut watch::Receiver<Option<strata_ha::LeaderInfo>>,
    tasks_per_agent: usize,
    framework: &FrameworkInfo,
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
        resources: Resources::parse("cpus:16;mem:65536;ports:[31000-32000]")
            .map_err(|e| e.to_string())?,
        attributes: Default::default(),
    };
    // Tasks are reported once the master has named the agent (they carry its id).
    let running: Vec<strata_schema::TaskInfo> = match &id {
        Some(agent_id) => (0..tasks_per_agent)
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
    let mut req = master.register_agent_request();
    {
        let mut b = req.get();
        wire::set_agent(b.reborrow().init_info(), &info);
        b.set_agent(capnp_rpc::new_client(SimAgent));
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
    let agent_id = wire::agent_id(response.get().map_err(|e| e.to_string())?.get_agent_id())
        .map_err(|e| e.to_string())?;
    {
        let mut s = state.lock().map_err(|e| e.to_string())?;
        let first = s.ids[index].is_none();
        s.ids[index] = Some(agent_id);
        if first {
            // Register again at once, now with tasks (as an agent restarted with work would).
            return Ok(());
        }
        s.registered_at[index] = Some(Instant::now());
    }
    tokio::select! {
        _ = &mut closed => {}
        _ = leader.changed() => {}
    }
    Ok(())
}

/// An agent that answers the master and runs nothing.
struct SimAgent;

impl agent::Server for SimAgent {
    async fn ping(
        self: capnp::capability::Rc<Self>,
        _: agent::PingParams,
        _: agent::PingResults,
    ) -> Result<(), capnp::Error> {
        Ok(())
    }
}
