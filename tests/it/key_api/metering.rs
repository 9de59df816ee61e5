//! Usage metering: exact counts after a graceful shutdown, retried batches counted once, retention.

use std::collections::HashMap;

use gatehouse::db::metering::{UsageBatch, UsageRow, write_batch};
use gatehouse::domain::metering::{Meter, apply_retention};
use gatehouse::domain::rate_limit::RateLimits;
use gatehouse::domain::verification::{Code, KeyRecord};
use gatehouse::vocabulary::Environment;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::support::fixtures::Tenant;
use crate::support::key_api::{key_api, verify};

async fn counts_by_outcome(pool: &PgPool, table: &str) -> HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT outcome, sum(count)::bigint FROM {table} GROUP BY outcome"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter().collect()
}

#[sqlx::test]
async fn every_verification_is_counted_once_after_a_graceful_shutdown(pool: PgPool) {
    // Flushes every second while the load runs, and once more at shutdown.
    let app = key_api(pool.clone(), &[("GATEHOUSE_USAGE_FLUSH_SECONDS", "1")]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (live, live_id) = acme
        .key(&pool, Environment::Live, &["read"], 1_000_000)
        .await;
    let (test, _) = acme
        .key(&pool, Environment::Test, &["read"], 1_000_000)
        .await;

    const PER_TASK: usize = 150;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for task in 0..4 {
        let app = app.clone();
        let (live, test) = (live.clone(), test.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let body = match (task + i) % 3 {
                    0 | 1 => json!({ "key": live }),
                    _ => json!({ "key": test, "environment": "live" }),
                };
                assert_eq!(verify(&app, body).await.status(), 200);
                if i == PER_TASK / 2 && task == 0 {
                    // Let at least one periodic flush happen mid-way.
                    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let sent = 4 * PER_TASK;
    let expected_mismatches = (0..4)
        .flat_map(|task| (0..PER_TASK).map(move |i| (task + i) % 3))
        .filter(|n| *n == 2)
        .count();
    let flushed_before_stop: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(count), 0)::bigint FROM key_usage_minute")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(flushed_before_stop > 0, "the periodic flush wrote nothing");

    std::sync::Arc::into_inner(app).unwrap().stop().await;

    // The roll-ups the portal reads agree with the counters they roll up.
    for table in [
        "key_usage_minute",
        "key_usage_hour",
        "key_usage_day",
        "tenant_usage_minute",
        "tenant_usage_hour",
    ] {
        let counts = counts_by_outcome(&pool, table).await;
        assert_eq!(
            counts.values().sum::<i64>(),
            i64::try_from(sent).unwrap(),
            "{table}"
        );
        assert_eq!(
            counts["ENVIRONMENT_MISMATCH"],
            i64::try_from(expected_mismatches).unwrap(),
            "{table}"
        );
        assert_eq!(
            counts["VALID"],
            i64::try_from(sent - expected_mismatches).unwrap()
        );
    }
    let last_used: Option<OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM api_key WHERE api_key_id = $1")
            .bind(live_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    let last_used = last_used.expect("last_used_at is set");
    assert!(OffsetDateTime::now_utc() - last_used < Duration::minutes(1));
}

#[sqlx::test]
async fn refused_verifications_do_not_count_as_the_last_use_of_a_key(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (revoked, revoked_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let (test, test_id) = acme.key(&pool, Environment::Test, &["read"], 1000).await;
    acme.revoke(&pool, revoked_id).await;
    for _ in 0..3 {
        let answer: serde_json::Value = verify(&app, json!({ "key": revoked }))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["code"], "REVOKED");
        let answer: serde_json::Value = verify(
            &app,
            json!({ "key": test, "environment": "live", "scopes": ["write"] }),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(answer["code"], "ENVIRONMENT_MISMATCH");
    }
    app.stop().await;
    assert_eq!(
        counts_by_outcome(&pool, "key_usage_minute")
            .await
            .values()
            .sum::<i64>(),
        6
    );
    for id in [revoked_id, test_id] {
        let last_used: Option<OffsetDateTime> =
            sqlx::query_scalar("SELECT last_used_at FROM api_key WHERE api_key_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(last_used, None, "a refused call is no use of the key");
    }
}

fn batch(key: Uuid, tenant: Uuid, count: i64) -> UsageBatch {
    let bucket =
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp() / 60 * 60)
            .unwrap();
    let row = |bucket| UsageRow {
        api_key_id: key,
        bucket,
        outcome: "VALID".into(),
        tenant_id: tenant,
        count,
    };
    UsageBatch {
        flush_id: Uuid::new_v4(),
        minutes: vec![row(bucket)],
        hours: vec![row(
            bucket - Duration::seconds(bucket.unix_timestamp() % 3600)
        )],
        last_used: vec![(key, bucket)],
    }
}

#[sqlx::test]
async fn a_retried_usage_batch_is_not_counted_twice(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (_, key) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    let batch = batch(key, acme.id, 7);
    let mut conn = pool.acquire().await.unwrap();
    let totals = write_batch(&mut conn, &batch).await.unwrap().unwrap();
    assert_eq!(totals[0].count, 7);
    // The same batch again, as after an acknowledgement lost in transit: refused as a whole.
    assert!(write_batch(&mut conn, &batch).await.unwrap().is_none());
    // A different batch adds up.
    let totals = write_batch(&mut conn, &self::batch(key, acme.id, 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(totals[0].count, 9);
    assert_eq!(
        counts_by_outcome(&pool, "key_usage_minute").await["VALID"],
        9
    );
    assert_eq!(counts_by_outcome(&pool, "key_usage_hour").await["VALID"], 9);
}

#[sqlx::test]
async fn a_failed_flush_keeps_its_counts_and_writes_them_once_later(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (_, key) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    let record = KeyRecord {
        id: key,
        name: "k".into(),
        environment: Environment::Live,
        tenant_id: acme.id,
        tenant_slug: acme.slug.clone(),
        scopes: vec![],
        rate_limit: 100,
        expires_at: None,
        revoked_at: None,
        disabled: false,
        ip_allowlist: Default::default(),
        meta: serde_json::json!({}),
        tenant_suspended: false,
        legacy: false,
        answer_view: Default::default(),
    };
    let meter = Meter::new();
    let limits = RateLimits::new(100);
    let now = OffsetDateTime::now_utc();
    for _ in 0..5 {
        meter.record(&record, Code::Valid, now);
    }
    let broken = PgPoolOptions::new().connect_lazy_with(pool.connect_options().as_ref().clone());
    broken.close().await;
    assert!(meter.flush(&broken, &limits).await.is_err());
    assert_eq!(meter.unwritten(), 5);
    meter.record(&record, Code::Revoked, now);
    meter.record(&record, Code::Valid, now);

    assert_eq!(meter.flush(&pool, &limits).await.unwrap(), 7);
    assert_eq!(meter.unwritten(), 0);
    assert_eq!(meter.flush(&pool, &limits).await.unwrap(), 0);
    let counts = counts_by_outcome(&pool, "key_usage_minute").await;
    assert_eq!((counts["VALID"], counts["REVOKED"]), (6, 1));
}

#[sqlx::test]
async fn old_counters_are_deleted_minutes_after_7_days_hours_after_400(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (_, key) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    let now = OffsetDateTime::now_utc();
    for (table, age) in [
        ("key_usage_minute", Duration::days(6)),
        ("key_usage_minute", Duration::days(8)),
        ("key_usage_hour", Duration::days(399)),
        ("key_usage_hour", Duration::days(401)),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {table} (api_key_id, tenant_id, bucket, outcome, count) VALUES ($1, $2, $3, 'VALID', 1)"
        ))
        .bind(key)
        .bind(acme.id)
        .bind(now - age)
        .execute(&pool)
        .await
        .unwrap();
    }
    assert_eq!(apply_retention(&pool, now).await.unwrap(), 2);
    let kept: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'minute', extract(day FROM now() - bucket)::bigint FROM key_usage_minute
         UNION ALL SELECT 'hour', extract(day FROM now() - bucket)::bigint FROM key_usage_hour
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(kept, [("hour".to_owned(), 399), ("minute".to_owned(), 6)]);
}
