//! The agent's HTTP endpoints: `/state` (Mesos' shape, also `/slave(1)/state`), `/health`, and
//! Mesos' `/files/read` and `/files/download` for sandbox files.

use crate::agent::Msg;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};

/// Largest chunk `/files/read` returns at once.
pub const MAX_READ: u64 = 1 << 20;

#[derive(Clone)]
struct Ctx {
    actor: mpsc::UnboundedSender<Msg>,
    sandbox_root: PathBuf,
}

pub fn router(actor: mpsc::UnboundedSender<Msg>, sandbox_root: PathBuf) -> Router {
    Router::new()
        .route("/state", get(state))
        .route("/state.json", get(state))
        .route("/slave(1)/state", get(state))
        .route("/health", get(|| async { StatusCode::OK }))
        .route(
            "/version",
            get(|| async { Json(json!({ "version": strata_schema::VERSION })) }),
        )
        .route("/files/read", get(read))
        .route("/files/download", get(download))
        .with_state(Ctx {
            actor,
            sandbox_root,
        })
}

fn error(code: StatusCode, message: String) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}

async fn state(State(ctx): State<Ctx>) -> Response {
    let (reply, answer) = oneshot::channel();
    if ctx.actor.send(Msg::GetState { reply }).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down".to_string(),
        );
    }
    match answer.await {
        Ok(state) => Json(state).into_response(),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the agent is shutting down".to_string(),
        ),
    }
}

/// Resolves `path` and checks that it lies inside the sandboxes (no `..` or symlink escapes).
fn confine(root: &Path, path: &str) -> Result<PathBuf, Box<Response>> {
    let not_found = || {
        Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no such sandbox file: {path}"),
        ))
    };
    let canonical = std::fs::canonicalize(path).map_err(|_| not_found())?;
    let root = std::fs::canonicalize(root).map_err(|_| not_found())?;
    if !canonical.starts_with(&root) {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            format!("{path} is outside the agent's sandboxes"),
        )));
    }
    if !canonical.is_file() {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("{path} is not a file"),
        )));
    }
    Ok(canonical)
}

#[derive(Deserialize)]
struct ReadQuery {
    path: String,
    offset: Option<i64>,
    length: Option<i64>,
}

/// Turns bytes into text without changing their length: a trailing incomplete UTF-8 sequence is
/// left for the next read, and any invalid byte becomes `?`. The returned count is how many bytes
/// were consumed.
pub fn text_chunk(bytes: &[u8]) -> (String, usize) {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return (out, bytes.len());
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                match e.error_len() {
                    None => return (out.clone(), bytes.len() - bad.len()),
                    Some(n) => {
                        out.extend(std::iter::repeat_n('?', n));
                        rest = &bad[n..];
                    }
                }
            }
        }
    }
}

/// Mesos' `/files/read`: `{"data": …, "offset": …}`; `offset=-1` answers the file's length.
async fn read(State(ctx): State<Ctx>, Query(q): Query<ReadQuery>) -> Response {
    let path = match confine(&ctx.sandbox_root, &q.path) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
        let mut file = std::fs::File::open(&path)?;
        let size = file.metadata()?.len();
        let offset = match q.offset {
            None => 0,
            Some(o) if o < 0 => return Ok((String::new(), size)),
            Some(o) => (o as u64).min(size),
        };
        let want = match q.length {
            Some(l) if l >= 0 => (l as u64).min(MAX_READ),
            _ => MAX_READ,
        };
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        file.take(want).read_to_end(&mut buf)?;
        let (text, _) = text_chunk(&buf);
        Ok((text, offset))
    })
    .await;
    match result {
        Ok(Ok((data, offset))) => Json(json!({ "data": data, "offset": offset })).into_response(),
        Ok(Err(err)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to read {}: {err}", q.path),
        ),
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

#[derive(Deserialize)]
struct DownloadQuery {
    path: String,
}

async fn download(State(ctx): State<Ctx>, Query(q): Query<DownloadQuery>) -> Response {
    let path = match confine(&ctx.sandbox_root, &q.path) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    match tokio::fs::read(&path).await {
        Ok(data) => ([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response(),
        Err(err) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to read {}: {err}", q.path),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_chunks_keep_byte_counts() {
        assert_eq!(text_chunk(b"hello"), ("hello".to_string(), 5));
        let euro = "€".as_bytes();
        assert_eq!(text_chunk(&euro[..2]), (String::new(), 0));
        assert_eq!(text_chunk(b"a\xffb"), ("a?b".to_string(), 3));
    }
}
