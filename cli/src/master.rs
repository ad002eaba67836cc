//! Talking to the master's HTTP endpoints, with errors that name the master.

use anyhow::anyhow;
use serde_json::Value;
use strata_client::http::{self, HttpError};

pub use strata_client::http::Method;

/// `GET /state` of the master at `addr`.
pub async fn state(addr: &str) -> anyhow::Result<Value> {
    http::get_json(addr, "/state")
        .await
        .map_err(|err| http_error(addr, err))
}

/// `GET {path}` of the master at `addr`, failing with `what` (e.g. `cannot list the roles`)
/// and the master's message when it answers an error.
pub async fn get(addr: &str, path: &str, what: &str) -> anyhow::Result<Value> {
    http::get_json(addr, path)
        .await
        .map_err(|err| request_error(addr, path, what, err))
}

/// Sends `body` as JSON with `method` to `path` of the master at `addr`; returns the answer's
/// JSON (Null when empty). An error answer fails with `what` and the master's message.
pub async fn send(
    addr: &str,
    method: Method,
    path: &str,
    body: &Value,
    what: &str,
) -> anyhow::Result<Value> {
    http::send_json(addr, method, path, body)
        .await
        .map_err(|err| request_error(addr, path, what, err))
}

/// `WHAT: MESSAGE` for an error answer (404 without a message: the master lacks the endpoint),
/// else as [`http_error`].
fn request_error(addr: &str, path: &str, what: &str, err: HttpError) -> anyhow::Error {
    match err {
        HttpError::Status {
            status: 404, body, ..
        } if body.trim().is_empty() => {
            anyhow!(
                "{what}: the master at {addr} does not serve {path} (is it older than this CLI?)"
            )
        }
        HttpError::Status { status, body, .. } => {
            anyhow!("{what}: {}", server_error_text(status, &body))
        }
        other => http_error(addr, other),
    }
}

/// Turns an HTTP error into one line; an unreachable master reads
/// `cannot reach the master at ADDR: CAUSE`.
pub fn http_error(addr: &str, err: HttpError) -> anyhow::Error {
    match err {
        HttpError::Unreachable { source, .. } => {
            anyhow!("cannot reach the master at {addr}: {}", root_cause(&source))
        }
        other => anyhow!("{}", error_chain(&other)),
    }
}

/// An error and its sources on one line, `a: b: c`, skipping a source whose text the previous
/// message already contains.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

/// The innermost source of an error: for a failed request, the OS error (`Connection refused`)
/// rather than the client library's wrapping of it.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string().replace('\n', " ")
}

/// The message in an error body of the master (`{"error": "..."}`), else the body itself.
pub fn server_error_text(status: u16, body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string));
    match from_json {
        Some(message) if !message.is_empty() => message,
        _ if !body.trim().is_empty() => body.trim().replace('\n', " "),
        _ => format!("the master answered {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connection refused")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chains_sources() {
        let err = Outer(Inner);
        assert_eq!(
            error_chain(&err),
            "error sending request: connection refused"
        );
    }

    #[test]
    fn server_errors() {
        assert_eq!(
            server_error_text(404, r#"{"error": "no task x"}"#),
            "no task x"
        );
        assert_eq!(server_error_text(409, "plain text\n"), "plain text");
        assert_eq!(server_error_text(404, ""), "the master answered 404");
    }
}
