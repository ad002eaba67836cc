//! Mesos' v1 operator API on the master: `POST /api/v1` (also `/api/v1/operator`, pymesos'
//! path) with a JSON `Call`, `{"type": "GET_HEALTH"}`, answered `{"type": "GET_HEALTH",
//! "get_health": {..}}`. SUBSCRIBE answers a RecordIO stream (`<length>\n<json>`) of events:
//! SUBSCRIBED with the state, then TASK_ADDED, TASK_UPDATED, AGENT_ADDED, AGENT_REMOVED,
//! FRAMEWORK_ADDED, FRAMEWORK_UPDATED, FRAMEWORK_REMOVED, and HEARTBEAT every 15 seconds.
//! JSON only: a protobuf body is refused with 415, a protobuf answer with 406.

use super::operator::{
    mesos_resources, operator, parse_drain, parse_quota, parse_schedule, parse_weights,
};
use super::v0::{view, Flags};
use super::{unavailable, Actor};
use crate::actor::{Msg, OperatorCall, View};
use crate::state::MachineId;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use strata_schema::v1;
use strata_schema::{AgentId, FrameworkId};
use tokio::sync::{mpsc, oneshot};

pub fn routes() -> Router<Actor> {
    Router::new()
        .route("/api/v1", post(call))
        .route("/api/v1/operator", post(call))
}

/// How often a subscriber gets a HEARTBEAT.
const HEARTBEAT: Duration = Duration::from_secs(15);

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Refuses what is not a JSON call: a body of another type (415) or an answer wanted in
/// another type (406).
/// `None` when the call is acceptable.
pub(crate) fn check_json(headers: &HeaderMap) -> Option<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "expected a body of Content-Type application/json, not {:?} (protobuf is not supported)",
                content_type
            ),
        ));
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !(accept.contains("application/json")
        || accept.contains("*/*")
        || accept.contains("application/recordio"))
    {
        return Some(error(
            StatusCode::NOT_ACCEPTABLE,
            format!("can answer only application/json, not {accept:?}"),
        ));
    }
    None
}

/// Parses a call: its type and its body (the field named after the type in lowercase).
pub(crate) fn parse_call(body: &str) -> Result<(String, Value), String> {
    if body.trim().is_empty() {
        return Err("the request has no body (expected a JSON call, {\"type\": ..})".into());
    }
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or("the call has no \"type\"")?
        .to_string();
    let inner = v.get(kind.to_lowercase()).cloned().unwrap_or(Value::Null);
    Ok((kind, inner))
}

/// What [`call`] makes of a body before it asks the actor, without the HTTP around it (the
/// fuzzers' entry, `strata_master::http::fuzzing`): the call's type, or the error.
pub(crate) fn parse_body(body: &str) -> Result<String, String> {
    let (kind, inner) = parse_call(body)?;
    let resources = |key: &str| -> Result<(), String> {
        agent_id(&inner, &kind)?;
        mesos_resources(inner.get(key).ok_or_else(|| format!("no {key}"))?)?;
        Ok(())
    };
    match kind.as_str() {
        "UPDATE_MAINTENANCE_SCHEDULE" => {
            parse_schedule(inner.get("schedule").unwrap_or(&Value::Null))?;
        }
        "START_MAINTENANCE" | "STOP_MAINTENANCE" => {
            let machines = inner.get("machines").cloned().unwrap_or(Value::Null);
            serde_json::from_value::<Vec<MachineId>>(machines).map_err(|e| e.to_string())?;
        }
        "CREATE_VOLUMES" | "DESTROY_VOLUMES" => resources("volumes")?,
        "RESERVE_RESOURCES" | "UNRESERVE_RESOURCES" => resources("resources")?,
        "UPDATE_WEIGHTS" => {
            parse_weights(inner.get("weight_infos").unwrap_or(&Value::Null))?;
        }
        "UPDATE_QUOTA" => {
            for c in inner
                .get("quota_configs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                parse_quota(c)?;
            }
        }
        "DRAIN_AGENT" => {
            parse_drain(&inner)?;
        }
        "REACTIVATE_AGENT" => {
            agent_id(&inner, &kind)?;
        }
        _ => {}
    }
    Ok(kind)
}

fn answer(kind: &str, body: Value) -> Response {
    Json(json!({ "type": kind, kind.to_lowercase(): body })).into_response()
}

fn agent_id(v: &Value, call: &str) -> Result<AgentId, String> {
    let id = v
        .get("agent_id")
        .map(|id| id.get("value").unwrap_or(id))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{call} names no agent_id"))?;
    AgentId::new(id).map_err(|e| format!("invalid agent_id: {e}"))
}

async fn call(
    State(actor): State<Actor>,
    Extension(flags): Extension<Flags>,
    auth: Option<Extension<crate::auth::SharedAuth>>,
    caller: Option<Extension<crate::auth::Caller>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(r) = check_json(&headers) {
        return r;
    }
    let (kind, inner) = match parse_call(&body) {
        Ok(c) => c,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    // Mesos' ACLs for the calls they govern (update_weights, update_quotas, reserve_resources, …).
    if let Some((action, objects)) = crate::auth::v1_operator_action(&kind, &inner) {
        if let Err(denied) = crate::auth::operator_check(
            auth.as_ref().map(|a| &a.0),
            caller.as_ref().map(|c| &c.0),
            action,
            &objects,
        ) {
            return *denied;
        }
    }
    // view_frameworks / view_tasks leave out what the caller may not see.
    let view_acls = auth.as_ref().map(|a| Arc::clone(&a.acls));
    let principal = caller
        .as_ref()
        .and_then(|c| c.principal().map(str::to_string));
    let read = |v: View| {
        let actor = actor.clone();
        let kind = kind.clone();
        let view_acls = view_acls.clone();
        let principal = principal.clone();
        async move {
            match view(&actor, v).await {
                Ok(mut v) => {
                    if let Some(acls) = view_acls.as_ref() {
                        match kind.as_str() {
                            "GET_STATE" | "GET_FRAMEWORKS" | "GET_TASKS" => {
                                crate::auth::filter_v1(acls, principal.as_deref(), &mut v)
                            }
                            "GET_ROLES" => {
                                crate::auth::filter_roles(acls, principal.as_deref(), &mut v)
                            }
                            _ => {}
                        }
                    }
                    answer(&kind, v)
                }
                Err(r) => r,
            }
        }
    };
    let bad = |m: String| error(StatusCode::BAD_REQUEST, format!("{kind}: {m}"));
    match kind.as_str() {
        "GET_HEALTH" => answer(&kind, json!({ "healthy": true })),
        "GET_VERSION" => answer(
            &kind,
            json!({ "version_info": {
                "version": strata_schema::VERSION,
                "git_sha": option_env!("STRATA_GIT_SHA").unwrap_or_default(),
            }}),
        ),
        "GET_FLAGS" => answer(
            &kind,
            json!({ "flags": flags.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>() }),
        ),
        "GET_METRICS" => match view(&actor, View::Metrics).await {
            Ok(m) => answer(&kind, metrics_list(&m)),
            Err(r) => r,
        },
        "GET_STATE" => read(View::State).await,
        "GET_AGENTS" => read(View::V1Agents).await,
        "GET_FRAMEWORKS" => read(View::V1Frameworks).await,
        "GET_EXECUTORS" => read(View::V1Executors).await,
        "GET_TASKS" => read(View::V1Tasks).await,
        "GET_ROLES" => read(View::V1Roles).await,
        "GET_MASTER" => read(View::V1Master).await,
        "GET_QUOTA" | "GET_WEIGHTS" => {
            let call = if kind == "GET_QUOTA" {
                OperatorCall::Quota
            } else {
                OperatorCall::Weights
            };
            match read_call(&actor, call).await {
                Ok(mut v) => {
                    // view_roles leaves out the roles the caller may not view.
                    if let Some(acls) = view_acls.as_ref() {
                        crate::auth::filter_roles(acls, principal.as_deref(), &mut v);
                    }
                    if kind == "GET_QUOTA" {
                        answer(&kind, json!({ "status": v }))
                    } else {
                        answer(&kind, json!({ "weight_infos": v }))
                    }
                }
                Err(r) => r,
            }
        }
        "GET_MAINTENANCE_STATUS" => match read_call(&actor, OperatorCall::Maintenance).await {
            Ok(m) => {
                // Mesos' ClusterStatus: down machines are MachineIDs.
                let down: Vec<Value> = m["down_machines"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| d["id"].clone())
                    .collect();
                let status = json!({
                    "draining_machines": m["draining_machines"],
                    "down_machines": down,
                });
                answer(&kind, json!({ "status": status }))
            }
            Err(r) => r,
        },
        "GET_MAINTENANCE_SCHEDULE" => match read_call(&actor, OperatorCall::Schedule).await {
            Ok(s) => answer(&kind, json!({ "schedule": s })),
            Err(r) => r,
        },
        "UPDATE_MAINTENANCE_SCHEDULE" => {
            let schedule = inner.get("schedule").cloned().unwrap_or(Value::Null);
            match parse_schedule(&schedule) {
                Ok(windows) => {
                    operator(&actor, OperatorCall::SetSchedule(windows), StatusCode::OK).await
                }
                Err(m) => bad(m),
            }
        }
        "START_MAINTENANCE" | "STOP_MAINTENANCE" => {
            let machines = inner.get("machines").cloned().unwrap_or(Value::Null);
            match serde_json::from_value::<Vec<MachineId>>(machines) {
                Ok(m) if !m.is_empty() => {
                    let call = if kind == "START_MAINTENANCE" {
                        OperatorCall::MachinesDown(m)
                    } else {
                        OperatorCall::MachinesUp(m)
                    };
                    operator(&actor, call, StatusCode::OK).await
                }
                Ok(_) => bad("machines is empty".into()),
                Err(e) => bad(format!(
                    "machines must be a list of {{\"hostname\": .., \"ip\": ..}}: {e}"
                )),
            }
        }
        "CREATE_VOLUMES" | "DESTROY_VOLUMES" => {
            let parsed = agent_id(&inner, &kind).and_then(|agent_id| {
                let volumes = inner
                    .get("volumes")
                    .ok_or_else(|| "no volumes".to_string())?;
                Ok((agent_id, mesos_resources(volumes)?))
            });
            match parsed {
                Ok((agent_id, volumes)) => {
                    let call = if kind == "CREATE_VOLUMES" {
                        OperatorCall::CreateVolumes { agent_id, volumes }
                    } else {
                        OperatorCall::DestroyVolumes { agent_id, volumes }
                    };
                    operator(&actor, call, StatusCode::ACCEPTED).await
                }
                Err(m) => bad(m),
            }
        }
        "UPDATE_WEIGHTS" => {
            let infos = inner.get("weight_infos").cloned().unwrap_or(Value::Null);
            match parse_weights(&infos) {
                Ok(w) => operator(&actor, OperatorCall::SetWeights(w), StatusCode::OK).await,
                Err(m) => bad(m),
            }
        }
        "UPDATE_QUOTA" => {
            let Some(configs) = inner.get("quota_configs").and_then(Value::as_array) else {
                return bad("update_quota.quota_configs must be a list".into());
            };
            let mut parsed = Vec::new();
            for c in configs {
                match parse_quota(c) {
                    Ok(q) => parsed.push(q),
                    Err(m) => return bad(m),
                }
            }
            let mut last = answer_empty();
            for (role, quota) in parsed {
                last = operator(
                    &actor,
                    OperatorCall::SetQuota { role, quota },
                    StatusCode::OK,
                )
                .await;
                if !last.status().is_success() {
                    return last;
                }
            }
            last
        }
        "RESERVE_RESOURCES" | "UNRESERVE_RESOURCES" => {
            let parsed = agent_id(&inner, &kind).and_then(|agent_id| {
                let resources = inner
                    .get("resources")
                    .ok_or_else(|| "no resources".to_string())?;
                Ok((agent_id, mesos_resources(resources)?))
            });
            match parsed {
                Ok((agent_id, resources)) => {
                    let call = if kind == "RESERVE_RESOURCES" {
                        OperatorCall::Reserve {
                            agent_id,
                            resources,
                        }
                    } else {
                        OperatorCall::Unreserve {
                            agent_id,
                            resources,
                        }
                    };
                    operator(&actor, call, StatusCode::ACCEPTED).await
                }
                Err(m) => bad(m),
            }
        }
        "DRAIN_AGENT" => match parse_drain(&inner) {
            Ok((agent_id, config)) => {
                operator(
                    &actor,
                    OperatorCall::Drain { agent_id, config },
                    StatusCode::OK,
                )
                .await
            }
            Err(m) => bad(m),
        },
        "REACTIVATE_AGENT" => match agent_id(&inner, &kind) {
            Ok(agent_id) => {
                operator(
                    &actor,
                    OperatorCall::Reactivate { agent_id },
                    StatusCode::OK,
                )
                .await
            }
            Err(m) => bad(m),
        },
        "TEARDOWN" => {
            let id = inner
                .get("framework_id")
                .map(|id| id.get("value").unwrap_or(id))
                .and_then(Value::as_str)
                .ok_or_else(|| "teardown.framework_id is missing".to_string())
                .and_then(|id| {
                    FrameworkId::new(id).map_err(|e| format!("invalid framework_id: {e}"))
                });
            match id {
                Ok(id) => {
                    super::operator::teardown_framework(
                        &actor,
                        auth.as_ref().map(|a| &a.0),
                        caller.as_ref().map(|c| &c.0),
                        id,
                    )
                    .await
                }
                Err(m) => bad(m),
            }
        }
        "SUBSCRIBE" => subscribe(actor, HEARTBEAT).await,
        other => error(
            StatusCode::BAD_REQUEST,
            format!("unsupported operator call type {other:?}"),
        ),
    }
}

/// Answers an operator read (`/quota`, `/weights`, `/maintenance/...`) from the actor.
async fn read_call(actor: &Actor, call: OperatorCall) -> Result<Value, Response> {
    let (reply, rx) = oneshot::channel();
    if actor.send(Msg::Operator { call, reply }).is_err() {
        return Err(unavailable());
    }
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(err)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())),
        Err(_) => Err(unavailable()),
    }
}

fn answer_empty() -> Response {
    Json(json!({})).into_response()
}

/// `/metrics/snapshot`'s object as GET_METRICS' list of `{"name", "value"}`.
fn metrics_list(m: &Value) -> Value {
    let list: Vec<Value> = m
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    json!({ "metrics": list })
}

/// One RecordIO record ([`v1::record`]).
fn record(event: &Value) -> Bytes {
    Bytes::from(v1::record(event))
}

async fn subscribe(actor: Actor, every: Duration) -> Response {
    let (link, events) = mpsc::unbounded_channel();
    let (reply, answer) = oneshot::channel();
    if actor
        .send(Msg::Operator {
            call: OperatorCall::Subscribe(link),
            reply,
        })
        .is_err()
    {
        return unavailable();
    }
    let subscribed = match answer.await {
        Ok(Ok(s)) => s,
        _ => return unavailable(),
    };
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stream = futures::stream::unfold(
        (Some(subscribed), events, heartbeat),
        |(first, mut events, mut heartbeat)| async move {
            if let Some(first) = first {
                return Some((
                    Ok::<_, std::convert::Infallible>(record(&first)),
                    (None, events, heartbeat),
                ));
            }
            let event = tokio::select! {
                e = events.recv() => e?,
                _ = heartbeat.tick() => json!({ "type": "HEARTBEAT" }),
            };
            Some((Ok(record(&event)), (None, events, heartbeat)))
        },
    );
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn calls() {
        let (kind, inner) =
            parse_call(r#"{"type": "TEARDOWN", "teardown": {"framework_id": {"value": "f"}}}"#)
                .unwrap();
        assert_eq!(kind, "TEARDOWN");
        assert_eq!(inner["framework_id"]["value"], "f");
        assert!(parse_call("").unwrap_err().contains("no body"));
        assert!(parse_call("{").unwrap_err().contains("not valid JSON"));
        assert!(parse_call("{}").unwrap_err().contains("no \"type\""));
    }

    #[test]
    fn media_types() {
        let mut h = HeaderMap::new();
        assert_eq!(
            check_json(&h).unwrap().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        h.insert(
            header::CONTENT_TYPE,
            "application/x-protobuf".parse().unwrap(),
        );
        assert_eq!(
            check_json(&h).unwrap().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(check_json(&h).is_none());
        h.insert(header::ACCEPT, "application/x-protobuf".parse().unwrap());
        assert_eq!(check_json(&h).unwrap().status(), StatusCode::NOT_ACCEPTABLE);
    }

    /// The stream: SUBSCRIBED first, then the events the actor sends on the link, with
    /// heartbeats between; it ends when the actor drops the link.
    #[tokio::test]
    async fn subscription_stream() {
        use futures::StreamExt;
        let (actor, mut mailbox) = mpsc::unbounded_channel();
        let fake = tokio::spawn(async move {
            let Some(Msg::Operator {
                call: OperatorCall::Subscribe(link),
                reply,
            }) = mailbox.recv().await
            else {
                panic!("not a subscription");
            };
            let _ = reply.send(Ok(json!({"type": "SUBSCRIBED", "subscribed": {}})));
            link.send(json!({"type": "AGENT_REMOVED", "agent_removed": {}}))
                .unwrap();
            // Long enough for a heartbeat, then the link is dropped.
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        let response = subscribe(actor, Duration::from_millis(100)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body().into_data_stream();
        let mut kinds = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            let text = std::str::from_utf8(&chunk).unwrap();
            let (len, json) = text.split_once('\n').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), json.len());
            let v: Value = serde_json::from_str(json).unwrap();
            kinds.push(v["type"].as_str().unwrap().to_string());
        }
        fake.await.unwrap();
        assert_eq!(kinds[..2], ["SUBSCRIBED", "AGENT_REMOVED"]);
        assert!(kinds[2..].iter().all(|k| k == "HEARTBEAT"), "{kinds:?}");
        assert!(kinds.len() >= 3, "no heartbeat: {kinds:?}");
    }

    #[test]
    fn records() {
        let r = record(&json!({"type": "HEARTBEAT"}));
        assert_eq!(&r[..], b"20\n{\"type\":\"HEARTBEAT\"}");
        let m = metrics_list(&json!({"master/elected": 1.0}));
        assert_eq!(m["metrics"][0]["name"], "master/elected");
    }
}
