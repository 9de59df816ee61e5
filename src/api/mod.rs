//! The key API and operations endpoints: JSON, no sessions, no templates.

mod health;

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::json;

use crate::app::AppState;
use crate::error::ErrorReport;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
}

/// Every key-API error body: `{"error": {"code": "...", "message": "..."}}`.
pub fn error_body(report: &ErrorReport) -> Json<serde_json::Value> {
    Json(json!({ "error": { "code": report.code, "message": report.message } }))
}
