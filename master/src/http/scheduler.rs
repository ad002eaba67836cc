//! Mesos' v1 scheduler HTTP API, `POST /api/v1/scheduler`, in JSON: the same front end as the
//! Cap'n Proto `subscribe` in `rpc.rs`, for unmodified Mesos frameworks (pymesos, …).
//!
//! A SUBSCRIBE gets a connection id of its own ([`ConnIds`], shared with the RPC connections),
//! a [`SchedulerLink`] and a streamed 200 answer: RecordIO records (`<length>\n<json>`) of the
//! framework's events, and a `Mesos-Stream-Id` header. Every other call names the framework and
//! carries that stream id; it is sent to the actor as the stream's connection, and answered 202
//! once the actor accepted it. When the stream ends (the client went away, or the master let go
//! of the framework) the actor hears `ConnectionClosed`, so the failover timeout runs.
//!
//! Status codes, as Mesos: 400 for a body that is not a valid call (the message names the
//! field), a missing or wrong stream id, or a call the master refused as invalid (but a
//! well-formed ACCEPT is 202 whatever became of it, as with Mesos: invalid offers are reported as
//! TASK_DROPPED updates of its launches); 403 for a
//! framework that is not subscribed on a stream here (or was torn down); 405 for another method
//! than POST; 406 when `Accept` allows no JSON; 415 for a body that is not `application/json`.

use super::Actor;
use crate::actor::{Call, Msg};
use crate::auth::{Caller, SharedAuth};
use crate::net::ConnIds;
use crate::state::{CallError, ConnId, SchedulerEvent};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Extension;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use strata_schema::v1::{self, V1Error};
use strata_schema::{FrameworkId, UpdateUuid};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Mesos' default `Filters.refuse_seconds`.
const DEFAULT_REFUSE_SECONDS: f64 = 5.0;

/// The header naming a subscription's stream.
const STREAM_ID: &str = "mesos-stream-id";

/// A framework's live subscription on this API.
#[derive(Debug, Clone)]
struct Subscription {
    stream_id: String,
    conn: ConnId,
    /// The principal the SUBSCRIBE authenticated as: every call for the framework must come
    /// from it (Mesos: "the principal of the call must match the framework's").
    principal: Option<String>,
}

type Subscriptions = Arc<Mutex<HashMap<FrameworkId, Subscription>>>;

#[derive(Clone)]
struct Api {
    actor: Actor,
    conns: ConnIds,
    subscriptions: Subscriptions,
    auth: SharedAuth,
}

pub fn routes(actor: Actor, conns: ConnIds, auth: SharedAuth) -> Router {
    Router::new()
        .route("/api/v1/scheduler", post(scheduler))
        .with_state(Api {
            actor,
            conns,
            subscriptions: Arc::default(),
            auth,
        })
}

/// A refusal: status and a plain-text message, as Mesos answers.
fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    debug!(%status, %message, "scheduler API call refused");
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

fn bad_request(err: V1Error) -> Response {
    refuse(StatusCode::BAD_REQUEST, format!("invalid call: {err}"))
}

fn unavailable() -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "the master is shutting down",
    )
}

fn call_error(err: CallError) -> Response {
    let status = match err {
        CallError::UnknownFramework(_) | CallError::StaleSession(_) | CallError::Removed(_) => {
            StatusCode::FORBIDDEN
        }
        CallError::InvalidOffers(_) | CallError::Invalid(_) => StatusCode::BAD_REQUEST,
        CallError::Unauthorized(_) => StatusCode::FORBIDDEN,
    };
    refuse(status, err.to_string())
}

/// The media type of a header value, lowercased, without parameters.
fn essence(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether the `name` header (a list of media ranges; absent: anything) allows `media`.
fn allows(headers: &HeaderMap, name: &str, media: &str) -> bool {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return true;
    }
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    values.iter().flat_map(|v| v.split(',')).any(|range| {
        let mut parts = range.split(';');
        let range_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        !refused
            && (range_type == media || range_type == "*/*" || range_type == format!("{kind}/*"))
    })
}

/// How a SUBSCRIBE's events are framed for this request: `Content-Type` and, for
/// `application/recordio`, `Message-Content-Type`.
fn stream_format(headers: &HeaderMap) -> Result<(&'static str, Option<&'static str>), String> {
    if allows(headers, "accept", "application/json") {
        return Ok(("application/json", None));
    }
    if allows(headers, "accept", "application/recordio") {
        if allows(headers, "message-accept", "application/json") {
            return Ok(("application/recordio", Some("application/json")));
        }
        return Err(
            "Message-Accept allows no application/json: Strata's scheduler API speaks JSON only"
                .into(),
        );
    }
    Err("Accept allows neither application/json nor application/recordio: Strata's scheduler API speaks JSON only".into())
}

async fn scheduler(
    State(api): State<Api>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = caller.map(|Extension(c)| c).unwrap_or_default();
    match headers
        .get(header::CONTENT_TYPE)
        .map(|v| essence(v.to_str().unwrap_or("")))
    {
        None => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the Content-Type header is missing: send application/json",
            )
        }
        Some(t) if t == "application/json" => {}
        Some(t) if t == "application/x-protobuf" => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "protobuf bodies (application/x-protobuf) are not supported: send application/json",
            )
        }
        Some(t) => {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type {t:?} is not supported: send application/json"),
            )
        }
    }
    let call: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(err) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {err}"),
            )
        }
    };
    if let Err(err) = v1::object(&call, "call") {
        return bad_request(err);
    }
    let kind = match v1::req_str(&call, "", "type") {
        Ok(kind) => kind.to_string(),
        Err(err) => return bad_request(err),
    };
    if kind == "SUBSCRIBE" {
        return match stream_format(&headers) {
            Ok(format) => subscribe(api, &call, format, caller).await,
            Err(why) => refuse(StatusCode::NOT_ACCEPTABLE, why),
        };
    }
    if !allows(&headers, "accept", "application/json") {
        return refuse(
            StatusCode::NOT_ACCEPTABLE,
            "Accept allows no application/json: Strata's scheduler API speaks JSON only",
        );
    }
    let framework_id = match v1::framework_id(&call, "", "framework_id") {
        Ok(id) => id,
        Err(err) => return bad_request(err),
    };
    let parsed = match parse_call(&kind, &call, &framework_id) {
        Ok(parsed) => parsed,
        Err(err) => return bad_request(err),
    };
    let subscription = lock(&api.subscriptions).get(&framework_id).cloned();
    let Some(subscription) = subscription else {
        return refuse(
            StatusCode::FORBIDDEN,
            format!("framework {framework_id} is not subscribed on this master's scheduler API: SUBSCRIBE first"),
        );
    };
    match headers.get(STREAM_ID).map(|v| v.to_str().unwrap_or("")) {
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the Mesos-Stream-Id header is missing: every call but SUBSCRIBE carries the stream id its SUBSCRIBE answer gave",
            )
        }
        Some(given) if given != subscription.stream_id => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the Mesos-Stream-Id {given:?} is not the stream of framework {framework_id}'s subscription"),
            )
        }
        Some(_) => {}
    }
    if let Some(owner) = &subscription.principal {
        if caller.principal() != Some(owner.as_str()) {
            warn!(%framework_id, principal = caller.principal().unwrap_or("<none>"), owner = %owner, call = %kind, "call for another principal's framework refused");
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "framework {framework_id} belongs to principal {owner:?}; this call authenticated as {:?}",
                    caller.principal().unwrap_or("")
                ),
            );
        }
    }
    let accept = matches!(parsed, Call::Accept { .. });
    let (reply, answer) = oneshot::channel();
    if api
        .actor
        .send(Msg::Call {
            conn: subscription.conn,
            framework_id: framework_id.clone(),
            call: parsed,
            reply,
        })
        .is_err()
    {
        return unavailable();
    }
    match answer.await {
        Ok(Ok(())) => StatusCode::ACCEPTED.into_response(),
        // As Mesos: a well-formed ACCEPT is answered 202 whatever became of it. Its launches
        // on invalid offers come back as TASK_DROPPED updates; an operation the offers could
        // not hold is dropped (Mesos reports those only to frameworks that give operation ids).
        Ok(Err(err @ (CallError::InvalidOffers(_) | CallError::Invalid(_)))) if accept => {
            info!(%framework_id, cause = %err, "scheduler API ACCEPT partly or wholly dropped");
            StatusCode::ACCEPTED.into_response()
        }
        Ok(Err(err)) => call_error(err),
        Err(_) => unavailable(),
    }
}

fn lock(
    subscriptions: &Subscriptions,
) -> std::sync::MutexGuard<'_, HashMap<FrameworkId, Subscription>> {
    // A panic while holding this lock cannot leave the map inconsistent (single inserts and
    // removes), so a poisoned lock is still usable.
    subscriptions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The object of a call's type (`accept` for ACCEPT): required when `needed`.
fn section<'a>(call: &'a Value, key: &str, needed: bool) -> Result<Option<&'a Value>, V1Error> {
    match v1::field(call, key) {
        Some(v) => {
            v1::object(v, key)?;
            Ok(Some(v))
        }
        None if needed => v1::required(call, "", key).map(Some),
        None => Ok(None),
    }
}

fn refuse_seconds(section: &Value, path: &str) -> Result<f64, V1Error> {
    let Some(filters) = v1::field(section, "filters") else {
        return Ok(DEFAULT_REFUSE_SECONDS);
    };
    let at = v1::join(path, "filters");
    v1::object(filters, &at)?;
    let secs = v1::opt_f64(filters, &at, "refuse_seconds")?.unwrap_or(DEFAULT_REFUSE_SECONDS);
    if secs < 0.0 {
        return Err(V1Error {
            field: v1::join(&at, "refuse_seconds"),
            why: "must not be negative".into(),
        });
    }
    Ok(secs)
}

fn offer_ids(section: &Value, path: &str) -> Result<Vec<strata_schema::OfferId>, V1Error> {
    ids_of(section, path, "offer_ids")
}

/// A list of `OfferID`s under `key` (`offer_ids`, `inverse_offer_ids`): at least one.
fn ids_of(section: &Value, path: &str, key: &str) -> Result<Vec<strata_schema::OfferId>, V1Error> {
    let list = v1::opt_list(section, path, key)?;
    if list.is_empty() {
        return Err(V1Error {
            field: v1::join(path, key),
            why: "no offer ids".into(),
        });
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let at = format!("{}[{i}]", v1::join(path, key));
            v1::object(item, &at)?;
            let value = v1::req_str(item, &at, "value")?;
            strata_schema::OfferId::new(value).map_err(|e| V1Error {
                field: format!("{at}.value"),
                why: e.to_string(),
            })
        })
        .collect()
}

/// `suppressed_roles` must be among the framework's roles (as Mesos checks).
fn check_suppressed(
    info: &strata_schema::FrameworkInfo,
    suppressed: &[String],
    field: &str,
) -> Result<(), V1Error> {
    let roles = info.effective_roles();
    match suppressed.iter().position(|r| !roles.contains(r)) {
        Some(i) => Err(V1Error {
            field: format!("{field}[{i}]"),
            why: format!(
                "{:?} is not one of the framework's roles {roles:?}",
                suppressed[i]
            ),
        }),
        None => Ok(()),
    }
}

/// A call other than SUBSCRIBE, as the actor's [`Call`].
fn parse_call(kind: &str, call: &Value, framework_id: &FrameworkId) -> Result<Call, V1Error> {
    let unsupported = |why: &str| {
        Err(V1Error {
            field: "type".into(),
            why: format!("{kind} is not supported by Strata{why}"),
        })
    };
    Ok(match kind {
        "TEARDOWN" => Call::Teardown,
        "ACCEPT" => {
            let accept = section(call, "accept", true)?.unwrap_or(&Value::Null);
            let operations = v1::opt_list(accept, "accept", "operations")?
                .iter()
                .enumerate()
                .map(|(i, op)| v1::operation_from_json(op, &format!("accept.operations[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Call::Accept {
                offer_ids: offer_ids(accept, "accept")?,
                operations,
                refuse_seconds: refuse_seconds(accept, "accept")?,
            }
        }
        "DECLINE" => {
            let decline = section(call, "decline", true)?.unwrap_or(&Value::Null);
            Call::Decline {
                offer_ids: offer_ids(decline, "decline")?,
                refuse_seconds: refuse_seconds(decline, "decline")?,
            }
        }
        "ACCEPT_INVERSE_OFFERS" | "DECLINE_INVERSE_OFFERS" => {
            let key = kind.to_ascii_lowercase();
            let answer = section(call, &key, true)?.unwrap_or(&Value::Null);
            Call::AnswerInverseOffers {
                offer_ids: ids_of(answer, &key, "inverse_offer_ids")?,
                accept: kind == "ACCEPT_INVERSE_OFFERS",
                refuse_seconds: refuse_seconds(answer, &key)?,
            }
        }
        "REVIVE" | "SUPPRESS" => {
            let key = kind.to_ascii_lowercase();
            let roles = match section(call, &key, false)? {
                Some(s) => v1::string_list(s, &key, "roles")?,
                None => Vec::new(),
            };
            if kind == "REVIVE" {
                Call::Revive { roles }
            } else {
                Call::Suppress { roles }
            }
        }
        "KILL" => {
            let kill = section(call, "kill", true)?.unwrap_or(&Value::Null);
            // The agent is optional, and the master knows it: read only to validate it.
            v1::opt_agent_id(kill, "kill", "agent_id")?;
            if v1::field(kill, "kill_policy").is_some() {
                return Err(V1Error {
                    field: "kill.kill_policy".into(),
                    why: "is not supported by Strata (the task's own kill policy applies)".into(),
                });
            }
            Call::Kill {
                task_id: v1::task_id(kill, "kill", "task_id")?,
            }
        }
        "SHUTDOWN" => {
            let shutdown = section(call, "shutdown", true)?.unwrap_or(&Value::Null);
            Call::Shutdown {
                agent_id: v1::agent_id(shutdown, "shutdown", "agent_id")?,
                executor_id: v1::executor_id(shutdown, "shutdown", "executor_id")?,
            }
        }
        "ACKNOWLEDGE" => {
            let ack = section(call, "acknowledge", true)?.unwrap_or(&Value::Null);
            let text = v1::req_str(ack, "acknowledge", "uuid")?;
            let bytes = v1::decode_bytes(text, "acknowledge.uuid")?;
            let uuid = UpdateUuid::from_slice(&bytes).ok_or_else(|| V1Error {
                field: "acknowledge.uuid".into(),
                why: format!("expected 16 bytes, not {}", bytes.len()),
            })?;
            Call::Acknowledge {
                acks: vec![(
                    v1::agent_id(ack, "acknowledge", "agent_id")?,
                    v1::task_id(ack, "acknowledge", "task_id")?,
                    uuid,
                )],
            }
        }
        "RECONCILE" => {
            let mut tasks = Vec::new();
            if let Some(reconcile) = section(call, "reconcile", false)? {
                for (i, task) in v1::opt_list(reconcile, "reconcile", "tasks")?
                    .iter()
                    .enumerate()
                {
                    let at = format!("reconcile.tasks[{i}]");
                    v1::object(task, &at)?;
                    tasks.push((
                        v1::task_id(task, &at, "task_id")?,
                        v1::opt_agent_id(task, &at, "agent_id")?,
                    ));
                }
            }
            Call::Reconcile { tasks }
        }
        "MESSAGE" => {
            let message = section(call, "message", true)?.unwrap_or(&Value::Null);
            Call::Message {
                agent_id: v1::agent_id(message, "message", "agent_id")?,
                executor_id: v1::executor_id(message, "message", "executor_id")?,
                data: v1::opt_bytes(message, "message", "data")?,
            }
        }
        "UPDATE_FRAMEWORK" => {
            let update = section(call, "update_framework", true)?.unwrap_or(&Value::Null);
            let at = "update_framework.framework_info";
            let mut info = v1::framework_info_from_json(
                v1::required(update, "update_framework", "framework_info")?,
                at,
            )?;
            match &info.id {
                Some(id) if id != framework_id => {
                    return Err(V1Error {
                        field: format!("{at}.id"),
                        why: format!("{id} is not the call's framework_id {framework_id}"),
                    })
                }
                _ => info.id = Some(framework_id.clone()),
            }
            let suppressed = v1::string_list(update, "update_framework", "suppressed_roles")?;
            check_suppressed(&info, &suppressed, "update_framework.suppressed_roles")?;
            Call::UpdateFramework {
                info: Box::new(info),
                // Mesos: the listed roles are suppressed, every other is not.
                suppressed_roles: Some(suppressed),
            }
        }
        "REQUEST" => return unsupported(" (Mesos deprecated it)"),
        "ACKNOWLEDGE_OPERATION_STATUS" | "RECONCILE_OPERATIONS" => {
            return unsupported(" (operations have no status updates)")
        }
        other => {
            return Err(V1Error {
                field: "type".into(),
                why: format!("unknown call type {other:?}"),
            })
        }
    })
}

/// Ends a subscription's stream: forgets it (unless a newer one replaced it) and tells the
/// actor its connection is gone.
struct StreamGuard {
    actor: Actor,
    subscriptions: Subscriptions,
    framework_id: FrameworkId,
    stream_id: String,
    conn: ConnId,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut subscriptions = lock(&self.subscriptions);
        if subscriptions
            .get(&self.framework_id)
            .is_some_and(|s| s.stream_id == self.stream_id)
        {
            subscriptions.remove(&self.framework_id);
        }
        drop(subscriptions);
        info!(framework_id = %self.framework_id, stream_id = %self.stream_id, "scheduler API stream closed");
        let _ = self.actor.send(Msg::ConnectionClosed { conn: self.conn });
    }
}

/// A SUBSCRIBE's connection before its stream exists: closed (for the actor) when dropped
/// while `conn` is still set.
struct PendingConn {
    actor: Actor,
    conn: Option<ConnId>,
}

impl Drop for PendingConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn {
            let _ = self.actor.send(Msg::ConnectionClosed { conn });
        }
    }
}

/// A SUBSCRIBE call's framework and suppressed roles.
fn parse_subscribe(call: &Value) -> Result<(strata_schema::FrameworkInfo, Vec<String>), V1Error> {
    let subscribe = section(call, "subscribe", true)?.unwrap_or(&Value::Null);
    let mut info = v1::framework_info_from_json(
        v1::required(subscribe, "subscribe", "framework_info")?,
        "subscribe.framework_info",
    )?;
    match (v1::opt_framework_id(call, "", "framework_id")?, &info.id) {
        (Some(call_id), Some(info_id)) if call_id != *info_id => {
            return Err(V1Error {
                field: "framework_id".into(),
                why: format!("{call_id} differs from subscribe.framework_info.id {info_id}"),
            })
        }
        (Some(call_id), None) => info.id = Some(call_id),
        _ => {}
    }
    let suppressed = v1::string_list(subscribe, "subscribe", "suppressed_roles")?;
    check_suppressed(&info, &suppressed, "subscribe.suppressed_roles")?;
    Ok((info, suppressed))
}

/// What [`scheduler`] makes of a body, without the HTTP and the actor around it (the fuzzers'
/// entry, `strata_master::http::fuzzing`): the call's type, or the error a client gets.
pub(crate) fn parse_body(body: &[u8]) -> Result<String, String> {
    let call: Value =
        serde_json::from_slice(body).map_err(|err| format!("the body is not JSON: {err}"))?;
    v1::object(&call, "call").map_err(|e| e.to_string())?;
    let kind = v1::req_str(&call, "", "type").map_err(|e| e.to_string())?;
    if kind == "SUBSCRIBE" {
        parse_subscribe(&call).map_err(|e| e.to_string())?;
    } else {
        let framework_id =
            v1::framework_id(&call, "", "framework_id").map_err(|e| e.to_string())?;
        parse_call(kind, &call, &framework_id).map_err(|e| e.to_string())?;
    }
    Ok(kind.to_string())
}

async fn subscribe(
    api: Api,
    call: &Value,
    (content_type, message_type): (&'static str, Option<&'static str>),
    caller: Caller,
) -> Response {
    let (mut info, suppressed_roles) = match parse_subscribe(call) {
        Ok(parsed) => parsed,
        Err(err) => return bad_request(err),
    };
    if let Err(why) =
        api.auth
            .admit_framework(caller.principal(), api.auth.http_frameworks, &mut info)
    {
        warn!(principal = caller.principal().unwrap_or("<none>"), %why, "scheduler API SUBSCRIBE refused");
        return if caller.principal().is_none() {
            crate::auth::unauthorized(&why)
        } else {
            refuse(StatusCode::FORBIDDEN, why)
        };
    }
    let conn = api.conns.next();
    // Should the client go away before the master answers (this future is then dropped), the
    // master still hears that the connection closed.
    let mut pending = PendingConn {
        actor: api.actor.clone(),
        conn: Some(conn),
    };
    let (link, events) = mpsc::unbounded_channel();
    let (reply, answer) = oneshot::channel();
    if api
        .actor
        .send(Msg::Subscribe {
            conn,
            info,
            link,
            // Mesos: a subscription is suppressed in exactly the listed roles.
            suppressed_roles: Some(suppressed_roles),
            reply,
        })
        .is_err()
    {
        return unavailable();
    }
    let framework_id = match answer.await {
        Ok(Ok(id)) => id,
        Ok(Err(err)) => return call_error(err),
        Err(_) => return unavailable(),
    };
    // From here the stream's guard tells the actor when it ends.
    pending.conn = None;
    let stream_id = uuid::Uuid::new_v4().to_string();
    lock(&api.subscriptions).insert(
        framework_id.clone(),
        Subscription {
            stream_id: stream_id.clone(),
            conn,
            principal: caller.0.clone(),
        },
    );
    info!(%framework_id, %stream_id, conn, "framework subscribed on the scheduler API");
    let guard = StreamGuard {
        actor: api.actor.clone(),
        subscriptions: Arc::clone(&api.subscriptions),
        framework_id,
        stream_id: stream_id.clone(),
        conn,
    };
    let body = futures::stream::unfold((events, guard), |(mut events, guard)| async move {
        let event = events.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(record(&event_json(&event))),
            (events, guard),
        ))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if let Some(message_type) = message_type {
        headers.insert(
            "message-content-type",
            header::HeaderValue::from_static(message_type),
        );
    }
    if let Ok(value) = header::HeaderValue::from_str(&stream_id) {
        headers.insert(STREAM_ID, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}

/// One RecordIO record ([`v1::record`]).
fn record(event: &Value) -> Bytes {
    Bytes::from(v1::record(event))
}

/// Mesos' scheduler `Event` JSON.
fn event_json(event: &SchedulerEvent) -> Value {
    match event {
        SchedulerEvent::Subscribed {
            framework_id,
            heartbeat_interval_secs,
            master,
        } => json!({
            "type": "SUBSCRIBED",
            "subscribed": {
                "framework_id": v1::id_json(framework_id.as_str()),
                "heartbeat_interval_seconds": heartbeat_interval_secs,
                "master_info": v1::master_info_to_json(master),
            },
        }),
        SchedulerEvent::Offers(offers) => json!({
            "type": "OFFERS",
            "offers": {
                "offers": offers.iter().map(|o| v1::offer_to_json_with_dynamic(&v1::OfferJson {
                    id: &o.id,
                    framework_id: &o.framework_id,
                    agent_id: &o.agent_id,
                    hostname: &o.hostname,
                    role: &o.role,
                    resources: &o.resources,
                    attributes: &o.attributes,
                    unavailability: o.unavailability.as_ref().map(|w| (w.start, w.duration)),
                }, &o.dynamic)).collect::<Vec<_>>(),
            },
        }),
        SchedulerEvent::Rescind(offer_id) => json!({
            "type": "RESCIND",
            "rescind": { "offer_id": v1::id_json(offer_id.as_str()) },
        }),
        SchedulerEvent::Update(status) => json!({
            "type": "UPDATE",
            "update": {
                "status": v1::task_status_to_json(&v1::StatusJson::from(status.clone())),
            },
        }),
        SchedulerEvent::Error(message) => json!({
            "type": "ERROR",
            "error": { "message": message },
        }),
        SchedulerEvent::Heartbeat => json!({ "type": "HEARTBEAT" }),
        SchedulerEvent::InverseOffers(offers) => json!({
            "type": "INVERSE_OFFERS",
            "inverse_offers": {
                "inverse_offers": offers.iter().map(|o| {
                    let mut unavailability =
                        json!({ "start": v1::nanos_json(o.unavailability.start) });
                    if let Some(d) = o.unavailability.duration {
                        unavailability["duration"] = v1::nanos_json(d);
                    }
                    json!({
                        "id": v1::id_json(o.id.as_str()),
                        "framework_id": v1::id_json(o.framework_id.as_str()),
                        "agent_id": v1::id_json(o.agent_id.as_str()),
                        "unavailability": unavailability,
                        "resources": [],
                    })
                }).collect::<Vec<_>>(),
            },
        }),
        SchedulerEvent::RescindInverseOffer(offer_id) => json!({
            "type": "RESCIND_INVERSE_OFFER",
            "rescind_inverse_offer": { "inverse_offer_id": v1::id_json(offer_id.as_str()) },
        }),
        SchedulerEvent::Message {
            agent_id,
            executor_id,
            data,
        } => json!({
            "type": "MESSAGE",
            "message": {
                "agent_id": v1::id_json(agent_id.as_str()),
                "executor_id": v1::id_json(executor_id.as_str()),
                "data": v1::encode_bytes(data),
            },
        }),
        SchedulerEvent::Failure {
            agent_id,
            executor_id,
            status,
        } => {
            let mut failure = serde_json::Map::new();
            if let Some(agent) = agent_id {
                failure.insert("agent_id".into(), v1::id_json(agent.as_str()));
            }
            if let Some(executor) = executor_id {
                failure.insert("executor_id".into(), v1::id_json(executor.as_str()));
            }
            if let Some(status) = status {
                failure.insert("status".into(), json!(status));
            }
            json!({ "type": "FAILURE", "failure": failure })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, header::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accept_ranges() {
        assert!(allows(&headers(&[]), "accept", "application/json"));
        assert!(allows(
            &headers(&[("accept", "*/*")]),
            "accept",
            "application/json"
        ));
        assert!(allows(
            &headers(&[("accept", "text/html, application/*;q=0.5")]),
            "accept",
            "application/json"
        ));
        assert!(!allows(
            &headers(&[("accept", "application/json;q=0")]),
            "accept",
            "application/json"
        ));
        assert!(!allows(
            &headers(&[("accept", "text/plain")]),
            "accept",
            "application/json"
        ));
        assert_eq!(
            stream_format(&headers(&[("accept", "application/recordio")])).unwrap(),
            ("application/recordio", Some("application/json"))
        );
        assert!(stream_format(&headers(&[("accept", "application/x-protobuf")])).is_err());
    }

    #[test]
    fn calls_parse_and_errors_name_fields() {
        let fw = FrameworkId::new("f").unwrap();
        let call = json!({"accept": {"offer_ids": [{"value": "o1"}], "operations": [], "filters": {"refuse_seconds": 2}}});
        match parse_call("ACCEPT", &call, &fw).unwrap() {
            Call::Accept {
                offer_ids,
                refuse_seconds,
                ..
            } => {
                assert_eq!(offer_ids[0].as_str(), "o1");
                assert_eq!(refuse_seconds, 2.0);
            }
            _ => panic!("not an accept"),
        }
        let err = parse_call(
            "DECLINE",
            &json!({"decline": {"offer_ids": [{"value": "o1"}, {"value": ""}]}}),
            &fw,
        )
        .err()
        .unwrap();
        assert_eq!(err.field, "decline.offer_ids[1].value");
        let err = parse_call("ACCEPT", &json!({}), &fw).err().unwrap();
        assert_eq!(err.to_string(), "accept: missing");
        let err = parse_call(
            "ACKNOWLEDGE",
            &json!({"acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "AAAA"}}),
            &fw,
        )
        .err()
        .unwrap();
        assert_eq!(err.field, "acknowledge.uuid");
        let err = parse_call("FLY", &json!({}), &fw).err().unwrap();
        assert!(err.why.contains("unknown call type"), "{err}");
        let err = parse_call("REQUEST", &json!({}), &fw).err().unwrap();
        assert!(err.why.contains("not supported"), "{err}");
        assert!(matches!(
            parse_call("RECONCILE", &json!({}), &fw).ok().unwrap(),
            Call::Reconcile { tasks } if tasks.is_empty()
        ));
    }

    #[test]
    fn events_use_mesos_names() {
        let agent = strata_schema::AgentId::new("a").unwrap();
        let executor = strata_schema::ExecutorId::new("e").unwrap();
        let message = event_json(&SchedulerEvent::Message {
            agent_id: agent.clone(),
            executor_id: executor.clone(),
            data: b"hi".to_vec(),
        });
        assert_eq!(
            message,
            json!({"type": "MESSAGE", "message": {
                "agent_id": {"value": "a"}, "executor_id": {"value": "e"}, "data": "aGk="}})
        );
        let failure = event_json(&SchedulerEvent::Failure {
            agent_id: Some(agent),
            executor_id: Some(executor),
            status: Some(9),
        });
        assert_eq!(
            failure,
            json!({"type": "FAILURE", "failure": {
                "agent_id": {"value": "a"}, "executor_id": {"value": "e"}, "status": 9}})
        );
        let error = event_json(&SchedulerEvent::Error("gone".into()));
        assert_eq!(
            error,
            json!({"type": "ERROR", "error": {"message": "gone"}})
        );
        let rescind = event_json(&SchedulerEvent::Rescind(
            strata_schema::OfferId::new("o").unwrap(),
        ));
        assert_eq!(
            rescind,
            json!({"type": "RESCIND", "rescind": {"offer_id": {"value": "o"}}})
        );
    }

    #[test]
    fn records_are_length_prefixed_single_lines() {
        let r = record(&event_json(&SchedulerEvent::Heartbeat));
        assert_eq!(&r[..], b"20\n{\"type\":\"HEARTBEAT\"}");
    }
}
