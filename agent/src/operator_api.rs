//! Mesos' agent operator API, `POST /api/v1` with a JSON call (`{"type": "GET_STATE"}`,
//! answered `{"type": "GET_STATE", "get_state": {..}}`): GET_HEALTH, GET_VERSION, GET_FLAGS,
//! GET_METRICS, GET_STATE, GET_CONTAINERS, GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, LIST_FILES,
//! READ_FILE and PRUNE_IMAGES (the image store's). Also `/metrics/snapshot` with Mesos'
//! `slave/...` names. The answers are read from the agent's `/state` (computed on its actor) and
//! its containers' usage.

use crate::agent::Msg;
use crate::containerizer::Containerizer;
use crate::http::{confine, list_files, FileEntry, MAX_READ};
use crate::monitor;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use strata_schema::Resources;
use tokio::sync::{mpsc, oneshot};

#[derive(Clone)]
struct Api {
    actor: mpsc::UnboundedSender<Msg>,
    sandbox_root: PathBuf,
    containerizer: Containerizer,
    flags: Arc<Vec<(String, String)>>,
    started: Instant,
}

pub fn router<S>(
    actor: mpsc::UnboundedSender<Msg>,
    sandbox_root: PathBuf,
    containerizer: Containerizer,
    flags: Vec<(String, String)>,
) -> Router<S> {
    Router::new()
        .route("/api/v1", post(call))
        // pymesos' agent driver posts here.
        .route("/api/v1/operator", post(call))
        .route("/metrics/snapshot", get(snapshot))
        .with_state(Api {
            actor,
            sandbox_root,
            containerizer,
            flags: Arc::new(flags),
            started: Instant::now(),
        })
}

/// The agent's flags by their Mesos names, as GET_FLAGS shows them.
pub fn flags(config: &crate::config::AgentConfig) -> Vec<(String, String)> {
    let secs = |d: std::time::Duration| format!("{}secs", d.as_secs_f64());
    let mut flags = vec![
        ("master", config.master.clone()),
        ("ip", config.ip.to_string()),
        ("port", config.port.to_string()),
        ("work_dir", config.work_dir.display().to_string()),
        ("cgroups_root", config.cgroups_root.clone()),
        ("kill_grace_period", secs(config.kill_grace_period)),
        (
            "status_update_retry_interval",
            secs(config.status_update_retry_interval),
        ),
        (
            "registration_backoff_max",
            secs(config.registration_backoff_max),
        ),
        ("cgroups_enable_cfs", config.cgroups_enable_cfs.to_string()),
        ("container_pids_max", config.container_pids_max.to_string()),
        (
            "enforce_container_ports",
            config.enforce_container_ports.to_string(),
        ),
    ];
    if let Some(h) = &config.hostname {
        flags.push(("hostname", h.clone()));
    }
    if let Some(r) = &config.resources {
        flags.push(("resources", r.to_string()));
    }
    if let Some(a) = &config.attributes {
        flags.push(("attributes", a.to_string()));
    }
    for (name, path) in [
        ("http_credentials", &config.http_credentials),
        ("acls", &config.acls),
        ("jwt_secret_key", &config.jwt_secret_key),
    ] {
        if let Some(path) = path {
            flags.push((name, path.display().to_string()));
        }
    }
    for (name, on) in [
        (
            "authenticate_http_readonly",
            config.authenticate_http_readonly,
        ),
        (
            "authenticate_http_readwrite",
            config.authenticate_http_readwrite,
        ),
        (
            "authenticate_http_executors",
            config.authenticate_http_executors,
        ),
    ] {
        flags.push((name, on.to_string()));
    }
    let mut flags: Vec<(String, String)> =
        flags.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    flags.sort();
    flags
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

fn shutting_down() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the agent is shutting down",
    )
}

async fn agent_state(api: &Api) -> Result<Value, Response> {
    let (reply, answer) = oneshot::channel();
    if api.actor.send(Msg::GetState { reply }).is_err() {
        return Err(shutting_down());
    }
    answer.await.map_err(|_| shutting_down())
}

fn value(v: &Value) -> Value {
    json!({ "value": v.as_str().map_or_else(|| v.to_string(), str::to_string) })
}

/// `/state`'s resources (`{"cpus": 1, "ports": "[31000-31001]"}`) as Mesos' `Resource` list.
fn mesos_resources(v: &Value) -> Value {
    let text: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| match v.as_str() {
            Some(s) => format!("{k}:{s}"),
            None => format!("{k}:{v}"),
        })
        .collect();
    Resources::parse(&text.join(";")).map_or(json!([]), |r| r.to_mesos_json())
}

/// The agent's tasks from `/state`: (live, completed), in v1 JSON.
fn tasks(state: &Value) -> (Vec<Value>, Vec<Value>) {
    let (mut live, mut done) = (Vec::new(), Vec::new());
    for fw in state["frameworks"].as_array().into_iter().flatten() {
        for e in fw["executors"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(fw["completed_executors"].as_array().into_iter().flatten())
        {
            for (list, out) in [("tasks", &mut live), ("completed_tasks", &mut done)] {
                for t in e[list].as_array().into_iter().flatten() {
                    out.push(json!({
                        "name": t["name"],
                        "task_id": value(&t["id"]),
                        "framework_id": value(&t["framework_id"]),
                        "executor_id": value(&t["executor_id"]),
                        "agent_id": value(&t["slave_id"]),
                        "state": t["state"],
                        "resources": mesos_resources(&t["resources"]),
                    }));
                }
            }
        }
    }
    (live, done)
}

fn get_tasks(state: &Value) -> Value {
    let (live, done) = tasks(state);
    json!({
        "pending_tasks": [],
        "queued_tasks": [],
        "launched_tasks": live,
        "terminated_tasks": [],
        "completed_tasks": done,
    })
}

fn get_executors(state: &Value) -> Value {
    let executor = |fw: &Value, e: &Value| {
        json!({ "executor_info": {
            "executor_id": value(&e["id"]),
            "framework_id": value(&fw["id"]),
            "name": e["name"],
            "resources": mesos_resources(&e["resources"]),
        }})
    };
    let (mut live, mut done) = (Vec::new(), Vec::new());
    for fw in state["frameworks"].as_array().into_iter().flatten() {
        for e in fw["executors"].as_array().into_iter().flatten() {
            live.push(executor(fw, e));
        }
        for e in fw["completed_executors"].as_array().into_iter().flatten() {
            done.push(executor(fw, e));
        }
    }
    json!({ "executors": live, "completed_executors": done })
}

fn get_frameworks(state: &Value) -> Value {
    let (mut live, mut done) = (Vec::new(), Vec::new());
    for fw in state["frameworks"].as_array().into_iter().flatten() {
        let info = json!({ "framework_info": {
            "id": value(&fw["id"]),
            "name": fw["name"],
            "user": fw["user"],
        }});
        let running = fw["executors"].as_array().is_some_and(|e| !e.is_empty());
        if running {
            live.push(info);
        } else {
            done.push(info);
        }
    }
    json!({ "frameworks": live, "completed_frameworks": done })
}

/// `/metrics/snapshot`: Mesos' `slave/...` names, from `/state`.
fn metrics(state: &Value, uptime: f64) -> Value {
    let mut m = Map::new();
    let mut put = |name: &str, v: f64| {
        m.insert(name.to_string(), json!(v));
    };
    put("slave/uptime_secs", uptime);
    put(
        "slave/registered",
        if state["connected"] == true { 1.0 } else { 0.0 },
    );
    let (live, done) = tasks(state);
    for s in [
        "staging",
        "starting",
        "running",
        "killing",
        "finished",
        "failed",
        "killed",
        "lost",
        "gone",
        "dropped",
        "unreachable",
        "error",
    ] {
        let name = format!("TASK_{}", s.to_uppercase());
        let n = live
            .iter()
            .chain(done.iter())
            .filter(|t| t["state"] == name.as_str())
            .count();
        put(&format!("slave/tasks_{s}"), n as f64);
    }
    let executors = get_executors(state);
    let running = executors["executors"].as_array().map_or(0, Vec::len);
    put("slave/executors_running", running as f64);
    put(
        "slave/executors_terminated",
        executors["completed_executors"]
            .as_array()
            .map_or(0, Vec::len) as f64,
    );
    let frameworks = get_frameworks(state);
    put(
        "slave/frameworks_active",
        frameworks["frameworks"].as_array().map_or(0, Vec::len) as f64,
    );
    for name in ["cpus", "mem", "disk", "gpus"] {
        let total = state["resources"][name].as_f64().unwrap_or(0.0);
        let used = state["used_resources"][name].as_f64().unwrap_or(0.0);
        put(&format!("slave/{name}_total"), total);
        put(&format!("slave/{name}_used"), used);
        put(
            &format!("slave/{name}_percent"),
            if total > 0.0 { used / total } else { 0.0 },
        );
        put(&format!("slave/{name}_revocable_total"), 0.0);
        put(&format!("slave/{name}_revocable_used"), 0.0);
        put(&format!("slave/{name}_revocable_percent"), 0.0);
    }
    Value::Object(m)
}

async fn snapshot(State(api): State<Api>) -> Response {
    match agent_state(&api).await {
        Ok(state) => Json(metrics(&state, api.started.elapsed().as_secs_f64())).into_response(),
        Err(r) => r,
    }
}

fn answer(kind: &str, body: Value) -> Response {
    Json(json!({ "type": kind, kind.to_lowercase(): body })).into_response()
}

fn file_info(e: &FileEntry) -> Value {
    json!({
        "path": e.path,
        "nlink": e.nlink,
        "size": e.size,
        "mtime": { "nanoseconds": e.mtime.saturating_mul(1_000_000_000) },
        "mode": e.mode,
        "uid": e.uid,
        "gid": e.gid,
    })
}

async fn containers(api: &Api) -> Result<Value, Response> {
    let (reply, answer) = oneshot::channel();
    if api.actor.send(Msg::Usage { reply }).is_err() {
        return Err(shutting_down());
    }
    let targets = answer.await.map_err(|_| shutting_down())?;
    let containerizer = api.containerizer.clone();
    let usage = tokio::task::spawn_blocking(move || monitor::collect(&containerizer, targets))
        .await
        .map_err(|err| error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?;
    let list: Vec<Value> = usage
        .iter()
        .map(|u| {
            let ckpt = &u.target.ckpt;
            json!({
                "framework_id": { "value": ckpt.framework.id },
                "executor_id": { "value": ckpt.task.task_id },
                "executor_name": ckpt.task.name,
                "container_id": { "value": ckpt.container_id },
                "resource_statistics": u.statistics,
            })
        })
        .collect();
    Ok(json!({ "containers": list }))
}

async fn call(
    State(api): State<Api>,
    auth: Option<axum::Extension<crate::auth::SharedAgentAuth>>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Older clients sent PRUNE_IMAGES without a Content-Type: a JSON body is taken as such.
    if !content_type.is_empty() && !content_type.starts_with("application/json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected a body of Content-Type application/json, not {content_type:?}"),
        );
    }
    let call: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the request body is not JSON: {err}"),
            )
        }
    };
    let Some(kind) = call.get("type").and_then(Value::as_str).map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "the call has no \"type\"");
    };
    let inner = call
        .get(kind.to_lowercase())
        .cloned()
        .unwrap_or(Value::Null);
    let with_state = |f: fn(&Value) -> Value| {
        let api = api.clone();
        let kind = kind.clone();
        async move {
            match agent_state(&api).await {
                Ok(state) => answer(&kind, f(&state)),
                Err(r) => r,
            }
        }
    };
    match kind.as_str() {
        "GET_HEALTH" => answer(&kind, json!({ "healthy": true })),
        "GET_VERSION" => answer(
            &kind,
            json!({ "version_info": { "version": strata_schema::VERSION } }),
        ),
        "GET_FLAGS" => answer(
            &kind,
            json!({ "flags": api.flags.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>() }),
        ),
        "GET_METRICS" => match agent_state(&api).await {
            Ok(state) => {
                let m = metrics(&state, api.started.elapsed().as_secs_f64());
                let list: Vec<Value> = m
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| json!({ "name": k, "value": v }))
                    .collect();
                answer(&kind, json!({ "metrics": list }))
            }
            Err(r) => r,
        },
        "GET_STATE" => {
            with_state(|s| {
                json!({
                    "get_tasks": get_tasks(s),
                    "get_executors": get_executors(s),
                    "get_frameworks": get_frameworks(s),
                })
            })
            .await
        }
        "GET_TASKS" => with_state(get_tasks).await,
        "GET_EXECUTORS" => with_state(get_executors).await,
        "GET_FRAMEWORKS" => with_state(get_frameworks).await,
        "GET_CONTAINERS" => match containers(&api).await {
            Ok(c) => answer(&kind, c),
            Err(r) => r,
        },
        "LIST_FILES" => {
            let Some(path) = inner
                .get("path")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "LIST_FILES: list_files.path is missing",
                );
            };
            if let Err(r) = crate::http::sandbox_gate(&auth, &caller, &api.sandbox_root, &path) {
                return *r;
            }
            let root = api.sandbox_root.clone();
            match tokio::task::spawn_blocking(move || list_files(&root, &path)).await {
                Ok(Ok(entries)) => answer(
                    &kind,
                    json!({ "file_infos": entries.iter().map(file_info).collect::<Vec<_>>() }),
                ),
                Ok(Err(r)) => *r,
                Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
            }
        }
        "READ_FILE" => {
            let Some(path) = inner
                .get("path")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "READ_FILE: read_file.path is missing",
                );
            };
            let offset = inner.get("offset").and_then(Value::as_u64).unwrap_or(0);
            let length = inner
                .get("length")
                .and_then(Value::as_u64)
                .unwrap_or(MAX_READ)
                .min(MAX_READ);
            if let Err(r) = crate::http::sandbox_gate(&auth, &caller, &api.sandbox_root, &path) {
                return *r;
            }
            let file = match confine(&api.sandbox_root, &path) {
                Ok(p) => p,
                Err(r) => return *r,
            };
            let read =
                tokio::task::spawn_blocking(move || crate::http::read_range(&file, offset, length))
                    .await;
            match read {
                Ok(Ok((size, _, data))) => answer(
                    &kind,
                    json!({ "size": size, "data": strata_schema::v1::encode_bytes(&data) }),
                ),
                Ok(Err(err)) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("failed to read {path}: {err}"),
                ),
                Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
            }
        }
        "PRUNE_IMAGES" => crate::images_http::prune(State(api.containerizer.clone())).await,
        other => error(
            StatusCode::BAD_REQUEST,
            format!("unsupported agent call {other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state() -> Value {
        json!({
            "connected": true,
            "resources": {"cpus": 4.0, "mem": 1024.0, "ports": "[31000-32000]"},
            "used_resources": {"cpus": 1.0, "mem": 128.0},
            "frameworks": [{
                "id": "f1", "name": "fw", "user": "root",
                "executors": [{"id": "t1", "name": "t1", "resources": {"cpus": 1.0},
                    "tasks": [{"id": "t1", "name": "t1", "framework_id": "f1", "executor_id": "t1",
                               "slave_id": "a1", "state": "TASK_RUNNING",
                               "resources": {"cpus": 1.0, "ports": "[31000-31000]"}}],
                    "completed_tasks": []}],
                "completed_executors": [{"id": "t0", "name": "t0", "resources": {},
                    "tasks": [],
                    "completed_tasks": [{"id": "t0", "name": "t0", "framework_id": "f1",
                        "executor_id": "t0", "slave_id": "a1", "state": "TASK_FINISHED",
                        "resources": {"cpus": 1.0}}]}],
            }],
        })
    }

    #[test]
    fn metrics_from_state() {
        let m = metrics(&state(), 3.0);
        assert_eq!(m["slave/registered"], 1.0);
        assert_eq!(m["slave/tasks_running"], 1.0);
        assert_eq!(m["slave/tasks_finished"], 1.0);
        assert_eq!(m["slave/cpus_total"], 4.0);
        assert_eq!(m["slave/cpus_used"], 1.0);
        assert_eq!(m["slave/mem_percent"], 0.125);
        assert_eq!(m["slave/executors_running"], 1.0);
        assert_eq!(m["slave/uptime_secs"], 3.0);
    }

    #[test]
    fn v1_views_of_state() {
        let t = get_tasks(&state());
        assert_eq!(t["launched_tasks"][0]["task_id"]["value"], "t1");
        assert_eq!(t["launched_tasks"][0]["state"], "TASK_RUNNING");
        let resources = &t["launched_tasks"][0]["resources"];
        assert!(resources
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "ports" && r["type"] == "RANGES"));
        assert_eq!(t["completed_tasks"][0]["state"], "TASK_FINISHED");
        let e = get_executors(&state());
        assert_eq!(
            e["executors"][0]["executor_info"]["executor_id"]["value"],
            "t1"
        );
        let f = get_frameworks(&state());
        assert_eq!(f["frameworks"][0]["framework_info"]["id"]["value"], "f1");
    }
}
