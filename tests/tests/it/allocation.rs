//! Sharing resources end to end: reservations by the operator and by frameworks, weights and
//! quotas, and draining an agent, through real daemons.

use serde_json::json;
use std::time::Duration;
use strata_client::Operation;
use strata_schema::{FrameworkInfo, Resources, TaskState};
use strata_tests::framework::{task, TestFramework};
use strata_tests::{http_get, http_send, Cluster};

const T: Duration = Duration::from_secs(30);

fn res(s: &str) -> Resources {
    Resources::parse(s).unwrap()
}

async fn framework_in(master: &str, name: &str, roles: &[&str]) -> TestFramework {
    let info = FrameworkInfo {
        name: name.to_string(),
        user: "root".to_string(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..FrameworkInfo::default()
    };
    TestFramework::subscribe_with(master, info).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_by_the_operator_and_by_frameworks() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let addr = cluster.master.addr();
    let state = cluster.wait_agents(1).unwrap();
    let agent = state["slaves"][0]["id"].as_str().unwrap().to_string();

    // Bad requests name what is wrong; an unknown agent is 404; too much is 409.
    let (code, body) = http_send(&addr, "POST", "/reserve", &json!({"agent_id": agent})).unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("no resources"), "{body}");
    let (code, body) = http_send(
        &addr,
        "POST",
        "/reserve",
        &json!({"agent_id": "nope", "resources": "cpus(ops):1"}),
    )
    .unwrap();
    assert_eq!(code, 404, "{body}");
    let (code, body) = http_send(
        &addr,
        "POST",
        "/reserve",
        &json!({"agent_id": agent, "resources": "cpus(ops):3"}),
    )
    .unwrap();
    assert_eq!(code, 409, "{body}");

    // The operator reserves 1 cpu and 256 MB for `ops` (Mesos' JSON resources).
    let resources = json!([
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "reservations": [{"type": "DYNAMIC", "role": "ops"}]},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 256}, "role": "ops"}
    ]);
    let (code, body) = http_send(
        &addr,
        "POST",
        "/reserve",
        &json!({"agent_id": agent, "resources": resources}),
    )
    .unwrap();
    assert_eq!(code, 202, "{body}");
    let state = http_get(&addr, "/state").unwrap();
    assert_eq!(state["slaves"][0]["reserved_resources"]["ops"]["cpus"], 1.0);

    // A framework in another role is offered only the unreserved part.
    let mut web = framework_in(&addr, "web", &["web"]).await;
    let offer = web.offer_with("cpus:1", T).await.unwrap();
    assert_eq!(offer.role, "web");
    assert_eq!(offer.resources.cpus(), 1.0, "{offer:?}");
    assert_eq!(offer.resources.mem(), 768.0, "{offer:?}");
    assert!(offer.resources.iter().all(|r| r.role == "*"), "{offer:?}");
    web.driver.teardown().await.unwrap();

    // A framework in `ops` gets the reservation, reserves more in its offer and runs a task on
    // reserved resources.
    let mut ops = framework_in(&addr, "ops", &["ops"]).await;
    let offer = ops.offer_with("cpus(ops):1", T).await.unwrap();
    assert_eq!(offer.role, "ops");
    let a = offer.agent_id.clone();
    ops.driver
        .accept(
            vec![offer.id.clone()],
            vec![
                Operation::Reserve(res("mem(ops):256")),
                Operation::Launch(vec![task("r", &a, "cpus(ops):1;mem(ops):512", "sleep 60")]),
            ],
            0.0,
        )
        .await
        .unwrap();
    ops.wait_for("r", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let roles = http_get(&addr, "/roles").unwrap();
    let role = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ops")
        .cloned()
        .unwrap();
    assert_eq!(role["reserved"]["mem"], 512.0, "{roles}");
    // Allocated counts what is offered too (Mesos): the task holds the other cpu.
    let used =
        role["allocated"]["cpus"].as_f64().unwrap() - role["offered"]["cpus"].as_f64().unwrap();
    assert_eq!(used, 1.0, "{roles}");
    // In use: it cannot be unreserved.
    let (code, body) = http_send(
        &addr,
        "POST",
        "/unreserve",
        &json!({"agent_id": agent, "resources": "cpus(ops):1"}),
    )
    .unwrap();
    assert_eq!(code, 409, "{body}");
    ops.driver
        .kill(strata_schema::TaskId::new("r").unwrap(), Some(a.clone()))
        .await
        .unwrap();
    ops.wait_terminal("r", T).await.unwrap();
    ops.driver.teardown().await.unwrap();
    cluster
        .wait_state(T, |s| s["slaves"][0]["used_resources"]["cpus"] == 0.0)
        .unwrap();
    let (code, body) = http_send(
        &addr,
        "POST",
        "/unreserve",
        &json!({"agent_id": agent, "resources": "cpus(ops):1;mem(ops):512"}),
    )
    .unwrap();
    assert_eq!(code, 202, "{body}");
    let state = http_get(&addr, "/state").unwrap();
    assert_eq!(
        state["slaves"][0]["unreserved_resources"]["cpus"], 2.0,
        "{state}"
    );
    assert_eq!(
        state["slaves"][0]["unreserved_resources"]["mem"], 1024.0,
        "{state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_and_quotas_are_set_over_http_and_kept_across_a_master_restart() {
    let mut cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let addr = cluster.master.addr();
    let (code, body) = http_send(
        &addr,
        "PUT",
        "/weights",
        &json!([{"role": "eng", "weight": 0}]),
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("positive"), "{body}");
    let (code, body) = http_send(
        &addr,
        "PUT",
        "/weights",
        &json!([{"role": "eng", "weight": 3}]),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_send(&addr, "POST", "/quota", &json!({"role": "eng", "guarantees": {"cpus": {"value": 4}}, "limits": {"cpus": {"value": 1}}})).unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("exceeds its limit"), "{body}");
    let (code, body) = http_send(
        &addr,
        "POST",
        "/quota",
        &json!({"role": "eng/backend", "limits": {"cpus": {"value": 1}, "mem": {"value": 256}}}),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");

    cluster.restart_master().unwrap();
    let addr = cluster.master.addr();
    cluster.wait_agents(1).unwrap();
    assert_eq!(
        http_get(&addr, "/weights").unwrap(),
        json!([{"role": "eng", "weight": 3.0}])
    );
    let quota = http_get(&addr, "/quota").unwrap();
    assert_eq!(quota["configs"][0]["role"], "eng/backend", "{quota}");
    assert_eq!(
        quota["configs"][0]["limits"]["mem"]["value"], 256.0,
        "{quota}"
    );
    let state = http_get(&addr, "/state").unwrap();
    assert_eq!(state["weights"][0]["weight"], 3.0, "{state}");

    // The limit holds: a framework in eng/backend is offered at most 1 cpu and 256 MB.
    let mut fw = framework_in(&addr, "backend", &["eng/backend"]).await;
    let offer = fw.offer_with("cpus:0.5", T).await.unwrap();
    assert!(
        offer.resources.cpus() <= 1.0 && offer.resources.mem() <= 256.0,
        "{offer:?}"
    );
    let roles = http_get(&addr, "/roles").unwrap();
    let backend = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "eng/backend")
        .cloned()
        .unwrap();
    assert_eq!(backend["quota"]["limit"]["cpus"], 1.0, "{roles}");
    assert!(
        roles["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "eng"),
        "{roles}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_an_agent_kills_its_tasks_and_stops_its_offers() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let addr = cluster.master.addr();
    let mut fw = TestFramework::subscribe(&addr, "drain").await.unwrap();
    let offer = fw.offer_with("cpus:1;mem:128", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![task("long", &a, "cpus:1;mem:128", "sleep 600")],
    )
    .await
    .unwrap();
    fw.wait_for("long", T, |s| s == TaskState::Running)
        .await
        .unwrap();

    let (code, body) = http_send(
        &addr,
        "POST",
        "/drain",
        &json!({"agent_id": a.as_str(), "max_grace_period_secs": 1}),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let end = fw.wait_terminal("long", T).await.unwrap();
    assert_eq!(end.state, TaskState::Killed, "{end:?}");
    let state = cluster
        .wait_state(T, |s| s["slaves"][0]["drain_info"]["state"] == "DRAINED")
        .unwrap();
    assert_eq!(state["slaves"][0]["deactivated"], true);
    // No offers from a drained agent, even after filters and rescinds settle.
    fw.offers.clear();
    let none = fw.offer_with("cpus:0.1", Duration::from_secs(3)).await;
    assert!(none.is_err(), "a drained agent was offered: {none:?}");

    let (code, body) = http_send(
        &addr,
        "POST",
        "/reactivate",
        &json!({"agent_id": a.as_str()}),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    fw.offer_with("cpus:2", T).await.unwrap();
    let (code, body) = http_send(
        &addr,
        "POST",
        "/reactivate",
        &json!({"agent_id": a.as_str()}),
    )
    .unwrap();
    assert_eq!(code, 409, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_volume_outlives_its_task_and_is_destroyed_on_request() {
    let cluster = Cluster::start("cpus:2;mem:1024;disk(ops):100").unwrap();
    let addr = cluster.master.addr();
    let mut fw = framework_in(&addr, "volumes", &["ops"]).await;
    let offer = fw.offer_with("disk(ops):100", T).await.unwrap();
    let a = offer.agent_id.clone();
    let volume = res("disk(ops)[v1:data]:64");
    fw.driver
        .accept(
            vec![offer.id.clone()],
            vec![
                Operation::Create(volume.clone()),
                Operation::Launch(vec![task(
                    "writer",
                    &a,
                    "cpus:0.5;mem:64;disk(ops)[v1:data]:64",
                    "echo kept > data/f",
                )]),
            ],
            0.0,
        )
        .await
        .unwrap();
    let end = fw.wait_terminal("writer", T).await.unwrap();
    assert_eq!(
        end.state,
        TaskState::Finished,
        "{end:?}\n{}",
        cluster.logs()
    );
    let dir = cluster.agents[0].0.work_dir.join("volumes/roles/ops/v1");
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "kept\n");

    // Offered back to its role, whole; a second task reads what the first wrote.
    let offer = fw.offer_with("disk(ops)[v1:data]:64", T).await.unwrap();
    fw.launch(
        &offer,
        vec![task(
            "reader",
            &a,
            "cpus:0.5;mem:64;disk(ops)[v1:data]:64",
            "cat data/f",
        )],
    )
    .await
    .unwrap();
    let end = fw.wait_terminal("reader", T).await.unwrap();
    assert_eq!(end.state, TaskState::Finished, "{end:?}");
    let out = crate::read_sandbox(
        &cluster,
        0,
        fw.driver.framework_id().as_str(),
        "reader",
        "stdout",
    );
    assert_eq!(out, "kept\n");

    let offer = fw.offer_with("disk(ops)[v1:data]:64", T).await.unwrap();
    fw.driver
        .accept(
            vec![offer.id.clone()],
            vec![Operation::Destroy(volume)],
            0.0,
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + T;
    while dir.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!dir.exists(), "the volume's data was deleted");
    // Its disk is offered again as plain reserved disk (the rest sits in an earlier offer).
    let offer = fw.offer_with("disk(ops):64", T).await;
    let offer = offer.unwrap_or_else(|e| panic!("{e}: {:?}\n{}", fw.offers, cluster.logs()));
    assert!(offer.resources.volumes().next().is_none(), "{offer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_machine_sends_inverse_offers_and_records_the_answer() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let addr = cluster.master.addr();
    let mut fw = TestFramework::subscribe(&addr, "maint").await.unwrap();
    let offer = fw.offer_with("cpus:1;mem:128", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![task("kept", &a, "cpus:1;mem:128", "sleep 600")],
    )
    .await
    .unwrap();
    fw.wait_for("kept", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let hostname = offer.hostname.clone();
    let (code, body) = http_send(
        &addr,
        "POST",
        "/maintenance/schedule",
        &json!({"windows": [{
            "machine_ids": [{"hostname": hostname}],
            "unavailability": {"start": {"nanoseconds": 4_000_000_000_000_000_000i64},
                               "duration": {"nanoseconds": 3_600_000_000_000i64}}
        }]}),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let deadline = std::time::Instant::now() + T;
    while fw.inverse_offers.is_empty() && std::time::Instant::now() < deadline {
        let _ = fw.step(Duration::from_millis(500)).await;
    }
    let inverse = fw.inverse_offers.first().cloned().unwrap_or_else(|| {
        panic!(
            "no inverse offer: {}\n{}",
            strata_tests::http_get(&addr, "/maintenance/status").unwrap(),
            cluster.logs()
        )
    });
    assert_eq!(inverse.agent_id, a);
    assert_eq!(inverse.unavailability, (4e9, Some(3600.0)));
    let status = strata_tests::http_get(&addr, "/maintenance/status").unwrap();
    assert_eq!(
        status["draining_machines"][0]["statuses"][0]["status"], "UNKNOWN",
        "{status}"
    );
    fw.driver
        .accept_inverse_offers(vec![inverse.id.clone()], 3600.0)
        .await
        .unwrap();
    let status = strata_tests::http_get(&addr, "/maintenance/status").unwrap();
    let answer = &status["draining_machines"][0]["statuses"][0];
    assert_eq!(answer["status"], "ACCEPT", "{status}");
    assert_eq!(
        answer["framework_id"]["value"],
        fw.driver.framework_id().as_str()
    );
    // The task keeps running: an inverse offer asks, it does not kill.
    assert_eq!(
        fw.latest[&strata_schema::TaskId::new("kept").unwrap()].state,
        TaskState::Running
    );
    // Out of the schedule: nothing outstanding, the answer forgotten.
    let (code, body) = http_send(
        &addr,
        "POST",
        "/maintenance/schedule",
        &json!({"windows": []}),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let status = strata_tests::http_get(&addr, "/maintenance/status").unwrap();
    assert_eq!(status["draining_machines"], json!([]), "{status}");
}
