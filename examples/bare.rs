//! The bench's baseline: axum answering "ok" on one route, on the same tokio runtime settings as
//! Gatehouse (`#[tokio::main]`, one worker per core), so `scripts/bench` can put every key-API
//! figure beside what answering at all costs on this machine, in the same sitting.
//!
//! A second route, `POST /shaped`, reads a body and answers with the bytes of a cached verify's
//! `VALID` answer (the same JSON size and headers) and does nothing else: the difference between
//! the two baselines is what hyper and the kernel charge for the larger messages, and what a cached
//! verify costs beyond `/shaped` is Gatehouse's own work.
//!
//! `GATEHOUSE_LISTEN=127.0.0.1:9999 cargo run --release --example bare`

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderName, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

/// A `VALID` answer as `POST /v1/keys/verify` gives it for the bench's key (323 bytes).
const VALID_ANSWER: &str = concat!(
    r#"{"valid":true,"code":"VALID","key":{"id":"9eadf363-84db-478c-9c71-064ee5763cfa","#,
    r#""name":"bench","environment":"live","tenant":{"id":"b5db418e-bae2-44c3-b6d9-6c3d6610f0ff","#,
    r#""slug":"bench"},"scopes":["read","write"],"expires_at":null,"meta":{},"legacy":false},"#,
    r#""ratelimit":{"limit":2147483647,"remaining":2147483646,"reset":56}}"#
);

async fn shaped(body: Bytes) -> impl IntoResponse {
    std::hint::black_box(&body);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                HeaderName::from_static("ratelimit-policy"),
                "\"key\";q=2147483647;w=60",
            ),
            (
                HeaderName::from_static("ratelimit"),
                "\"key\";r=2147483646;t=56",
            ),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        VALID_ANSWER,
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("GATEHOUSE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/shaped", post(shaped));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await
}
