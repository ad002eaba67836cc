//! Mesos' v0 read endpoints besides `/state`: `/master/state-summary`, `/master/frameworks`,
//! `/master/slaves`, `/master/tasks`, `/metrics/snapshot`, `/master/flags` (and `/flags`) and
//! `/master/redirect`. They are computed on the actor ([`View`]).

use super::{unavailable, Actor};
use crate::actor::{Msg, OperatorCall, View};
use crate::state::TasksQuery;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use strata_ha::zk::Leadership;
use tokio::sync::{oneshot, watch};

/// The master's flags by their Mesos names.
pub type Flags = Arc<Vec<(String, String)>>;

pub fn routes() -> Router<Actor> {
    Router::new()
        .route("/master/state-summary", get(summary))
        .route("/state-summary", get(summary))
        .route("/master/frameworks", get(frameworks))
        .route("/frameworks", get(frameworks))
        .route("/master/slaves", get(slaves))
        .route("/slaves", get(slaves))
        .route("/master/tasks", get(tasks))
        .route("/tasks", get(tasks))
        .route("/master/tasks.json", get(tasks))
}

/// Reads `view` on the actor.
pub(super) async fn view(actor: &Actor, view: View) -> Result<Value, Response> {
    let (reply, answer) = oneshot::channel();
    let call = OperatorCall::View(view);
    if actor.send(Msg::Operator { call, reply }).is_err() {
        return Err(unavailable());
    }
    match answer.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(err)) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": err.to_string()})),
        )
            .into_response()),
        Err(_) => Err(unavailable()),
    }
}

async fn answer(actor: &Actor, v: View) -> Response {
    match view(actor, v).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

async fn summary(State(actor): State<Actor>) -> Response {
    answer(&actor, View::Summary).await
}

async fn frameworks(
    State(actor): State<Actor>,
    auth: Option<axum::Extension<crate::auth::SharedAuth>>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match view(&actor, View::Frameworks(q.get("framework_id").cloned())).await {
        Ok(mut v) => {
            // view_frameworks / view_tasks leave out what the caller may not see.
            if let Some(auth) = &auth {
                let principal = caller.as_ref().and_then(|c| c.principal());
                crate::auth::filter_value(&auth.acls, principal, &mut v);
            }
            Json(v).into_response()
        }
        Err(r) => r,
    }
}

async fn slaves(State(actor): State<Actor>, Query(q): Query<HashMap<String, String>>) -> Response {
    let id = q.get("slave_id").or_else(|| q.get("agent_id")).cloned();
    answer(&actor, View::Agents(id)).await
}

/// Mesos' `/tasks` query: `limit`, `offset`, `order` (`asc`, `desc`), `framework_id`, `task_id`.
pub(crate) fn tasks_query(q: &HashMap<String, String>) -> Result<TasksQuery, String> {
    let number = |name: &str| -> Result<Option<usize>, String> {
        q.get(name)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| format!("{name} must be a non-negative integer, not {v:?}"))
            })
            .transpose()
    };
    let ascending = match q.get("order").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => return Err(format!("order must be asc or desc, not {other:?}")),
    };
    Ok(TasksQuery {
        limit: number("limit")?,
        offset: number("offset")?.unwrap_or(0),
        ascending,
        framework_id: q.get("framework_id").cloned(),
        task_id: q.get("task_id").cloned(),
    })
}

async fn tasks(State(actor): State<Actor>, Query(q): Query<HashMap<String, String>>) -> Response {
    match tasks_query(&q) {
        Ok(query) => answer(&actor, View::Tasks(query)).await,
        Err(message) => bad_request(message),
    }
}

/// `/metrics/snapshot`: every master answers. The leader's metrics come from its state; a
/// standby's are `master/elected` 0 and its uptime, as a Mesos standby's.
pub async fn metrics(
    leadership: watch::Receiver<Leadership>,
    actor: Actor,
    started: std::time::Instant,
) -> Response {
    let leading = matches!(*leadership.borrow(), Leadership::Leading);
    if leading {
        return answer(&actor, View::Metrics).await;
    }
    Json(json!({
        "master/elected": 0.0,
        "master/uptime_secs": started.elapsed().as_secs_f64(),
    }))
    .into_response()
}

/// `/flags`: `{"flags": {"name": "value"}}`; every master answers it about itself.
pub async fn flags(Extension(flags): Extension<Flags>) -> Json<Value> {
    let map: serde_json::Map<String, Value> = flags
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Json(json!({ "flags": map }))
}

/// `/master/redirect`: 307 to the leading master, on the leader too (Mesos does the same), so
/// that a client given any master finds the leader; 503 while none is elected.
pub async fn redirect(
    leadership: watch::Receiver<Leadership>,
    actor: Actor,
    path: &str,
) -> Response {
    let current = leadership.borrow().clone();
    let leader = match current {
        Leadership::Leading => match view(&actor, View::V1Master).await {
            Ok(v) => {
                let info = &v["master_info"];
                format!(
                    "{}:{}",
                    info["address"]["ip"].as_str().unwrap_or("127.0.0.1"),
                    info["port"]
                )
            }
            Err(r) => return r,
        },
        Leadership::Following(Some(leader)) => leader.endpoint(),
        Leadership::Following(None) | Leadership::Lost(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "no leading master is elected yet" })),
            )
                .into_response()
        }
    };
    let rest = path
        .strip_prefix("/master/redirect")
        .or_else(|| path.strip_prefix("/redirect"))
        .unwrap_or("");
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, format!("http://{leader}{rest}"))],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tasks_queries() {
        let t = tasks_query(&q(&[])).unwrap();
        assert_eq!((t.limit, t.offset, t.ascending), (None, 0, false));
        let t = tasks_query(&q(&[
            ("limit", "5"),
            ("offset", "2"),
            ("order", "asc"),
            ("task_id", "t"),
        ]))
        .unwrap();
        assert_eq!((t.limit, t.offset, t.ascending), (Some(5), 2, true));
        assert_eq!(t.task_id.as_deref(), Some("t"));
        assert!(tasks_query(&q(&[("limit", "-1")]))
            .unwrap_err()
            .contains("limit"));
        assert!(tasks_query(&q(&[("order", "up")]))
            .unwrap_err()
            .contains("order"));
    }
}
