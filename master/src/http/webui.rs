//! The operator's web UI: `index.html`, `app.js` and `style.css` from `master/webui/`, embedded
//! in the binary and served at `/`, `/webui/app.js` and `/webui/style.css` (with an ETag of the
//! build's content and `Cache-Control: no-cache`, so a browser revalidates and gets 304s), and
//! `GET /master/utilization`, the master's samples of the last hour the overview charts.

use super::{unavailable, Actor};
use crate::actor::Msg;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::oneshot;

const INDEX_HTML: &str = include_str!("../../webui/index.html");
const APP_JS: &str = include_str!("../../webui/app.js");
const STYLE_CSS: &str = include_str!("../../webui/style.css");

pub fn routes() -> Router<Actor> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { asset(&h, INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/webui/",
            get(|h: HeaderMap| async move { asset(&h, INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/webui/app.js",
            get(|h: HeaderMap| async move { asset(&h, APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/webui/style.css",
            get(|h: HeaderMap| async move { asset(&h, STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/master/utilization", get(utilization))
}

/// A strong ETag of `body` (FNV-1a: stable across builds of the same content).
fn etag(body: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

fn asset(headers: &HeaderMap, body: &'static str, content_type: &'static str) -> Response {
    let tag = etag(body);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let common = [
        (header::ETAG, tag),
        (header::CACHE_CONTROL, "no-cache".to_string()),
    ];
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn utilization(State(actor): State<Actor>) -> Response {
    let (reply, answer) = oneshot::channel();
    if actor.send(Msg::GetUtilization { reply }).is_err() {
        return unavailable();
    }
    match answer.await {
        Ok(samples) => Json(samples).into_response(),
        Err(_) => unavailable(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_follow_content() {
        assert_eq!(etag("a"), etag("a"));
        assert_ne!(etag("a"), etag("b"));
        assert!(INDEX_HTML.contains("/webui/app.js"));
    }

    #[test]
    fn revalidation_answers_304() {
        let mut h = HeaderMap::new();
        let fresh = asset(&h, APP_JS, "text/javascript");
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[header::CACHE_CONTROL], "no-cache");
        let tag = fresh.headers()[header::ETAG].clone();
        h.insert(header::IF_NONE_MATCH, tag);
        assert_eq!(
            asset(&h, APP_JS, "text/javascript").status(),
            StatusCode::NOT_MODIFIED
        );
    }
}
