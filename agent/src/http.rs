//! The agent's HTTP endpoints: `/state` (Mesos' shape, also `/slave(1)/state`), `/health`,
//! Mesos' `/files/read`, `/files/download` and `/files/browse` for sandbox files and `/monitor/statistics` for
//! container usage, `/metrics` (Prometheus), and the Strata extension
//! `POST /containers/update` (live resource updates).

use crate::agent::{Msg, UpdateError};
use crate::containerizer::Containerizer;
use crate::monitor;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_schema::{FrameworkId, Resources, TaskId};
use tokio::sync::{mpsc, oneshot};

/// Largest chunk `/files/read` returns at once.
pub const MAX_READ: u64 = 1 << 20;

#[derive(Clone)]
struct Ctx {
    actor: mpsc::UnboundedSender<Msg>,
    sandbox_root: PathBuf,
    containerizer: Containerizer,
}

pub fn router(
    actor: mpsc::UnboundedSender<Msg>,
    sandbox_root: PathBuf,
    containerizer: Containerizer,
    flags: Vec<(String, String)>,
    auth: crate::auth::SharedAgentAuth,
) -> Router {
    // Request bodies: size and time limits (413, 408), around everything.
    strata_security::limits::around(
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
            .route("/files/browse", get(browse))
            .route("/files/browse.json", get(browse))
            .route("/monitor/statistics", get(statistics))
            .route("/monitor/statistics.json", get(statistics))
            .route("/metrics", get(metrics))
            .route("/containers/update", post(update))
            .merge(crate::images_http::router(containerizer.clone()))
            .merge(crate::operator_api::router(
                actor.clone(),
                sandbox_root.clone(),
                containerizer.clone(),
                flags,
            ))
            .merge(crate::executor_api::router(
                actor.clone(),
                Arc::clone(&auth),
            ))
            .with_state(Ctx {
                actor,
                sandbox_root,
                containerizer,
            })
            .layer(axum::middleware::from_fn(cors))
            .layer(axum::Extension(Arc::clone(&auth)))
            .layer(axum::middleware::from_fn_with_state(
                auth,
                crate::auth::authenticate,
            )),
    )
}

/// The router's authentication, as handlers extract it.
type AuthExt = Option<axum::Extension<crate::auth::SharedAgentAuth>>;
type CallerExt = Option<axum::Extension<crate::auth::Caller>>;

/// The sandbox check of `/files/*` (see [`crate::auth::AgentAuth::check_sandbox`]).
pub(crate) fn sandbox_gate(
    auth: &AuthExt,
    caller: &CallerExt,
    root: &Path,
    path: &str,
) -> Result<(), Box<Response>> {
    crate::auth::gate(
        auth.as_ref().map(|a| &a.0),
        caller.as_ref().map(|c| &c.0),
        root,
        path,
    )
}

/// The read-only GETs the master's web UI calls from the browser.
const CORS_PATHS: &[&str] = &[
    "/state",
    "/monitor/statistics",
    "/files/read",
    "/files/browse",
];

/// `Access-Control-Allow-Origin: *` on [`CORS_PATHS`] (GETs only): the web UI, served by the
/// master, reads agents directly.
async fn cors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let allow =
        request.method() == axum::http::Method::GET && CORS_PATHS.contains(&request.uri().path());
    let mut response = next.run(request).await;
    if allow {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            axum::http::HeaderValue::from_static("*"),
        );
    }
    response
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

fn shutting_down() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the agent is shutting down".to_string(),
    )
}

/// The usage of every running container (file reads on the blocking pool).
async fn usage(ctx: &Ctx) -> Result<Vec<monitor::Usage>, Response> {
    let (reply, answer) = oneshot::channel();
    if ctx.actor.send(Msg::Usage { reply }).is_err() {
        return Err(shutting_down());
    }
    let targets = answer.await.map_err(|_| shutting_down())?;
    let containerizer = ctx.containerizer.clone();
    tokio::task::spawn_blocking(move || monitor::collect(&containerizer, targets))
        .await
        .map_err(|err| error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))
}

/// Mesos' `/monitor/statistics`: `[{executor_id, executor_name, framework_id, source,
/// statistics}]` for the running containers.
async fn statistics(State(ctx): State<Ctx>) -> Response {
    match usage(&ctx).await {
        Ok(usage) => Json(monitor::statistics_json(&usage)).into_response(),
        Err(response) => response,
    }
}

/// Prometheus text: the containers' usage and the active isolators.
async fn metrics(State(ctx): State<Ctx>) -> Response {
    match usage(&ctx).await {
        Ok(usage) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            monitor::prometheus(&ctx.containerizer.isolation().names(), &usage),
        )
            .into_response(),
        Err(response) => response,
    }
}

/// `POST /containers/update?task_id=ID[&framework_id=F]&resources=<Mesos syntax>` (a Strata
/// extension): the given resources replace the container's same-named ones and the isolators
/// apply them to the running container. 200 with the container's new resources; 400 for bad
/// input, 404 for an unknown task, 409 for a task that is not running, 500 when an isolator
/// failed.
async fn update(State(ctx): State<Ctx>, Query(q): Query<HashMap<String, String>>) -> Response {
    let bad = |message: String| error(StatusCode::BAD_REQUEST, message);
    let Some(task_id) = q.get("task_id") else {
        return bad("the task_id parameter is missing".to_string());
    };
    let task_id = match TaskId::new(task_id) {
        Ok(id) => id,
        Err(err) => return bad(format!("invalid task_id {task_id:?}: {err}")),
    };
    let framework_id = match q.get("framework_id").map(FrameworkId::new) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(err)) => return bad(format!("invalid framework_id: {err}")),
    };
    let Some(text) = q.get("resources") else {
        return bad(
            "the resources parameter is missing (e.g. resources=cpus:2;mem:512)".to_string(),
        );
    };
    let resources = match Resources::parse(text) {
        Ok(resources) => resources,
        Err(err) => return bad(err.to_string()),
    };
    let (reply, answer) = oneshot::channel();
    let msg = Msg::UpdateResources {
        framework_id,
        task_id,
        resources,
        reply,
    };
    if ctx.actor.send(msg).is_err() {
        return shutting_down();
    }
    match answer.await {
        Ok(Ok(body)) => Json(body).into_response(),
        Ok(Err(err)) => {
            let code = match err {
                UpdateError::NotFound(_) => StatusCode::NOT_FOUND,
                UpdateError::Invalid(_) => StatusCode::BAD_REQUEST,
                UpdateError::NotRunning(_) => StatusCode::CONFLICT,
                UpdateError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(code, err.to_string())
        }
        Err(_) => shutting_down(),
    }
}

/// Resolves `path` and checks that it lies inside the sandboxes (no `..` or symlink escapes):
/// a file or a directory.
pub(crate) fn confine_any(root: &Path, path: &str) -> Result<PathBuf, Box<Response>> {
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
    Ok(canonical)
}

/// The sandbox path checks as plain functions, for the fuzz targets (`fuzzing/`, `fuzz/`); not
/// an API.
#[doc(hidden)]
pub mod fuzzing {
    use std::path::{Path, PathBuf};

    /// [`super::confine_any`]: the canonical path, or the status code of the refusal.
    pub fn confine_any(root: &Path, path: &str) -> Result<PathBuf, u16> {
        super::confine_any(root, path).map_err(|r| r.status().as_u16())
    }

    /// [`super::confine`]: the canonical path of a file, or the status code of the refusal.
    pub fn confine(root: &Path, path: &str) -> Result<PathBuf, u16> {
        super::confine(root, path).map_err(|r| r.status().as_u16())
    }
}

/// [`confine_any`], for a file.
pub(crate) fn confine(root: &Path, path: &str) -> Result<PathBuf, Box<Response>> {
    let canonical = confine_any(root, path)?;
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

/// Up to `length` bytes of `path` from `offset` (clamped to its end): the file's size, the
/// offset read from, the bytes. Blocking: for `spawn_blocking`.
pub(crate) fn read_range(
    path: &Path,
    offset: u64,
    length: u64,
) -> std::io::Result<(u64, u64, Vec<u8>)> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let offset = offset.min(size);
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(length).read_to_end(&mut buf)?;
    Ok((size, offset, buf))
}

/// Mesos' `/files/read`: `{"data": …, "offset": …}`; `offset=-1` answers the file's length.
async fn read(
    State(ctx): State<Ctx>,
    auth: AuthExt,
    caller: CallerExt,
    Query(q): Query<ReadQuery>,
) -> Response {
    if let Err(r) = sandbox_gate(&auth, &caller, &ctx.sandbox_root, &q.path) {
        return *r;
    }
    let path = match confine(&ctx.sandbox_root, &q.path) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let result = tokio::task::spawn_blocking(move || -> std::io::Result<(String, u64)> {
        let want = match q.length {
            Some(l) if l >= 0 => (l as u64).min(MAX_READ),
            _ => MAX_READ,
        };
        match q.offset {
            // `offset=-1`: only the length.
            Some(o) if o < 0 => Ok((String::new(), std::fs::metadata(&path)?.len())),
            o => {
                let offset = o.map_or(0, |o| o as u64);
                let (_, offset, buf) = read_range(&path, offset, want)?;
                Ok((text_chunk(&buf).0, offset))
            }
        }
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

async fn download(
    State(ctx): State<Ctx>,
    auth: AuthExt,
    caller: CallerExt,
    Query(q): Query<DownloadQuery>,
) -> Response {
    if let Err(r) = sandbox_gate(&auth, &caller, &ctx.sandbox_root, &q.path) {
        return *r;
    }
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

/// One entry of Mesos' `/files/browse`: `path`, `mode` (`drwxr-xr-x`), `size`, `mtime`
/// (seconds), `nlink`, `uid` and `gid` (names where known).
pub(crate) struct FileEntry {
    pub path: String,
    pub mode: String,
    pub size: u64,
    pub mtime: i64,
    pub nlink: u64,
    pub uid: String,
    pub gid: String,
}

impl FileEntry {
    fn of(path: &Path) -> std::io::Result<FileEntry> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path)?;
        let uid = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(m.uid()))
            .ok()
            .flatten()
            .map_or_else(|| m.uid().to_string(), |u| u.name);
        let gid = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(m.gid()))
            .ok()
            .flatten()
            .map_or_else(|| m.gid().to_string(), |g| g.name);
        Ok(FileEntry {
            path: path.display().to_string(),
            mode: mode_string(m.mode(), m.file_type()),
            size: m.len(),
            mtime: m.mtime(),
            nlink: m.nlink(),
            uid,
            gid,
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "path": self.path,
            "mode": self.mode,
            "size": self.size,
            "mtime": self.mtime,
            "nlink": self.nlink,
            "uid": self.uid,
            "gid": self.gid,
        })
    }
}

/// `ls -l`'s mode: `drwxr-xr-x`.
fn mode_string(mode: u32, kind: std::fs::FileType) -> String {
    let mut s = String::with_capacity(10);
    s.push(if kind.is_dir() {
        'd'
    } else if kind.is_symlink() {
        'l'
    } else {
        '-'
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// The entries of a sandbox directory (or the one file) at `path`, sorted by path; a path
/// outside the sandboxes is refused as [`confine_any`] does.
pub(crate) fn list_files(root: &Path, path: &str) -> Result<Vec<FileEntry>, Box<Response>> {
    let dir = confine_any(root, path)?;
    let failed = |err: std::io::Error| {
        Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to list {path}: {err}"),
        ))
    };
    if !dir.is_dir() {
        return Ok(vec![FileEntry::of(&dir).map_err(failed)?]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        // An entry removed meanwhile is left out.
        if let Ok(e) = FileEntry::of(&entry.path()) {
            out.push(e);
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[derive(Deserialize)]
struct BrowseQuery {
    path: String,
}

/// Mesos' `/files/browse?path=DIR`: the entries of a sandbox directory.
async fn browse(
    State(ctx): State<Ctx>,
    auth: AuthExt,
    caller: CallerExt,
    Query(q): Query<BrowseQuery>,
) -> Response {
    if let Err(r) = sandbox_gate(&auth, &caller, &ctx.sandbox_root, &q.path) {
        return *r;
    }
    let root = ctx.sandbox_root.clone();
    match tokio::task::spawn_blocking(move || list_files(&root, &q.path)).await {
        Ok(Ok(entries)) => Json(serde_json::Value::Array(
            entries.iter().map(FileEntry::to_json).collect(),
        ))
        .into_response(),
        Ok(Err(r)) => *r,
        Err(err) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn browse_lists_sandbox_entries_only() {
        let root = tempfile::tempdir().unwrap();
        let sandbox = root.path().join("s1");
        std::fs::create_dir_all(sandbox.join("sub")).unwrap();
        std::fs::write(sandbox.join("stdout"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc", sandbox.join("escape")).unwrap();
        let list = list_files(root.path(), sandbox.to_str().unwrap()).unwrap();
        let names: Vec<&str> = list
            .iter()
            .map(|e| e.path.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(names, ["escape", "stdout", "sub"]);
        let stdout = &list[1];
        assert_eq!(stdout.size, 5);
        assert!(stdout.mode.starts_with('-'), "{}", stdout.mode);
        assert!(list[2].mode.starts_with('d'));
        assert!(list[0].mode.starts_with('l'));
        // `..` out of the sandboxes, and a symlink that leads out, are refused.
        let up = format!("{}/..", root.path().display());
        assert_eq!(
            list_files(root.path(), &up).err().unwrap().status(),
            StatusCode::FORBIDDEN
        );
        let escape = format!("{}/escape", sandbox.display());
        assert_eq!(
            list_files(root.path(), &escape).err().unwrap().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            list_files(root.path(), "/nonexistent/x")
                .err()
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn text_chunks_keep_byte_counts() {
        assert_eq!(text_chunk(b"hello"), ("hello".to_string(), 5));
        let euro = "€".as_bytes();
        assert_eq!(text_chunk(&euro[..2]), (String::new(), 0));
        assert_eq!(text_chunk(b"a\xffb"), ("a?b".to_string(), 3));
    }
}
