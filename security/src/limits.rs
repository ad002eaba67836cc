//! Limits on HTTP request bodies, one layer around the whole router: a body larger than
//! [`MAX_BODY_BYTES`] is answered 413 naming the limit (from its `Content-Length` alone when it
//! gives one, before anything is read), and a body that has not arrived whole within
//! [`BODY_TIMEOUT`] is answered 408 and its connection closed, so a client that announces a body
//! and sends it slowly, or never, holds one connection for a bounded time and nothing else.
//! Every body is read here, whole, before routing; handlers get it from memory. (The serving
//! loop bounds the time to read a request's headers.)
//!
//! The master's and the agents' routers both end with this layer.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::json;
use std::time::Duration;
use tracing::warn;

/// The largest request body served (16 MiB): a v1 ACCEPT launching thousands of tasks, or an
/// executor's UPDATE with data, fits.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// How long a request's body may take to arrive, from when its headers were read.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// `router` with both limits around everything it routes (its outermost layers): axum's own
/// body limit at [`MAX_BODY_BYTES`] and [`bodies`].
pub fn around<S: Clone + Send + Sync + 'static>(router: axum::Router<S>) -> axum::Router<S> {
    router
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(bodies))
}

/// The layer: [`MAX_BODY_BYTES`], [`BODY_TIMEOUT`]. Route it with
/// `.layer(axum::middleware::from_fn(limits::bodies))` after every route.
pub async fn bodies(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        warn!(path = %parts.uri.path(), length = declared, "refused an oversized request body");
        return too_large();
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| Some(err.to_string()))?;
            if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(None::<String>);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    };
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(None)) => {
            warn!(path = %parts.uri.path(), "refused an oversized request body");
            return too_large();
        }
        Ok(Err(Some(why))) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {why}"),
            )
        }
        Err(_) => {
            warn!(path = %parts.uri.path(), "cut off a request whose body came too slowly");
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} seconds",
                    BODY_TIMEOUT.as_secs()
                ),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large() -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than the limit of {MAX_BODY_BYTES} bytes ({} MiB)",
            MAX_BODY_BYTES >> 20
        ),
    )
}

/// An error answer after which the connection is closed: what is left of the body is not read.
fn refuse(status: StatusCode, message: String) -> Response {
    let mut response = (status, Json(json!({ "error": message }))).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
