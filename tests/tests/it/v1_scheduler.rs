//! Mesos' v1 scheduler HTTP API (`POST /api/v1/scheduler`) end to end: a hand-written client
//! ([`strata_tests::recordio`]) checks the calls, the RecordIO event stream and its JSON against
//! Mesos' field names; pymesos (`tests/python/scheduler.py`) runs unmodified against it.

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use strata_tests::recordio::{self, Subscription, JSON};
use strata_tests::Cluster;

const T: Duration = Duration::from_secs(30);

fn framework_info(name: &str, failover_timeout: f64) -> Value {
    json!({
        "user": "root",
        "name": name,
        "roles": ["*"],
        "failover_timeout": failover_timeout,
        "capabilities": [{"type": "MULTI_ROLE"}],
    })
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every field of Mesos' v1 `TaskStatus`.
const TASK_STATUS_FIELDS: [&str; 16] = [
    "task_id",
    "state",
    "message",
    "source",
    "reason",
    "data",
    "agent_id",
    "executor_id",
    "timestamp",
    "uuid",
    "healthy",
    "labels",
    "container_status",
    "unreachable_time",
    "check_status",
    "limitation",
];

/// Reads events, acknowledging every update that carries a uuid, and keeps each task's states.
struct Updates {
    states: HashMap<String, Vec<String>>,
    statuses: Vec<Value>,
    /// Offers read but not taken yet (by [`offer_where`]).
    offers: std::collections::VecDeque<Value>,
}

impl Updates {
    fn new() -> Self {
        Self {
            states: HashMap::new(),
            statuses: Vec::new(),
            offers: Default::default(),
        }
    }

    /// Handles one event if it is an UPDATE.
    fn handle(&mut self, sub: &Subscription, event: &Value) {
        if event["type"] == "OFFERS" {
            for offer in event["offers"]["offers"].as_array().unwrap() {
                self.offers.push_back(offer.clone());
            }
        }
        if event["type"] != "UPDATE" {
            return;
        }
        let status = &event["update"]["status"];
        let fields = keys(status);
        assert!(
            fields.is_subset(&set(&TASK_STATUS_FIELDS)),
            "UPDATE status has fields Mesos' TaskStatus has not: {status}"
        );
        assert!(
            set(&["task_id", "state", "source", "timestamp"]).is_subset(&fields),
            "{status}"
        );
        let task = status["task_id"]["value"].as_str().unwrap().to_string();
        self.states
            .entry(task.clone())
            .or_default()
            .push(status["state"].as_str().unwrap().to_string());
        self.statuses.push(status.clone());
        if let Some(uuid) = status["uuid"].as_str() {
            sub.call_ok(json!({
                "type": "ACKNOWLEDGE",
                "acknowledge": {
                    "agent_id": status["agent_id"],
                    "task_id": {"value": task},
                    "uuid": uuid,
                },
            }))
            .unwrap();
        }
    }

    /// Waits until `task` reached `state`; returns that status.
    fn wait(&mut self, sub: &mut Subscription, task: &str, state: &str) -> Value {
        let deadline = Instant::now() + T;
        loop {
            if let Some(s) = self
                .statuses
                .iter()
                .find(|s| s["task_id"]["value"] == task && s["state"] == state)
            {
                return s.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{task} did not reach {state}: {:?}",
                self.states
            );
            if let Some(event) = sub.next_event(left).unwrap() {
                self.handle(sub, &event);
            }
        }
    }

    /// Reads events for `wait`, handling updates; returns the OFFERS events seen.
    fn offers_within(&mut self, sub: &mut Subscription, wait: Duration) -> Vec<Value> {
        let deadline = Instant::now() + wait;
        let mut offers = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return offers;
            }
            if let Some(event) = sub.next_event(left).unwrap() {
                self.handle(sub, &event);
                if event["type"] == "OFFERS" {
                    offers.push(event);
                }
            }
        }
    }

    /// The next OFFERS event's first offer (offers read before are forgotten).
    fn next_offer(&mut self, sub: &mut Subscription) -> Value {
        self.offers.clear();
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no offer within {T:?}");
            if let Some(event) = sub.next_event(left).unwrap() {
                self.handle(sub, &event);
                if event["type"] == "OFFERS" {
                    return event["offers"]["offers"][0].clone();
                }
            }
        }
    }
}

fn command_task(id: &str, agent_id: &Value, command: &str) -> Value {
    json!({
        "name": id,
        "task_id": {"value": id},
        "agent_id": agent_id,
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
        ],
        "command": {"shell": true, "value": command},
    })
}

fn framework_state(cluster: &Cluster, id: &str) -> Option<Value> {
    let state = cluster.master_state().unwrap();
    state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .cloned()
}

#[test]
fn v1_subscribe_launch_reconcile_kill_filters_update_and_teardown() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let addr = cluster.master.addr();
    let mut sub = Subscription::open(&addr, framework_info("v1-e2e", 60.0), None)
        .unwrap()
        .unwrap();
    assert_eq!(
        sub.headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .unwrap()
            .1,
        "application/json"
    );
    assert_eq!(keys(&sub.subscribed), set(&["type", "subscribed"]));
    let subscribed = &sub.subscribed["subscribed"];
    assert_eq!(
        keys(subscribed),
        set(&["framework_id", "heartbeat_interval_seconds", "master_info"])
    );
    assert!(subscribed["heartbeat_interval_seconds"].as_f64().unwrap() > 0.0);
    let master_info = &subscribed["master_info"];
    assert_eq!(master_info["port"], cluster.master.port);
    assert_eq!(master_info["address"]["ip"], "127.0.0.1");
    assert_eq!(master_info["ip"], u32::from_le_bytes([127, 0, 0, 1]));
    let fw_id = sub.framework_id.clone();

    let mut updates = Updates::new();
    let offers = sub.next_of("OFFERS", T).unwrap();
    assert_eq!(keys(&offers), set(&["type", "offers"]));
    let offer = offers["offers"]["offers"][0].clone();
    assert_eq!(
        keys(&offer),
        set(&[
            "id",
            "framework_id",
            "agent_id",
            "hostname",
            "resources",
            "attributes",
            "allocation_info"
        ]),
        "{offer}"
    );
    assert_eq!(offer["framework_id"]["value"], fw_id.as_str());
    assert_eq!(offer["allocation_info"]["role"], "*");
    let cpus = offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "cpus")
        .unwrap();
    assert_eq!(cpus["type"], "SCALAR");
    assert_eq!(cpus["scalar"]["value"], 2.0);
    let agent_id = offer["agent_id"].clone();

    // ACCEPT with LAUNCH: one task that ends, one that runs until killed.
    sub.call_ok(json!({
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [
                command_task("quick", &agent_id, "true"),
                command_task("long", &agent_id, "sleep 60"),
            ]}}],
            "filters": {"refuse_seconds": 0},
        },
    }))
    .unwrap();
    let finished = updates.wait(&mut sub, "quick", "TASK_FINISHED");
    assert_eq!(
        updates.states["quick"],
        ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    );
    assert_eq!(finished["source"], "SOURCE_EXECUTOR");
    assert_eq!(finished["agent_id"], agent_id);
    assert_eq!(
        recordio_uuid_len(finished["uuid"].as_str().unwrap()),
        16,
        "{finished}"
    );
    updates.wait(&mut sub, "long", "TASK_RUNNING");
    let fw = framework_state(&cluster, &fw_id).unwrap();
    assert_eq!(fw["tasks"][0]["id"], "long", "{fw}");
    assert_eq!(fw["completed_tasks"][0]["state"], "TASK_FINISHED");

    // Explicit reconciliation of the finished task; implicit of everything (the running one).
    sub.call_ok(json!({"type": "RECONCILE", "reconcile": {"tasks": [
        {"task_id": {"value": "quick"}, "agent_id": agent_id},
    ]}}))
    .unwrap();
    let reconciled = sub
        .next_matching(T, |e| {
            e["type"] == "UPDATE"
                && e["update"]["status"]["task_id"]["value"] == "quick"
                && e["update"]["status"]["reason"] == "REASON_RECONCILIATION"
        })
        .unwrap()["update"]["status"]
        .clone();
    assert_eq!(reconciled["state"], "TASK_FINISHED", "{reconciled}");
    assert_eq!(
        reconciled["reason"], "REASON_RECONCILIATION",
        "{reconciled}"
    );
    assert!(reconciled.get("uuid").is_none(), "{reconciled}");
    sub.call_ok(json!({"type": "RECONCILE", "reconcile": {"tasks": []}}))
        .unwrap();
    let implicit = sub
        .next_matching(T, |e| {
            e["type"] == "UPDATE" && e["update"]["status"]["reason"] == "REASON_RECONCILIATION"
        })
        .unwrap();
    assert_eq!(implicit["update"]["status"]["task_id"]["value"], "long");
    assert_eq!(implicit["update"]["status"]["state"], "TASK_RUNNING");

    // KILL.
    sub.call_ok(
        json!({"type": "KILL", "kill": {"task_id": {"value": "long"}, "agent_id": agent_id}}),
    )
    .unwrap();
    updates.wait(&mut sub, "long", "TASK_KILLED");

    // DECLINE with a long filter: the agent is not offered again; REVIVE clears the filter.
    let offer = updates.next_offer(&mut sub);
    sub.call_ok(json!({"type": "DECLINE", "decline": {
        "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 3600},
    }}))
    .unwrap();
    let again = updates.offers_within(&mut sub, Duration::from_millis(2500));
    assert!(
        again.is_empty(),
        "offered again despite the filter: {again:?}"
    );
    sub.call_ok(json!({"type": "REVIVE", "revive": {"roles": ["*"]}}))
        .unwrap();
    let offer = updates.next_offer(&mut sub);

    // SUPPRESS: no offers, even with the last one declined without a filter; REVIVE again.
    sub.call_ok(json!({"type": "SUPPRESS"})).unwrap();
    sub.call_ok(json!({"type": "DECLINE", "decline": {
        "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0},
    }}))
    .unwrap();
    let suppressed = updates.offers_within(&mut sub, Duration::from_millis(2500));
    assert!(
        suppressed.is_empty(),
        "offered while suppressed: {suppressed:?}"
    );
    sub.call_ok(json!({"type": "REVIVE"})).unwrap();
    updates.next_offer(&mut sub);

    // UPDATE_FRAMEWORK: a new name and failover timeout; the user cannot change.
    let mut info = framework_info("v1-renamed", 30.0);
    info["id"] = json!({"value": fw_id});
    info["webui_url"] = json!("http://ui.example:8080");
    info["labels"] = json!({"labels": [{"key": "team", "value": "infra"}]});
    sub.call_ok(json!({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": info}}))
        .unwrap();
    let fw = framework_state(&cluster, &fw_id).unwrap();
    assert_eq!(fw["name"], "v1-renamed");
    assert_eq!(fw["failover_timeout"], 30.0);
    assert_eq!(fw["webui_url"], "http://ui.example:8080");
    assert_eq!(fw["labels"], json!([{"key": "team", "value": "infra"}]));
    let mut other_user = info.clone();
    other_user["user"] = json!("nobody");
    let refused = sub
        .call(
            json!({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": other_user}}),
        )
        .unwrap();
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.body.contains("framework_info.user"),
        "{}",
        refused.body
    );

    // TEARDOWN: the stream ends, the framework is completed, its calls are refused.
    sub.call_ok(json!({"type": "TEARDOWN"})).unwrap();
    sub.wait_end(T).unwrap();
    let state = cluster.master_state().unwrap();
    assert!(
        state["completed_frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == fw_id.as_str()),
        "{state}"
    );
    let after = sub.call(json!({"type": "REVIVE"})).unwrap();
    assert_eq!(after.status, 403, "{after:?}");
    // A torn-down framework cannot subscribe again.
    let mut info = framework_info("v1-renamed", 30.0);
    info["id"] = json!({"value": fw_id});
    let again = Subscription::open(&addr, info, Some(&fw_id)).unwrap();
    let refused = again.err().unwrap();
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("torn down"), "{}", refused.body);
}

fn recordio_uuid_len(text: &str) -> usize {
    strata_schema::v1::decode_bytes(text, "uuid").unwrap().len()
}

#[test]
fn v1_error_codes() {
    let cluster = Cluster::start_with(&[], &[]).unwrap();
    let addr = cluster.master.addr();
    let info = framework_info("v1-errors", 0.0);
    let subscribe = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}).to_string();

    let get = recordio::request(&addr, "GET", &JSON, "").unwrap();
    assert_eq!(get.status, 405, "{get:?}");
    let missing = recordio::post(&addr, &[("Accept", "application/json")], &subscribe).unwrap();
    assert_eq!(missing.status, 415, "{missing:?}");
    let protobuf = recordio::post(
        &addr,
        &[("Content-Type", "application/x-protobuf")],
        &subscribe,
    )
    .unwrap();
    assert_eq!(protobuf.status, 415);
    assert!(protobuf.body.contains("protobuf"), "{}", protobuf.body);
    let text = recordio::post(&addr, &[("Content-Type", "text/plain")], &subscribe).unwrap();
    assert_eq!(text.status, 415);
    let html = recordio::post(
        &addr,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "text/html"),
        ],
        &subscribe,
    )
    .unwrap();
    assert_eq!(html.status, 406, "{html:?}");
    let garbage = recordio::post(&addr, &JSON, "{not json").unwrap();
    assert_eq!(garbage.status, 400);
    assert!(garbage.body.contains("not JSON"), "{}", garbage.body);
    let no_user = recordio::post(
        &addr,
        &JSON,
        &json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}).to_string(),
    )
    .unwrap();
    assert_eq!(no_user.status, 400);
    assert!(
        no_user
            .body
            .contains("subscribe.framework_info.user: missing"),
        "{}",
        no_user.body
    );
    let bad_suppressed = recordio::post(
        &addr,
        &JSON,
        &json!({"type": "SUBSCRIBE", "subscribe": {
            "framework_info": framework_info("x", 0.0), "suppressed_roles": ["web"],
        }})
        .to_string(),
    )
    .unwrap();
    assert_eq!(bad_suppressed.status, 400);
    assert!(
        bad_suppressed
            .body
            .contains("subscribe.suppressed_roles[0]"),
        "{}",
        bad_suppressed.body
    );
    let unknown = recordio::post(&addr, &JSON, &json!({"type": "FLY"}).to_string()).unwrap();
    assert_eq!(unknown.status, 400);
    assert!(unknown.body.contains("framework_id"), "{}", unknown.body);

    // A framework that never subscribed here.
    let stranger = recordio::post(
        &addr,
        &[JSON[0], JSON[1], ("Mesos-Stream-Id", "x")],
        &json!({"type": "REVIVE", "framework_id": {"value": "nobody"}}).to_string(),
    )
    .unwrap();
    assert_eq!(stranger.status, 403, "{stranger:?}");

    let mut sub = Subscription::open(&addr, info, None).unwrap().unwrap();
    let call = json!({"type": "REVIVE", "framework_id": {"value": sub.framework_id}}).to_string();
    // An ACCEPT of an offer that does not exist is accepted (202), as Mesos does; its launch
    // comes back TASK_DROPPED. A DECLINE of it is a no-op.
    let task = command_task("ghost", &json!({"value": "no-agent"}), "true");
    sub.call_ok(json!({"type": "ACCEPT", "accept": {
        "offer_ids": [{"value": "no-such-offer"}],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
    }}))
    .unwrap();
    let dropped = sub.next_of("UPDATE", T).unwrap();
    let status = &dropped["update"]["status"];
    assert_eq!(status["task_id"]["value"], "ghost", "{dropped}");
    assert_eq!(status["state"], "TASK_DROPPED", "{dropped}");
    assert_eq!(status["reason"], "REASON_INVALID_OFFERS", "{dropped}");
    assert_eq!(status["source"], "SOURCE_MASTER", "{dropped}");
    sub.call_ok(json!({"type": "DECLINE", "decline": {"offer_ids": [{"value": "no-such-offer"}]}}))
        .unwrap();
    let no_stream = recordio::post(&addr, &JSON, &call).unwrap();
    assert_eq!(no_stream.status, 400);
    assert!(
        no_stream.body.contains("Mesos-Stream-Id"),
        "{}",
        no_stream.body
    );
    let wrong_stream = recordio::post(
        &addr,
        &[
            JSON[0],
            JSON[1],
            ("Mesos-Stream-Id", "00000000-0000-0000-0000-000000000000"),
        ],
        &call,
    )
    .unwrap();
    assert_eq!(wrong_stream.status, 400);
    let bad_field = sub
        .call(json!({"type": "DECLINE", "decline": {"offer_ids": [{"value": ""}]}}))
        .unwrap();
    assert_eq!(bad_field.status, 400);
    assert!(
        bad_field.body.contains("decline.offer_ids[0].value"),
        "{}",
        bad_field.body
    );
    let bad_op = sub
        .call(json!({"type": "ACCEPT", "accept": {"offer_ids": [{"value": "o"}], "operations": [{"type": "GROW_VOLUME"}]}}))
        .unwrap();
    assert_eq!(bad_op.status, 400);
    assert!(
        bad_op.body.contains("accept.operations[0].type"),
        "{}",
        bad_op.body
    );
    let html = recordio::post(
        &addr,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "text/html"),
            ("Mesos-Stream-Id", sub.stream_id.as_str()),
        ],
        &call,
    )
    .unwrap();
    assert_eq!(html.status, 406);
    assert_eq!(
        recordio::post(
            &addr,
            &[
                JSON[0],
                JSON[1],
                ("Mesos-Stream-Id", sub.stream_id.as_str())
            ],
            &call
        )
        .unwrap()
        .status,
        202
    );
}

#[test]
fn v1_failover_and_disconnect() {
    let cluster = Cluster::start("cpus:1;mem:256").unwrap();
    let addr = cluster.master.addr();
    let first = Subscription::open(&addr, framework_info("v1-failover", 3600.0), None)
        .unwrap()
        .unwrap();
    let fw_id = first.framework_id.clone();
    let old_stream = first.stream_id.clone();
    first.close();
    // The master sees the stream end: the framework is disconnected, not removed.
    let state = cluster
        .wait_state(T, |s| {
            s["frameworks"].as_array().is_some_and(|fs| {
                fs.iter()
                    .any(|f| f["id"] == fw_id.as_str() && f["active"] == false)
            })
        })
        .unwrap();
    assert!(state["completed_frameworks"].as_array().unwrap().is_empty());

    // Re-subscribe with the id (failover): same framework, a new stream.
    let mut info = framework_info("v1-failover", 3600.0);
    info["id"] = json!({"value": fw_id});
    let mut second = Subscription::open(&addr, info.clone(), Some(&fw_id))
        .unwrap()
        .unwrap();
    assert_eq!(second.framework_id, fw_id);
    assert_ne!(second.stream_id, old_stream);
    second.next_of("OFFERS", T).unwrap();
    let stale = recordio::post(
        &addr,
        &[JSON[0], JSON[1], ("Mesos-Stream-Id", old_stream.as_str())],
        &json!({"type": "REVIVE", "framework_id": {"value": fw_id}}).to_string(),
    )
    .unwrap();
    assert_eq!(stale.status, 400, "{stale:?}");
    second.call_ok(json!({"type": "REVIVE"})).unwrap();

    // A failover while the old stream is open: the old one hears ERROR and ends.
    let third = Subscription::open(&addr, info, Some(&fw_id))
        .unwrap()
        .unwrap();
    let error = second.next_of("ERROR", T).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed over"),
        "{error}"
    );
    second.wait_end(T).unwrap();
    third.call_ok(json!({"type": "REVIVE"})).unwrap();
    assert_eq!(
        framework_state(&cluster, &fw_id).unwrap()["active"],
        true,
        "the old stream's end does not disconnect the new one"
    );

    // With no failover timeout, closing the stream removes the framework.
    let quick = Subscription::open(&addr, framework_info("v1-gone", 0.0), None)
        .unwrap()
        .unwrap();
    let gone = quick.framework_id.clone();
    drop(quick);
    cluster
        .wait_state(T, |s| {
            s["completed_frameworks"]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|f| f["id"] == gone.as_str()))
        })
        .unwrap();
}

#[test]
fn v1_pymesos_scheduler_runs_tasks() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    run_pymesos(&cluster.master.addr(), 3, &cluster);
}

/// Runs `tests/python/scheduler.py` against `master` (an address or a `zk://` URL): it must
/// finish `tasks` tasks and exit 0.
pub fn run_pymesos(master: &str, tasks: usize, cluster: &Cluster) {
    let mut cmd = strata_tests::python::script("scheduler.py").unwrap();
    cmd.args([master, &tasks.to_string(), "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // The script gives up by itself after 60 s; past 120 s it is killed (by its pid).
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scheduler.py failed ({}):\n{stdout}\n{stderr}\n{}",
        out.status,
        cluster.logs()
    );
    assert!(
        stdout.contains(&format!("all {tasks} tasks finished")),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn v1_standby_redirects_and_pymesos_finds_the_leader_in_zookeeper() {
    let mut zk = strata_tests::zookeeper::ZooKeeper::start().unwrap();
    let url = zk.url(&format!("/strata-{}-v1sched", std::process::id()));
    let cluster = Cluster::start_ha(
        &url,
        2,
        &["cpus:2;mem:1024"],
        &["--zk-session-timeout", "2000ms"],
    )
    .unwrap();
    let standby = cluster.standbys[0].addr();
    let subscribe = json!({
        "type": "SUBSCRIBE",
        "subscribe": {"framework_info": framework_info("v1-ha", 0.0)},
    })
    .to_string();
    let redirected = recordio::post(&standby, &JSON, &subscribe).unwrap();
    assert_eq!(redirected.status, 307, "{redirected:?}");
    assert_eq!(
        redirected.header("location"),
        Some(&*format!(
            "http://{}/api/v1/scheduler",
            cluster.master.addr()
        ))
    );
    // A call other than SUBSCRIBE is redirected the same way.
    let call = json!({"type": "REVIVE", "framework_id": {"value": "x"}}).to_string();
    assert_eq!(recordio::post(&standby, &JSON, &call).unwrap().status, 307);
    // pymesos follows the redirect from the standby, and finds the leader through ZooKeeper
    // (the masters' `json.info_` znodes) from a zk:// URL.
    run_pymesos(&standby, 2, &cluster);
    run_pymesos(&url, 2, &cluster);

    // Without ZooKeeper nobody leads: the standby answers 503 once its session is gone.
    zk.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = recordio::post(&standby, &JSON, &subscribe).unwrap();
        if answer.status == 503 {
            assert!(answer.body.contains("no leading master"), "{answer:?}");
            break;
        }
        assert_eq!(answer.status, 307, "{answer:?}");
        assert!(
            Instant::now() < deadline,
            "the standby still redirects with ZooKeeper down\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn v1_rescind_roles_update_message_and_shutdown() {
    let cluster = Cluster::start_with(
        &["cpus:1;mem:256;cpus(ops):1"],
        &["--offer-timeout", "1secs"],
    )
    .unwrap();
    let addr = cluster.master.addr();
    let mut sub = Subscription::open(&addr, framework_info("v1-rescind", 0.0), None)
        .unwrap()
        .unwrap();
    let offer = sub.next_of("OFFERS", T).unwrap()["offers"]["offers"][0].clone();
    assert_eq!(offer["allocation_info"]["role"], "*");
    // The offer times out: RESCIND names it.
    let rescind = sub.next_of("RESCIND", T).unwrap();
    assert_eq!(keys(&rescind), set(&["type", "rescind"]));
    assert_eq!(keys(&rescind["rescind"]), set(&["offer_id"]));
    assert_eq!(rescind["rescind"]["offer_id"], offer["id"]);

    // UPDATE_FRAMEWORK into role ops: the allocator offers the ops reservation to it.
    let mut info = framework_info("v1-rescind", 0.0);
    info["roles"] = json!(["ops"]);
    sub.call_ok(json!({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": info}}))
        .unwrap();
    let ops = sub
        .next_matching(T, |e| {
            e["type"] == "OFFERS" && e["offers"]["offers"][0]["allocation_info"]["role"] == "ops"
        })
        .unwrap();
    let reserved = ops["offers"]["offers"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "cpus" && r["role"] == "ops")
        .unwrap_or_else(|| panic!("no cpus(ops) in {ops}"))
        .clone();
    assert_eq!(reserved["reservations"][0]["role"], "ops", "{reserved}");
    // From the agent's --resources: a static reservation.
    assert_eq!(reserved["reservations"][0]["type"], "STATIC", "{reserved}");
    assert_eq!(reserved["allocation_info"]["role"], "ops");
    let fw = framework_state(&cluster, &sub.framework_id).unwrap();
    assert_eq!(fw["roles"], json!(["ops"]));

    // MESSAGE and SHUTDOWN go to the agent (best effort, as Mesos); an unknown agent is a 400.
    let agent_id = ops["offers"]["offers"][0]["agent_id"].clone();
    sub.call_ok(json!({"type": "MESSAGE", "message": {
        "agent_id": agent_id, "executor_id": {"value": "none"}, "data": "aGVsbG8=",
    }}))
    .unwrap();
    sub.call_ok(json!({"type": "SHUTDOWN", "shutdown": {
        "agent_id": agent_id, "executor_id": {"value": "none"},
    }}))
    .unwrap();
    let unknown = sub
        .call(json!({"type": "MESSAGE", "message": {
            "agent_id": {"value": "no-such-agent"}, "executor_id": {"value": "e"}, "data": "",
        }}))
        .unwrap();
    assert_eq!(unknown.status, 400, "{unknown:?}");
    assert!(unknown.body.contains("no-such-agent"), "{}", unknown.body);
    let bad_data = sub
        .call(json!({"type": "MESSAGE", "message": {
            "agent_id": agent_id, "executor_id": {"value": "e"}, "data": "***",
        }}))
        .unwrap();
    assert_eq!(bad_data.status, 400);
    assert!(bad_data.body.contains("message.data"), "{}", bad_data.body);

    // A framework subscribing suppressed in `*` gets no offers until an UPDATE_FRAMEWORK
    // without suppressed_roles revives it (Mesos' semantics: the listed roles are suppressed).
    let info = framework_info("v1-suppressed", 0.0);
    let body = json!({"type": "SUBSCRIBE", "subscribe": {
        "framework_info": info, "suppressed_roles": ["*"],
    }});
    let mut quiet = Subscription::open_with(&addr, &JSON, &body.to_string())
        .unwrap()
        .unwrap();
    let mut updates = Updates::new();
    let got = updates.offers_within(&mut quiet, Duration::from_millis(2500));
    assert!(
        got.is_empty(),
        "offered while subscribed suppressed: {got:?}"
    );
    quiet
        .call_ok(json!({"type": "UPDATE_FRAMEWORK", "update_framework": {"framework_info": info}}))
        .unwrap();
    updates.next_offer(&mut quiet);
}

fn scalar(name: &str, value: f64, role: Option<&str>) -> Value {
    let mut r = json!({"name": name, "type": "SCALAR", "scalar": {"value": value}});
    if let Some(role) = role {
        r["reservations"] = json!([{"type": "DYNAMIC", "role": role}]);
    }
    r
}

/// The offer's items named `name` in `role`.
fn items<'a>(offer: &'a Value, name: &str, role: &str) -> Vec<&'a Value> {
    offer["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == name && r["role"] == role)
        .collect()
}

#[test]
fn v1_reserve_create_launch_destroy_unreserve() {
    let cluster = Cluster::start("cpus:2;mem:1024;disk:200").unwrap();
    let addr = cluster.master.addr();
    let mut info = framework_info("v1-volumes", 0.0);
    info["roles"] = json!(["ops"]);
    let mut sub = Subscription::open(&addr, info, None).unwrap().unwrap();
    let mut updates = Updates::new();
    let accept = |sub: &Subscription, offer: &Value, operations: Value| {
        sub.call_ok(json!({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]],
            "operations": operations,
            "filters": {"refuse_seconds": 0},
        }}))
        .unwrap();
    };
    let offer = updates.next_offer(&mut sub);
    assert_eq!(offer["allocation_info"]["role"], "ops");
    accept(
        &sub,
        &offer,
        json!([{"type": "RESERVE", "reserve": {"resources": [
            scalar("cpus", 1.0, Some("ops")),
            scalar("disk", 100.0, Some("ops")),
        ]}}]),
    );
    let offer = updates.next_offer(&mut sub);
    for name in ["cpus", "disk"] {
        let reserved = items(&offer, name, "ops");
        assert_eq!(
            reserved[0]["reservations"],
            json!([{"type": "DYNAMIC", "role": "ops"}]),
            "a RESERVE makes a dynamic reservation: {offer}"
        );
    }
    assert_eq!(
        items(&offer, "cpus", "ops")[0]["scalar"]["value"],
        1.0,
        "{offer}"
    );
    assert_eq!(
        items(&offer, "disk", "ops")[0]["scalar"]["value"],
        100.0,
        "{offer}"
    );

    // CREATE a volume and LAUNCH a task writing into it, in one ACCEPT.
    let mut volume = scalar("disk", 64.0, Some("ops"));
    volume["disk"] =
        json!({"persistence": {"id": "vol1"}, "volume": {"container_path": "data", "mode": "RW"}});
    let agent_id = offer["agent_id"].clone();
    let mut writer = command_task("writer", &agent_id, "echo kept > data/f");
    writer["resources"]
        .as_array_mut()
        .unwrap()
        .push(volume.clone());
    accept(
        &sub,
        &offer,
        json!([
            {"type": "CREATE", "create": {"volumes": [volume]}},
            {"type": "LAUNCH", "launch": {"task_infos": [writer]}},
        ]),
    );
    let end = updates.wait(&mut sub, "writer", "TASK_FINISHED");
    assert_eq!(end["state"], "TASK_FINISHED", "{end}\n{}", cluster.logs());
    let dir = cluster.agents[0].0.work_dir.join("volumes/roles/ops/vol1");
    assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "kept\n");

    // The volume is offered back, then DESTROYed: its data goes, the disk stays reserved.
    let offer = offer_where(&mut sub, &mut updates, |o| {
        items(o, "disk", "ops")
            .iter()
            .any(|r| r["disk"]["persistence"]["id"] == "vol1")
    });
    accept(
        &sub,
        &offer,
        json!([{"type": "DESTROY", "destroy": {"volumes": [volume]}}]),
    );
    let deadline = Instant::now() + T;
    while dir.exists() {
        assert!(
            Instant::now() < deadline,
            "{} is still there",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // UNRESERVE: everything is unreserved again.
    let offer = offer_where(&mut sub, &mut updates, |o| {
        items(o, "cpus", "ops")
            .first()
            .is_some_and(|r| r["scalar"]["value"] == 1.0)
            && items(o, "disk", "ops")
                .first()
                .is_some_and(|r| r["scalar"]["value"] == 100.0 && r.get("disk").is_none())
    });
    accept(
        &sub,
        &offer,
        json!([{"type": "UNRESERVE", "unreserve": {"resources": [
            scalar("cpus", 1.0, Some("ops")),
            scalar("disk", 100.0, Some("ops")),
        ]}}]),
    );
    let offer = offer_where(&mut sub, &mut updates, |o| {
        items(o, "cpus", "*")
            .first()
            .is_some_and(|r| r["scalar"]["value"] == 2.0)
    });
    assert!(items(&offer, "cpus", "ops").is_empty(), "{offer}");
    assert!(items(&offer, "disk", "ops").is_empty(), "{offer}");
    assert_eq!(
        items(&offer, "disk", "*")[0]["scalar"]["value"],
        200.0,
        "{offer}"
    );
}

/// The next offer `pred` accepts; the others are declined without a filter, so that the
/// agent's resources come back together.
fn offer_where(
    sub: &mut Subscription,
    updates: &mut Updates,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + T;
    loop {
        while let Some(offer) = updates.offers.pop_front() {
            if pred(&offer) {
                return offer;
            }
            sub.call_ok(json!({"type": "DECLINE", "decline": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0},
            }}))
            .unwrap();
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no such offer; seen {:?}", sub.seen);
        if let Some(event) = sub.next_event(left).unwrap() {
            updates.handle(sub, &event);
        }
    }
}
