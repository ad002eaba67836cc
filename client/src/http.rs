//! Typed access to the master's and agents' HTTP endpoints.

use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot reach {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} sent invalid JSON: {source}")]
    Json { url: String, source: reqwest::Error },
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // reqwest is built with rustls but no crypto provider when the agent's image store
        // (oci-client) is in the same build: a client then needs one installed first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .no_proxy();
        // Always a TLS configuration of our own: reqwest's default looks for the system's CA
        // certificates and fails to build without any (a minimal install has none), while a
        // cluster without TLS needs none (its URLs are http://) and one with TLS trusts only its
        // CA (`crate::tls`).
        let config = crate::tls::config()
            .map(|c| (*c).clone())
            .unwrap_or_else(|| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            });
        builder
            .tls_backend_preconfigured(config)
            .build()
            .unwrap_or_default()
    })
}

/// `http://{addr}{path}`, or `https://` once [`crate::tls::use_tls`] was called.
fn url(addr: &str, path: &str) -> String {
    format!("{}://{addr}{path}", crate::tls::scheme())
}

/// Credentials every HTTP request of this process carries (the CLI sets them from its flags or
/// `/etc/strata/cli.toml`): HTTP Basic against the master's `--credentials`, or a bearer token
/// signed with its `--jwt-secret-key`.
#[derive(Clone)]
pub enum HttpAuth {
    Basic { principal: String, secret: String },
    Bearer(String),
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpAuth::Basic { principal, .. } => write!(f, "Basic({principal}, <redacted>)"),
            HttpAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

static AUTH: OnceLock<HttpAuth> = OnceLock::new();

/// Sets the process's credentials (once; a second call is ignored and answers false).
pub fn set_auth(auth: HttpAuth) -> bool {
    AUTH.set(auth).is_ok()
}

/// The process's credentials, if set.
pub fn auth() -> Option<&'static HttpAuth> {
    AUTH.get()
}

/// Adds the process's credentials to a request.
pub fn authed(req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match AUTH.get() {
        Some(HttpAuth::Basic { principal, secret }) => req.basic_auth(principal, Some(secret)),
        Some(HttpAuth::Bearer(token)) => req.bearer_auth(token),
        None => req,
    }
}

async fn send(url: String, req: reqwest::RequestBuilder) -> Result<Value, HttpError> {
    let resp = authed(req)
        .send()
        .await
        .map_err(|source| HttpError::Unreachable {
            url: url.clone(),
            source,
        })?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        // Our endpoints answer errors as {"error": "..."}; show just the message then.
        let body = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or(body);
        return Err(HttpError::Status {
            url,
            status: status.as_u16(),
            body,
        });
    }
    let bytes = resp.bytes().await.map_err(|source| HttpError::Json {
        url: url.clone(),
        source,
    })?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    // Decode through reqwest's error type so every failure carries the URL.
    serde_json::from_slice(&bytes).map_err(|e| HttpError::Status {
        url,
        status: status.as_u16(),
        body: format!("invalid JSON: {e}"),
    })
}

/// `GET http(s)://{addr}{path}` as JSON (`addr` is `host:port`).
pub async fn get_json(addr: &str, path: &str) -> Result<Value, HttpError> {
    let url = url(addr, path);
    send(url.clone(), client().get(&url)).await
}

/// `POST http(s)://{addr}{path}` with an empty body; returns the body as JSON (or Null when empty).
pub async fn post(addr: &str, path: &str) -> Result<Value, HttpError> {
    let url = url(addr, path);
    send(url.clone(), client().post(&url)).await
}

/// The methods of the endpoints that take a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
}

/// `POST` or `PUT http(s)://{addr}{path}` with `body` as JSON; returns the answer as JSON (Null
/// when empty).
pub async fn send_json(
    addr: &str,
    method: Method,
    path: &str,
    body: &Value,
) -> Result<Value, HttpError> {
    let url = url(addr, path);
    let req = match method {
        Method::Post => client().post(&url),
        Method::Put => client().put(&url),
    };
    send(url.clone(), req.json(body)).await
}

/// Reads a file of an agent's sandbox with Mesos' `/files/read` (`path`, `offset`, `length`):
/// returns the data and the offset it started at. `length` = -1 reads to the end (in chunks of
/// at most 1 MiB: call again from `offset + data.len()`).
pub async fn read_file(
    agent_addr: &str,
    path: &str,
    offset: u64,
    length: i64,
) -> Result<(Vec<u8>, u64), HttpError> {
    let url = url(agent_addr, "/files/read");
    let req = client().get(&url).query(&[
        ("path", path.to_string()),
        ("offset", offset.to_string()),
        ("length", length.to_string()),
    ]);
    let value = send(url, req).await?;
    let data = value
        .get("data")
        .and_then(|d| d.as_str())
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    let offset = value
        .get("offset")
        .and_then(|o| o.as_u64())
        .unwrap_or(offset);
    Ok((data, offset))
}
