//! The operator's endpoints for roles, reservations and maintenance, with Mesos' paths and
//! bodies: `/roles`, `/quota`, `/weights`, `/reserve`, `/unreserve`, `/drain`, `/reactivate`,
//! `/machine/down`, `/machine/up` and `/maintenance/status`. Bodies are parsed here so that a
//! bad one gets a 400 naming what is wrong.

use super::{unavailable, Actor};
use crate::actor::{Msg, OperatorCall, View};
use crate::registry::{DrainConfig, MaintenanceWindow, QuotaConfig};
use crate::state::{MachineId, OperatorError};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use strata_schema::{AgentId, FrameworkId, Resource, Resources, Value as ResValue};
use tokio::sync::oneshot;

pub fn routes() -> Router<Actor> {
    Router::new()
        .route("/roles", get(roles))
        .route("/master/roles", get(roles))
        .route("/roles.json", get(roles))
        .route("/quota", get(quota).post(set_quota))
        .route("/master/quota", get(quota).post(set_quota))
        .route("/weights", get(weights).put(set_weights).post(set_weights))
        .route(
            "/master/weights",
            get(weights).put(set_weights).post(set_weights),
        )
        .route("/reserve", post(reserve))
        .route("/master/reserve", post(reserve))
        .route("/unreserve", post(unreserve))
        .route("/master/unreserve", post(unreserve))
        .route("/create-volumes", post(create_volumes))
        .route("/master/create-volumes", post(create_volumes))
        .route("/destroy-volumes", post(destroy_volumes))
        .route("/master/destroy-volumes", post(destroy_volumes))
        .route("/teardown", post(teardown))
        .route("/master/teardown", post(teardown))
        .route("/drain", post(drain))
        .route("/reactivate", post(reactivate))
        .route("/machine/down", post(machine_down))
        .route("/master/machine/down", post(machine_down))
        .route("/machine/up", post(machine_up))
        .route("/master/machine/up", post(machine_up))
        .route("/maintenance/status", get(maintenance))
        .route("/maintenance/schedule", get(schedule).post(set_schedule))
        .route(
            "/master/maintenance/schedule",
            get(schedule).post(set_schedule),
        )
        .route("/master/maintenance/status", get(maintenance))
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

/// Sends `call` to the actor; a change answers `success` once committed.
pub(super) async fn operator(actor: &Actor, call: OperatorCall, success: StatusCode) -> Response {
    match operator_result(actor, call).await {
        Ok(body) => (success, Json(body)).into_response(),
        Err(r) => r,
    }
}

/// Sends `call` to the actor: its answer, or the error response (400, 404, 409, 503).
async fn operator_result(actor: &Actor, call: OperatorCall) -> Result<Value, Response> {
    let (reply, answer) = oneshot::channel();
    if actor.send(Msg::Operator { call, reply }).is_err() {
        return Err(unavailable());
    }
    match answer.await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(err)) => {
            let status = match err {
                OperatorError::Invalid(_) => StatusCode::BAD_REQUEST,
                OperatorError::NotFound(_) => StatusCode::NOT_FOUND,
                OperatorError::Conflict(_) => StatusCode::CONFLICT,
            };
            tracing::warn!(%err, "operator request refused");
            Err((status, Json(json!({ "error": err.to_string() }))).into_response())
        }
        Err(_) => Err(unavailable()),
    }
}

/// A read of roles (`/roles`, `/quota`, `/weights`) without the roles `view_roles` hides from
/// the caller.
async fn role_view(
    actor: &Actor,
    call: OperatorCall,
    auth: &AuthExt,
    caller: &CallerExt,
) -> Response {
    match operator_result(actor, call).await {
        Ok(mut body) => {
            if let Some(auth) = auth {
                let principal = caller.as_ref().and_then(|c| c.principal());
                crate::auth::filter_roles(&auth.acls, principal, &mut body);
            }
            Json(body).into_response()
        }
        Err(r) => r,
    }
}

async fn roles(State(actor): State<Actor>, auth: AuthExt, caller: CallerExt) -> Response {
    role_view(&actor, OperatorCall::Roles, &auth, &caller).await
}

async fn quota(State(actor): State<Actor>, auth: AuthExt, caller: CallerExt) -> Response {
    role_view(&actor, OperatorCall::Quota, &auth, &caller).await
}

async fn weights(State(actor): State<Actor>, auth: AuthExt, caller: CallerExt) -> Response {
    role_view(&actor, OperatorCall::Weights, &auth, &caller).await
}

async fn maintenance(State(actor): State<Actor>) -> Response {
    operator(&actor, OperatorCall::Maintenance, StatusCode::OK).await
}

async fn schedule(State(actor): State<Actor>) -> Response {
    operator(&actor, OperatorCall::Schedule, StatusCode::OK).await
}

async fn set_schedule(State(actor): State<Actor>, body: String) -> Response {
    match json_body(&body).and_then(|v| parse_schedule(&v)) {
        Ok(windows) => operator(&actor, OperatorCall::SetSchedule(windows), StatusCode::OK).await,
        Err(message) => bad_request(message),
    }
}

/// Mesos' maintenance Schedule: `{"windows": [{"machine_ids": [{"hostname": H, "ip": I}],
/// "unavailability": {"start": {"nanoseconds": N}, "duration": {"nanoseconds": N}}}]}`.
pub(crate) fn parse_schedule(v: &Value) -> Result<Vec<MaintenanceWindow>, String> {
    let windows = match v.get("windows") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(w) => w.as_array().ok_or("windows must be a list")?,
    };
    let nanos = |d: Option<&Value>, what: &str| -> Result<Option<f64>, String> {
        match d {
            None | Some(Value::Null) => Ok(None),
            Some(d) => d
                .get("nanoseconds")
                .and_then(Value::as_f64)
                .map(|n| Some(n / 1e9))
                .ok_or_else(|| format!("{what} must be {{\"nanoseconds\": N}}, not {d}")),
        }
    };
    let mut out = Vec::new();
    for w in windows {
        let ids = w
            .get("machine_ids")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("a window has no machine_ids: {w}"))?;
        let mut machines = Vec::new();
        for id in ids {
            let id: MachineId = serde_json::from_value(id.clone())
                .map_err(|e| format!("invalid machine id {id}: {e}"))?;
            if id.hostname.is_empty() {
                return Err(format!(
                    "machine {id:?} has no hostname (agents are matched by hostname)"
                ));
            }
            machines.push(id.hostname);
        }
        let unavailability = w
            .get("unavailability")
            .ok_or_else(|| format!("a window has no unavailability: {w}"))?;
        let start = nanos(unavailability.get("start"), "unavailability.start")?
            .ok_or("unavailability.start is required")?;
        let duration = nanos(unavailability.get("duration"), "unavailability.duration")?;
        out.push(MaintenanceWindow {
            machines,
            start,
            duration,
        });
    }
    Ok(out)
}

fn json_body(body: &str) -> Result<Value, String> {
    if body.trim().is_empty() {
        return Err("the request has no body (expected JSON)".to_string());
    }
    serde_json::from_str(body).map_err(|e| format!("the body is not valid JSON: {e}"))
}

type AuthExt = Option<axum::Extension<crate::auth::SharedAuth>>;
type CallerExt = Option<axum::Extension<crate::auth::Caller>>;

/// Mesos' ACL for an operator endpoint (see [`crate::auth::operator_check`]).
fn acl(
    auth: &AuthExt,
    caller: &CallerExt,
    action: strata_security::acl::Action,
    objects: &[Option<String>],
) -> Result<(), Box<Response>> {
    crate::auth::operator_check(
        auth.as_ref().map(|a| &a.0),
        caller.as_ref().map(|c| &c.0),
        action,
        objects,
    )
}

/// The roles of resources, as ACL objects.
fn resource_roles(resources: &strata_schema::Resources) -> Vec<Option<String>> {
    let mut roles: Vec<Option<String>> = Vec::new();
    for r in resources.iter() {
        if !roles.iter().any(|o| o.as_deref() == Some(r.role.as_str())) {
            roles.push(Some(r.role.clone()));
        }
    }
    roles
}

async fn set_quota(
    State(actor): State<Actor>,
    auth: AuthExt,
    caller: CallerExt,
    body: String,
) -> Response {
    match json_body(&body).and_then(|v| parse_quota(&v)) {
        Ok((role, quota)) => {
            if let Err(denied) = acl(
                &auth,
                &caller,
                strata_security::acl::Action::UpdateQuota,
                &[Some(role.clone())],
            ) {
                return *denied;
            }
            operator(
                &actor,
                OperatorCall::SetQuota { role, quota },
                StatusCode::OK,
            )
            .await
        }
        Err(message) => bad_request(message),
    }
}

async fn set_weights(
    State(actor): State<Actor>,
    auth: AuthExt,
    caller: CallerExt,
    body: String,
) -> Response {
    match json_body(&body).and_then(|v| parse_weights(&v)) {
        Ok(weights) => {
            let roles: Vec<Option<String>> = weights.iter().map(|(r, _)| Some(r.clone())).collect();
            if let Err(denied) = acl(
                &auth,
                &caller,
                strata_security::acl::Action::UpdateWeight,
                &roles,
            ) {
                return *denied;
            }
            operator(&actor, OperatorCall::SetWeights(weights), StatusCode::OK).await
        }
        Err(message) => bad_request(message),
    }
}

async fn reserve(
    State(actor): State<Actor>,
    auth: AuthExt,
    caller: CallerExt,
    headers: HeaderMap,
    body: String,
) -> Response {
    match parse_agent_resources(&headers, &body) {
        Ok((agent_id, resources)) => {
            if let Err(denied) = acl(
                &auth,
                &caller,
                strata_security::acl::Action::ReserveResources,
                &resource_roles(&resources),
            ) {
                return *denied;
            }
            let call = OperatorCall::Reserve {
                agent_id,
                resources,
            };
            operator(&actor, call, StatusCode::ACCEPTED).await
        }
        Err(message) => bad_request(message),
    }
}

async fn unreserve(
    State(actor): State<Actor>,
    auth: AuthExt,
    caller: CallerExt,
    headers: HeaderMap,
    body: String,
) -> Response {
    match parse_agent_resources(&headers, &body) {
        Ok((agent_id, resources)) => {
            if let Err(denied) = acl(
                &auth,
                &caller,
                strata_security::acl::Action::UnreserveResources,
                &Vec::new(),
            ) {
                return *denied;
            }
            let call = OperatorCall::Unreserve {
                agent_id,
                resources,
            };
            operator(&actor, call, StatusCode::ACCEPTED).await
        }
        Err(message) => bad_request(message),
    }
}

async fn create_volumes(
    State(actor): State<Actor>,
    auth: AuthExt,
    caller: CallerExt,
    headers: HeaderMap,
    body: String,
) -> Response {
    match parse_agent_resources(&headers, &body) {
        Ok((agent_id, volumes)) => {
            if let Err(denied) = acl(
                &auth,
                &caller,
                strata_security::acl::Action::CreateVolume,
                &resource_roles(&volumes),
            ) {
                return *denied;
            }
            let call = OperatorCall::CreateVolumes { agent_id, volumes };
            operator(&actor, call, StatusCode::ACCEPTED).await
        }
        Err(message) => bad_request(message),
    }
}

async fn destroy_volumes(
    State(actor): State<Actor>,
    auth: AuthExt,
    caller: CallerExt,
    headers: HeaderMap,
    body: String,
) -> Response {
    match parse_agent_resources(&headers, &body) {
        Ok((agent_id, volumes)) => {
            if let Err(denied) = acl(
                &auth,
                &caller,
                strata_security::acl::Action::DestroyVolume,
                &Vec::new(),
            ) {
                return *denied;
            }
            let call = OperatorCall::DestroyVolumes { agent_id, volumes };
            operator(&actor, call, StatusCode::ACCEPTED).await
        }
        Err(message) => bad_request(message),
    }
}

/// `{"agent_id": ID, "max_grace_period_secs": S or "max_grace_period": {"nanoseconds": N},
/// "mark_gone": B}`.
pub(crate) fn parse_drain(v: &Value) -> Result<(AgentId, DrainConfig), String> {
    let agent_id = agent_id(v)?;
    let grace = match v
        .get("max_grace_period_secs")
        .or_else(|| v.get("max_grace_period"))
    {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        // Mesos' Duration message.
        Some(Value::Object(d)) => match d.get("nanoseconds").and_then(Value::as_f64) {
            Some(ns) => Some(ns / 1e9),
            None => return Err("max_grace_period must be {\"nanoseconds\": N}".to_string()),
        },
        Some(other) => {
            return Err(format!(
                "max_grace_period_secs must be a number of seconds, not {other}"
            ))
        }
    };
    let mark_gone = match v.get("mark_gone") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("mark_gone must be true or false, not {other}")),
    };
    Ok((
        agent_id,
        DrainConfig {
            max_grace_period_secs: grace,
            mark_gone,
        },
    ))
}

async fn drain(State(actor): State<Actor>, body: String) -> Response {
    match json_body(&body).and_then(|v| parse_drain(&v)) {
        Ok((agent_id, config)) => {
            operator(
                &actor,
                OperatorCall::Drain { agent_id, config },
                StatusCode::OK,
            )
            .await
        }
        Err(message) => bad_request(message),
    }
}

/// Mesos' `POST /master/teardown`: the form `frameworkId=<id>` (or JSON `{"framework_id": ..}`)
/// tears the framework down.
async fn teardown(
    State(actor): State<Actor>,
    auth: AuthExt,
    caller: CallerExt,
    body: String,
) -> Response {
    let id = if body.trim_start().starts_with('{') {
        json_body(&body).and_then(|v| {
            v.get("framework_id")
                .map(|id| id.get("value").unwrap_or(id))
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| "the body names no framework_id".to_string())
        })
    } else {
        form_urlencoded::parse(body.as_bytes())
            .find(|(key, _)| key == "frameworkId" || key == "framework_id")
            .map(|(_, value)| value.into_owned())
            .ok_or_else(|| "the form names no frameworkId".to_string())
    };
    match id.and_then(|id| FrameworkId::new(&id).map_err(|e| format!("invalid frameworkId: {e}"))) {
        Ok(id) => {
            teardown_framework(
                &actor,
                auth.as_ref().map(|a| &a.0),
                caller.as_ref().map(|c| &c.0),
                id,
            )
            .await
        }
        Err(message) => bad_request(message),
    }
}

/// Tears a framework down if `teardown_frameworks` lets the caller, judged on the framework's
/// principal (Mesos' `framework_principals`; a framework without one is judged as any).
pub(super) async fn teardown_framework(
    actor: &Actor,
    auth: Option<&crate::auth::SharedAuth>,
    caller: Option<&crate::auth::Caller>,
    id: FrameworkId,
) -> Response {
    if auth.is_some() {
        let principal =
            match super::v0::view(actor, View::Frameworks(Some(id.as_str().to_string()))).await {
                Ok(v) => framework_principal(&v, id.as_str()),
                Err(r) => return r,
            };
        if let Err(denied) = crate::auth::operator_check(
            auth,
            caller,
            strata_security::acl::Action::TeardownFramework,
            &[principal],
        ) {
            return *denied;
        }
    }
    operator(actor, OperatorCall::Teardown(id), StatusCode::OK).await
}

/// The principal of framework `id` in a `/frameworks` answer.
fn framework_principal(frameworks: &Value, id: &str) -> Option<String> {
    frameworks["frameworks"]
        .as_array()?
        .iter()
        .find(|f| f["id"] == id)?
        .get("principal")?
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

async fn reactivate(State(actor): State<Actor>, body: String) -> Response {
    match json_body(&body).and_then(|v| agent_id(&v)) {
        Ok(agent_id) => {
            operator(
                &actor,
                OperatorCall::Reactivate { agent_id },
                StatusCode::OK,
            )
            .await
        }
        Err(message) => bad_request(message),
    }
}

async fn machine_down(State(actor): State<Actor>, body: String) -> Response {
    match json_body(&body).and_then(machines) {
        Ok(m) => operator(&actor, OperatorCall::MachinesDown(m), StatusCode::OK).await,
        Err(message) => bad_request(message),
    }
}

async fn machine_up(State(actor): State<Actor>, body: String) -> Response {
    match json_body(&body).and_then(machines) {
        Ok(m) => operator(&actor, OperatorCall::MachinesUp(m), StatusCode::OK).await,
        Err(message) => bad_request(message),
    }
}

fn machines(v: Value) -> Result<Vec<MachineId>, String> {
    serde_json::from_value(v).map_err(|e| {
        format!("expected a list of machines, [{{\"hostname\": \"h\", \"ip\": \"10.0.0.1\"}}]: {e}")
    })
}

fn agent_id(v: &Value) -> Result<AgentId, String> {
    let text = v
        .get("agent_id")
        .or_else(|| v.get("slave_id"))
        .map(|id| id.get("value").unwrap_or(id))
        .and_then(Value::as_str)
        .ok_or("the body names no agent_id")?;
    AgentId::new(text).map_err(|e| format!("invalid agent_id: {e}"))
}

/// `{"role": R, "guarantees": {...}, "limits": {...}}` (Mesos 1.9's QuotaConfig, also inside
/// `{"quota_configs": [..]}`), or the older QuotaRequest `{"role": R, "guarantee": [Resource]}`,
/// which sets guarantee and limit alike.
pub(crate) fn parse_quota(v: &Value) -> Result<(String, QuotaConfig), String> {
    let v = match v.get("quota_configs").and_then(Value::as_array) {
        Some(configs) if configs.len() == 1 => &configs[0],
        Some(_) => return Err("quota_configs must hold exactly one config here".to_string()),
        None => v,
    };
    let role = v
        .get("role")
        .and_then(Value::as_str)
        .ok_or("the quota names no role")?
        .to_string();
    if let Some(old) = v.get("guarantee") {
        let guarantee = mesos_resources(old).map_err(|e| format!("guarantee: {e}"))?;
        return Ok((
            role,
            QuotaConfig {
                guarantees: guarantee.clone(),
                limits: guarantee,
            },
        ));
    }
    let guarantees = quantities(v.get("guarantees")).map_err(|e| format!("guarantees: {e}"))?;
    let limits = quantities(v.get("limits")).map_err(|e| format!("limits: {e}"))?;
    Ok((role, QuotaConfig { guarantees, limits }))
}

/// `{"cpus": {"value": 2}, "mem": 1024}`: scalar quantities.
fn quantities(v: Option<&Value>) -> Result<Resources, String> {
    let Some(v) = v else {
        return Ok(Resources::new());
    };
    if v.is_null() {
        return Ok(Resources::new());
    }
    let object = v
        .as_object()
        .ok_or_else(|| format!("expected {{\"name\": {{\"value\": N}}}}, not {v}"))?;
    let mut items = Vec::new();
    for (name, q) in object {
        let value = q
            .get("value")
            .unwrap_or(q)
            .as_f64()
            .ok_or_else(|| format!("{name:?} must be a number or {{\"value\": N}}, not {q}"))?;
        items.push(Resource {
            name: name.clone(),
            role: strata_schema::DEFAULT_ROLE.to_string(),
            value: ResValue::Scalar(value),
            disk: None,
        });
    }
    Resources::from_vec(items).map_err(|e| e.to_string())
}

/// `[{"role": "eng", "weight": 2.0}]`.
pub(crate) fn parse_weights(v: &Value) -> Result<Vec<(String, f64)>, String> {
    let list = v
        .as_array()
        .ok_or("expected a list of weights, [{\"role\": \"eng\", \"weight\": 2.0}]")?;
    let mut out = Vec::new();
    for item in list {
        let role = item
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a weight names no role: {item}"))?;
        let weight = item
            .get("weight")
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("the weight of role {role:?} is not a number: {item}"))?;
        out.push((role.to_string(), weight));
    }
    if out.is_empty() {
        return Err("no weights were given".to_string());
    }
    Ok(out)
}

/// Mesos' JSON resources ([`Resources::from_mesos_json`]), or the resource text syntax as a
/// string: `"cpus(ops):1;mem(ops):512"`.
pub(crate) fn mesos_resources(v: &Value) -> Result<Resources, String> {
    match v.as_str() {
        Some(text) => Resources::parse(text).map_err(|e| e.to_string()),
        None => Resources::from_mesos_json(v).map_err(|e| e.to_string()),
    }
}

/// What the operator endpoints make of a body, without the HTTP and the actor around them (the
/// fuzzers' entry, `strata_master::http::fuzzing`): `endpoint` picks one of the eight parsers.
pub(crate) fn parse_body(endpoint: u8, body: &str) -> Result<(), String> {
    match endpoint % 8 {
        0 => json_body(body).and_then(|v| parse_schedule(&v)).map(drop),
        1 => json_body(body).and_then(|v| parse_quota(&v)).map(drop),
        2 => json_body(body).and_then(|v| parse_weights(&v)).map(drop),
        3 => json_body(body).and_then(|v| parse_drain(&v)).map(drop),
        4 => json_body(body).and_then(|v| agent_id(&v)).map(drop),
        5 => json_body(body).and_then(machines).map(drop),
        6 => parse_agent_resources(&HeaderMap::new(), body).map(drop),
        _ => {
            let mut headers = HeaderMap::new();
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            parse_agent_resources(&headers, body).map(drop)
        }
    }
}

/// The agent and resources of `/reserve` and `/unreserve`: JSON `{"agent_id": ID, "resources":
/// [..] or "text"}`, or Mesos' form `slaveId=ID&resources=JSON`.
fn parse_agent_resources(headers: &HeaderMap, body: &str) -> Result<(AgentId, Resources), String> {
    let form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form || (!body.trim_start().starts_with('{') && body.contains('=')) {
        let mut agent = None;
        let mut resources = None;
        for (key, value) in form_urlencoded::parse(body.as_bytes()) {
            match key.as_ref() {
                "slaveId" | "agentId" | "agent_id" => agent = Some(value.into_owned()),
                "resources" | "volumes" => resources = Some(value.into_owned()),
                _ => {}
            }
        }
        let agent = agent.ok_or("the form names no slaveId")?;
        let resources = resources.ok_or("the form has no resources")?;
        let value = serde_json::from_str(&resources).unwrap_or(Value::String(resources));
        return Ok((
            AgentId::new(&agent).map_err(|e| format!("invalid slaveId: {e}"))?,
            mesos_resources(&value).map_err(|e| format!("resources: {e}"))?,
        ));
    }
    if body.trim().is_empty() {
        return Err(
            "the request has no body (expected {\"agent_id\": .., \"resources\": ..})".to_string(),
        );
    }
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let agent = agent_id(&v)?;
    let resources = v
        .get("resources")
        .or_else(|| v.get("volumes"))
        .ok_or("the body has no resources")?;
    Ok((
        agent,
        mesos_resources(resources).map_err(|e| format!("resources: {e}"))?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quota_bodies_in_both_mesos_shapes() {
        let (role, q) = parse_quota(&json!({"role": "eng", "guarantees": {"cpus": {"value": 2}}, "limits": {"cpus": 4, "mem": {"value": 1024}}})).unwrap();
        assert_eq!(role, "eng");
        assert_eq!(q.guarantees, Resources::parse("cpus:2").unwrap());
        assert_eq!(q.limits, Resources::parse("cpus:4;mem:1024").unwrap());
        let (_, q) = parse_quota(&json!({"quota_configs": [{"role": "a/b"}]})).unwrap();
        assert!(q.guarantees.is_empty() && q.limits.is_empty());
        let (_, q) = parse_quota(&json!({"role": "eng", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]})).unwrap();
        assert_eq!(q.guarantees, q.limits);
        let err = parse_quota(&json!({"guarantees": {}})).unwrap_err();
        assert!(err.contains("no role"), "{err}");
        let err = parse_quota(&json!({"role": "eng", "limits": {"cpus": "lots"}})).unwrap_err();
        assert!(err.contains("limits: \"cpus\" must be a number"), "{err}");
    }

    #[test]
    fn drain_bodies() {
        let (agent, config) = parse_drain(&json!({"agent_id": {"value": "a-S1"}, "max_grace_period": {"nanoseconds": 2_500_000_000u64}, "mark_gone": true})).unwrap();
        assert_eq!(agent.as_str(), "a-S1");
        assert_eq!(config.max_grace_period_secs, Some(2.5));
        assert!(config.mark_gone);
        let err = parse_drain(&json!({"agent_id": "a", "mark_gone": "yes"})).unwrap_err();
        assert!(err.contains("mark_gone"), "{err}");
        let err = parse_drain(&json!({"max_grace_period_secs": 1})).unwrap_err();
        assert!(err.contains("agent_id"), "{err}");
    }

    #[test]
    fn schedule_bodies() {
        let windows = parse_schedule(&json!({"windows": [{
            "machine_ids": [{"hostname": "h1", "ip": "10.0.0.1"}, {"hostname": "h2"}],
            "unavailability": {"start": {"nanoseconds": 1_500_000_000u64}, "duration": {"nanoseconds": 3_600_000_000_000u64}}
        }]}))
        .unwrap();
        assert_eq!(windows[0].machines, ["h1", "h2"]);
        assert_eq!(windows[0].start, 1.5);
        assert_eq!(windows[0].duration, Some(3600.0));
        assert!(parse_schedule(&json!({})).unwrap().is_empty());
        let err = parse_schedule(&json!({"windows": [{"machine_ids": [{"ip": "1.2.3.4"}], "unavailability": {"start": {"nanoseconds": 1}}}]})).unwrap_err();
        assert!(err.contains("no hostname"), "{err}");
        let err = parse_schedule(&json!({"windows": [{"machine_ids": [{"hostname": "h"}], "unavailability": {"start": 5}}]})).unwrap_err();
        assert!(err.contains("nanoseconds"), "{err}");
    }

    #[test]
    fn weights_bodies() {
        assert_eq!(
            parse_weights(&json!([{"role": "eng", "weight": 2.5}])).unwrap(),
            [("eng".to_string(), 2.5)]
        );
        assert!(parse_weights(&json!({"role": "eng"})).is_err());
        assert!(parse_weights(&json!([{"role": "eng", "weight": "x"}]))
            .unwrap_err()
            .contains("not a number"));
    }

    #[test]
    fn resources_in_mesos_json_and_text() {
        let json = json!([
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}, "role": "ops"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}, "reservations": [{"type": "DYNAMIC", "role": "ops"}]},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31001}]}, "role": "ops"}
        ]);
        assert_eq!(
            mesos_resources(&json).unwrap(),
            Resources::parse("cpus(ops):2;mem(ops):512;ports(ops):[31000-31001]").unwrap()
        );
        assert_eq!(
            mesos_resources(&json!("cpus(ops):1")).unwrap(),
            Resources::parse("cpus(ops):1").unwrap()
        );
        let err = mesos_resources(&json!([{"name": "cpus", "type": "TEXT"}])).unwrap_err();
        assert!(err.contains("unknown type"), "{err}");
    }

    #[test]
    fn reserve_bodies_as_json_or_form() {
        let headers = HeaderMap::new();
        let (agent, res) = parse_agent_resources(
            &headers,
            r#"{"agent_id": "a-S1", "resources": "cpus(ops):1"}"#,
        )
        .unwrap();
        assert_eq!(agent.as_str(), "a-S1");
        assert_eq!(res, Resources::parse("cpus(ops):1").unwrap());
        let form = "slaveId=a-S2&resources=%5B%7B%22name%22%3A%22cpus%22%2C%22type%22%3A%22SCALAR%22%2C%22scalar%22%3A%7B%22value%22%3A1%7D%2C%22role%22%3A%22ops%22%7D%5D";
        let (agent, res) = parse_agent_resources(&headers, form).unwrap();
        assert_eq!(agent.as_str(), "a-S2");
        assert_eq!(res, Resources::parse("cpus(ops):1").unwrap());
        assert!(parse_agent_resources(&headers, "")
            .unwrap_err()
            .contains("no body"));
        assert!(
            parse_agent_resources(&headers, r#"{"resources": "cpus(ops):1"}"#)
                .unwrap_err()
                .contains("agent_id")
        );
    }
}
