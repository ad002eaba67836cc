//! Mesos' operator endpoints end to end: the master's v0 endpoints and `/metrics/snapshot`, its
//! v1 operator API (`POST /api/v1`) with the SUBSCRIBE event stream, and the agent's `/api/v1`,
//! `/metrics/snapshot` and `/files/browse`, against a cluster running a task.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_schema::TaskState;
use strata_tests::framework::{task, TestFramework};
use strata_tests::{http_get, http_request, http_response, http_send, Cluster};

const T: Duration = Duration::from_secs(30);

/// `POST /api/v1` with a JSON call; the status and the JSON answer (Null when empty).
fn call(addr: &str, body: Value) -> (u16, Value) {
    let (code, text) = http_send(addr, "POST", "/api/v1", &body).unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (code, v)
}

/// Calls `kind` and checks the answer is `{"type": kind, "<kind>": {..}}`; returns the inner.
fn get(addr: &str, kind: &str) -> Value {
    let (code, v) = call(addr, json!({ "type": kind }));
    assert_eq!(code, 200, "{kind}: {v}");
    assert_eq!(v["type"], kind, "{v}");
    let inner = v[kind.to_lowercase()].clone();
    assert!(inner.is_object(), "{kind}: {v}");
    inner
}

/// An operator's SUBSCRIBE stream, read on a thread: the events parsed so far.
struct Subscription {
    events: Arc<Mutex<Vec<Value>>>,
    stream: std::net::TcpStream,
}

impl Subscription {
    fn open(addr: &str) -> Subscription {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let body = r#"{"type":"SUBSCRIBE"}"#;
        write!(
            s,
            "POST /api/v1 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let (mut reader, sink) = (s.try_clone().unwrap(), Arc::clone(&events));
        std::thread::spawn(move || {
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
                *sink.lock().unwrap() = parse_stream(&raw);
            }
        });
        Subscription { events, stream: s }
    }

    /// Waits for an event of `kind` satisfying `pred`.
    fn wait(&self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + T;
        loop {
            let events = self.events.lock().unwrap().clone();
            if let Some(e) = events.iter().find(|e| e["type"] == kind && pred(e)) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} event; got {:?}",
                events.iter().map(|e| e["type"].clone()).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// The RecordIO records of a chunked HTTP/1.1 response read so far.
fn parse_stream(raw: &[u8]) -> Vec<Value> {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Vec::new();
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    // De-chunk the complete chunks.
    let mut body = Vec::new();
    let mut rest = &raw[head_end + 4..];
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let Ok(len) = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
        else {
            break;
        };
        if rest.len() < eol + 2 + len + 2 {
            break;
        }
        body.extend_from_slice(&rest[eol + 2..eol + 2 + len]);
        rest = &rest[eol + 2 + len + 2..];
    }
    // Then the records: `<length>\n<json>`.
    let mut events = Vec::new();
    let mut rest = &body[..];
    while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
        let len: usize = String::from_utf8_lossy(&rest[..nl]).parse().unwrap();
        if rest.len() < nl + 1 + len {
            break;
        }
        events.push(serde_json::from_slice(&rest[nl + 1..nl + 1 + len]).unwrap());
        rest = &rest[nl + 1 + len..];
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_endpoints_v1_calls_and_events() {
    let mut cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let master = cluster.master.addr();
    let sub = Subscription::open(&master);
    let subscribed = sub.wait("SUBSCRIBED", |_| true);
    assert!(
        subscribed["subscribed"]["get_state"]["get_agents"]["agents"][0]["agent_info"]["id"]
            ["value"]
            .is_string(),
        "{subscribed}"
    );
    // An agent that comes back is (re-)added.
    cluster.agent_mut(0).kill();
    cluster.start_agent(0).unwrap();
    let added = sub.wait("AGENT_ADDED", |_| true);
    let agent_id = added["agent_added"]["agent"]["agent_info"]["id"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    cluster
        .wait_state(T, |s| s["slaves"][0]["active"] == true)
        .unwrap();

    let mut fw = TestFramework::subscribe(&master, "ops-e2e").await.unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    sub.wait("FRAMEWORK_ADDED", |e| {
        e["framework_added"]["framework"]["framework_info"]["id"]["value"] == fw_id.as_str()
    });
    let offer = fw.offer_with("cpus:1;mem:128", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![task("sleeper", &a, "cpus:0.5;mem:64", "sleep 300")],
    )
    .await
    .unwrap();
    fw.wait_for("sleeper", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let added = sub.wait("TASK_ADDED", |_| true);
    let t = &added["task_added"]["task"];
    assert_eq!(t["task_id"]["value"], "sleeper");
    assert_eq!(t["framework_id"]["value"], fw_id.as_str());
    assert_eq!(t["agent_id"]["value"], agent_id.as_str());
    assert_eq!(t["resources"][0]["type"], "SCALAR", "{t}");
    let updated = sub.wait("TASK_UPDATED", |e| {
        e["task_updated"]["state"] == "TASK_RUNNING"
    });
    assert_eq!(
        updated["task_updated"]["status"]["task_id"]["value"],
        "sleeper"
    );
    assert_eq!(
        updated["task_updated"]["framework_id"]["value"],
        fw_id.as_str()
    );

    // ---- v0 ----
    let summary = http_get(&master, "/master/state-summary").unwrap();
    assert_eq!(summary["slaves"][0]["id"], agent_id.as_str(), "{summary}");
    assert_eq!(summary["slaves"][0]["TASK_RUNNING"], 1, "{summary}");
    assert_eq!(summary["frameworks"][0]["id"], fw_id.as_str());
    assert_eq!(summary["frameworks"][0]["TASK_RUNNING"], 1);
    assert_eq!(summary["frameworks"][0]["slave_ids"][0], agent_id.as_str());
    let frameworks = http_get(&master, "/master/frameworks").unwrap();
    assert_eq!(frameworks["frameworks"][0]["id"], fw_id.as_str());
    assert_eq!(frameworks["frameworks"][0]["tasks"][0]["id"], "sleeper");
    assert!(frameworks["completed_frameworks"].is_array());
    let slaves = http_get(&master, "/master/slaves").unwrap();
    assert_eq!(slaves["slaves"][0]["id"], agent_id.as_str());
    assert_eq!(slaves["slaves"][0]["resources"]["cpus"], 2.0);
    let tasks = http_get(&master, "/master/tasks").unwrap();
    assert_eq!(tasks["tasks"][0]["id"], "sleeper", "{tasks}");
    assert_eq!(tasks["tasks"][0]["state"], "TASK_RUNNING");
    assert_eq!(tasks["tasks"][0]["slave_id"], agent_id.as_str());
    let none = http_get(&master, "/master/tasks?task_id=nope").unwrap();
    assert_eq!(none["tasks"], json!([]));
    let paged = http_get(&master, "/master/tasks?offset=1&limit=5&order=asc").unwrap();
    assert_eq!(paged["tasks"], json!([]));
    let (code, body) = http_request(&master, "GET", "/master/tasks?limit=x").unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("limit"), "{body}");
    let m = http_get(&master, "/metrics/snapshot").unwrap();
    assert_eq!(m["master/elected"], 1.0, "{m}");
    assert_eq!(m["master/tasks_running"], 1.0, "{m}");
    assert_eq!(m["master/cpus_total"], 2.0);
    assert_eq!(m["master/cpus_used"], 0.5);
    assert_eq!(m["master/mem_total"], 1024.0);
    assert_eq!(m["master/slaves_active"], 1.0);
    assert_eq!(m["master/frameworks_active"], 1.0);
    assert!(m["master/uptime_secs"].as_f64().unwrap() > 0.0);
    let flags = http_get(&master, "/master/flags").unwrap();
    assert_eq!(flags["flags"]["ip"], "127.0.0.1", "{flags}");
    assert!(flags["flags"]["work_dir"].is_string());
    let roles = http_get(&master, "/master/roles").unwrap();
    assert!(roles["roles"].is_array());
    let (code, headers, _) = http_response(&master, "GET", "/master/redirect").unwrap();
    assert_eq!(code, 307);
    let location = headers
        .iter()
        .find(|(k, _)| k == "location")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(location, format!("http://{master}"));

    // ---- v1 reads ----
    assert_eq!(get(&master, "GET_HEALTH")["healthy"], true);
    assert!(get(&master, "GET_VERSION")["version_info"]["version"].is_string());
    let flags = get(&master, "GET_FLAGS");
    assert!(flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "ip" && f["value"] == "127.0.0.1"));
    let metrics = get(&master, "GET_METRICS");
    assert!(metrics["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "master/tasks_running" && m["value"] == 1.0));
    let state = get(&master, "GET_STATE");
    assert_eq!(
        state["get_tasks"]["tasks"][0]["task_id"]["value"],
        "sleeper"
    );
    assert_eq!(
        state["get_frameworks"]["frameworks"][0]["framework_info"]["id"]["value"],
        fw_id.as_str()
    );
    let agents = get(&master, "GET_AGENTS");
    let agent = &agents["agents"][0];
    assert_eq!(agent["agent_info"]["id"]["value"], agent_id.as_str());
    let hostname = agent["agent_info"]["hostname"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(agent["active"], true);
    assert!(agent["registered_time"]["nanoseconds"].as_i64().unwrap() > 0);
    assert!(agent["total_resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "cpus" && r["scalar"]["value"] == 2.0));
    let frameworks = get(&master, "GET_FRAMEWORKS");
    let f = &frameworks["frameworks"][0];
    assert_eq!(f["framework_info"]["name"], "ops-e2e");
    assert_eq!(f["active"], true);
    assert_eq!(f["connected"], true);
    let tasks = get(&master, "GET_TASKS");
    let t = &tasks["tasks"][0];
    assert_eq!(t["state"], "TASK_RUNNING");
    assert_eq!(t["agent_id"]["value"], agent_id.as_str());
    assert!(tasks["completed_tasks"].is_array());
    assert!(get(&master, "GET_EXECUTORS")["executors"].is_array());
    assert!(get(&master, "GET_ROLES")["roles"].is_array());
    let m = get(&master, "GET_MASTER");
    assert_eq!(m["master_info"]["port"], cluster.master.port);
    assert_eq!(m["master_info"]["address"]["ip"], "127.0.0.1");
    assert!(get(&master, "GET_QUOTA")["status"].is_object());

    // ---- v1 changes ----
    let (code, v) = call(
        &master,
        json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "ops", "weight": 3.0}]}}),
    );
    assert_eq!(code, 200, "{v}");
    let weights = get(&master, "GET_WEIGHTS");
    assert_eq!(
        weights["weight_infos"],
        json!([{"role": "ops", "weight": 3.0}])
    );
    let (code, v) = call(
        &master,
        json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{"role": "ops", "guarantees": {"cpus": {"value": 0.5}}, "limits": {"cpus": {"value": 1}}}]}}),
    );
    assert_eq!(code, 200, "{v}");
    let quota = get(&master, "GET_QUOTA");
    assert_eq!(quota["status"]["configs"][0]["role"], "ops", "{quota}");
    let reserve = json!({"agent_id": {"value": agent_id}, "resources": [
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}, "reservations": [{"type": "DYNAMIC", "role": "ops"}]}
    ]});
    let (code, v) = call(
        &master,
        json!({"type": "RESERVE_RESOURCES", "reserve_resources": reserve}),
    );
    assert_eq!(code, 202, "{v}");
    cluster
        .wait_state(T, |s| {
            s["slaves"][0]["reserved_resources"]["ops"]["mem"] == 32.0
        })
        .unwrap();
    let (code, v) = call(
        &master,
        json!({"type": "UNRESERVE_RESOURCES", "unreserve_resources": reserve}),
    );
    assert_eq!(code, 202, "{v}");
    cluster
        .wait_state(T, |s| s["slaves"][0]["reserved_resources"] == json!({}))
        .unwrap();

    // ---- errors ----
    let (code, v) = call(&master, json!({"type": "NOT_A_CALL"}));
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("NOT_A_CALL"), "{v}");
    let (code, v) = call(&master, json!({"no": "type"}));
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("type"), "{v}");
    let (code, body) = http_request(&master, "GET", "/api/v1").unwrap();
    assert_eq!(code, 405, "{body}");
    // No Content-Type: not JSON.
    let (code, body) =
        strata_tests::images::http_request_body(&master, "POST", "/api/v1", "x").unwrap();
    assert_eq!(code, 400, "{body}");
    let (code, body) = http_request(&master, "POST", "/api/v1").unwrap();
    assert_eq!(code, 415, "{body}");
    let (code, v) = call(
        &master,
        json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": "no-such-framework"}}}),
    );
    assert_eq!(code, 404, "{v}");
    let (code, v) = call(
        &master,
        json!({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": "no-such-agent"}}}),
    );
    assert_eq!(code, 404, "{v}");
    let (code, v) = call(
        &master,
        json!({"type": "RESERVE_RESOURCES", "reserve_resources": {"resources": []}}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("agent_id"), "{v}");
    let volume = json!([{"name": "disk", "type": "SCALAR", "scalar": {"value": 8},
        "reservations": [{"type": "DYNAMIC", "role": "ops"}],
        "disk": {"persistence": {"id": "v1"}, "volume": {"container_path": "data", "mode": "RW"}}}]);
    let (code, v) = call(
        &master,
        json!({"type": "CREATE_VOLUMES", "create_volumes": {"agent_id": {"value": "no-such-agent"}, "volumes": volume}}),
    );
    assert_eq!(code, 404, "{v}");
    let (code, v) = call(
        &master,
        json!({"type": "DESTROY_VOLUMES", "destroy_volumes": {"agent_id": {"value": agent_id}}}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("volumes"), "{v}");

    // ---- TEARDOWN by the operator ----
    let (code, v) = call(
        &master,
        json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": fw_id}}}),
    );
    assert_eq!(code, 200, "{v}");
    sub.wait("FRAMEWORK_REMOVED", |e| {
        e["framework_removed"]["framework_info"]["id"]["value"] == fw_id.as_str()
    });
    let state = cluster
        .wait_state(T, |s| {
            s["frameworks"] == json!([]) && s["slaves"][0]["used_resources"]["cpus"] == 0.0
        })
        .unwrap();
    assert_eq!(state["completed_frameworks"][0]["id"], fw_id.as_str());
    // Its task is gone from the agent too.
    let deadline = Instant::now() + T;
    while !cluster.container_pids(0).is_empty() {
        assert!(Instant::now() < deadline, "the task's container still runs");
        std::thread::sleep(Duration::from_millis(100));
    }

    // ---- maintenance ----
    let machine = json!({"hostname": hostname, "ip": "127.0.0.1"});
    let schedule = json!({"windows": [{"machine_ids": [machine],
        "unavailability": {"start": {"nanoseconds": 1_000_000_000u64}}}]});
    let (code, v) = call(
        &master,
        json!({"type": "UPDATE_MAINTENANCE_SCHEDULE", "update_maintenance_schedule": {"schedule": schedule}}),
    );
    assert_eq!(code, 200, "{v}");
    let got = get(&master, "GET_MAINTENANCE_SCHEDULE");
    assert_eq!(
        got["schedule"]["windows"][0]["machine_ids"][0]["hostname"],
        hostname.as_str(),
        "{got}"
    );
    let (code, v) = call(
        &master,
        json!({"type": "START_MAINTENANCE", "start_maintenance": {"machines": [machine]}}),
    );
    assert_eq!(code, 200, "{v}");
    let status = get(&master, "GET_MAINTENANCE_STATUS");
    assert_eq!(
        status["status"]["down_machines"][0]["hostname"],
        hostname.as_str(),
        "{status}"
    );
    let (code, v) = call(
        &master,
        json!({"type": "STOP_MAINTENANCE", "stop_maintenance": {"machines": [machine]}}),
    );
    assert_eq!(code, 200, "{v}");
    let status = get(&master, "GET_MAINTENANCE_STATUS");
    assert_eq!(status["status"]["down_machines"], json!([]), "{status}");
    let (code, v) = call(
        &master,
        json!({"type": "START_MAINTENANCE", "start_maintenance": {"machines": "h"}}),
    );
    assert_eq!(code, 400, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_operator_api_metrics_and_browse() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let agent = cluster.agent(0).addr();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "agent-ops")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1;mem:128", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![task(
            "writer",
            &a,
            "cpus:0.5;mem:64",
            "echo hello-from-task; sleep 300",
        )],
    )
    .await
    .unwrap();
    fw.wait_for("writer", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let fw_id = fw.driver.framework_id().to_string();

    let m = http_get(&agent, "/metrics/snapshot").unwrap();
    assert_eq!(m["slave/registered"], 1.0, "{m}");
    assert_eq!(m["slave/tasks_running"], 1.0, "{m}");
    assert_eq!(m["slave/cpus_total"], 2.0);
    assert_eq!(m["slave/cpus_used"], 0.5);
    assert_eq!(m["slave/mem_total"], 1024.0);

    assert_eq!(get(&agent, "GET_HEALTH")["healthy"], true);
    assert!(get(&agent, "GET_VERSION")["version_info"]["version"].is_string());
    assert!(get(&agent, "GET_FLAGS")["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "ip" && f["value"] == "127.0.0.1"));
    assert!(get(&agent, "GET_METRICS")["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "slave/tasks_running" && m["value"] == 1.0));
    let tasks = get(&agent, "GET_TASKS");
    let t = &tasks["launched_tasks"][0];
    assert_eq!(t["task_id"]["value"], "writer", "{tasks}");
    assert_eq!(t["framework_id"]["value"], fw_id.as_str());
    assert_eq!(t["state"], "TASK_RUNNING");
    let state = get(&agent, "GET_STATE");
    assert_eq!(
        state["get_frameworks"]["frameworks"][0]["framework_info"]["id"]["value"],
        fw_id.as_str()
    );
    assert_eq!(
        state["get_executors"]["executors"][0]["executor_info"]["executor_id"]["value"],
        "writer"
    );
    assert_eq!(
        get(&agent, "GET_FRAMEWORKS")["frameworks"][0]["framework_info"]["name"],
        "agent-ops"
    );
    assert!(get(&agent, "GET_EXECUTORS")["executors"].is_array());
    let containers = get(&agent, "GET_CONTAINERS");
    assert_eq!(
        containers["containers"][0]["executor_id"]["value"], "writer",
        "{containers}"
    );

    // The sandbox: browsed, listed and read.
    let stdout = crate::sandbox_file(&cluster, 0, &fw_id, "writer", "stdout").unwrap();
    let sandbox = stdout.parent().unwrap().display().to_string();
    let deadline = Instant::now() + T;
    while std::fs::read_to_string(&stdout).unwrap_or_default() != "hello-from-task\n" {
        assert!(Instant::now() < deadline, "the task wrote nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let listing = http_get(&agent, &format!("/files/browse?path={sandbox}")).unwrap();
    let entry = listing
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == stdout.display().to_string())
        .unwrap_or_else(|| panic!("no stdout in {listing}"))
        .clone();
    assert_eq!(entry["size"], 16, "{entry}");
    assert_eq!(entry["nlink"], 1);
    assert!(
        entry["mode"].as_str().unwrap().starts_with("-rw"),
        "{entry}"
    );
    assert!(entry["mtime"].as_i64().unwrap() > 0);
    assert!(entry["uid"].is_string() && entry["gid"].is_string());
    let (code, v) = call(
        &agent,
        json!({"type": "LIST_FILES", "list_files": {"path": sandbox}}),
    );
    assert_eq!(code, 200, "{v}");
    assert!(v["list_files"]["file_infos"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == stdout.display().to_string() && f["size"] == 16));
    let (code, v) = call(
        &agent,
        json!({"type": "READ_FILE", "read_file": {"path": stdout.display().to_string(), "offset": 0, "length": 5}}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["read_file"]["size"], 16);
    assert_eq!(
        v["read_file"]["data"], "aGVsbG8=",
        "base64 of \"hello\": {v}"
    );

    // Refused: out of the sandboxes, by `..` or by an absolute path; a missing path.
    let up = format!("{sandbox}{}", "/..".repeat(20));
    let (code, body) = http_request(&agent, "GET", &format!("/files/browse?path={up}")).unwrap();
    assert_eq!(code, 403, "{body}");
    let (code, body) = http_request(&agent, "GET", "/files/browse?path=/etc").unwrap();
    assert_eq!(code, 403, "{body}");
    let (code, body) = http_request(&agent, "GET", "/files/browse?path=/no/such/dir").unwrap();
    assert_eq!(code, 404, "{body}");
    let (code, body) = http_request(&agent, "GET", "/files/browse").unwrap();
    assert_eq!(code, 400, "{body}");
    let (code, v) = call(
        &agent,
        json!({"type": "LIST_FILES", "list_files": {"path": "/etc"}}),
    );
    assert_eq!(code, 403, "{v}");
    let (code, v) = call(
        &agent,
        json!({"type": "READ_FILE", "read_file": {"path": "/etc/passwd"}}),
    );
    assert_eq!(code, 403, "{v}");
    let (code, v) = call(&agent, json!({"type": "READ_FILE", "read_file": {}}));
    assert_eq!(code, 400, "{v}");
}

/// pymesos 0.3.15's operator clients (`MesosOperatorMasterDriver`, `MesosOperatorAgentDriver`):
/// GET_* calls, UPDATE_WEIGHTS, the SUBSCRIBE stream seeing the operator's TEARDOWN, and the
/// agent's GET_STATE, GET_CONTAINERS, LIST_FILES and READ_FILE (`tests/python/operator.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymesos_operator_clients() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "py-ops")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1;mem:128", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![task("py", &a, "cpus:0.5;mem:64", "echo hello; sleep 300")],
    )
    .await
    .unwrap();
    fw.wait_for("py", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    let stdout = crate::sandbox_file(&cluster, 0, &fw_id, "py", "stdout").unwrap();
    let deadline = Instant::now() + T;
    while std::fs::read_to_string(&stdout).unwrap_or_default() != "hello\n" {
        assert!(Instant::now() < deadline, "the task wrote nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut cmd = strata_tests::python::script("operator.py").unwrap();
    cmd.args([
        cluster.master.addr(),
        cluster.agent(0).addr(),
        fw_id.clone(),
        "py".to_string(),
        stdout.display().to_string(),
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "operator.py failed ({}):\n{stdout}\n{stderr}\n{}",
        out.status,
        cluster.logs()
    );
    // The operator's TEARDOWN removed the framework.
    cluster
        .wait_state(T, |s| s["completed_frameworks"][0]["id"] == fw_id.as_str())
        .unwrap();
}

/// With a standby: `/metrics/snapshot` says who is elected, `/master/redirect` leads to the
/// leader from either master, and a standby redirects the operator API to the leader.
#[test]
fn standby_metrics_and_redirects() {
    let zk = strata_tests::zookeeper::ZooKeeper::start().unwrap();
    let url = zk.url(&format!("/strata-ops-{}", std::process::id()));
    let cluster = Cluster::start_ha(&url, 2, &[], &[]).unwrap();
    let leader = cluster.master.addr();
    let standby = cluster.standbys[0].addr();
    let m = http_get(&leader, "/metrics/snapshot").unwrap();
    assert_eq!(m["master/elected"], 1.0, "{m}");
    let m = http_get(&standby, "/metrics/snapshot").unwrap();
    assert_eq!(m["master/elected"], 0.0, "{m}");
    assert!(m["master/uptime_secs"].as_f64().unwrap() > 0.0);
    // The leader is known to the standby once it saw the election.
    let deadline = Instant::now() + T;
    loop {
        let (code, headers, body) = http_response(&standby, "GET", "/master/redirect").unwrap();
        if code == 307 {
            let location = headers.iter().find(|(k, _)| k == "location").unwrap();
            assert_eq!(location.1, format!("http://{leader}"));
            break;
        }
        assert!(Instant::now() < deadline, "{code}: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, headers, _) = http_response(&leader, "GET", "/master/redirect").unwrap();
    assert_eq!(code, 307);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "location" && *v == format!("http://{leader}")));
    let (code, body) =
        http_send(&standby, "POST", "/api/v1", &json!({"type": "GET_HEALTH"})).unwrap();
    assert_eq!(code, 307, "{body}");
    assert!(body.contains(&leader), "{body}");
}
