//! The key API and operations endpoints: JSON, no sessions, no templates.

pub mod authorize;
pub mod contract;
pub mod edge;
mod health;
pub mod manage;
pub mod metrics;
pub mod verify;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{any, get, post};
use serde_json::json;

use crate::app::AppState;
use crate::error::ErrorReport;

/// The management API and the operations endpoints, behind the portal's shared layers.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(manage::router(state))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
}

/// The hot path: verify and forward-auth, under the key API's own minimal stack (`server.rs`).
pub fn key_api_router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/keys/verify",
            post(verify::verify_key).layer(logged("/v1/keys/verify")),
        )
        .route(
            "/v1/authorize",
            any(authorize::authorize).layer(logged("/v1/authorize")),
        )
        .route(
            "/v1/authorize/{*path}",
            any(authorize::authorize).layer(logged("/v1/authorize/{*path}")),
        )
        .method_not_allowed_fallback(|| async {
            edge::error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "That action is not available here.",
            )
        })
}

/// One debug line per answer, by route (never the path, which may hold a key): at the usual
/// `info` level the hot path writes no log line of its own; the 503s it gives are warned about
/// where they arise.
fn logged(
    route: &'static str,
) -> tower::util::MapResponseLayer<impl FnMut(Response) -> Response + Clone> {
    tower::util::MapResponseLayer::new(move |response: Response| {
        tracing::debug!(route, status = response.status().as_u16(), "key API answer");
        response
    })
}

/// Every key-API error body: `{"error": {"code": "...", "message": "..."}}`.
pub fn error_body(report: &ErrorReport) -> Json<serde_json::Value> {
    Json(json!({ "error": { "code": report.code, "message": report.message } }))
}
