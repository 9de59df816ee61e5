//! The bench's baseline: axum answering "ok" on one route, on the same tokio runtime settings as
//! Gatehouse (`#[tokio::main]`, one worker per core), so `scripts/bench` can put every key-API
//! figure beside what answering at all costs on this machine, in the same sitting.
//!
//! `GATEHOUSE_LISTEN=127.0.0.1:9999 cargo run --release --example bare`

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("GATEHOUSE_LISTEN").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let app = Router::new().route("/", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await
}
