//! `GET /metrics` on the metrics listener (`GATEHOUSE_METRICS_LISTEN`): what the key API did,
//! counted exactly, and nowhere on the public listener.

use gatehouse::vocabulary::Environment;
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::{Tenant, unknown_key};
use crate::support::key_api::{authorize, code_of, key_api};

fn free_address() -> String {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

/// The value of the sample named exactly `series` (name and labels), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.parse().unwrap())
}

async fn scrape(address: &str) -> String {
    let response = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

async fn instance_with_metrics(pool: PgPool) -> (TestApp, String) {
    let address = free_address();
    let app = key_api(pool, &[("GATEHOUSE_METRICS_LISTEN", &address)]).await;
    app.wait_until_listening().await;
    (app, address)
}

#[sqlx::test]
async fn verifications_move_the_counters_by_exactly_what_was_answered(pool: PgPool) {
    let (app, metrics) = instance_with_metrics(pool.clone()).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let before = scrape(&metrics).await;

    for _ in 0..3 {
        assert_eq!(code_of(&app, &key).await, "VALID");
    }
    assert_eq!(code_of(&app, &unknown_key()).await, "NOT_FOUND");
    assert_eq!(code_of(&app, "ak_live_nope").await, "MALFORMED");
    let passed = authorize(&app, "?scope=write", Some(("X-Api-Key", &key))).await;
    assert_eq!(passed.status(), 403);

    let after = scrape(&metrics).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    for (series, expected) in [
        (
            r#"gatehouse_verifications_total{endpoint="verify",code="VALID"}"#,
            3.0,
        ),
        (
            r#"gatehouse_verifications_total{endpoint="verify",code="NOT_FOUND"}"#,
            1.0,
        ),
        (
            r#"gatehouse_verifications_total{endpoint="verify",code="MALFORMED"}"#,
            1.0,
        ),
        (
            r#"gatehouse_verifications_total{endpoint="authorize",code="INSUFFICIENT_SCOPE"}"#,
            1.0,
        ),
        (
            r#"gatehouse_verification_duration_seconds_count{endpoint="verify"}"#,
            5.0,
        ),
    ] {
        assert_eq!(moved(series), expected, "{series}");
    }
    // The first VALID and the NOT_FOUND looked the key up; the rest came from the cache.
    assert_eq!(moved("gatehouse_key_cache_misses_total"), 2.0);
    assert_eq!(moved("gatehouse_key_cache_hits_total"), 3.0);
    // Two misses, one after the other: two lookups, each its own query.
    assert_eq!(moved("gatehouse_key_lookups_total"), 2.0);
    assert_eq!(moved("gatehouse_key_lookup_queries_total"), 2.0);
    assert!(after.contains("# TYPE gatehouse_verification_duration_seconds histogram"));
    assert!(after.contains("gatehouse_usage_flush_lag_seconds "));
    assert!(after.contains("gatehouse_usage_flush_failures_total 0"));
    assert!(after.contains("gatehouse_db_pool_connections{state=\"idle\"}"));
    assert!(after.contains("# TYPE gatehouse_outbox_due gauge"));
}

#[sqlx::test]
async fn metrics_are_not_served_on_the_public_listener(pool: PgPool) {
    let (app, metrics) = instance_with_metrics(pool).await;
    let public = app.client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    assert!(
        !public
            .text()
            .await
            .unwrap()
            .contains("gatehouse_verifications_total")
    );
    assert!(
        scrape(&metrics)
            .await
            .contains("gatehouse_verifications_total")
    );
}

#[sqlx::test]
async fn without_a_metrics_listener_nothing_listens_for_metrics(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let public = app.client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
}

#[sqlx::test]
async fn the_outbox_lag_is_the_age_of_its_oldest_due_message_by_kind(pool: PgPool) {
    let (_app, metrics) = instance_with_metrics(pool.clone()).await;
    // Messages of a kind no sender here claims, due 90 and 30 seconds ago, and one not yet due.
    sqlx::query(
        "INSERT INTO outbox_message (kind, payload, due_at, give_up_at)
         SELECT 'probe', '{}', now() - make_interval(secs => s), now() + interval '1 day'
         FROM unnest(ARRAY[90, 30, -600]) AS s",
    )
    .execute(&pool)
    .await
    .unwrap();
    let text = scrape(&metrics).await;
    assert!(
        text.contains("# TYPE gatehouse_outbox_lag_seconds gauge"),
        "{text}"
    );
    assert_eq!(sample(&text, r#"gatehouse_outbox_due{kind="probe"}"#), 2.0);
    let lag = sample(&text, r#"gatehouse_outbox_lag_seconds{kind="probe"}"#);
    assert!(
        (90.0..120.0).contains(&lag),
        "the oldest due waited 90 s: {lag}\n{text}"
    );
}
