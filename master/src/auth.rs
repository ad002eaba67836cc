//! Who is calling, and may they: the master's authentication (HTTP Basic against
//! `--credentials`, HTTP Bearer tokens signed with `--jwt-secret-key`, the `credential` of a
//! Cap'n Proto subscribe) and the authorization helpers around Mesos' ACLs (`--acls`).
//!
//! The HTTP side is one axum middleware ([`authenticate`]): it resolves the caller's principal,
//! answers 401 (with `WWW-Authenticate`) when credentials are wrong, or missing where the
//! `--authenticate-http-*` flags require them, applies `get_endpoints` to Mesos' guarded paths,
//! and hands the principal to the handlers as a [`Caller`] extension. Decisions that need the
//! state (registering with a role, running a task as a user) are made by `state::Master` with
//! the same [`Acls`].

use crate::MasterConfig;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use std::sync::Arc;
use strata_schema::FrameworkInfo;
use strata_security::acl::{Acls, Action, Decision};
use strata_security::authn::Verifier;
use strata_security::credentials::Credentials;
use strata_security::token::TokenKey;

/// The master's authentication and authorization settings.
#[derive(Debug, Default)]
pub struct Auth {
    pub credentials: Option<Credentials>,
    pub token_key: Option<TokenKey>,
    pub acls: Arc<Acls>,
    /// `--authenticate-frameworks` (Cap'n Proto subscribe).
    pub frameworks: bool,
    pub http_readonly: bool,
    pub http_readwrite: bool,
    pub http_frameworks: bool,
}

pub type SharedAuth = Arc<Auth>;

/// The principal an HTTP request authenticated as (`None`: no credentials were given).
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<String>);

impl Caller {
    pub fn principal(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// The paths Mesos guards with `get_endpoints` (docs/authorization.md: "/files/debug",
/// "/logging/toggle", "/metrics/snapshot", "/containers", "/monitor/statistics" and the
/// flags endpoints).
const ENDPOINT_ACL_PATHS: &[&str] = &[
    "/flags",
    "/master/flags",
    "/metrics/snapshot",
    "/logging/toggle",
    "/files/debug",
    "/containers",
    "/monitor/statistics",
];

impl Auth {
    /// Reads the files the flags name.
    pub fn from_config(config: &MasterConfig) -> Result<Self, String> {
        let strata_security::authn::AuthFiles {
            credentials,
            token_key,
            acls,
        } = strata_security::authn::AuthFiles::load(
            config.credentials.as_deref(),
            config.jwt_secret_key.as_deref(),
            config.acls.as_deref(),
        )?;
        let auth = Auth {
            credentials,
            token_key,
            acls: Arc::new(acls),
            frameworks: config.authenticate_frameworks,
            http_readonly: config.authenticate_http_readonly,
            http_readwrite: config.authenticate_http_readwrite,
            http_frameworks: config.authenticate_http_frameworks,
        };
        let http = auth.http_readonly || auth.http_readwrite || auth.http_frameworks;
        if http && auth.credentials.is_none() && auth.token_key.is_none() {
            return Err("--authenticate-http-* needs --credentials or --jwt-secret-key".into());
        }
        if auth.frameworks && auth.credentials.is_none() {
            return Err("--authenticate-frameworks needs --credentials".into());
        }
        Ok(auth)
    }

    /// Whether `principal`/`secret` is a known credential.
    pub fn verify_credential(&self, principal: &str, secret: &str) -> bool {
        self.credentials
            .as_ref()
            .is_some_and(|c| c.verify(principal, secret))
    }

    /// What HTTP callers are authenticated against.
    pub fn verifier(&self) -> Verifier<'_> {
        Verifier {
            credentials: self.credentials.as_ref(),
            token_key: self.token_key.as_ref(),
        }
    }

    /// The principal an `Authorization` header proves (see [`Verifier::principal_of`]).
    pub fn principal_of(&self, headers: &HeaderMap) -> Result<Option<String>, String> {
        self.verifier().principal_of(headers)
    }

    /// Authenticates a framework's subscription and fills or checks its principal: with a
    /// proven principal, `framework_info.principal` must be it (or empty: then it is set);
    /// without one, `required` refuses.
    pub fn admit_framework(
        &self,
        authenticated: Option<&str>,
        required: bool,
        info: &mut FrameworkInfo,
    ) -> Result<(), String> {
        match authenticated {
            None if required => {
                Err("framework authentication is required: subscribe with a credential".to_string())
            }
            None => Ok(()),
            Some(p) => match info.principal.as_deref() {
                None | Some("") => {
                    info.principal = Some(p.to_string());
                    Ok(())
                }
                Some(given) if given == p => Ok(()),
                Some(given) => Err(format!(
                    "framework_info.principal {given:?} is not the authenticated principal {p:?}"
                )),
            },
        }
    }

    /// Authorizes `action` on `object` for `caller`; a denial is logged.
    pub fn check(&self, caller: Option<&str>, action: Action, object: Option<&str>) -> Decision {
        let decision = self.acls.authorize(caller, action, object);
        if !decision.allowed {
            denied(caller, &decision, object);
        }
        decision
    }
}

pub use strata_security::authn::{denied, forbidden, unauthorized};

/// An operator action on `objects` (each role, or `None` for the action as a whole), for
/// handlers: the first object denied answers 403 naming the rule. Without an [`Auth`] (a router
/// built without one) everything is allowed.
pub fn operator_check(
    auth: Option<&SharedAuth>,
    caller: Option<&Caller>,
    action: Action,
    objects: &[Option<String>],
) -> Result<(), Box<Response>> {
    let Some(auth) = auth else {
        return Ok(());
    };
    let principal = caller.and_then(Caller::principal);
    let all = [None];
    let objects = if objects.is_empty() {
        &all[..]
    } else {
        objects
    };
    for object in objects {
        let decision = auth.check(principal, action, object.as_deref());
        if !decision.allowed {
            return Err(Box::new(forbidden(&decision, object.as_deref())));
        }
    }
    Ok(())
}

/// Every string under a `role` key in `value` (Mesos' JSON: `role`, `reservations[].role`,
/// `weight_infos[].role`, `quota_configs[].role`), deduplicated.
pub fn roles_in(value: &Value) -> Vec<Option<String>> {
    fn walk(v: &Value, out: &mut Vec<Option<String>>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("role", Value::String(r)) => {
                            if !out.iter().any(|o| o.as_deref() == Some(r)) {
                                out.push(Some(r.clone()));
                            }
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(list) => list.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}

/// The v1 operator calls the ACLs govern: the action and its objects.
pub fn v1_operator_action(kind: &str, inner: &Value) -> Option<(Action, Vec<Option<String>>)> {
    Some(match kind {
        "UPDATE_WEIGHTS" => (Action::UpdateWeight, roles_in(inner)),
        "UPDATE_QUOTA" => (Action::UpdateQuota, roles_in(inner)),
        "GET_QUOTA" => (Action::GetQuota, Vec::new()),
        "RESERVE_RESOURCES" => (Action::ReserveResources, roles_in(inner)),
        "UNRESERVE_RESOURCES" => (Action::UnreserveResources, Vec::new()),
        "CREATE_VOLUMES" => (Action::CreateVolume, roles_in(inner)),
        "DESTROY_VOLUMES" => (Action::DestroyVolume, Vec::new()),
        // TEARDOWN: `http::operator::teardown_framework` (the object is the framework's principal).
        "GET_FLAGS" => (Action::ViewFlags, Vec::new()),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Open,
    ReadOnly,
    ReadWrite,
    Framework,
}

fn classify(method: &Method, path: &str) -> Class {
    match path {
        "/health" | "/master/health" | "/version" => Class::Open,
        "/api/v1/scheduler" => Class::Framework,
        _ if path.starts_with("/api/v1") => Class::ReadWrite,
        _ if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS => {
            Class::ReadOnly
        }
        _ => Class::ReadWrite,
    }
}

/// The HTTP middleware: resolves the [`Caller`], refuses with 401 / 403.
pub async fn authenticate(
    State(auth): State<SharedAuth>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let class = classify(request.method(), &path);
    if class == Class::Open {
        request.extensions_mut().insert(Caller(None));
        return next.run(request).await;
    }
    let required = match class {
        Class::Open => false,
        Class::ReadOnly => auth.http_readonly,
        Class::ReadWrite => auth.http_readwrite,
        Class::Framework => auth.http_frameworks,
    };
    let principal = match auth.verifier().caller(request.headers(), &path, required) {
        Ok(p) => p,
        Err(refusal) => return *refusal,
    };
    if ENDPOINT_ACL_PATHS.contains(&path.as_str()) {
        let decision = auth.check(principal.as_deref(), Action::GetEndpoint, Some(&path));
        if !decision.allowed {
            return forbidden(&decision, Some(&path));
        }
    }
    request.extensions_mut().insert(Caller(principal));
    next.run(request).await
}

/// Leaves out of a `/state`-shaped answer the frameworks (`view_frameworks`) and tasks
/// (`view_tasks`, by the framework's user as Mesos falls back to) `principal` may not view.
/// Answers `None` when nothing needs filtering (the text is sent as it is).
pub fn filter_view(acls: &Acls, principal: Option<&str>, text: &str) -> Option<String> {
    if !filters_views(acls) {
        return None;
    }
    let mut value: Value = serde_json::from_str(text).ok()?;
    filter_value(acls, principal, &mut value);
    serde_json::to_string(&value).ok()
}

/// Whether `acls` may leave frameworks or tasks out of what a caller sees.
pub fn filters_views(acls: &Acls) -> bool {
    !acls.permissive() || acls.has_rules(Action::ViewFramework) || acls.has_rules(Action::ViewTask)
}

/// [`filter_view`] on a parsed answer (also used for v0 `/frameworks` and `/tasks`).
pub fn filter_value(acls: &Acls, principal: Option<&str>, value: &mut Value) {
    let Some(top) = value.as_object_mut() else {
        return;
    };
    // Framework id -> user, for top-level task lists.
    let mut users = std::collections::HashMap::new();
    for key in [
        "frameworks",
        "completed_frameworks",
        "unregistered_frameworks",
    ] {
        let Some(Value::Array(list)) = top.get_mut(key) else {
            continue;
        };
        list.retain_mut(|fw| {
            let user = fw
                .get("user")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(id) = fw.get("id").and_then(Value::as_str) {
                users.insert(id.to_string(), user.clone());
            }
            if !acls.allowed(principal, Action::ViewFramework, Some(&user)) {
                return false;
            }
            if !acls.allowed(principal, Action::ViewTask, Some(&user)) {
                for tasks in [
                    "tasks",
                    "completed_tasks",
                    "unreachable_tasks",
                    "pending_tasks",
                ] {
                    if let Some(Value::Array(t)) = fw.get_mut(tasks) {
                        t.clear();
                    }
                }
            }
            true
        });
    }
    for key in [
        "tasks",
        "completed_tasks",
        "orphan_tasks",
        "unreachable_tasks",
    ] {
        let Some(Value::Array(list)) = top.get_mut(key) else {
            continue;
        };
        list.retain(|task| {
            let fw = task
                .get("framework_id")
                .and_then(Value::as_str)
                .unwrap_or("");
            let user = users.get(fw).map(String::as_str).unwrap_or("");
            acls.allowed(principal, Action::ViewTask, Some(user))
                && acls.allowed(principal, Action::ViewFramework, Some(user))
        });
    }
}

/// `view_roles`: leaves out of a roles, quota or weights answer (v0 or v1) the entries of roles
/// `principal` may not view: objects naming their `role`, and in a `roles` list their `name`.
pub fn filter_roles(acls: &Acls, principal: Option<&str>, value: &mut Value) {
    if acls.permissive() && !acls.has_rules(Action::ViewRole) {
        return;
    }
    fn walk(v: &mut Value, in_roles: bool, acls: &Acls, principal: Option<&str>) {
        match v {
            Value::Array(list) => {
                list.retain(|entry| {
                    let role = entry.get("role").and_then(Value::as_str).or_else(|| {
                        in_roles
                            .then(|| entry.get("name").and_then(Value::as_str))
                            .flatten()
                    });
                    role.is_none_or(|r| acls.allowed(principal, Action::ViewRole, Some(r)))
                });
                list.iter_mut()
                    .for_each(|e| walk(e, false, acls, principal));
            }
            Value::Object(map) => map
                .iter_mut()
                .for_each(|(key, child)| walk(child, key == "roles", acls, principal)),
            _ => {}
        }
    }
    walk(value, false, acls, principal);
}

/// [`filter_value`] for the v1 operator API's answers (GET_STATE, GET_FRAMEWORKS, GET_TASKS):
/// frameworks are `{"framework_info": {"id": {"value"}, "user"}}`, tasks name
/// `framework_id.value`; a task whose framework is not in the same answer is judged by the user
/// `""`.
pub fn filter_v1(acls: &Acls, principal: Option<&str>, value: &mut Value) {
    if acls.permissive()
        && !acls.has_rules(Action::ViewFramework)
        && !acls.has_rules(Action::ViewTask)
    {
        return;
    }
    fn users(v: &Value, out: &mut std::collections::HashMap<String, String>) {
        match v {
            Value::Object(map) => {
                if let Some(info) = map.get("framework_info") {
                    if let Some(id) = info["id"]["value"].as_str() {
                        let user = info["user"].as_str().unwrap_or("").to_string();
                        out.insert(id.to_string(), user);
                    }
                }
                map.values().for_each(|v| users(v, out));
            }
            Value::Array(list) => list.iter().for_each(|v| users(v, out)),
            _ => {}
        }
    }
    fn filter(
        v: &mut Value,
        acls: &Acls,
        principal: Option<&str>,
        users: &std::collections::HashMap<String, String>,
    ) {
        match v {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    if let Value::Array(list) = child {
                        match key.as_str() {
                            "frameworks" | "completed_frameworks" | "recovered_frameworks" => {
                                list.retain(|f| {
                                    let user = f["framework_info"]["user"].as_str().unwrap_or("");
                                    acls.allowed(principal, Action::ViewFramework, Some(user))
                                });
                            }
                            "tasks" | "completed_tasks" | "orphan_tasks" | "unreachable_tasks"
                            | "pending_tasks" => {
                                list.retain(|t| {
                                    let fw = t["framework_id"]["value"].as_str().unwrap_or("");
                                    let user = users.get(fw).map(String::as_str).unwrap_or("");
                                    acls.allowed(principal, Action::ViewTask, Some(user))
                                        && acls.allowed(
                                            principal,
                                            Action::ViewFramework,
                                            Some(user),
                                        )
                                });
                            }
                            _ => {}
                        }
                    }
                    filter(child, acls, principal, users);
                }
            }
            Value::Array(list) => list
                .iter_mut()
                .for_each(|v| filter(v, acls, principal, users)),
            _ => {}
        }
    }
    let mut map = std::collections::HashMap::new();
    users(value, &mut map);
    filter(value, acls, principal, &map);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::{header, HeaderValue, StatusCode};
    use base64::Engine;
    use serde_json::json;
    use std::path::Path;

    fn auth() -> Auth {
        Auth {
            credentials: Some(Credentials::parse(Path::new("c"), "ops secret\n").unwrap()),
            token_key: Some(TokenKey::new(b"k")),
            ..Auth::default()
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn basic_and_bearer_resolve_principals() {
        let a = auth();
        let basic = base64::engine::general_purpose::STANDARD.encode("ops:secret");
        assert_eq!(
            a.principal_of(&headers(&format!("Basic {basic}"))).unwrap(),
            Some("ops".into())
        );
        let wrong = base64::engine::general_purpose::STANDARD.encode("ops:nope");
        assert!(a.principal_of(&headers(&format!("Basic {wrong}"))).is_err());
        let token = TokenKey::new(b"k").mint(&strata_security::token::Claims::principal("t", 60));
        assert_eq!(
            a.principal_of(&headers(&format!("Bearer {token}")))
                .unwrap(),
            Some("t".into())
        );
        let other = TokenKey::new(b"x").mint(&strata_security::token::Claims::principal("t", 60));
        assert!(a
            .principal_of(&headers(&format!("Bearer {other}")))
            .is_err());
        assert_eq!(a.principal_of(&HeaderMap::new()).unwrap(), None);
        assert!(a.principal_of(&headers("Digest x")).is_err());
    }

    #[test]
    fn framework_principal_is_filled_or_checked() {
        let a = auth();
        let mut info = FrameworkInfo::default();
        a.admit_framework(Some("ops"), true, &mut info).unwrap();
        assert_eq!(info.principal.as_deref(), Some("ops"));
        let err = a.admit_framework(Some("dev"), true, &mut info).unwrap_err();
        assert!(err.contains("\"ops\"") && err.contains("\"dev\""), "{err}");
        let mut anon = FrameworkInfo::default();
        assert!(a.admit_framework(None, true, &mut anon).is_err());
        assert!(a.admit_framework(None, false, &mut anon).is_ok());
    }

    #[test]
    fn operator_calls_name_their_roles() {
        let inner =
            json!({"weight_infos": [{"role": "a", "weight": 2.0}, {"role": "b", "weight": 1.0}]});
        let (action, roles) = v1_operator_action("UPDATE_WEIGHTS", &inner).unwrap();
        assert_eq!(action, Action::UpdateWeight);
        assert_eq!(roles, vec![Some("a".to_string()), Some("b".to_string())]);
        let inner = json!({"resources": [{"name": "cpus", "reservations": [{"role": "r"}]}]});
        assert_eq!(
            v1_operator_action("RESERVE_RESOURCES", &inner).unwrap().1,
            vec![Some("r".to_string())]
        );
        assert!(v1_operator_action("GET_STATE", &inner).is_none());
        let acls = Acls::parse(
            Path::new("a"),
            r#"{"update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}},
                                   {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}]}"#,
        )
        .unwrap();
        let auth = Arc::new(Auth {
            acls: Arc::new(acls),
            ..Auth::default()
        });
        let roles = vec![Some("a".to_string())];
        let ops = Caller(Some("ops".into()));
        let dev = Caller(Some("dev".into()));
        assert!(operator_check(Some(&auth), Some(&ops), Action::UpdateWeight, &roles).is_ok());
        let denied =
            operator_check(Some(&auth), Some(&dev), Action::UpdateWeight, &roles).unwrap_err();
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        assert!(operator_check(None, Some(&dev), Action::UpdateWeight, &roles).is_ok());
    }

    #[test]
    fn classes() {
        assert_eq!(classify(&Method::GET, "/health"), Class::Open);
        assert_eq!(classify(&Method::GET, "/state"), Class::ReadOnly);
        assert_eq!(classify(&Method::POST, "/reserve"), Class::ReadWrite);
        assert_eq!(classify(&Method::POST, "/api/v1"), Class::ReadWrite);
        assert_eq!(
            classify(&Method::POST, "/api/v1/scheduler"),
            Class::Framework
        );
    }

    #[test]
    fn roles_are_filtered_by_view_roles() {
        let acls = Acls::parse(
            Path::new("a"),
            r#"{"view_roles": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}},
                               {"principals": {"type": "ANY"}, "roles": {"values": ["web"]}},
                               {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}]}"#,
        )
        .unwrap();
        let answer = json!({
            "roles": [{"name": "web", "weight": 1.0}, {"name": "db", "weight": 2.0}],
            "infos": [{"role": "web"}, {"role": "db"}],
            "weights": [{"role": "db", "weight": 2.0}]
        });
        let mut bob = answer.clone();
        filter_roles(&acls, Some("bob"), &mut bob);
        assert_eq!(bob["roles"], json!([{"name": "web", "weight": 1.0}]));
        assert_eq!(bob["infos"], json!([{"role": "web"}]));
        assert_eq!(bob["weights"], json!([]));
        let mut ops = answer.clone();
        filter_roles(&acls, Some("ops"), &mut ops);
        assert_eq!(ops, answer);
        // Without view_roles rules (permissive), nothing is left out.
        let mut all = answer.clone();
        filter_roles(&Acls::default(), None, &mut all);
        assert_eq!(all, answer);
    }

    #[test]
    fn state_is_filtered_by_view_acls() {
        let acls = Acls::parse(
            Path::new("a"),
            r#"{"view_frameworks": [{"principals": {"values": ["alice"]}, "users": {"values": ["alice"]}},
                                    {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]}"#,
        )
        .unwrap();
        let state = json!({
            "frameworks": [
                {"id": "f1", "user": "alice", "tasks": [{"id": "t1"}]},
                {"id": "f2", "user": "bob", "tasks": [{"id": "t2"}]}
            ],
            "tasks": [{"id": "t1", "framework_id": "f1"}, {"id": "t2", "framework_id": "f2"}]
        })
        .to_string();
        let out: Value =
            serde_json::from_str(&filter_view(&acls, Some("alice"), &state).unwrap()).unwrap();
        assert_eq!(out["frameworks"].as_array().unwrap().len(), 1);
        assert_eq!(out["frameworks"][0]["id"], "f1");
        assert_eq!(out["tasks"].as_array().unwrap().len(), 1);
        let out: Value =
            serde_json::from_str(&filter_view(&acls, Some("bob"), &state).unwrap()).unwrap();
        assert_eq!(out["frameworks"].as_array().unwrap().len(), 0);
        assert!(filter_view(&Acls::default(), None, &state).is_none());

        let mut v1 = json!({"get_state": {
            "get_frameworks": {"frameworks": [
                {"framework_info": {"id": {"value": "f1"}, "user": "alice"}},
                {"framework_info": {"id": {"value": "f2"}, "user": "bob"}}]},
            "get_tasks": {"tasks": [
                {"task_id": {"value": "t1"}, "framework_id": {"value": "f1"}},
                {"task_id": {"value": "t2"}, "framework_id": {"value": "f2"}}]}
        }});
        filter_v1(&acls, Some("alice"), &mut v1);
        let fws = v1["get_state"]["get_frameworks"]["frameworks"]
            .as_array()
            .unwrap();
        assert_eq!(fws.len(), 1);
        let tasks = v1["get_state"]["get_tasks"]["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0]["task_id"]["value"], "t1");
    }
}
