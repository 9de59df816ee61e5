//! Stylesheet, script and icon, compiled into the binary and served under content-hashed names, so
//! they can be cached forever and the deployment stays one file.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::AppError;

const CSS: &str = include_str!("../../static/app.css");
const JS: &str = include_str!("../../static/app.js");
const ICON: &str = include_str!("../../static/favicon.svg");

fn hashed(name: &str, extension: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("/static/{name}.{short}.{extension}")
}

pub static CSS_PATH: LazyLock<String> = LazyLock::new(|| hashed("app", "css", CSS));
pub static JS_PATH: LazyLock<String> = LazyLock::new(|| hashed("app", "js", JS));

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/{file}", get(asset))
        .route("/favicon.svg", get(icon))
        .route("/favicon.ico", get(icon))
}

/// Under fixed names, because browsers ask for `/favicon.ico` on their own: one day in caches.
async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    let path = format!("/static/{file}");
    let (body, content_type) = if path == *CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if path == *JS_PATH {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return AppError::NotFound.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}
