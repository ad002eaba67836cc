//! `POST /api/v1/executor`: Mesos' v1 executor HTTP API, JSON only. SUBSCRIBE answers 200 with a
//! RecordIO stream of events (`<length>\n<json>`: SUBSCRIBED, then LAUNCH, LAUNCH_GROUP, KILL,
//! ACKNOWLEDGED, MESSAGE, SHUTDOWN, HEARTBEAT) that lasts as long as the executor is connected;
//! UPDATE and MESSAGE answer 202 once the agent has taken them (an update once checkpointed).
//! A body that is not a valid call is 400, a call for an executor this agent does not run 403,
//! a body that is not `application/json` 415. The calls are checked in [`crate::executor`]
//! and carried out by the agent's actor.

use crate::agent::Msg;
use crate::executor::{self, heartbeat_event, ApiError, Call};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

pub fn router<S>(
    actor: mpsc::UnboundedSender<Msg>,
    auth: crate::auth::SharedAgentAuth,
) -> Router<S> {
    Router::new()
        .route("/api/v1/executor", post(call))
        .with_state((actor, auth))
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": message.into() }).to_string(),
    )
        .into_response()
}

async fn call(
    State((actor, auth)): State<(mpsc::UnboundedSender<Msg>, crate::auth::SharedAgentAuth)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "expecting 'Content-Type' of application/json, got {content_type:?} \
                 (this agent speaks the executor API in JSON only)"
            ),
        );
    }
    let call = match executor::parse_call(&body) {
        Ok(call) => call,
        Err(why) => return error(StatusCode::BAD_REQUEST, format!("invalid call: {why}")),
    };
    // Under --authenticate-http-executors: the caller's token must name this executor.
    let (framework_id, executor_id) = call.key();
    if let Err(refused) = auth.check_executor(&headers, &framework_id, &executor_id) {
        return *refused;
    }
    let subscribe = matches!(call, Call::Subscribe { .. });
    let (reply, answer) = oneshot::channel();
    if actor.send(Msg::ExecutorCall { call, reply }).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        );
    }
    let Ok(result) = answer.await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down",
        );
    };
    match result {
        Err(ApiError::BadRequest(why)) => error(StatusCode::BAD_REQUEST, why),
        Err(ApiError::Forbidden(why)) => error(StatusCode::FORBIDDEN, why),
        Ok(Some(events)) if subscribe => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(stream(events)),
        )
            .into_response(),
        Ok(_) => StatusCode::ACCEPTED.into_response(),
    }
}

/// The executor's events as RecordIO, with a HEARTBEAT after each quiet interval. It ends when
/// the agent drops the executor (it exited, or another connection subscribed).
fn stream(
    events: mpsc::UnboundedReceiver<serde_json::Value>,
) -> impl futures::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    futures::stream::unfold(events, |mut events| async move {
        let event = match tokio::time::timeout(executor::HEARTBEAT_INTERVAL, events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => return None,
            Err(_) => heartbeat_event(),
        };
        Some((Ok(Bytes::from(executor::record(&event))), events))
    })
}
