//! The master's HTTP endpoints: `/state` (Mesos' shape, also at `/master/state`), `/health`,
//! `/version`, the operator's `POST /tasks/kill`, and (in [`operator`]) roles, quotas, weights,
//! reservations and maintenance, (in [`scheduler`]) Mesos' v1 scheduler API, (in [`v0`]) Mesos'
//! other v0 reads and `/metrics/snapshot`, and (in [`v1_operator`]) the v1 operator API.

use crate::actor::Msg;
use crate::state::OperatorKillError;
use axum::extract::Request;
use axum::extract::{Query, State};
use axum::http::header;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use strata_ha::zk::Leadership;
use tokio::sync::{mpsc, oneshot, watch};

mod operator;
mod scheduler;
mod v0;
mod v1_operator;
mod webui;
pub use v0::Flags;

type Actor = mpsc::UnboundedSender<Msg>;

pub fn router(
    actor: Actor,
    leadership: watch::Receiver<Leadership>,
    conns: crate::net::ConnIds,
    flags: Flags,
    auth: crate::auth::SharedAuth,
) -> Router {
    let redirect_to = (leadership.clone(), actor.clone());
    let metrics_of = (leadership.clone(), actor.clone(), std::time::Instant::now());
    // Request bodies: size and time limits (413, 408), around everything.
    strata_security::limits::around(
        Router::new()
            .route("/state", get(state))
            .route("/master/state", get(state))
            .route("/state.json", get(state))
            .route("/tasks/kill", post(kill))
            .merge(operator::routes())
            .merge(webui::routes())
            .merge(v0::routes())
            .merge(v1_operator::routes())
            .with_state(actor.clone())
            .merge(scheduler::routes(actor, conns, auth.clone()))
            .layer(axum::middleware::from_fn_with_state(
                leadership,
                leader_only,
            ))
            // Every master answers these itself: they are about this process.
            .route("/health", get(|| async { StatusCode::OK }))
            .route("/master/health", get(|| async { StatusCode::OK }))
            .route("/version", get(version))
            .route("/flags", get(v0::flags))
            .route("/master/flags", get(v0::flags))
            .route(
                "/master/redirect",
                get(move |uri: axum::http::Uri| async move {
                    let (leadership, actor) = redirect_to;
                    v0::redirect(leadership, actor, uri.path()).await
                }),
            )
            .route(
                "/metrics/snapshot",
                get(move || async move {
                    let (leadership, actor, started) = metrics_of;
                    v0::metrics(leadership, actor, started).await
                }),
            )
            .layer(axum::Extension(flags))
            .layer(axum::Extension(auth.clone()))
            // Every request is authenticated (or let through as anonymous) before any handler.
            .layer(axum::middleware::from_fn_with_state(
                auth,
                crate::auth::authenticate,
            )),
    )
}

/// The request parsers of the HTTP APIs as pure functions of a body, for the fuzz targets
/// (`fuzzing/`, `fuzz/`); not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// `POST /api/v1/scheduler`: the call's type, or the error a client gets.
    pub fn scheduler_call(body: &[u8]) -> Result<String, String> {
        super::scheduler::parse_body(body)
    }

    /// `POST /api/v1` (the operator API): the call's type, or the error a client gets.
    pub fn operator_call(body: &str) -> Result<String, String> {
        super::v1_operator::parse_body(body)
    }

    /// The v0 operator endpoints' bodies (`endpoint` picks one: maintenance schedule, quota,
    /// weights, drain, reactivate, machines, reserve as JSON, reserve as a form).
    pub fn operator_body(endpoint: u8, body: &str) -> Result<(), String> {
        super::operator::parse_body(endpoint, body)
    }
}

/// On a standby, every endpoint but health and version redirects to the leader (307, same
/// path and query), or answers 503 while no leader is known.
async fn leader_only(
    State(leadership): State<watch::Receiver<Leadership>>,
    request: Request,
    next: Next,
) -> Response {
    let current = leadership.borrow().clone();
    match current {
        Leadership::Leading => next.run(request).await,
        Leadership::Following(Some(leader)) => {
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let location = format!("http://{}{path}", leader.endpoint());
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location.clone())],
                Json(
                    json!({ "error": format!("not the leading master; the leader is {location}") }),
                ),
            )
                .into_response()
        }
        Leadership::Following(None) | Leadership::Lost(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "no leading master is elected yet" })),
        )
            .into_response(),
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the master is shutting down"})),
    )
        .into_response()
}

async fn state(
    State(actor): State<Actor>,
    auth: Option<axum::Extension<crate::auth::SharedAuth>>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
) -> Response {
    let (reply, answer) = oneshot::channel();
    if actor.send(Msg::GetState { reply }).is_err() {
        return unavailable();
    }
    match answer.await {
        // Already JSON: sent as it is, not parsed into a tree and written again — unless
        // view_frameworks / view_tasks leave some of it out for this caller.
        Ok(state) => {
            let principal = caller
                .as_ref()
                .and_then(|c| c.principal().map(str::to_string));
            if let Some(auth) = auth.filter(|a| crate::auth::filters_views(&a.acls)) {
                let state = state.concat();
                let filtered = std::str::from_utf8(&state)
                    .ok()
                    .and_then(|text| {
                        crate::auth::filter_view(&auth.acls, principal.as_deref(), text)
                    })
                    .map(String::into_bytes);
                let body = filtered.unwrap_or(state);
                return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
            }
            // The writer threads' parts go out as they are, with the whole length up front.
            let length = state.len();
            let parts = state
                .into_bytes()
                .into_iter()
                .map(Ok::<_, std::convert::Infallible>);
            (
                [
                    (header::CONTENT_TYPE, "application/json".to_string()),
                    (header::CONTENT_LENGTH, length.to_string()),
                ],
                axum::body::Body::from_stream(futures::stream::iter(parts)),
            )
                .into_response()
        }
        Err(_) => unavailable(),
    }
}

async fn version() -> Json<serde_json::Value> {
    Json(json!({ "version": strata_schema::VERSION, "git_sha": option_env!("STRATA_GIT_SHA") }))
}

#[derive(Deserialize)]
struct KillQuery {
    task_id: String,
    framework_id: Option<String>,
}

async fn kill(State(actor): State<Actor>, Query(q): Query<KillQuery>) -> Response {
    let (reply, answer) = oneshot::channel();
    if actor
        .send(Msg::OperatorKill {
            task_id: q.task_id,
            framework_id: q.framework_id,
            reply,
        })
        .is_err()
    {
        return unavailable();
    }
    match answer.await {
        Ok(Ok((framework_id, agent_id))) => (
            StatusCode::ACCEPTED,
            Json(json!({ "framework_id": framework_id, "agent_id": agent_id })),
        )
            .into_response(),
        Ok(Err(err @ OperatorKillError::NotFound(_))) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": err.to_string() })),
        )
            .into_response(),
        Ok(Err(err @ OperatorKillError::Ambiguous { .. })) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": err.to_string() })),
        )
            .into_response(),
        Err(_) => unavailable(),
    }
}
