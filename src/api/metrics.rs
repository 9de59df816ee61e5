//! `GET /metrics` on the metrics listener (`GATEHOUSE_METRICS_LISTEN`), never on the public one:
//! Prometheus text format 0.0.4, what is in memory plus what is read on scrape (pool, outbox).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::error::ApiError;
use crate::app::AppState;
use crate::db;
use crate::metrics::{family, gauge_or_counter};

/// The metrics listener's whole router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { ApiError::not_found() })
        .with_state(state)
}

static TEXT_FORMAT: HeaderValue =
    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

async fn scrape(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(8 * 1024);
    state.metrics.render(&mut out);
    let flushing = state.verifier.meter.health();
    gauge_or_counter(
        &mut out,
        "gatehouse_usage_flush_lag_seconds",
        "gauge",
        "Seconds since the usage counters were last written (what a crash would lose).",
        flushing.lag_seconds(),
    );
    gauge_or_counter(
        &mut out,
        "gatehouse_usage_flush_failures_total",
        "counter",
        "Usage flushes that failed (retried as the same batch).",
        flushing.failures(),
    );
    gauge_or_counter(
        &mut out,
        "gatehouse_key_cache_entries",
        "gauge",
        "Keys in this instance's cache.",
        state.verifier.cache.len(),
    );
    let (queries, lookups) = state.verifier.lookup_queries_and_lookups();
    gauge_or_counter(
        &mut out,
        "gatehouse_key_lookups_total",
        "counter",
        "Cache misses looked up in the database.",
        lookups,
    );
    gauge_or_counter(
        &mut out,
        "gatehouse_key_lookup_queries_total",
        "counter",
        "Queries those lookups took (lookups that arrive while every lane is busy share one).",
        queries,
    );
    let size = state.pool.size();
    let idle = u32::try_from(state.pool.num_idle()).unwrap_or(u32::MAX);
    family(
        &mut out,
        "gatehouse_db_pool_connections",
        "gauge",
        "The shared pool's connections by state (the key API's lookups have their own).",
    );
    out.push_str(&format!(
        "gatehouse_db_pool_connections{{state=\"in_use\"}} {}\ngatehouse_db_pool_connections{{state=\"idle\"}} {idle}\n",
        size.saturating_sub(idle)
    ));
    match db::outbox::due_by_kind(&state.pool).await {
        Ok(due) => {
            family(
                &mut out,
                "gatehouse_outbox_due",
                "gauge",
                "Outbox messages due now and not yet sent, by kind.",
            );
            for (kind, count, _) in &due {
                out.push_str(&format!(
                    "gatehouse_outbox_due{{kind=\"{kind}\"}} {count}\n"
                ));
            }
            family(
                &mut out,
                "gatehouse_outbox_lag_seconds",
                "gauge",
                "How long the oldest due, unsent outbox message has waited, by kind (absent: none waits).",
            );
            for (kind, _, oldest) in &due {
                out.push_str(&format!(
                    "gatehouse_outbox_lag_seconds{{kind=\"{kind}\"}} {oldest:.3}\n"
                ));
            }
        }
        Err(err) => tracing::warn!(error = %err, "metrics: cannot count the outbox"),
    }
    ([(header::CONTENT_TYPE, TEXT_FORMAT.clone())], out).into_response()
}
