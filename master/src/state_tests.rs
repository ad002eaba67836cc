//! Unit tests of the master's state machine: inputs in, channel messages out.

#![allow(clippy::unwrap_used)]

use super::*;
use strata_schema::{CommandInfo, ExecutorKind, MasterInfo};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

pub(super) fn master() -> Master {
    let info = MasterInfo {
        id: "m".into(),
        hostname: "h".into(),
        ip: "127.0.0.1".into(),
        port: 5050,
        version: "0".into(),
    };
    Master::new(
        info,
        StateConfig {
            max_agent_ping_timeouts: 2,
            ..StateConfig::default()
        },
    )
}

pub(super) fn agent(
    m: &mut Master,
    conn: ConnId,
    res: &str,
) -> (AgentId, UnboundedReceiver<AgentCommand>) {
    let (tx, rx) = unbounded_channel();
    let info = AgentInfo {
        hostname: "a".into(),
        port: 5051,
        resources: Resources::parse(res).unwrap(),
        ..Default::default()
    };
    (m.register_agent(conn, info, tx, vec![]).unwrap(), rx)
}

fn framework(
    m: &mut Master,
    conn: ConnId,
    partition_aware: bool,
) -> (FrameworkId, UnboundedReceiver<SchedulerEvent>) {
    let (tx, rx) = unbounded_channel();
    let info = FrameworkInfo {
        name: "f".into(),
        user: "root".into(),
        partition_aware,
        ..Default::default()
    };
    (m.subscribe(conn, info, tx).unwrap(), rx)
}

/// What the actor does after each batch: commit the registry change, then act on it.
fn commit(m: &mut Master) -> Option<Registry> {
    let registry = m.take_registry_change();
    m.after_commit();
    registry
}

pub(super) fn drain<T>(rx: &mut UnboundedReceiver<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(x) = rx.try_recv() {
        out.push(x);
    }
    out
}

fn offers(rx: &mut UnboundedReceiver<SchedulerEvent>) -> Vec<OfferEvent> {
    drain(rx)
        .into_iter()
        .flat_map(|e| match e {
            SchedulerEvent::Offers(o) => o,
            _ => vec![],
        })
        .collect()
}

fn updates(rx: &mut UnboundedReceiver<SchedulerEvent>) -> Vec<TaskStatus> {
    drain(rx)
        .into_iter()
        .filter_map(|e| match e {
            SchedulerEvent::Update(s) => Some(s),
            _ => None,
        })
        .collect()
}

pub(crate) fn task(id: &str, agent: &AgentId, res: &str) -> TaskInfo {
    TaskInfo {
        task_id: TaskId::new(id).unwrap(),
        name: id.into(),
        agent_id: agent.clone(),
        resources: Resources::parse(res).unwrap(),
        command: CommandInfo::shell("true"),
        kill_grace_period_secs: None,
        hostname: None,
        container: None,
        executor: None,
        data: Vec::new(),
        labels: Vec::new(),
    }
}

pub(crate) fn status(fw: &FrameworkId, agent: &AgentId, id: &str, state: TaskState) -> TaskStatus {
    TaskStatus {
        task_id: TaskId::new(id).unwrap(),
        state,
        message: String::new(),
        source: StatusSource::Executor,
        reason: None,
        agent_id: Some(agent.clone()),
        framework_id: Some(fw.clone()),
        container_id: None,
        timestamp: 0.0,
        uuid: Some(UpdateUuid::random()),
        exit_code: None,
    }
}

#[test]
fn offer_accept_launch_and_recover() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    assert!(matches!(
        drain(&mut frx)[0],
        SchedulerEvent::Subscribed { .. }
    ));
    m.allocate(now);
    let o = offers(&mut frx);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].resources, Resources::parse("cpus:2;mem:1024").unwrap());
    // Nothing is offered twice while the offer is outstanding.
    m.allocate(now);
    assert!(offers(&mut frx).is_empty());

    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:1;mem:128")])],
        0.0,
        now,
    )
    .unwrap();
    assert!(matches!(
        drain(&mut arx).as_slice(),
        [AgentCommand::Launch { .. }]
    ));
    let state = m.state_json();
    assert_eq!(state["used_resources"]["cpus"], 1.0);
    assert_eq!(state["free_resources"]["cpus"], 1.0);
    assert_eq!(state["slaves"][0]["free_resources"]["mem"], 896.0);
    assert_eq!(state["total_resources"]["mem"], 1024.0);
    // The unused remainder is offered again (no filter with refuse 0).
    m.allocate(now);
    let o2 = offers(&mut frx);
    assert_eq!(o2[0].resources, Resources::parse("cpus:1;mem:896").unwrap());
    m.decline(2, &f, &[o2[0].id.clone()], 0.0, now).unwrap();

    // Status updates are forwarded; a terminal one gives the resources back.
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Running))
        .unwrap();
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Finished))
        .unwrap();
    let u = updates(&mut frx);
    assert_eq!(
        u.iter().map(|s| s.state).collect::<Vec<_>>(),
        [TaskState::Running, TaskState::Finished]
    );
    // A resent terminal update does not recover twice.
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Finished))
        .unwrap();
    m.allocate(now);
    assert_eq!(
        offers(&mut frx)[0].resources,
        Resources::parse("cpus:2;mem:1024").unwrap()
    );
    let state = m.state_json();
    assert_eq!(state["slaves"][0]["used_resources"]["cpus"], 0.0);
    assert_eq!(state["slaves"][0]["free_resources"]["cpus"], 2.0);
    assert_eq!(
        state["frameworks"][0]["completed_tasks"][0]["state"],
        "TASK_FINISHED"
    );
}

#[test]
fn declined_resources_are_filtered_until_the_filter_expires() {
    let mut m = master();
    let now = Instant::now();
    let (_a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    m.decline(2, &f, &[o[0].id.clone()], 5.0, now).unwrap();
    m.allocate(now);
    assert!(offers(&mut frx).is_empty());
    assert!(m.next_filter_expiry().is_some());
    m.expire_filters(now + Duration::from_secs(6));
    m.allocate(now + Duration::from_secs(6));
    assert_eq!(offers(&mut frx).len(), 1);
    // Revive clears filters at once.
    let o = m.offers.keys().cloned().collect::<Vec<_>>();
    m.decline(2, &f, &o, 100.0, now).unwrap();
    m.revive(2, &f, vec![]).unwrap();
    m.allocate(now);
    assert_eq!(offers(&mut frx).len(), 1);
    // Suppressed frameworks get nothing until revived.
    let o = m.offers.keys().cloned().collect::<Vec<_>>();
    m.decline(2, &f, &o, 0.0, now).unwrap();
    m.suppress(2, &f, vec![]).unwrap();
    m.allocate(now);
    assert!(offers(&mut frx).is_empty());
}

#[test]
fn invalid_accepts_are_refused_with_reasons() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    let (g, mut grx) = framework(&mut m, 3, false);
    m.allocate(now);
    let fo = offers(&mut frx);
    let go = offers(&mut grx);
    assert_eq!(fo.len() + go.len(), 1, "one agent, one offer");
    let (owner, conn, offer, mut other_rx, other, other_conn) = if fo.len() == 1 {
        (f.clone(), 2, fo[0].clone(), grx, g.clone(), 3)
    } else {
        (g.clone(), 3, go[0].clone(), frx, f.clone(), 2)
    };
    // Another framework's offer.
    let err = m
        .accept(
            other_conn,
            &other,
            std::slice::from_ref(&offer.id),
            vec![],
            0.0,
            now,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("was not made to framework"),
        "{err}"
    );
    // A session of another connection.
    let err = m
        .accept(
            99,
            &owner,
            std::slice::from_ref(&offer.id),
            vec![],
            0.0,
            now,
        )
        .unwrap_err();
    assert!(matches!(err, CallError::StaleSession(_)), "{err}");
    // Unknown offer: TASK_DROPPED for the tasks in the call.
    let bogus = OfferId::new("nope").unwrap();
    let err = m
        .accept(
            other_conn,
            &other,
            &[bogus],
            vec![Operation::Launch(vec![task("x", &a, "cpus:1")])],
            0.0,
            now,
        )
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert_eq!(updates(&mut other_rx)[0].state, TaskState::Dropped);
    // Bad tasks get TASK_ERROR and the good one launches.
    let mut bad_cmd = task("bad-cmd", &a, "cpus:0.1");
    bad_cmd.command = CommandInfo::shell("");
    let wrong_agent = task(
        "wrong-agent",
        &AgentId::new("elsewhere").unwrap(),
        "cpus:0.1",
    );
    let tasks = vec![
        task("big", &a, "cpus:3"),
        bad_cmd,
        wrong_agent,
        task("ok", &a, "cpus:1"),
        task("ok", &a, "cpus:0.5"),
        task("none", &a, ""),
    ];
    m.accept(
        conn,
        &owner,
        std::slice::from_ref(&offer.id),
        vec![Operation::Launch(tasks)],
        0.0,
        now,
    )
    .unwrap();
    let launched: Vec<_> = drain(&mut arx)
        .into_iter()
        .filter(|c| matches!(c, AgentCommand::Launch { .. }))
        .collect();
    assert_eq!(launched.len(), 1);
    let state = m.state_json();
    let tasks = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == owner.as_str())
        .unwrap()["tasks"]
        .clone();
    assert_eq!(tasks.as_array().unwrap().len(), 1);
    assert_eq!(tasks[0]["id"], "ok");
    // The used offer is gone.
    let err = m
        .accept(conn, &owner, &[offer.id], vec![], 0.0, now)
        .unwrap_err();
    assert!(err.to_string().contains("no longer valid"), "{err}");
}

#[test]
fn framework_disconnect_without_failover_timeout_tears_it_down() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:1")])],
        0.0,
        now,
    )
    .unwrap();
    drain(&mut arx);
    m.connection_closed(2, now);
    // Agents hear of the removal only once the registry forgot the framework.
    assert!(drain(&mut arx).is_empty());
    let registry = commit(&mut m).expect("the removal is a registry change");
    assert!(registry.frameworks.is_empty());
    assert!(matches!(
        drain(&mut arx).as_slice(),
        [AgentCommand::ShutdownFramework { .. }]
    ));
    let state = m.state_json();
    assert_eq!(state["frameworks"].as_array().unwrap().len(), 0);
    assert_eq!(
        state["completed_frameworks"][0]["completed_tasks"][0]["state"],
        "TASK_KILLED"
    );
    assert_eq!(state["slaves"][0]["used_resources"]["cpus"], 0.0);
    // Its late updates are acknowledged on its behalf so the agent stops retrying.
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Killed))
        .unwrap();
    assert!(matches!(
        drain(&mut arx).as_slice(),
        [AgentCommand::Acknowledge { .. }]
    ));
    // And it cannot come back.
    let (tx, _rx) = unbounded_channel();
    let info = FrameworkInfo {
        id: Some(f.clone()),
        name: "f".into(),
        ..Default::default()
    };
    assert!(matches!(
        m.subscribe(3, info, tx),
        Err(CallError::Removed(_))
    ));
}

#[test]
fn framework_with_failover_timeout_survives_a_disconnect() {
    let mut m = master();
    let now = Instant::now();
    let (tx, _rx) = unbounded_channel();
    let info = FrameworkInfo {
        name: "f".into(),
        failover_timeout_secs: 60.0,
        ..Default::default()
    };
    let f = m.subscribe(2, info.clone(), tx).unwrap();
    m.connection_closed(2, now);
    m.failover_tick(now + Duration::from_secs(30));
    assert_eq!(m.state_json()["frameworks"][0]["active"], false);
    // Re-subscribing with the id within the timeout keeps the framework.
    let (tx, mut rx) = unbounded_channel();
    let again = m
        .subscribe(
            3,
            FrameworkInfo {
                id: Some(f.clone()),
                ..info
            },
            tx,
        )
        .unwrap();
    assert_eq!(again, f);
    assert!(matches!(
        drain(&mut rx)[0],
        SchedulerEvent::Subscribed { .. }
    ));
    m.failover_tick(now + Duration::from_secs(600));
    assert_eq!(m.state_json()["frameworks"][0]["active"], true);
}

#[test]
fn agents_missing_pings_become_unreachable_and_their_tasks_too() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, true);
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:1")])],
        0.0,
        now,
    )
    .unwrap();
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Running))
        .unwrap();
    drain(&mut frx);
    // Answered pings keep it alive.
    m.ping_tick();
    let seq = drain(&mut arx)
        .into_iter()
        .find_map(|c| match c {
            AgentCommand::Ping { seq, .. } => Some(seq),
            _ => None,
        })
        .unwrap();
    m.pong(&a, seq);
    m.ping_tick();
    m.ping_tick();
    assert_eq!(m.state_json()["slaves"][0]["state"], "active");
    m.ping_tick();
    assert_eq!(m.state_json()["slaves"][0]["state"], "unreachable");
    // Nothing is reported before the registry records the agent unreachable.
    assert!(updates(&mut frx).is_empty());
    let registry = commit(&mut m).expect("the mark is a registry change");
    assert!(registry.agents[&a].unreachable_since.is_some());
    let u = updates(&mut frx);
    assert_eq!(
        u.last().unwrap().state,
        TaskState::Unreachable,
        "partition-aware frameworks get TASK_UNREACHABLE"
    );
    // Re-registration makes it active again; the agent reports the task running.
    let (tx, _rx) = unbounded_channel();
    let info = AgentInfo {
        id: Some(a.clone()),
        hostname: "a".into(),
        resources: Resources::parse("cpus:2;mem:1024").unwrap(),
        ..Default::default()
    };
    let running = vec![ReportedTask {
        framework: m.frameworks[&f].info.clone(),
        task: task("t", &a, "cpus:1"),
        state: TaskState::Running,
    }];
    assert_eq!(m.register_agent(5, info, tx, running).unwrap(), a);
    assert_eq!(m.state_json()["slaves"][0]["state"], "active");
    assert_eq!(
        m.state_json()["frameworks"][0]["tasks"][0]["state"],
        "TASK_RUNNING"
    );
}

#[test]
fn reregistration_without_a_task_reports_it_lost() {
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:1")])],
        0.0,
        now,
    )
    .unwrap();
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Running))
        .unwrap();
    drain(&mut frx);
    let (tx, _rx) = unbounded_channel();
    let info = AgentInfo {
        id: Some(a.clone()),
        hostname: "a".into(),
        resources: Resources::parse("cpus:2;mem:1024").unwrap(),
        ..Default::default()
    };
    m.register_agent(7, info, tx, vec![]).unwrap();
    let u = updates(&mut frx);
    assert_eq!(u[0].state, TaskState::Lost);
    assert_eq!(m.state_json()["slaves"][0]["used_resources"]["cpus"], 0.0);
}

#[test]
fn operator_kill_finds_the_task_or_says_why_not() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:4;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:1")])],
        0.0,
        now,
    )
    .unwrap();
    drain(&mut arx);
    assert!(matches!(
        m.operator_kill("nope", None),
        Err(OperatorKillError::NotFound(_))
    ));
    let (fw, agent) = m.operator_kill("t", None).unwrap();
    assert_eq!((fw, agent), (f.clone(), a.clone()));
    assert!(matches!(
        drain(&mut arx).as_slice(),
        [AgentCommand::Kill { .. }]
    ));
    // The same id in a second framework makes it ambiguous.
    let (g, mut grx) = framework(&mut m, 3, false);
    m.allocate(now);
    let o = offers(&mut grx);
    m.accept(
        3,
        &g,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:1")])],
        0.0,
        now,
    )
    .unwrap();
    assert!(matches!(
        m.operator_kill("t", None),
        Err(OperatorKillError::Ambiguous { .. })
    ));
    assert!(m.operator_kill("t", Some(g.as_str())).is_ok());
}

#[test]
fn reconciliation_answers_known_and_unknown_tasks() {
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:4;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:1")])],
        0.0,
        now,
    )
    .unwrap();
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Running))
        .unwrap();
    drain(&mut frx);
    m.reconcile(2, &f, vec![]).unwrap();
    let u = updates(&mut frx);
    assert_eq!(u.len(), 1);
    assert_eq!((u[0].state, u[0].uuid), (TaskState::Running, None));
    m.reconcile(2, &f, vec![(TaskId::new("ghost").unwrap(), None)])
        .unwrap();
    assert_eq!(updates(&mut frx)[0].state, TaskState::Lost);
}

/// Explicit reconciliation of tasks this master does not know answers from their agent's state,
/// as Mesos does: unreachable → TASK_UNREACHABLE, registered → TASK_GONE, unknown → TASK_UNKNOWN
/// (all TASK_LOST for frameworks that are not partition-aware), and no answer while the agent
/// may still re-register with the task.
#[test]
fn reconciling_unknown_tasks_answers_from_their_agents_state() {
    let mut old = master();
    let (gone, _g) = agent(&mut old, 1, "cpus:1");
    let (late, _l) = agent(&mut old, 2, "cpus:1");
    let registry = old.take_registry_change().unwrap();
    let mut m = Master::new(
        MasterInfo::default(),
        StateConfig {
            agent_reregister_timeout: Duration::from_secs(10),
            ..StateConfig::default()
        },
    );
    let t0 = Instant::now();
    m.recover(registry, t0);
    let (aware, mut arx) = framework(&mut m, 3, true);
    let (unaware, mut urx) = framework(&mut m, 4, false);
    // `late` comes back; `gone` does not.
    let (tx, _rx) = unbounded_channel();
    let info = AgentInfo {
        id: Some(late.clone()),
        hostname: "a".into(),
        resources: Resources::parse("cpus:1").unwrap(),
        ..Default::default()
    };
    m.register_agent(5, info, tx, vec![]).unwrap();
    commit(&mut m);
    let ask = |m: &mut Master, conn, fw: &FrameworkId, agent: Option<&AgentId>| {
        m.reconcile(conn, fw, vec![(TaskId::new("t").unwrap(), agent.cloned())])
            .unwrap();
    };
    let stranger = AgentId::new("stranger").unwrap();
    // Still recovering: no answer yet.
    ask(&mut m, 3, &aware, Some(&gone));
    assert!(updates(&mut arx).is_empty());
    m.reregister_tick(t0 + Duration::from_secs(10));
    commit(&mut m);
    for (conn, fw, rx, expected) in [
        (
            3,
            &aware,
            &mut arx,
            [TaskState::Unreachable, TaskState::Gone, TaskState::Unknown],
        ),
        (4, &unaware, &mut urx, [TaskState::Lost; 3]),
    ] {
        drain(rx);
        for (agent, state) in [&gone, &late, &stranger].into_iter().zip(expected) {
            ask(&mut m, conn, fw, Some(agent));
            let u = updates(rx);
            assert_eq!(u.len(), 1, "{u:?}");
            assert_eq!(u[0].state, state, "{u:?}");
            assert_eq!(u[0].agent_id.as_ref(), Some(agent));
            assert_eq!(u[0].reason.as_deref(), Some("REASON_RECONCILIATION"));
            assert_eq!(u[0].uuid, None);
        }
    }
    // `gone` comes back after all, with a task of each framework: the partition-aware one's
    // runs again, the other's is killed (it was lost to its framework).
    let (tx, mut agent_rx) = unbounded_channel();
    let info = AgentInfo {
        id: Some(gone.clone()),
        hostname: "a".into(),
        resources: Resources::parse("cpus:1").unwrap(),
        ..Default::default()
    };
    let running = [(&aware, "t"), (&unaware, "u")]
        .into_iter()
        .map(|(fw, id)| ReportedTask {
            framework: m.frameworks[fw].info.clone(),
            task: task(id, &gone, "cpus:0.1"),
            state: TaskState::Running,
        })
        .collect();
    m.register_agent(6, info, tx, running).unwrap();
    let back = updates(&mut arx);
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].state, TaskState::Running);
    assert_eq!(back[0].reason.as_deref(), Some("REASON_AGENT_REREGISTERED"));
    assert_eq!(updates(&mut urx)[0].state, TaskState::Gone);
    assert!(drain(&mut agent_rx)
        .iter()
        .any(|c| matches!(c, AgentCommand::Kill { task_id, .. } if task_id.as_str() == "u")));
}

#[test]
fn admissions_change_the_registry_and_nothing_else_does() {
    let mut m = master();
    assert!(m.take_registry_change().is_none());
    let (a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let reg = m
        .take_registry_change()
        .expect("an admitted agent is recorded");
    assert_eq!(reg.agents[&a].info.hostname, "a");
    let (f, _frx) = framework(&mut m, 2, false);
    let reg = m
        .take_registry_change()
        .expect("an admitted framework is recorded");
    assert_eq!(reg.frameworks[&f].name, "f");
    // Allocation, offers and pings are not the registry's business.
    m.allocate(Instant::now());
    m.ping_tick();
    assert!(m.take_registry_change().is_none());
    m.teardown(2, &f).unwrap();
    let reg = m
        .take_registry_change()
        .expect("a torn-down framework is forgotten");
    assert!(reg.frameworks.is_empty());
}

#[test]
fn a_new_leader_recovers_frameworks_and_agents_from_the_registry() {
    let mut old = master();
    let (a, _arx) = agent(&mut old, 1, "cpus:2;mem:1024");
    let (tx, _rx) = unbounded_channel();
    let info = FrameworkInfo {
        name: "keeps".into(),
        failover_timeout_secs: 60.0,
        partition_aware: true,
        ..Default::default()
    };
    let f = old.subscribe(2, info, tx).unwrap();
    let registry = old.take_registry_change().unwrap();

    let mut m = Master::new(
        MasterInfo {
            id: "m2".into(),
            ..Default::default()
        },
        StateConfig {
            agent_reregister_timeout: Duration::from_secs(10),
            ..StateConfig::default()
        },
    );
    let t0 = Instant::now();
    m.recover(registry, t0);
    let state = m.state_json();
    assert_eq!(state["slaves"][0]["state"], "recovering");
    assert_eq!(state["frameworks"][0]["failover_timeout"], 60.0);
    assert_eq!(state["frameworks"][0]["active"], false);
    // A recovering agent gets no offers, and the framework outlives a second.
    m.failover_tick(t0 + Duration::from_secs(5));
    assert_eq!(m.state_json()["frameworks"].as_array().unwrap().len(), 1);
    // The agent comes back with a task of the framework: running, known again.
    let (tx, _rx) = unbounded_channel();
    let info = AgentInfo {
        id: Some(a.clone()),
        hostname: "a".into(),
        resources: Resources::parse("cpus:2;mem:1024").unwrap(),
        ..Default::default()
    };
    let fw_info = m.frameworks[&f].info.clone();
    let running = vec![ReportedTask {
        framework: fw_info,
        task: task("t", &a, "cpus:1"),
        state: TaskState::Running,
    }];
    m.register_agent(3, info, tx, running).unwrap();
    m.reregister_tick(t0 + Duration::from_secs(11));
    let state = m.state_json();
    assert_eq!(state["slaves"][0]["state"], "active");
    assert_eq!(state["frameworks"][0]["tasks"][0]["state"], "TASK_RUNNING");
}

#[test]
fn agents_that_miss_the_reregister_timeout_become_unreachable() {
    let mut old = master();
    let (a, _arx) = agent(&mut old, 1, "cpus:2;mem:1024");
    let registry = old.take_registry_change().unwrap();
    let mut m = Master::new(
        MasterInfo::default(),
        StateConfig {
            agent_reregister_timeout: Duration::from_secs(10),
            ..StateConfig::default()
        },
    );
    let t0 = Instant::now();
    m.recover(registry, t0);
    m.take_registry_change();
    m.reregister_tick(t0 + Duration::from_secs(9));
    assert_eq!(m.state_json()["slaves"][0]["state"], "recovering");
    m.reregister_tick(t0 + Duration::from_secs(10));
    assert_eq!(m.state_json()["slaves"][0]["state"], "unreachable");
    let reg = m.take_registry_change().expect("recorded as unreachable");
    assert!(reg.agents[&a].unreachable_since.is_some());
}

#[test]
fn a_returning_agent_runs_aware_tasks_again_and_kills_given_up_ones() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:4;mem:1024");
    let (aware, mut arx_fw) = framework(&mut m, 2, true);
    let (unaware, mut urx_fw) = framework(&mut m, 3, false);
    m.allocate(now);
    for (conn, fw, rx, id) in [
        (2, &aware, &mut arx_fw, "stays"),
        (3, &unaware, &mut urx_fw, "lost"),
    ] {
        let o = offers(rx);
        m.accept(
            conn,
            fw,
            &[o[0].id.clone()],
            vec![Operation::Launch(vec![task(id, &a, "cpus:1")])],
            0.0,
            now,
        )
        .unwrap();
        m.status_update(1, &a, status(fw, &a, id, TaskState::Running))
            .unwrap();
        m.allocate(now);
    }
    drain(&mut arx_fw);
    drain(&mut urx_fw);
    for _ in 0..3 {
        m.ping_tick();
    }
    commit(&mut m);
    assert_eq!(
        updates(&mut arx_fw).last().unwrap().state,
        TaskState::Unreachable
    );
    assert_eq!(updates(&mut urx_fw).last().unwrap().state, TaskState::Lost);
    drain(&mut arx);
    let (tx, mut new_rx) = unbounded_channel();
    let info = AgentInfo {
        id: Some(a.clone()),
        hostname: "a".into(),
        resources: Resources::parse("cpus:4;mem:1024").unwrap(),
        ..Default::default()
    };
    let running = vec![
        ReportedTask {
            framework: m.frameworks[&aware].info.clone(),
            task: task("stays", &a, "cpus:1"),
            state: TaskState::Running,
        },
        ReportedTask {
            framework: m.frameworks[&unaware].info.clone(),
            task: task("lost", &a, "cpus:1"),
            state: TaskState::Running,
        },
    ];
    m.register_agent(9, info, tx, running).unwrap();
    let back = updates(&mut arx_fw);
    assert_eq!(back.last().unwrap().state, TaskState::Running);
    assert_eq!(
        back.last().unwrap().reason.as_deref(),
        Some("REASON_AGENT_REREGISTERED")
    );
    let gone = updates(&mut urx_fw);
    assert_eq!(gone.last().unwrap().state, TaskState::Gone);
    let kills: Vec<_> = drain(&mut new_rx)
        .into_iter()
        .filter(|c| matches!(c, AgentCommand::Kill { task_id, .. } if task_id.as_str() == "lost"))
        .collect();
    assert_eq!(kills.len(), 1, "the given-up task is killed on the agent");
    // The agent's TASK_KILLED for it is acknowledged by the master, not forwarded again.
    let mut killed = status(&unaware, &a, "lost", TaskState::Killed);
    killed.uuid = Some(UpdateUuid::random());
    m.status_update(9, &a, killed).unwrap();
    assert!(updates(&mut urx_fw).is_empty());
    assert!(drain(&mut new_rx).iter().any(
        |c| matches!(c, AgentCommand::Acknowledge { task_id, .. } if task_id.as_str() == "lost")
    ));
}

fn role_framework(
    m: &mut Master,
    conn: ConnId,
    roles: &[&str],
) -> (FrameworkId, UnboundedReceiver<SchedulerEvent>) {
    let (tx, rx) = unbounded_channel();
    let info = FrameworkInfo {
        name: "f".into(),
        user: "root".into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..Default::default()
    };
    (m.subscribe(conn, info, tx).unwrap(), rx)
}

fn res(s: &str) -> Resources {
    Resources::parse(s).unwrap()
}

#[test]
fn reserve_in_an_offer_then_offered_to_the_role_and_unreserve() {
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:4;mem:1024");
    let (f, mut frx) = role_framework(&mut m, 2, &["ops"]);
    commit(&mut m);
    m.allocate(now);
    let o = offers(&mut frx);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].role, "ops");
    // A reservation for another role than the offer's is dropped with a reason.
    let err = m
        .accept(
            2,
            &f,
            &[o[0].id.clone()],
            vec![
                Operation::Reserve(res("cpus(web):1")),
                Operation::Reserve(res("cpus(ops):2;mem(ops):256")),
            ],
            0.0,
            now,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("operation 1 (RESERVE)") && err.contains("role \"web\""),
        "{err}"
    );
    // The valid one was applied and written to the registry.
    let registry = commit(&mut m).expect("the registry changed");
    assert_eq!(
        registry.agents[&a].reservations,
        res("cpus(ops):2;mem(ops):256")
    );
    let state = m.state_json();
    assert_eq!(state["slaves"][0]["reserved_resources"]["ops"]["cpus"], 2.0);
    assert_eq!(state["slaves"][0]["unreserved_resources"]["cpus"], 2.0);
    // Offered again with the reservation.
    m.allocate(now);
    let o = offers(&mut frx);
    assert_eq!(
        o[0].resources,
        res("cpus:2;mem:768;cpus(ops):2;mem(ops):256")
    );
    // Static reservations cannot be unreserved; dynamic ones can.
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Unreserve(res("cpus(ops):2;mem(ops):256"))],
        0.0,
        now,
    )
    .unwrap();
    let registry = commit(&mut m).expect("the registry changed");
    assert!(registry.agents[&a].reservations.is_empty());
    m.allocate(now);
    assert_eq!(offers(&mut frx)[0].resources, res("cpus:4;mem:1024"));
}

#[test]
fn reserved_resources_go_only_to_their_role_and_its_children() {
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus(eng):2;mem(eng):512");
    let (_ops, mut ops_rx) = role_framework(&mut m, 2, &["ops"]);
    m.allocate(now);
    assert!(offers(&mut ops_rx).is_empty());
    let (_be, mut be_rx) = role_framework(&mut m, 3, &["eng/backend"]);
    m.allocate(now);
    let o = offers(&mut be_rx);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].agent_id, a);
    assert_eq!(o[0].role, "eng/backend");
    assert_eq!(o[0].resources, res("cpus(eng):2;mem(eng):512"));
}

#[test]
fn operator_reservations_take_back_offers_and_refuse_what_is_in_use() {
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:4;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:3;mem:512")])],
        0.0,
        now,
    )
    .unwrap();
    m.allocate(now);
    let o = offers(&mut frx);
    assert_eq!(o[0].resources, res("cpus:1;mem:512"));
    // Only 1 cpu is unused: reserving 2 is refused, 1 rescinds the outstanding offer.
    let err = m.operator_reserve(&a, res("cpus(ops):2")).unwrap_err();
    assert!(matches!(err, OperatorError::Conflict(_)), "{err}");
    m.operator_reserve(&a, res("cpus(ops):1")).unwrap();
    assert!(drain(&mut frx)
        .iter()
        .any(|e| matches!(e, SchedulerEvent::Rescind(id) if *id == o[0].id)));
    assert_eq!(
        commit(&mut m).unwrap().agents[&a].reservations,
        res("cpus(ops):1")
    );
    // Unreserve: only what is dynamically reserved; unreserved names are refused.
    assert!(matches!(
        m.operator_unreserve(&a, res("cpus:1")),
        Err(OperatorError::Invalid(_))
    ));
    assert!(matches!(
        m.operator_unreserve(&a, res("cpus(ops):2")),
        Err(OperatorError::Conflict(_))
    ));
    let missing = AgentId::new("nope").unwrap();
    assert!(matches!(
        m.operator_reserve(&missing, res("cpus(ops):1")),
        Err(OperatorError::NotFound(_))
    ));
    m.operator_unreserve(&a, res("cpus(ops):1")).unwrap();
    assert!(commit(&mut m).unwrap().agents[&a].reservations.is_empty());
}

#[test]
fn reservations_survive_a_new_leader_through_the_registry() {
    let mut m = master();
    let (a, _arx) = agent(&mut m, 1, "cpus:4;mem:1024");
    m.operator_reserve(&a, res("cpus(ops):1")).unwrap();
    let registry = commit(&mut m).unwrap();
    let mut next = master();
    next.recover(registry, Instant::now());
    let (tx, _rx) = unbounded_channel();
    let info = AgentInfo {
        id: Some(a.clone()),
        hostname: "a".into(),
        port: 5051,
        resources: res("cpus:4;mem:1024"),
        ..Default::default()
    };
    next.register_agent(5, info, tx, vec![]).unwrap();
    let state = next.state_json();
    assert_eq!(state["slaves"][0]["reserved_resources"]["ops"]["cpus"], 1.0);
    assert_eq!(state["slaves"][0]["unreserved_resources"]["cpus"], 3.0);
}

#[test]
fn weights_and_quotas_are_validated_stored_and_shown() {
    let mut m = master();
    assert!(m.set_weights(vec![("eng".into(), 0.0)]).is_err());
    assert!(m.set_weights(vec![("*".into(), 2.0)]).is_err());
    m.set_weights(vec![("eng".into(), 2.0)]).unwrap();
    let quota = |g: &str, l: &str| crate::registry::QuotaConfig {
        guarantees: res(g),
        limits: res(l),
    };
    let err = m
        .set_quota("eng", quota("cpus:4", "cpus:2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("exceeds its limit"), "{err}");
    m.set_quota("eng", quota("cpus:1", "cpus:2;mem:1024"))
        .unwrap();
    let registry = commit(&mut m).unwrap();
    assert_eq!(registry.weights["eng"], 2.0);
    assert_eq!(registry.quotas["eng"].limits, res("cpus:2;mem:1024"));
    let roles = m.roles_json();
    assert_eq!(roles["roles"][0]["name"], "eng");
    assert_eq!(roles["roles"][0]["weight"], 2.0);
    assert_eq!(roles["roles"][0]["quota"]["limit"]["mem"], 1024.0);
    assert_eq!(
        m.quota_json()["configs"][0]["guarantees"]["cpus"]["value"],
        1.0
    );
    assert_eq!(m.state_json()["weights"][0]["weight"], 2.0);
    // Both empty: the quota is removed.
    m.set_quota("eng", quota("", "")).unwrap();
    assert!(commit(&mut m).unwrap().quotas.is_empty());
}

#[test]
fn offers_carry_their_role_and_tasks_are_charged_to_it() {
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = role_framework(&mut m, 2, &["web"]);
    m.allocate(now);
    let o = offers(&mut frx);
    assert_eq!(o[0].role, "web");
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:1;mem:128")])],
        0.0,
        now,
    )
    .unwrap();
    let roles = m.roles_json();
    assert_eq!(roles["roles"][0]["name"], "web");
    assert_eq!(roles["roles"][0]["allocated"]["cpus"], 1.0);
    assert_eq!(roles["roles"][0]["frameworks"][0], f.as_str());
}

#[test]
fn a_drained_agent_gets_no_offers_and_its_tasks_are_killed() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    let mut t = task("t", &a, "cpus:1;mem:128");
    t.kill_grace_period_secs = Some(60.0);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![t])],
        0.0,
        now,
    )
    .unwrap();
    m.allocate(now);
    let outstanding = offers(&mut frx);
    assert_eq!(outstanding.len(), 1);
    drain(&mut arx);
    m.drain_agent(
        &a,
        crate::registry::DrainConfig {
            max_grace_period_secs: Some(5.0),
            mark_gone: false,
        },
    )
    .unwrap();
    // Its offer is rescinded and its task killed within the drain's grace period.
    assert!(drain(&mut frx)
        .iter()
        .any(|e| matches!(e, SchedulerEvent::Rescind(_))));
    let kills: Vec<f64> = drain(&mut arx)
        .into_iter()
        .filter_map(|c| match c {
            AgentCommand::Kill {
                grace_period_secs, ..
            } => Some(grace_period_secs),
            _ => None,
        })
        .collect();
    assert_eq!(kills, [5.0]);
    assert_eq!(
        m.state_json()["slaves"][0]["drain_info"]["state"],
        "DRAINING"
    );
    assert!(commit(&mut m).unwrap().agents[&a].drain.is_some());
    m.allocate(now);
    assert!(offers(&mut frx).is_empty());
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Killed))
        .unwrap();
    assert_eq!(
        m.state_json()["slaves"][0]["drain_info"]["state"],
        "DRAINED"
    );
    assert!(matches!(
        m.drain_agent(
            &AgentId::new("x").unwrap(),
            crate::registry::DrainConfig {
                max_grace_period_secs: None,
                mark_gone: false
            }
        ),
        Err(OperatorError::NotFound(_))
    ));
    m.reactivate_agent(&a).unwrap();
    assert!(matches!(
        m.reactivate_agent(&a),
        Err(OperatorError::Conflict(_))
    ));
    m.allocate(now);
    assert_eq!(offers(&mut frx).len(), 1);
}

#[test]
fn machines_down_and_up() {
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (_f, mut frx) = framework(&mut m, 2, false);
    let machine = |h: &str| MachineId {
        hostname: h.into(),
        ip: String::new(),
    };
    assert!(matches!(
        m.machines_down(&[machine("elsewhere")]),
        Err(OperatorError::NotFound(_))
    ));
    assert!(matches!(
        m.machines_down(&[]),
        Err(OperatorError::Invalid(_))
    ));
    m.machines_down(&[machine("a")]).unwrap();
    m.allocate(now);
    assert!(offers(&mut frx).is_empty());
    assert_eq!(
        m.maintenance_json()["down_machines"][0]["agent_id"],
        a.as_str()
    );
    assert!(commit(&mut m).unwrap().agents[&a].down);
    m.machines_up(&[machine("a")]).unwrap();
    m.allocate(now);
    assert_eq!(offers(&mut frx).len(), 1);
}

#[test]
fn offers_time_out_when_the_operator_says_so() {
    let mut m = Master::new(
        master().info.clone(),
        StateConfig {
            offer_timeout: Some(Duration::from_secs(10)),
            ..StateConfig::default()
        },
    );
    let now = Instant::now();
    let (_a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (_f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    m.expire_offers(now + Duration::from_secs(9));
    assert!(drain(&mut frx).is_empty());
    m.expire_offers(now + Duration::from_secs(10));
    assert!(drain(&mut frx)
        .iter()
        .any(|e| matches!(e, SchedulerEvent::Rescind(id) if *id == o[0].id)));
    // Offered again: no filter for a timed-out offer.
    m.allocate(now + Duration::from_secs(10));
    assert_eq!(offers(&mut frx).len(), 1);
}

#[test]
fn draining_with_mark_gone_reports_the_killed_tasks_gone_by_operator() {
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t", &a, "cpus:1;mem:128")])],
        0.0,
        now,
    )
    .unwrap();
    m.drain_agent(
        &a,
        crate::registry::DrainConfig {
            max_grace_period_secs: None,
            mark_gone: true,
        },
    )
    .unwrap();
    drain(&mut frx);
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Killed))
        .unwrap();
    let u = updates(&mut frx);
    assert_eq!(u[0].state, TaskState::GoneByOperator);
    assert_eq!(u[0].reason.as_deref(), Some("REASON_AGENT_DRAINING"));
}

/// The bookkeeping every step must keep: per agent, its outstanding offers sum to what it has
/// offered and its live tasks to what it has used, and the two together fit in its total (so
/// nothing is offered twice or offered while in use); per framework, the scalars it holds per
/// role sum to its used plus offered ones.
fn check_invariants(m: &Master) {
    for agent in m.agents.values() {
        let mut offered = Resources::new();
        for offer in m.offers.values().filter(|o| o.agent_id == agent.id) {
            offered.add(&offer.resources);
        }
        assert_eq!(offered, agent.offered, "agent {} offers", agent.id);
        let mut used = Resources::new();
        for fw in m.frameworks.values() {
            for t in fw.tasks.values().filter(|t| t.info.agent_id == agent.id) {
                used.add(&t.info.resources);
            }
        }
        for ((_, on, _), (_, res)) in &m.executors {
            if *on == agent.id {
                used.add(res);
            }
        }
        assert_eq!(used, agent.used, "agent {} tasks and executors", agent.id);
        let mut held = used.clone();
        held.add(&offered);
        assert!(
            agent.total().contains(&held),
            "agent {}: {held} in {}",
            agent.id,
            agent.total()
        );
        // Ranges unite when added, so count ports one holder at a time: no port is held twice.
        let count =
            |r: &Resources| -> u64 { r.ranges("ports").iter().map(|x| x.end - x.begin + 1).sum() };
        let mut each: u64 = m
            .offers
            .values()
            .filter(|o| o.agent_id == agent.id)
            .map(|o| count(&o.resources))
            .sum();
        for fw in m.frameworks.values() {
            for t in fw.tasks.values().filter(|t| t.info.agent_id == agent.id) {
                each += count(&t.info.resources);
            }
        }
        assert_eq!(
            each,
            count(&held),
            "agent {}: a port is held twice",
            agent.id
        );
        let mut back = agent.available();
        back.add(&held);
        assert_eq!(
            back,
            agent.total(),
            "agent {}: free + used + offered",
            agent.id
        );
    }
    for fw in m.frameworks.values() {
        let mut by_role = Resources::new();
        for res in fw.allocated.values() {
            by_role.add(res);
        }
        // Scalars: ranges and sets of several agents merge in a framework's totals.
        let mut held = operations::scalars(&fw.used);
        held.add(&operations::scalars(&fw.offered));
        for name in ["cpus", "mem"] {
            let (a, b) = (by_role.scalar(name), held.scalar(name));
            assert!(
                (a - b).abs() < 1e-6,
                "framework {} per role: {name} {a} != {b}",
                fw.id
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Allocate,
    /// Accept offer (index) launching a task of this fraction of it, and maybe reserve.
    Accept(usize, f64, bool),
    Decline(usize, f64),
    Finish(usize),
    Reserve(usize, u8),
    Unreserve(usize),
    Drain(usize),
    Reactivate(usize),
    Quota(u8),
    Expire(u64),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        3 => Just(Step::Allocate),
        3 => (0..8usize, 0.1..1.0f64, any::<bool>()).prop_map(|(i, f, r)| Step::Accept(i, f, r)),
        1 => (0..8usize, 0.0..20.0f64).prop_map(|(i, s)| Step::Decline(i, s)),
        2 => (0..16usize).prop_map(Step::Finish),
        1 => (0..3usize, 1..3u8).prop_map(|(a, c)| Step::Reserve(a, c)),
        1 => (0..3usize).prop_map(Step::Unreserve),
        1 => (0..3usize).prop_map(Step::Drain),
        1 => (0..3usize).prop_map(Step::Reactivate),
        1 => (0..4u8).prop_map(Step::Quota),
        1 => (0..30u64).prop_map(Step::Expire),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

    #[test]
    fn offers_used_and_free_always_add_up_to_the_total(steps in proptest::collection::vec(step(), 1..60)) {
        let mut m = master();
        let start = Instant::now();
        let mut now = start;
        let agents: Vec<AgentId> = (0..3)
            .map(|i| agent(&mut m, i, "cpus:4;mem:4096;ports:[31000-31009];cpus(a):1").0)
            .collect();
        let mut fws = Vec::new();
        for (i, roles) in [&["a"][..], &["b"][..], &["a/x", "b"][..]].iter().enumerate() {
            let (id, rx) = role_framework(&mut m, 10 + i as u64, roles);
            fws.push((id, 10 + i as u64, rx));
        }
        let mut outstanding: Vec<OfferEvent> = Vec::new();
        let mut n = 0;
        for s in steps {
            for (_, _, rx) in fws.iter_mut() {
                for e in drain(rx) {
                    match e {
                        SchedulerEvent::Offers(o) => outstanding.extend(o),
                        SchedulerEvent::Rescind(id) => outstanding.retain(|o| o.id != id),
                        _ => {}
                    }
                }
            }
            match s {
                Step::Allocate => m.allocate(now),
                Step::Accept(i, fraction, reserve) if !outstanding.is_empty() => {
                    let o = outstanding.remove(i % outstanding.len());
                    let (fw, conn, _) = fws.iter().find(|f| f.0 == o.framework_id).unwrap();
                    let cpus = (o.resources.cpus() * fraction * 100.0).floor() / 100.0;
                    n += 1;
                    let mut ops = Vec::new();
                    if reserve && o.role != "*" && o.resources.unreserved().mem() >= 32.0 {
                        ops.push(Operation::Reserve(res(&format!("mem({}):32", o.role))));
                    }
                    if cpus >= 0.01 {
                        let port = o.resources.ranges("ports").first().map(|r| r.begin);
                        let ports = port.map(|p| format!(";ports:[{p}-{p}]")).unwrap_or_default();
                        ops.push(Operation::Launch(vec![task(&format!("t{n}"), &o.agent_id, &format!("cpus:{cpus}{ports}"))]));
                    }
                    let _ = m.accept(*conn, fw, std::slice::from_ref(&o.id), ops, 1.0, now);
                }
                Step::Decline(i, secs) if !outstanding.is_empty() => {
                    let o = outstanding.remove(i % outstanding.len());
                    let (fw, conn, _) = fws.iter().find(|f| f.0 == o.framework_id).unwrap();
                    m.decline(*conn, fw, std::slice::from_ref(&o.id), secs, now).unwrap();
                }
                Step::Finish(i) => {
                    let live: Vec<(FrameworkId, TaskInfo)> = m.frameworks.values()
                        .flat_map(|f| f.tasks.values().map(|t| (f.id.clone(), t.info.clone())))
                        .collect();
                    if !live.is_empty() {
                        let (fw, t) = &live[i % live.len()];
                        let agent_conn = agents.iter().position(|a| *a == t.agent_id).unwrap() as u64;
                        m.status_update(agent_conn, &t.agent_id, status(fw, &t.agent_id, t.task_id.as_str(), TaskState::Finished)).unwrap();
                    }
                }
                Step::Reserve(a, cpus) => {
                    let _ = m.operator_reserve(&agents[a], res(&format!("cpus(b):{cpus}")));
                }
                Step::Unreserve(a) => {
                    let dynamic = m.agents[&agents[a]].reservations.clone();
                    let _ = m.operator_unreserve(&agents[a], dynamic);
                }
                Step::Drain(a) => {
                    let _ = m.drain_agent(&agents[a], crate::registry::DrainConfig { max_grace_period_secs: None, mark_gone: false });
                }
                Step::Reactivate(a) => {
                    let _ = m.reactivate_agent(&agents[a]);
                }
                Step::Quota(q) => {
                    let config = crate::registry::QuotaConfig {
                        guarantees: res(if q % 2 == 0 { "cpus:1" } else { "" }),
                        limits: res(if q < 2 { "cpus:3" } else { "" }),
                    };
                    m.set_quota("a", config).unwrap();
                }
                Step::Expire(secs) => {
                    now += Duration::from_secs(secs);
                    m.expire_filters(now);
                }
                _ => {}
            }
            check_invariants(&m);
            let _ = commit(&mut m);
        }
        proptest::prop_assert!(now >= start);
    }
}

#[test]
fn a_maintenance_schedule_marks_offers_and_keeps_down_machines() {
    use crate::registry::MaintenanceWindow;
    let mut m = master();
    let now = Instant::now();
    let (_a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (_f, mut frx) = framework(&mut m, 2, false);
    let window = |machines: &[&str]| MaintenanceWindow {
        machines: machines.iter().map(|h| h.to_string()).collect(),
        start: 1000.0,
        duration: Some(60.0),
    };
    assert!(m.set_schedule(vec![window(&[])]).is_err());
    assert!(m
        .set_schedule(vec![window(&["a"]), window(&["a"])])
        .is_err());
    m.set_schedule(vec![window(&["a", "b"])]).unwrap();
    assert_eq!(commit(&mut m).unwrap().schedule.len(), 1);
    m.allocate(now);
    let o = offers(&mut frx);
    assert_eq!(o[0].unavailability.as_ref().map(|w| w.start), Some(1000.0));
    assert_eq!(
        m.maintenance_json()["draining_machines"][0]["state"],
        "DRAINING"
    );
    assert_eq!(
        m.schedule_json()["windows"][0]["unavailability"]["duration"]["nanoseconds"],
        60_000_000_000i64
    );
    // A machine that is down cannot leave the schedule.
    m.machines_down(&[MachineId {
        hostname: "a".into(),
        ip: String::new(),
    }])
    .unwrap();
    assert!(matches!(
        m.set_schedule(vec![]),
        Err(OperatorError::Conflict(_))
    ));
    m.machines_up(&[MachineId {
        hostname: "a".into(),
        ip: String::new(),
    }])
    .unwrap();
    m.set_schedule(vec![]).unwrap();
    assert_eq!(m.maintenance_json()["draining_machines"], json!([]));
}

#[test]
fn persistent_volumes_are_created_used_offered_back_and_destroyed() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024;disk(ops):100");
    let (f, mut frx) = role_framework(&mut m, 2, &["ops"]);
    m.allocate(now);
    let o = offers(&mut frx);
    let volume = res("disk(ops)[v1:data]:64");
    // A volume not of the offer's role, or not a volume at all, is dropped.
    let err = m
        .accept(
            2,
            &f,
            &[o[0].id.clone()],
            vec![
                Operation::Create(res("disk(web)[v0:data]:10")),
                Operation::Create(res("disk(ops):10")),
                Operation::Create(volume.clone()),
                Operation::Launch(vec![task("t", &a, "cpus:1;mem:64;disk(ops)[v1:data]:64")]),
            ],
            0.0,
            now,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("operation 1 (CREATE)") && err.contains("operation 2 (CREATE)"),
        "{err}"
    );
    assert!(!err.contains("operation 3"), "{err}");
    let launched = drain(&mut arx).into_iter().any(|c| {
        matches!(c, AgentCommand::Launch { task, .. } if task.resources.contains(&res("disk(ops)[v1:data]:64")))
    });
    assert!(launched, "the task was launched with its volume");
    assert_eq!(commit(&mut m).unwrap().agents[&a].volumes, volume);
    // The task ends: the volume is offered back to its role, whole.
    m.status_update(1, &a, status(&f, &a, "t", TaskState::Finished))
        .unwrap();
    m.allocate(now);
    let o = offers(&mut frx);
    assert!(o[0].resources.contains(&volume), "{:?}", o[0].resources);
    assert_eq!(o[0].resources.scalar("disk"), 100.0);
    // Its id is taken.
    let err = m
        .accept(
            2,
            &f,
            &[o[0].id.clone()],
            vec![Operation::Create(res("disk(ops)[v1:other]:10"))],
            0.0,
            now,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Destroy(volume.clone())],
        0.0,
        now,
    )
    .unwrap();
    let destroyed = drain(&mut arx)
        .into_iter()
        .any(|c| matches!(c, AgentCommand::DestroyVolumes { volumes } if volumes == volume));
    assert!(destroyed, "the agent was told to delete the volume");
    assert!(commit(&mut m).unwrap().agents[&a].volumes.is_empty());
    m.allocate(now);
    let o = offers(&mut frx);
    assert!(o[0].resources.volumes().next().is_none());
    assert!(o[0].resources.contains(&res("disk(ops):100")));
}

#[test]
fn operator_volumes_need_reserved_unused_disk() {
    let mut m = master();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024;disk:100");
    let volume = res("disk(ops)[v1:data]:64");
    assert!(matches!(
        m.operator_create_volumes(&a, volume.clone()),
        Err(OperatorError::Conflict(_))
    ));
    m.operator_reserve(&a, res("disk(ops):64")).unwrap();
    m.operator_create_volumes(&a, volume.clone()).unwrap();
    assert!(matches!(
        m.operator_create_volumes(&a, volume.clone()),
        Err(OperatorError::Invalid(_))
    ));
    assert_eq!(
        m.state_json()["slaves"][0]["reserved_resources"]["ops"]["disk"],
        64.0
    );
    // The reservation under a volume cannot be unreserved.
    assert!(m.operator_unreserve(&a, res("disk(ops):64")).is_err());
    m.operator_destroy_volumes(&a, volume.clone()).unwrap();
    assert!(drain(&mut arx)
        .iter()
        .any(|c| matches!(c, AgentCommand::DestroyVolumes { .. })));
    m.operator_unreserve(&a, res("disk(ops):64")).unwrap();
    assert_eq!(
        m.state_json()["slaves"][0]["unreserved_resources"]["disk"],
        100.0
    );
}

#[test]
fn volumes_destroyed_while_their_agent_is_away_are_deleted_when_it_returns() {
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024;disk:100");
    let volume = res("disk(ops)[v1:data]:64");
    m.operator_reserve(&a, res("disk(ops):64")).unwrap();
    m.operator_create_volumes(&a, volume.clone()).unwrap();
    m.connection_closed(1, now);
    m.operator_destroy_volumes(&a, volume.clone()).unwrap();
    // Kept in the registry, so a new leader deletes the data too.
    let committed = commit(&mut m).unwrap();
    assert_eq!(committed.agents[&a].destroyed, volume);
    assert!(committed.agents[&a].volumes.is_empty());
    // The id cannot be used again before the data is gone.
    let err = m.operator_create_volumes(&a, volume.clone()).unwrap_err();
    assert!(err.to_string().contains("destroyed while"), "{err}");
    // The agent comes back: it is told to delete the data, and the id is free again.
    let info = AgentInfo {
        id: Some(a.clone()),
        hostname: "h1".into(),
        port: 5051,
        resources: res("cpus:2;mem:1024;disk:100"),
        ..AgentInfo::default()
    };
    let (link, mut arx) = tokio::sync::mpsc::unbounded_channel();
    m.register_agent(3, info, link, vec![]).unwrap();
    assert!(drain(&mut arx)
        .iter()
        .any(|c| matches!(c, AgentCommand::DestroyVolumes { volumes } if *volumes == volume)));
    assert!(commit(&mut m).unwrap().agents[&a].destroyed.is_empty());
    m.operator_create_volumes(&a, volume).unwrap();
}

#[test]
fn a_new_guarantee_takes_back_outstanding_offers_and_is_met_first() {
    let mut m = master();
    let now = Instant::now();
    let (_a, _arx) = agent(&mut m, 1, "cpus:4;mem:4096");
    let (_fa, mut arx) = role_framework(&mut m, 2, &["a"]);
    m.allocate(now);
    let o = offers(&mut arx);
    assert_eq!(o[0].resources.cpus(), 4.0);
    let (_fb, mut brx) = role_framework(&mut m, 3, &["b"]);
    m.set_quota(
        "b",
        crate::registry::QuotaConfig {
            guarantees: res("cpus:2;mem:1024"),
            limits: Resources::new(),
        },
    )
    .unwrap();
    assert!(drain(&mut arx)
        .iter()
        .any(|e| matches!(e, SchedulerEvent::Rescind(id) if *id == o[0].id)));
    m.allocate(now);
    let b = offers(&mut brx);
    assert_eq!(b.len(), 1);
    assert!(
        b[0].resources.cpus() >= 2.0 && b[0].resources.mem() >= 1024.0,
        "{:?}",
        b[0].resources
    );
}

#[test]
fn roles_sum_their_subtree_and_quota_counts_idle_reservations() {
    let mut m = master();
    let now = Instant::now();
    let (_a, _arx) = agent(&mut m, 1, "cpus:4;mem:1024;cpus(eng/a):1");
    m.set_quota(
        "eng",
        crate::registry::QuotaConfig {
            guarantees: Resources::new(),
            limits: res("cpus:3"),
        },
    )
    .unwrap();
    let role = |m: &Master, name: &str| {
        m.roles_json()["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap()
    };
    // Nobody holds anything: the idle reservation of the child counts against eng's quota.
    assert_eq!(role(&m, "eng")["reserved"]["cpus"], 1.0);
    assert_eq!(role(&m, "eng")["quota"]["consumed"]["cpus"], 1.0);
    let (_f, mut frx) = role_framework(&mut m, 2, &["eng/a"]);
    m.allocate(now);
    let o = offers(&mut frx);
    let offered = o[0].resources.cpus();
    assert!(offered <= 3.0, "the limit holds: {offered}");
    // Offered now: allocated to eng/a and counted once for eng.
    assert_eq!(role(&m, "eng/a")["offered"]["cpus"], offered);
    assert_eq!(role(&m, "eng")["allocated"]["cpus"], offered);
    assert_eq!(role(&m, "eng")["quota"]["consumed"]["cpus"], offered);
}

fn inverse_offers(
    rx: &mut UnboundedReceiver<SchedulerEvent>,
) -> (Vec<InverseOfferEvent>, Vec<OfferId>) {
    let mut offered = Vec::new();
    let mut rescinded = Vec::new();
    for e in drain(rx) {
        match e {
            SchedulerEvent::InverseOffers(o) => offered.extend(o),
            SchedulerEvent::RescindInverseOffer(id) => rescinded.push(id),
            _ => {}
        }
    }
    (offered, rescinded)
}

#[test]
fn frameworks_with_tasks_on_a_scheduled_machine_get_inverse_offers_and_answer_them() {
    use crate::registry::MaintenanceWindow;
    let mut m = master();
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f1, mut f1rx) = framework(&mut m, 2, false);
    let (f2, mut f2rx) = framework(&mut m, 3, false);
    m.allocate(now);
    let o = offers(&mut f1rx);
    let o = if o.is_empty() { offers(&mut f2rx) } else { o };
    let owner = o[0].framework_id.clone();
    let (user, mut user_rx, other, mut other_rx, user_conn, other_conn) = if owner == f1 {
        (f1, f1rx, f2, f2rx, 2, 3)
    } else {
        (f2, f2rx, f1, f1rx, 3, 2)
    };
    m.accept(
        user_conn,
        &user,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("t1", &a, "cpus:1;mem:128")])],
        0.0,
        now,
    )
    .unwrap();
    let window = MaintenanceWindow {
        machines: vec!["a".into()],
        start: 1000.0,
        duration: Some(60.0),
    };
    m.set_schedule(vec![window.clone()]).unwrap();
    m.allocate(now);
    let (inv, _) = inverse_offers(&mut user_rx);
    assert_eq!(inv.len(), 1, "the framework with a task there is asked");
    assert_eq!(inv[0].agent_id, a);
    assert_eq!(inv[0].framework_id, user);
    assert_eq!(inv[0].hostname, "a");
    assert_eq!(inv[0].unavailability, window);
    assert!(inverse_offers(&mut other_rx).0.is_empty(), "no tasks there");
    // Outstanding: not sent twice; UNKNOWN in the status.
    m.allocate(now);
    assert!(inverse_offers(&mut user_rx).0.is_empty());
    let answers = &m.maintenance_json()["draining_machines"][0]["statuses"];
    assert_eq!(answers[0]["status"], "UNKNOWN", "{answers}");
    assert_eq!(answers[0]["framework_id"]["value"], user.as_str());
    // Only the holder may answer, only outstanding ids.
    assert!(m
        .answer_inverse_offers(other_conn, &other, &[inv[0].id.clone()], true, 5.0, now)
        .is_err());
    let bogus: OfferId = "nope".parse().unwrap();
    assert!(m
        .answer_inverse_offers(user_conn, &user, &[bogus], false, 5.0, now)
        .is_err());
    // A decline is recorded and filters for refuse_seconds.
    m.answer_inverse_offers(user_conn, &user, &[inv[0].id.clone()], false, 10.0, now)
        .unwrap();
    let answers = &m.maintenance_json()["draining_machines"][0]["statuses"];
    assert_eq!(answers[0]["status"], "DECLINE", "{answers}");
    assert!(answers[0]["timestamp"]["nanoseconds"].as_i64().unwrap() > 0);
    m.allocate(now + Duration::from_secs(5));
    assert!(inverse_offers(&mut user_rx).0.is_empty(), "filtered");
    assert_eq!(
        m.next_filter_expiry(),
        Some(now + Duration::from_secs(10)),
        "the actor wakes when the filter ends"
    );
    m.expire_filters(now + Duration::from_secs(11));
    m.allocate(now + Duration::from_secs(11));
    let (again, _) = inverse_offers(&mut user_rx);
    assert_eq!(again.len(), 1, "asked again once the filter ended");
    assert_ne!(again[0].id, inv[0].id);
    m.answer_inverse_offers(user_conn, &user, &[again[0].id.clone()], true, 5.0, now)
        .unwrap();
    assert_eq!(
        m.maintenance_json()["draining_machines"][0]["statuses"][0]["status"],
        "ACCEPT"
    );
    // The machine leaves the schedule: outstanding inverse offers are rescinded, answers
    // forgotten.
    m.expire_filters(now + Duration::from_secs(30));
    m.allocate(now + Duration::from_secs(30));
    let (third, _) = inverse_offers(&mut user_rx);
    assert_eq!(third.len(), 1);
    m.set_schedule(vec![]).unwrap();
    m.allocate(now + Duration::from_secs(31));
    let (offered, rescinded) = inverse_offers(&mut user_rx);
    assert!(offered.is_empty());
    assert_eq!(rescinded, vec![third[0].id.clone()]);
    // The task ending rescinds too.
    m.set_schedule(vec![window]).unwrap();
    m.allocate(now + Duration::from_secs(32));
    let (fourth, _) = inverse_offers(&mut user_rx);
    assert_eq!(fourth.len(), 1, "answers were forgotten with the schedule");
    m.status_update(1, &a, status(&user, &a, "t1", TaskState::Finished))
        .unwrap();
    m.allocate(now + Duration::from_secs(33));
    let (_, rescinded) = inverse_offers(&mut user_rx);
    assert_eq!(rescinded, vec![fourth[0].id.clone()]);
    assert_eq!(
        m.maintenance_json()["draining_machines"][0]["statuses"],
        json!([])
    );
}

#[test]
fn update_framework_changes_roles_name_and_keeps_user_principal_checkpoint() {
    let mut m = master();
    let (_agent, _arx) = agent(&mut m, 1, "cpus:4;mem:1024;cpus(ops):2");
    let (fw, mut rx) = framework(&mut m, 2, false);
    commit(&mut m);
    m.allocate(Instant::now());
    // Role `*` only: the ops reservation is not offered.
    let first = offers(&mut rx);
    assert_eq!(first.len(), 1);
    assert!(first[0].resources.reserved("ops").is_empty());
    assert_eq!(first[0].role, "*");

    let mut info = m.frameworks[&fw].info.clone();
    info.name = "renamed".into();
    info.roles = vec!["ops".into()];
    info.webui_url = Some("http://ui".into());
    info.failover_timeout_secs = 30.0;
    info.capabilities = vec!["MULTI_ROLE".into()];
    info.labels = vec![("k".into(), "v".into())];
    // From another connection: refused as stale.
    assert!(matches!(
        m.update_framework(9, &fw, info.clone(), None),
        Err(CallError::StaleSession(_))
    ));
    m.update_framework(2, &fw, info.clone(), None).unwrap();
    // The offer for the role it left is rescinded.
    let events = drain(&mut rx);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SchedulerEvent::Rescind(id) if *id == first[0].id)),
        "{events:?}"
    );
    assert_eq!(
        commit(&mut m).unwrap().frameworks[&fw].name,
        "renamed",
        "the registry holds the new info"
    );
    m.allocate(Instant::now());
    let next = offers(&mut rx);
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].role, "ops");
    assert_eq!(next[0].resources.reserved("ops").cpus(), 2.0);
    let state = m.state_json();
    let f = &state["frameworks"][0];
    assert_eq!(f["name"], "renamed");
    assert_eq!(f["roles"], json!(["ops"]));
    assert_eq!(f["failover_timeout"], 30.0);
    assert_eq!(f["webui_url"], "http://ui");
    assert_eq!(f["capabilities"], json!(["MULTI_ROLE"]));
    assert_eq!(f["labels"], json!([{"key": "k", "value": "v"}]));

    for (field, change) in [
        (
            "user",
            Box::new(|i: &mut FrameworkInfo| i.user = "other".into())
                as Box<dyn Fn(&mut FrameworkInfo)>,
        ),
        (
            "principal",
            Box::new(|i: &mut FrameworkInfo| i.principal = Some("p".into())),
        ),
        (
            "checkpoint",
            Box::new(|i: &mut FrameworkInfo| i.checkpoint = true),
        ),
    ] {
        let mut bad = info.clone();
        change(&mut bad);
        match m.update_framework(2, &fw, bad, None) {
            Err(CallError::Invalid(msg)) => {
                assert!(msg.contains(&format!("framework_info.{field}")), "{msg}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    let mut bad = info.clone();
    bad.id = Some(FrameworkId::new("other").unwrap());
    assert!(matches!(
        m.update_framework(2, &fw, bad, None),
        Err(CallError::Invalid(_))
    ));
    let mut bad = info;
    bad.roles = vec!["/x".into()];
    assert!(matches!(
        m.update_framework(2, &fw, bad, None),
        Err(CallError::Invalid(_))
    ));
}

#[test]
fn suppressed_roles_of_subscribe_and_update_framework() {
    let mut m = master();
    let (_agent, _arx) = agent(&mut m, 1, "cpus:4;mem:1024;cpus(ops):2");
    let (tx, mut rx) = unbounded_channel();
    let info = FrameworkInfo {
        name: "f".into(),
        user: "root".into(),
        roles: vec!["*".into(), "ops".into()],
        ..Default::default()
    };
    let fw = m.subscribe(2, info.clone(), tx).unwrap();
    m.set_suppressed_roles(&fw, vec!["*".into()]);
    commit(&mut m);
    m.allocate(Instant::now());
    let got = offers(&mut rx);
    assert!(
        !got.is_empty() && got.iter().all(|o| o.role == "ops"),
        "{got:?}"
    );
    // UPDATE_FRAMEWORK: the listed roles are suppressed, the others revived.
    m.update_framework(2, &fw, info.clone(), Some(vec!["ops".into()]))
        .unwrap();
    let outstanding: Vec<OfferId> = got.iter().map(|o| o.id.clone()).collect();
    m.decline(2, &fw, &outstanding, 0.0, Instant::now())
        .unwrap();
    m.allocate(Instant::now());
    let got = offers(&mut rx);
    assert!(
        !got.is_empty() && got.iter().all(|o| o.role == "*"),
        "{got:?}"
    );
    // Only its own roles can be suppressed.
    match m.update_framework(2, &fw, info, Some(vec!["web".into()])) {
        Err(CallError::Invalid(msg)) => assert!(msg.contains("suppressed_roles"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

fn executor(kind: ExecutorKind, id: &str, res: &str) -> ExecutorInfo {
    ExecutorInfo {
        kind,
        executor_id: ExecutorId::new(id).unwrap(),
        name: String::new(),
        command: if kind == ExecutorKind::Custom {
            CommandInfo::shell("run-executor")
        } else {
            CommandInfo::default()
        },
        resources: Resources::parse(res).unwrap(),
        container: None,
        data: Vec::new(),
    }
}

#[test]
fn task_groups_launch_whole_or_not_at_all() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    drain(&mut frx);
    m.allocate(now);
    let o = offers(&mut frx);
    let group = |tasks| Operation::LaunchGroup {
        executor: Box::new(executor(ExecutorKind::Default, "g", "")),
        tasks,
    };
    // One task the offer cannot hold refuses the whole group.
    let tasks = vec![task("g1", &a, "cpus:0.5"), task("g2", &a, "cpus:5")];
    m.accept(2, &f, &[o[0].id.clone()], vec![group(tasks)], 0.0, now)
        .unwrap();
    assert!(drain(&mut arx).is_empty());
    let u = updates(&mut frx);
    assert_eq!(u.len(), 2);
    for s in &u {
        assert_eq!(s.state, TaskState::Error);
        assert_eq!(s.reason.as_deref(), Some("REASON_TASK_GROUP_INVALID"));
        assert!(s.message.contains("task g2"), "{}", s.message);
    }
    // A valid group reaches the agent in one command, and its tasks are charged.
    m.allocate(now);
    let o = offers(&mut frx);
    let tasks = vec![task("g1", &a, "cpus:0.5"), task("g2", &a, "cpus:0.5")];
    m.accept(2, &f, &[o[0].id.clone()], vec![group(tasks)], 0.0, now)
        .unwrap();
    match drain(&mut arx).as_slice() {
        [AgentCommand::LaunchGroup { tasks, .. }] => assert_eq!(tasks.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.agents[&a].used, Resources::parse("cpus:1").unwrap());
    check_invariants(&m);
}

#[test]
fn custom_executors_are_charged_once_and_released_when_they_exit() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    drain(&mut frx);
    let custom = executor(ExecutorKind::Custom, "e", "cpus:0.5;mem:64");
    let on_executor = |id: &str, res: &str| {
        let mut t = task(id, &a, res);
        t.command = CommandInfo::default();
        t.executor = Some(Box::new(custom.clone()));
        t
    };
    // The offer must hold the executor's resources besides the task's.
    m.allocate(now);
    let o = offers(&mut frx);
    let tasks = vec![on_executor("too-big", "cpus:1.75")];
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(tasks)],
        0.0,
        now,
    )
    .unwrap();
    let u = updates(&mut frx);
    assert_eq!(u[0].state, TaskState::Error);
    assert!(u[0].message.contains("cpus:2.25"), "{}", u[0].message);
    m.allocate(now);
    let o = offers(&mut frx);
    // The executor is counted once against the offer: a third task that would only fit
    // without it is refused.
    let tasks = vec![
        on_executor("t1", "cpus:0.25"),
        on_executor("t2", "cpus:0.25"),
        on_executor("t3", "cpus:1.25"),
    ];
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(tasks)],
        0.0,
        now,
    )
    .unwrap();
    assert_eq!(drain(&mut arx).len(), 2);
    let u = updates(&mut frx);
    assert_eq!(u.len(), 1);
    assert_eq!(
        (u[0].task_id.as_str(), u[0].state),
        ("t3", TaskState::Error)
    );
    // The executor once, the tasks each.
    assert_eq!(
        m.agents[&a].used,
        Resources::parse("cpus:1;mem:64").unwrap()
    );
    check_invariants(&m);
    // Its tasks end; the executor still holds its own resources until it exits.
    for t in ["t1", "t2"] {
        m.status_update(1, &a, status(&f, &a, t, TaskState::Finished))
            .unwrap();
    }
    assert_eq!(
        m.agents[&a].used,
        Resources::parse("cpus:0.5;mem:64").unwrap()
    );
    m.executor_exited(1, &a, &f, ExecutorId::new("e").unwrap(), Some(0));
    assert!(m.agents[&a].used.is_empty(), "{}", m.agents[&a].used);
    assert!(m.frameworks[&f].used.is_empty());
    assert!(drain(&mut frx).iter().any(|e| matches!(
        e,
        SchedulerEvent::Failure {
            status: Some(0),
            ..
        }
    )));
    check_invariants(&m);
}

#[test]
fn a_removed_agent_gives_its_executors_resources_back() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    drain(&mut frx);
    m.allocate(now);
    let o = offers(&mut frx);
    let mut t = task("t", &a, "cpus:0.5");
    t.command = CommandInfo::default();
    t.executor = Some(Box::new(executor(
        ExecutorKind::Custom,
        "e",
        "cpus:0.5;mem:64",
    )));
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![t])],
        0.0,
        now,
    )
    .unwrap();
    assert_eq!(drain(&mut arx).len(), 1);
    assert_eq!(
        m.frameworks[&f].used,
        Resources::parse("cpus:1;mem:64").unwrap()
    );
    m.unregister_agent(1, &a);
    assert!(m.executors.is_empty());
    assert!(
        m.frameworks[&f].used.is_empty(),
        "{}",
        m.frameworks[&f].used
    );
    check_invariants(&m);
}

#[test]
fn terminal_task_counters_outlive_the_completed_tasks_kept() {
    let mut m = Master::new(
        master().info.clone(),
        StateConfig {
            max_completed_tasks_per_framework: 1,
            ..StateConfig::default()
        },
    );
    let now = Instant::now();
    let (a, _arx) = agent(&mut m, 1, "cpus:4;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    for (i, end) in [TaskState::Finished, TaskState::Finished, TaskState::Failed]
        .into_iter()
        .enumerate()
    {
        m.allocate(now);
        let o = offers(&mut frx);
        let id = format!("t{i}");
        m.accept(
            2,
            &f,
            &[o[0].id.clone()],
            vec![Operation::Launch(vec![task(&id, &a, "cpus:1;mem:64")])],
            0.0,
            now,
        )
        .unwrap();
        m.status_update(1, &a, status(&f, &a, &id, TaskState::Running))
            .unwrap();
        m.status_update(1, &a, status(&f, &a, &id, end)).unwrap();
    }
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![task("live", &a, "cpus:1;mem:64")])],
        0.0,
        now,
    )
    .unwrap();
    m.status_update(1, &a, status(&f, &a, "live", TaskState::Running))
        .unwrap();
    let metrics = m.metrics_json();
    assert_eq!(metrics["master/tasks_finished"], 2.0, "{metrics}");
    assert_eq!(metrics["master/tasks_failed"], 1.0);
    assert_eq!(metrics["master/tasks_running"], 1.0);
    assert_eq!(
        m.state_json()["frameworks"][0]["completed_tasks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn batched_status_updates_apply_in_order_and_name_the_first_refused() {
    let mut m = master();
    let now = Instant::now();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, mut frx) = framework(&mut m, 2, false);
    m.allocate(now);
    let o = offers(&mut frx);
    m.accept(
        2,
        &f,
        &[o[0].id.clone()],
        vec![Operation::Launch(vec![
            task("t1", &a, "cpus:1;mem:128"),
            task("t2", &a, "cpus:1;mem:128"),
        ])],
        0.0,
        now,
    )
    .unwrap();
    drain(&mut arx);
    let mut orphan = status(&f, &a, "t2", TaskState::Running);
    orphan.framework_id = None;
    let err = m
        .status_updates(
            1,
            &a,
            vec![
                status(&f, &a, "t1", TaskState::Running),
                orphan,
                status(&f, &a, "t1", TaskState::Finished),
            ],
        )
        .unwrap_err();
    assert!(
        err.starts_with("1 of 3 status updates refused; the first, of task t2: "),
        "{err}"
    );
    // The others were applied, in order.
    let u = updates(&mut frx);
    assert_eq!(
        u.iter()
            .map(|s| (s.task_id.as_str(), s.state))
            .collect::<Vec<_>>(),
        [("t1", TaskState::Running), ("t1", TaskState::Finished)]
    );
    // A batch of one fails as the single call does.
    let err = m
        .status_updates(
            1,
            &a,
            vec![status(
                &f,
                &AgentId::new("other").unwrap(),
                "t2",
                TaskState::Running,
            )],
        )
        .unwrap_err();
    assert!(
        err.starts_with("the status update is for another agent"),
        "{err}"
    );
}

#[test]
fn batched_acknowledgements_are_forwarded_past_a_refused_one() {
    let mut m = master();
    let (a, mut arx) = agent(&mut m, 1, "cpus:2;mem:1024");
    let (f, _frx) = framework(&mut m, 2, false);
    drain(&mut arx);
    let uuid = UpdateUuid::random();
    let t = |id: &str| TaskId::new(id).unwrap();
    let err = m
        .acknowledge_all(
            2,
            &f,
            vec![
                (a.clone(), t("t1"), uuid),
                (AgentId::new("nowhere").unwrap(), t("t2"), uuid),
                (a.clone(), t("t3"), uuid),
            ],
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("agent nowhere is unknown"),
        "{err}"
    );
    let acked: Vec<String> = drain(&mut arx)
        .into_iter()
        .filter_map(|c| match c {
            AgentCommand::Acknowledge { task_id, .. } => Some(task_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(acked, ["t1", "t3"]);
    // Another connection may not acknowledge for the framework.
    assert!(m.acknowledge_all(9, &f, vec![(a, t("t1"), uuid)]).is_err());
}
