//! What the key API writes to the request log: refusals, the first valid call per key, address
//! and minute, the client's method and path without the query, never the key; the buffer at
//! shutdown and under a flood; the daily partitions.

use gatehouse::domain::request_log;
use gatehouse::vocabulary::Environment;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::support::binary::Binary;
use crate::support::fixtures::{Tenant, unknown_key};
use crate::support::key_api::{
    VERIFIER, authorize, code_of, keep_within_one_minute, key_api, logged, verify,
};

/// (code, client_ip, method, path) of every record, oldest first.
async fn records(pool: &PgPool) -> Vec<(String, String, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT code, client_ip, method, path FROM request_log ORDER BY at, request_log_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn only_the_first_valid_call_per_key_address_and_minute_is_recorded(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let (other, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let app = key_api(pool.clone(), &[]).await;
    keep_within_one_minute(10).await;
    for (key, client) in [
        (&key, "203.0.113.9"),
        (&key, "203.0.113.9"),
        (&key, "203.0.113.9"),
        (&key, "2001:db8::7"),
        (&key, "2001:db8::7"),
        (&other, "203.0.113.9"),
    ] {
        let response = verify(&app, json!({ "key": key, "client_ip": client })).await;
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["code"],
            "VALID"
        );
    }
    // Every refusal is kept, however often.
    for _ in 0..3 {
        let response = verify(&app, json!({ "key": key, "scopes": ["write"] })).await;
        assert_eq!(response.status(), 200);
    }
    logged(&app, 6).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let rows = records(&pool).await;
    let valid = rows.iter().filter(|row| row.0 == "VALID").count();
    assert_eq!(valid, 3, "{rows:?}");
    assert_eq!(
        rows.iter()
            .filter(|row| row.0 == "INSUFFICIENT_SCOPE")
            .count(),
        3
    );
}

#[sqlx::test]
async fn calls_with_unknown_keys_are_counted_but_belong_to_no_tenant(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    assert_eq!(code_of(&app, &unknown_key()).await, "NOT_FOUND");
    assert_eq!(code_of(&app, "ak_live_nonsense").await, "MALFORMED");
    assert_eq!(authorize(&app, "", None).await.status(), 401);
    app.stop().await;
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM request_log")
            .fetch_one(&pool)
            .await
            .unwrap(),
        0
    );
    let counted: i64 = sqlx::query_scalar("SELECT sum(unknown_key)::bigint FROM request_log_gap")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(counted, 3);
}

#[sqlx::test]
async fn forward_auth_records_the_clients_method_and_path_without_the_query(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (key, key_id) = acme.key(&pool, Environment::Test, &["read"], 1000).await;
    acme.revoke(&pool, key_id).await;
    let app = key_api(pool.clone(), &[]).await;
    let client = app.client();
    let gateway = |path: &str| {
        client
            .get(app.url(path))
            .header("Gatehouse-Verifier", VERIFIER)
            .header("X-Api-Key", &key)
            .header("User-Agent", "shop-app/3.1")
    };
    // Traefik and Caddy.
    gateway("/v1/authorize?environment=live")
        .header("X-Forwarded-Method", "DELETE")
        .header("X-Forwarded-Uri", "/carts/7?coupon=SECRET10")
        .header("X-Forwarded-For", "198.51.100.20")
        .send()
        .await
        .unwrap();
    // nginx.
    gateway("/v1/authorize")
        .header("X-Original-Method", "PUT")
        .header("X-Original-URI", "/orders/9?session=abc#frag")
        .header("X-Real-IP", "198.51.100.21")
        .send()
        .await
        .unwrap();
    // Envoy appends the path.
    gateway("/v1/authorize/invoices/3?token=zzz")
        .send()
        .await
        .unwrap();
    logged(&app, 3).await;
    let rows = records(&pool).await;
    let seen: Vec<(String, Option<String>, Option<String>)> = rows
        .into_iter()
        .map(|(_, client, method, path)| (client, method, path))
        .collect();
    assert!(seen.contains(&(
        "198.51.100.20".into(),
        Some("DELETE".into()),
        Some("/carts/7".into())
    )));
    assert!(seen.contains(&(
        "198.51.100.21".into(),
        Some("PUT".into()),
        Some("/orders/9".into())
    )));
    assert!(
        seen.iter()
            .any(|(_, _, path)| path.as_deref() == Some("/invoices/3"))
    );
    let agents: Vec<String> = sqlx::query_scalar("SELECT DISTINCT user_agent FROM request_log")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(agents, ["shop-app/3.1"]);
}

#[sqlx::test]
async fn a_verify_request_object_that_makes_no_sense_is_refused_by_name(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    for (request, field) in [
        (json!({ "method": "GET /x" }), "request.method"),
        (
            json!({ "path": "https://api.example.com/x" }),
            "request.path",
        ),
    ] {
        let response = verify(&app, json!({ "key": unknown_key(), "request": request })).await;
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains(field));
    }
}

#[sqlx::test]
async fn neither_the_key_nor_a_query_string_reaches_any_column(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (key, key_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let (revoked, revoked_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.revoke(&pool, revoked_id).await;
    let app = key_api(pool.clone(), &[]).await;
    for secret in [&key, &revoked] {
        verify(
            &app,
            json!({ "key": secret, "scopes": ["write"], "request": {
                "method": "GET", "path": format!("/api/{secret}/x?q=querymarker&k={secret}"),
                "user_agent": format!("agent {secret}") } }),
        )
        .await;
        app.client()
            .get(app.url(&format!("/v1/authorize/api/{secret}?q=querymarker")))
            .header("Gatehouse-Verifier", VERIFIER)
            .header("Authorization", format!("Bearer {secret}"))
            .header("User-Agent", format!("ua {secret}"))
            .header("X-Forwarded-Uri", format!("/p/{secret}?q=querymarker"))
            .header("X-Request-Id", format!("id-{secret}"))
            .send()
            .await
            .unwrap();
    }
    logged(&app, 4).await;
    let texts: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' ', code, detail, via, client_ip, method, path, user_agent, request_id)
         FROM request_log",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(texts.len() >= 4, "{texts:?}");
    for text in &texts {
        for secret in [&key, &revoked] {
            assert!(!text.contains(&secret[8..]), "a key in the log: {text}");
        }
        assert!(
            !text.contains("querymarker") && !text.contains('?'),
            "a query: {text}"
        );
    }
    assert!(
        texts.iter().any(|text| text.contains("/api/[key]/x")),
        "{texts:?}"
    );
    let _ = key_id;
}

#[sqlx::test]
async fn records_buffered_at_a_graceful_shutdown_are_written(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (key, key_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.revoke(&pool, key_id).await;
    let app = crate::support::app::TestApp::spawn_with(
        pool.clone(),
        &[("GATEHOUSE_VERIFIER_TOKENS", VERIFIER)],
        |config| config.request_log_flush_interval = std::time::Duration::from_secs(3600),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(code_of(&app, &key).await, "REVOKED");
    }
    // The writer's first flush is an hour away: nothing is written yet.
    assert_eq!(app.count("request_log").await, 0);
    app.stop().await;
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM request_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(written, 5);
}

#[sqlx::test]
async fn a_disabled_log_records_nothing(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (key, key_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.revoke(&pool, key_id).await;
    let app = key_api(pool.clone(), &[("GATEHOUSE_REQUEST_LOG", "off")]).await;
    assert_eq!(code_of(&app, &key).await, "REVOKED");
    app.stop().await;
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM request_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(written, 0);
}

async fn partition_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'request_log'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn maintenance_drops_partitions_past_retention_and_creates_the_coming_days(pool: PgPool) {
    let now = OffsetDateTime::now_utc();
    let day = |offset: i64| {
        let date = (now + time::Duration::days(offset)).date();
        format!(
            "{}{:02}{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        )
    };
    let old = day(-30);
    let boundary = day(-13);
    for (name, offset) in [(&old, -30), (&boundary, -13)] {
        let from = (now + time::Duration::days(offset)).date();
        sqlx::query(&format!(
            "CREATE TABLE request_log_p{name} PARTITION OF request_log
             FOR VALUES FROM ('{from} 00:00:00+00') TO ('{} 00:00:00+00')",
            from.next_day().unwrap()
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
    let (first, second) = tokio::join!(
        request_log::maintain(&pool, 14, now),
        request_log::maintain(&pool, 14, now)
    );
    // Two instances at once: one does the work, the other finds the lock taken (or comes after).
    assert!(first.unwrap().is_some() || second.unwrap().is_some());
    let names = partition_names(&pool).await;
    assert!(!names.contains(&format!("request_log_p{old}")), "{names:?}");
    assert!(
        names.contains(&format!("request_log_p{boundary}")),
        "14 days are kept: {names:?}"
    );
    for ahead in 0..=2 {
        assert!(
            names.contains(&format!("request_log_p{}", day(ahead))),
            "{names:?}"
        );
    }
}

#[sqlx::test]
async fn a_flood_of_refused_calls_keeps_the_binarys_memory_bounded_and_its_logs_keyless(
    pool: PgPool,
) {
    let acme = Tenant::create(&pool, "acme").await;
    let (key, key_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.revoke(&pool, key_id).await;
    let server = Binary::start(
        &pool,
        &[
            ("GATEHOUSE_VERIFIER_TOKENS", VERIFIER),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;
    let app = &server.app;
    let client = app.client();
    let flood = |count: usize| {
        let client = client.clone();
        let url = app.url("/v1/authorize/orders?secret=q");
        let key = key.clone();
        async move {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (client, url, key) = (client.clone(), url.clone(), key.clone());
                    tokio::spawn(async move {
                        for _ in 0..count / 16 {
                            let response = client
                                .get(&url)
                                .header("Gatehouse-Verifier", VERIFIER)
                                .header("X-Api-Key", &key)
                                .header("User-Agent", "x".repeat(2000))
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(response.status(), 401);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    flood(800).await;
    let warmed = server.resident_mib("VmRSS");
    let started = std::time::Instant::now();
    flood(4_000).await;
    let after = server.resident_mib("VmRSS");
    eprintln!(
        "flood of 4,000 refused calls in {:?}: RSS {warmed} MiB -> {after} MiB",
        started.elapsed()
    );
    assert!(
        after <= warmed + 40,
        "memory grew from {warmed} to {after} MiB"
    );
    let logs = server.stop().await;
    assert!(!logs.contains(&key[8..]), "a key in the binary's log");
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM request_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    let dropped: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(dropped), 0)::bigint FROM request_log_gap")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        written + dropped,
        4_800,
        "every call is written or counted as dropped"
    );
}
