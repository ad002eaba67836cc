//! The agent's HTTP authentication and authorization (issue 11): the caller's principal from
//! `Authorization` (Basic against `--http-credentials`, Bearer tokens signed with
//! `--jwt-secret-key`), 401 where `--authenticate-http-*` require credentials, sandbox access
//! (`/files/*`, LIST_FILES, READ_FILE) only to the principal of the sandbox's framework unless
//! an `access_sandboxes` ACL explicitly grants it, and per-executor tokens
//! (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, claims `fid`/`eid`/`cid` as Mesos') checked on the
//! v1 executor API under `--authenticate-http-executors`.

use crate::config::AgentConfig;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use strata_schema::{ExecutorId, FrameworkId};
use strata_security::acl::{Acls, Action};
use strata_security::authn::{self, Verifier};
use strata_security::credentials::Credentials;
use strata_security::token::{Claims, TokenKey};
use tracing::warn;

/// The environment variable an executor finds its token in (Mesos' name).
pub const EXECUTOR_TOKEN_ENV: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";

#[derive(Debug, Default)]
pub struct AgentAuth {
    pub credentials: Option<Credentials>,
    /// `--jwt-secret-key`: bearer tokens of operators are checked with it.
    pub token_key: Option<TokenKey>,
    /// What executors' tokens are signed with: `--jwt-secret-key`, else a random key.
    pub executor_key: Option<TokenKey>,
    pub acls: Arc<Acls>,
    pub http_readonly: bool,
    pub http_readwrite: bool,
    pub http_executors: bool,
    /// The agent's work dir (frameworks' checkpointed infos name their principals).
    pub work_dir: std::path::PathBuf,
}

pub type SharedAgentAuth = Arc<AgentAuth>;

/// The principal a request authenticated as (`None`: no credentials).
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<String>);

impl AgentAuth {
    pub fn from_config(config: &AgentConfig) -> Result<Self, String> {
        let strata_security::authn::AuthFiles {
            credentials,
            token_key,
            acls,
        } = strata_security::authn::AuthFiles::load(
            config.http_credentials.as_deref(),
            config.jwt_secret_key.as_deref(),
            config.acls.as_deref(),
        )?;
        let executor_key = if config.authenticate_http_executors {
            Some(token_key.clone().unwrap_or_else(TokenKey::random))
        } else {
            None
        };
        let auth = AgentAuth {
            credentials,
            token_key,
            executor_key,
            acls: Arc::new(acls),
            http_readonly: config.authenticate_http_readonly,
            http_readwrite: config.authenticate_http_readwrite,
            http_executors: config.authenticate_http_executors,
            work_dir: config.work_dir.clone(),
        };
        if (auth.http_readonly || auth.http_readwrite)
            && auth.credentials.is_none()
            && auth.token_key.is_none()
        {
            return Err(
                "--authenticate-http-* needs --http-credentials or --jwt-secret-key".into(),
            );
        }
        Ok(auth)
    }

    fn verifier(&self) -> Verifier<'_> {
        Verifier {
            credentials: self.credentials.as_ref(),
            token_key: self.token_key.as_ref(),
        }
    }

    /// The token for an executor's environment (None without `--authenticate-http-executors`).
    pub fn executor_token(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        container_id: &str,
    ) -> Option<String> {
        self.executor_key.as_ref().map(|key| {
            key.mint(&Claims::executor(
                framework_id.as_str(),
                executor_id.as_str(),
                container_id,
            ))
        })
    }

    /// Checks an executor API call's `Authorization` against the executor it speaks for.
    pub fn check_executor(
        &self,
        headers: &HeaderMap,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Result<(), Box<Response>> {
        let Some(key) = self.executor_key.as_ref().filter(|_| self.http_executors) else {
            return Ok(());
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        let Some(token) = token else {
            warn!(%framework_id, %executor_id, "executor call without a token refused");
            return Err(Box::new(unauthorized(
                "executor calls need `Authorization: Bearer $MESOS_EXECUTOR_AUTHENTICATION_TOKEN`",
            )));
        };
        let claims = key.verify(token).map_err(|e| {
            warn!(%framework_id, %executor_id, cause = %e, "executor token refused");
            Box::new(unauthorized(&format!("invalid executor token: {e}")))
        })?;
        if claims.fid.as_deref() != Some(framework_id.as_str())
            || claims.eid.as_deref() != Some(executor_id.as_str())
        {
            warn!(
                %framework_id, %executor_id,
                token_framework = claims.fid.as_deref().unwrap_or(""),
                token_executor = claims.eid.as_deref().unwrap_or(""),
                "executor token used for another executor refused"
            );
            return Err(Box::new((
                StatusCode::FORBIDDEN,
                Json(json!({"error": format!(
                    "the token is executor {:?} of framework {:?}'s; it cannot speak for executor {executor_id} of framework {framework_id}",
                    claims.eid.as_deref().unwrap_or(""),
                    claims.fid.as_deref().unwrap_or("")
                )})),
            )
                .into_response()));
        }
        Ok(())
    }

    /// May `caller` read the sandbox at `path` (already confined to `root`)? Yes when the
    /// sandbox's framework has the caller's principal (both none counts: an unauthenticated
    /// framework's sandbox is open to unauthenticated callers, as before issue 11), or when an
    /// `access_sandboxes` rule (object: the framework's user) explicitly grants it —
    /// `permissive` does not.
    pub fn check_sandbox(
        &self,
        caller: Option<&str>,
        root: &Path,
        path: &str,
    ) -> Result<(), Box<Response>> {
        let framework = sandbox_framework(root, path).and_then(|id| {
            let paths = crate::paths::Paths {
                work_dir: self.work_dir.clone(),
            };
            crate::checkpoint::read_framework(&paths, &id)
        });
        let owner = framework
            .as_ref()
            .and_then(|f| f.principal.clone())
            .filter(|p| !p.is_empty());
        if owner.as_deref() == caller {
            return Ok(());
        }
        let user = framework
            .as_ref()
            .map(|f| f.user.clone())
            .unwrap_or_default();
        let decision = self
            .acls
            .authorize(caller, Action::AccessSandbox, Some(&user));
        if decision.allowed && decision.rule.is_some() {
            return Ok(());
        }
        warn!(
            principal = caller.unwrap_or("<none>"),
            action = "access_sandboxes",
            object = %path,
            owner = owner.as_deref().unwrap_or("<none>"),
            %decision,
            "sandbox access denied"
        );
        Err(Box::new((
            StatusCode::FORBIDDEN,
            Json(json!({"error": format!(
                "principal {:?} may not read {path}: the sandbox belongs to framework principal {:?} and no access_sandboxes ACL grants it ({decision})",
                caller.unwrap_or(""),
                owner.as_deref().unwrap_or("")
            )})),
        )
            .into_response()))
    }
}

/// The framework whose sandbox `path` is in: `<root>/<agent_id>/frameworks/<framework_id>/…`.
fn sandbox_framework(root: &Path, path: &str) -> Option<FrameworkId> {
    let canonical = std::fs::canonicalize(path).ok()?;
    let root = std::fs::canonicalize(root).ok()?;
    let rel = canonical.strip_prefix(&root).ok()?;
    let parts: Vec<_> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() >= 3 && parts[1] == "frameworks" {
        FrameworkId::new(&parts[2]).ok()
    } else {
        None
    }
}

pub use strata_security::authn::unauthorized;

/// The paths Mesos guards with `get_endpoints` on an agent.
const ENDPOINT_ACL_PATHS: &[&str] = &[
    "/flags",
    "/metrics/snapshot",
    "/containers",
    "/monitor/statistics",
    "/monitor/statistics.json",
    "/files/debug",
];

/// The HTTP middleware: resolves the [`Caller`]; 401 where credentials are wrong or required.
/// The executor API is left to [`AgentAuth::check_executor`] (executors carry their own tokens).
pub async fn authenticate(
    State(auth): State<SharedAgentAuth>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    if matches!(path.as_str(), "/health" | "/version" | "/api/v1/executor") {
        request.extensions_mut().insert(Caller(None));
        return next.run(request).await;
    }
    let read_only = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) && !path.starts_with("/api/v1");
    let required = if read_only {
        auth.http_readonly
    } else {
        auth.http_readwrite
    };
    let principal = match auth.verifier().caller(request.headers(), &path, required) {
        Ok(p) => p,
        Err(refusal) => return *refusal,
    };
    if ENDPOINT_ACL_PATHS.contains(&path.as_str()) {
        let decision = auth
            .acls
            .authorize(principal.as_deref(), Action::GetEndpoint, Some(&path));
        if !decision.allowed {
            authn::denied(principal.as_deref(), &decision, Some(&path));
            return authn::forbidden(&decision, Some(&path));
        }
    }
    request.extensions_mut().insert(Caller(principal));
    next.run(request).await
}

/// For handlers: the sandbox check when the router carries an [`AgentAuth`].
pub fn gate(
    auth: Option<&SharedAgentAuth>,
    caller: Option<&Caller>,
    root: &Path,
    path: &str,
) -> Result<(), Box<Response>> {
    match auth {
        Some(auth) => auth.check_sandbox(caller.and_then(|c| c.0.as_deref()), root, path),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::HeaderValue;
    use strata_schema::FrameworkInfo;

    #[test]
    fn sandboxes_belong_to_their_framework_principal() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("agents");
        let sandbox = root.join("a1/frameworks/f1/executors/t/runs/c");
        std::fs::create_dir_all(&sandbox).unwrap();
        std::fs::write(sandbox.join("stdout"), "x").unwrap();
        let fw_dir = work.path().join("meta/frameworks/f1");
        std::fs::create_dir_all(&fw_dir).unwrap();
        let info = FrameworkInfo {
            principal: Some("alice".into()),
            user: "nobody".into(),
            ..FrameworkInfo::default()
        };
        std::fs::write(
            fw_dir.join("framework.json"),
            serde_json::to_vec(&info).unwrap(),
        )
        .unwrap();
        let file = sandbox.join("stdout");
        let file = file.to_str().unwrap();
        let auth = AgentAuth {
            work_dir: work.path().to_path_buf(),
            ..AgentAuth::default()
        };
        assert!(auth.check_sandbox(Some("alice"), &root, file).is_ok());
        assert!(auth.check_sandbox(Some("bob"), &root, file).is_err());
        assert!(auth.check_sandbox(None, &root, file).is_err());
        let auth = AgentAuth {
            work_dir: work.path().to_path_buf(),
            acls: Arc::new(
                Acls::parse(
                    Path::new("a"),
                    r#"{"access_sandboxes": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}]}"#,
                )
                .unwrap(),
            ),
            ..AgentAuth::default()
        };
        assert!(auth.check_sandbox(Some("ops"), &root, file).is_ok());
        assert!(auth.check_sandbox(Some("bob"), &root, file).is_err());
    }

    #[test]
    fn executor_tokens_name_their_executor() {
        let auth = AgentAuth {
            executor_key: Some(TokenKey::new(b"k")),
            http_executors: true,
            ..AgentAuth::default()
        };
        let f = FrameworkId::new("f1").unwrap();
        let e1 = ExecutorId::new("e1").unwrap();
        let e2 = ExecutorId::new("e2").unwrap();
        let token = auth.executor_token(&f, &e1, "c1").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        assert!(auth.check_executor(&headers, &f, &e1).is_ok());
        let err = auth.check_executor(&headers, &f, &e2).unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        let err = auth.check_executor(&HeaderMap::new(), &f, &e1).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    }
}
