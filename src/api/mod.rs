//! The key API and operations endpoints: JSON, no sessions, no templates.

pub mod authorize;
pub mod contract;
pub mod edge;
mod health;
pub mod manage;
pub mod verify;

use axum::Json;
use axum::Router;
use axum::routing::{any, get, post};
use serde_json::json;

use crate::app::AppState;
use crate::error::ErrorReport;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(manage::router(state))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/v1/keys/verify", post(verify::verify_key))
        .route("/v1/authorize", any(authorize::authorize))
        .route("/v1/authorize/{*path}", any(authorize::authorize))
}

/// Every key-API error body: `{"error": {"code": "...", "message": "..."}}`.
pub fn error_body(report: &ErrorReport) -> Json<serde_json::Value> {
    Json(json!({ "error": { "code": report.code, "message": report.message } }))
}
