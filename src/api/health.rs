//! `GET /healthz` (the process is alive) and `GET /readyz` (the database answers).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::api::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::db;

pub async fn alive() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let probe =
        tokio::time::timeout(std::time::Duration::from_secs(2), db::ping(&state.pool)).await;
    match probe {
        Ok(Ok(_)) => return Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(err)) => tracing::warn!(error = %err, "database not ready"),
        Err(_) => tracing::warn!("database did not answer within 2 s"),
    }
    Err(ApiError::unavailable(
        "The service cannot answer right now. Please try again shortly.",
    ))
}
