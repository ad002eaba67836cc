//! The image store's endpoints: `GET /images` lists the images (with the containers using each),
//! `GET /images/pulls` the registry pulls in progress (bytes and layers done; `strata run
//! --image` draws its progress bar from it),
//! `POST /images/prune` removes those no container uses, as does Mesos' agent operator call
//! `POST /api/v1` `{"type": "PRUNE_IMAGES"}` (in [`crate::operator_api`]).

use crate::containerizer::Containerizer;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn router<S>(containerizer: Containerizer) -> Router<S> {
    Router::new()
        .route("/images", get(list))
        .route("/images/prune", post(prune))
        .route("/images/pulls", get(pulls))
        .with_state(containerizer)
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

async fn list(State(containerizer): State<Containerizer>) -> Response {
    let Some(store) = containerizer.images().cloned() else {
        return error(StatusCode::NOT_FOUND, "this agent has no image store");
    };
    let listed = tokio::task::spawn_blocking(move || store.list()).await;
    let Ok(images) = listed else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "listing the images failed",
        );
    };
    let images: Vec<Value> = images
        .into_iter()
        .map(|(record, users)| {
            json!({
                "id": record.id.to_string(),
                "names": record.names,
                "manifest": record.manifest.as_ref().map(|m| m.to_string()),
                "layers": record.layers.len(),
                "size_bytes": record.size(),
                "stored_at": record.stored_at,
                "containers": users,
            })
        })
        .collect();
    Json(json!({ "images": images })).into_response()
}

async fn pulls(State(containerizer): State<Containerizer>) -> Response {
    let Some(store) = containerizer.images() else {
        return error(StatusCode::NOT_FOUND, "this agent has no image store");
    };
    Json(json!({ "pulls": store.pulls() })).into_response()
}

pub(crate) async fn prune(State(containerizer): State<Containerizer>) -> Response {
    let Some(store) = containerizer.images().cloned() else {
        return error(StatusCode::NOT_FOUND, "this agent has no image store");
    };
    match tokio::task::spawn_blocking(move || store.prune()).await {
        Ok(Ok(report)) => Json(json!(report)).into_response(),
        Ok(Err(err)) => error(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "pruning the images failed",
        ),
    }
}
