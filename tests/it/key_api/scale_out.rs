//! Three real instances behind real nginx (round-robin) on one database: what one instance
//! learns, every instance acts on.

use std::time::{Duration, Instant};

use gatehouse::vocabulary::Environment;
use serde_json::json;
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::binary::Binary;
use crate::support::fixtures::Tenant;
use crate::support::free_port;
use crate::support::gateways::Gateway;
use crate::support::key_api::{VERIFIER, code_of, keep_within_one_minute, verify};

const FLUSH_SECONDS: u64 = 1;

struct Cluster {
    instances: Vec<Binary>,
    /// nginx in front of them.
    front: TestApp,
    _nginx: Gateway,
}

async fn three_instances_behind_nginx(pool: &PgPool) -> Cluster {
    let flush = FLUSH_SECONDS.to_string();
    let env = [
        ("GATEHOUSE_VERIFIER_TOKENS", VERIFIER),
        ("GATEHOUSE_USAGE_FLUSH_SECONDS", flush.as_str()),
        ("RUST_LOG", "warn"),
    ];
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Binary::start(pool, &env).await);
    }
    // Every instance is listening for key changes (its cache is off until it is).
    for _ in 0..200 {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if listening >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let port = free_port();
    let backends: Vec<&str> = instances
        .iter()
        .map(|binary| binary.app.base.as_str())
        .collect();
    let nginx = Gateway::round_robin(&backends, port).await;
    Cluster {
        instances,
        front: TestApp::external(format!("http://127.0.0.1:{port}"), pool.clone()),
        _nginx: nginx,
    }
}

#[sqlx::test]
async fn three_instances_share_revocations_rate_limits_usage_and_sessions(pool: PgPool) {
    let cluster = three_instances_behind_nginx(&pool).await;
    let acme = Tenant::create(&pool, "acme").await;

    // A session made through one instance is valid on every instance.
    let client = cluster.front.signed_in_user("ada@example.com", "Ada").await;
    for instance in &cluster.instances {
        let account = instance.app.get(&client, "/account").await;
        assert_eq!(account.status(), 200, "{}", instance.app.base);
        assert!(account.text().await.unwrap().contains("ada@example.com"));
    }

    // Revocation: every instance holds the key in its cache, then refuses it within a second.
    let mut delays = Vec::new();
    for _ in 0..50 {
        let (key, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
        for instance in &cluster.instances {
            assert_eq!(code_of(&instance.app, &key).await, "VALID");
        }
        let revoked_at = Instant::now();
        acme.revoke(&pool, id).await;
        let mut slowest = Duration::ZERO;
        for instance in &cluster.instances {
            while code_of(&instance.app, &key).await != "REVOKED" {
                assert!(
                    revoked_at.elapsed() < Duration::from_secs(1),
                    "still accepted after 1 s"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            slowest = slowest.max(revoked_at.elapsed());
        }
        delays.push(slowest);
    }
    delays.sort();
    let p99 = delays[delays.len() * 99 / 100 - 1];
    println!(
        "revocation refused on all three instances: p50 {:?}, p99 {p99:?} over {} revocations",
        delays[delays.len() / 2],
        delays.len()
    );
    assert!(p99 < Duration::from_secs(1));

    // A key's rate limit across the three: 120 verifications through nginx at 20 per second with
    // a limit of 40 per minute. Each instance counts its own and learns the others' from the
    // usage flushes, so once the cluster has spent the budget an instance can go on passing only
    // until its next flush of a VALID answer: at most two flush intervals of requests.
    const LIMIT: u32 = 40;
    const SENT: u32 = 120;
    const PER_SECOND: u32 = 20;
    let bound = LIMIT + 2 * FLUSH_SECONDS as u32 * PER_SECOND;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], LIMIT).await;
    keep_within_one_minute(15).await;
    let mut valid = 0;
    for _ in 0..SENT {
        let response = verify(&cluster.front, json!({ "key": key })).await;
        let body: serde_json::Value = response.json().await.unwrap();
        match body["code"].as_str().unwrap() {
            "VALID" => valid += 1,
            "RATE_LIMITED" => {}
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(1000 / u64::from(PER_SECOND))).await;
    }
    println!(
        "rate limit {LIMIT}/min across three instances: {valid} of {SENT} passed (bound {bound})"
    );
    assert!(
        valid >= LIMIT,
        "nothing is refused before the budget is spent"
    );
    assert!(
        valid <= bound,
        "{valid} passed: the instances did not share the budget"
    );

    // Usage sums are exact once every instance has shut down (and written its last counters).
    for instance in cluster.instances {
        instance.stop().await;
    }
    let (counted, counted_valid): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(count), 0)::bigint, coalesce(sum(count) FILTER (WHERE outcome = 'VALID'), 0)::bigint
         FROM key_usage_minute WHERE api_key_id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counted, i64::from(SENT));
    assert_eq!(counted_valid, i64::from(valid));
}
