//! A report of 1,000 candidates: one batched lookup for the well-formed ones, no query at all for
//! those failing the format or the checksum (counted by `pg_stat_statements` on a cluster of the
//! test's own), answered within 10 s.

use std::time::{Duration, Instant};

use gatehouse::vocabulary::Environment;
use serde_json::Value;
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::clusters::Cluster;
use crate::support::fixtures::{Tenant, unknown_key};
use crate::support::key_api::{VERIFIER, code_of};
use crate::support::leaks::{KeysServer, Signer, report, send_signed};

/// Statements run since the last reset: (query, calls), busiest first.
async fn statements(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT query, calls FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
         ORDER BY calls DESC",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn reset(pool: &PgPool) {
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(pool)
        .await
        .unwrap();
}

/// `key` with its checksum's last character changed: right shape, wrong CRC32.
fn bad_checksum(key: &str) -> String {
    let mut changed = key.to_owned();
    let last = if key.ends_with('0') { "1" } else { "0" };
    changed.replace_range(key.len() - 1.., last);
    changed
}

#[tokio::test]
async fn a_thousand_candidates_take_one_lookup_and_none_for_checksum_failures() {
    let cluster = Cluster::start_new();
    cluster.configure("shared_preload_libraries = 'pg_stat_statements'");
    cluster.configure("pg_stat_statements.track = 'all'");
    cluster.stop();
    cluster.start();
    let pool = cluster.production_pool().await;
    sqlx::query("CREATE EXTENSION pg_stat_statements")
        .execute(&pool)
        .await
        .unwrap();
    let scanner = Signer::new("k1");
    let keys = KeysServer::start(&[&scanner]).await;
    let app = TestApp::spawn_with(
        pool.clone(),
        &[
            ("GATEHOUSE_VERIFIER_TOKENS", VERIFIER),
            ("GATEHOUSE_LEAK_GITHUB_KEYS_URL", &keys.url),
        ],
        |_| {},
    )
    .await;
    let acme = Tenant::create(&pool, "acme").await;
    let (live, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;

    // 999 checksum failures and one live key.
    let mut tokens: Vec<String> = (0..999).map(|_| bad_checksum(&unknown_key())).collect();
    tokens.insert(500, live.clone());
    let matches: Vec<(&str, &str)> = tokens
        .iter()
        .map(|token| (token.as_str(), "https://github.com/octo/app/blob/1/a.env"))
        .collect();
    let body = report(&matches);
    let signature = scanner.sign(&body);
    reset(&pool).await;
    let started = Instant::now();
    let response =
        crate::support::leaks::post_report(&app, Some("k1"), Some(&signature), body).await;
    assert_eq!(response.status(), 200);
    let feedback: Vec<Value> = response.json().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(feedback.len(), 1000);
    let positives: Vec<usize> = (0..1000)
        .filter(|&n| feedback[n]["label"] == "true_positive")
        .collect();
    assert_eq!(positives, vec![500]);
    let ran = statements(&pool).await;
    let lookups: i64 = ran
        .iter()
        .filter(|(query, _)| query.contains("FROM api_key WHERE secret_hash = ANY"))
        .map(|(_, calls)| calls)
        .sum();
    assert_eq!(lookups, 1, "{ran:#?}");
    // Acting on the one key takes a few dozen statements; none ran per candidate.
    assert!(ran.iter().all(|(_, calls)| *calls < 50), "{ran:#?}");
    assert_eq!(code_of(&app, &live).await, "REVOKED");

    // 1,000 well-formed keys never issued: one lookup for all of them, all false positives.
    let tokens: Vec<String> = (0..1000).map(|_| unknown_key()).collect();
    let matches: Vec<(&str, &str)> = tokens
        .iter()
        .map(|token| (token.as_str(), "https://github.com/octo/app"))
        .collect();
    reset(&pool).await;
    let started = Instant::now();
    let response = send_signed(&app, &scanner, report(&matches)).await;
    assert_eq!(response.status(), 200);
    let feedback: Vec<Value> = response.json().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        feedback
            .iter()
            .all(|item| item["label"] == "false_positive")
    );
    let ran = statements(&pool).await;
    let lookups: i64 = ran
        .iter()
        .filter(|(query, _)| query.contains("secret_hash = ANY"))
        .map(|(_, calls)| calls)
        .sum();
    assert_eq!(lookups, 1, "{ran:#?}");
    drop(app);
}
