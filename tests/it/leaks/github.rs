//! `POST /v1/leaks/github`: reports signed by a scanner's P-256 key (made and used by Node's crypto)
//! whose keys document is served on loopback.

use std::time::{Duration, Instant};

use gatehouse::vocabulary::Environment;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::{Tenant, unknown_key};
use crate::support::key_api::{VERIFIER, code_of};
use crate::support::leaks::{KeysServer, Signer, post_report, report, send_signed, sha256_hex};

/// A Gatehouse taking leak reports from the keys document at `keys`.
pub async fn intake(pool: &PgPool, keys: &KeysServer) -> TestApp {
    TestApp::spawn_with(
        pool.clone(),
        &[
            ("GATEHOUSE_VERIFIER_TOKENS", VERIFIER),
            ("GATEHOUSE_LEAK_GITHUB_KEYS_URL", &keys.url),
        ],
        |_| {},
    )
    .await
}

async fn leaks_recorded(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM key_leak")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn audited(pool: &PgPool, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_event WHERE action = $1")
        .bind(action)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_signed_report_revokes_a_live_key_on_every_instance_and_labels_each_candidate(
    pool: PgPool,
) {
    let scanner = Signer::new("github-key-1");
    let keys = KeysServer::start(&[&scanner]).await;
    let first = intake(&pool, &keys).await;
    let second = intake(&pool, &keys).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (live, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let (test, _) = acme.key(&pool, Environment::Test, &["read"], 1000).await;
    let unknown = unknown_key();
    let mut broken = live.clone();
    broken.replace_range(12..13, if &live[12..13] == "A" { "B" } else { "A" });
    // The second instance has the live key in its cache.
    assert_eq!(code_of(&second, &live).await, "VALID");

    let url = "https://github.com/octo/app/blob/0ab1/config.py";
    let body = report(&[
        (&live, url),
        (&test, url),
        (&unknown, url),
        (&broken, url),
        ("not a key at all", url),
    ]);
    let sent = Instant::now();
    let response = send_signed(&first, &scanner, body.clone()).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for secret in [&live, &test, &unknown, &broken] {
        assert!(
            !text.contains(secret.as_str()),
            "the answer echoes a secret"
        );
    }
    let feedback: Value = serde_json::from_str(&text).unwrap();
    let expected = |token: &str, label: &str| json!({ "token_hash": sha256_hex(token), "token_type": "gatehouse_api_key", "label": label });
    assert_eq!(
        feedback,
        json!([
            expected(&live, "true_positive"),
            expected(&test, "true_positive"),
            expected(&unknown, "false_positive"),
            expected(&broken, "false_positive"),
            expected("not a key at all", "false_positive"),
        ])
    );

    // The live key stops working on the other instance within a second; the test key (notify
    // by default) keeps working.
    while code_of(&second, &live).await != "REVOKED" {
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(code_of(&second, &test).await, "VALID");
    assert_eq!(leaks_recorded(&pool).await, 2);
    assert_eq!(audited(&pool, "key.leaked").await, 2);
    assert_eq!(audited(&pool, "key.revoked").await, 1);
    let revoked_by: Option<String> =
        sqlx::query_scalar("SELECT revoked_by_label FROM api_key WHERE revoked_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        revoked_by.as_deref(),
        Some("Leak report from \u{201c}github\u{201d}")
    );

    // The same report again (to the other instance): the same answer, nothing acts twice.
    let again = send_signed(&second, &scanner, body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), feedback);
    assert_eq!(leaks_recorded(&pool).await, 2);
    assert_eq!(audited(&pool, "key.leaked").await, 2);
    assert_eq!(audited(&pool, "key.revoked").await, 1);
}

#[sqlx::test]
async fn forged_missing_and_altered_signatures_are_refused_and_change_nothing(pool: PgPool) {
    let scanner = Signer::new("github-key-1");
    let forger = Signer::new("github-key-1");
    let keys = KeysServer::start(&[&scanner]).await;
    let app = intake(&pool, &keys).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (live, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let url = "https://github.com/octo/app/blob/0ab1/.env";
    let body = report(&[(&live, url)]);
    let signature = scanner.sign(&body);

    // Signed by another key under the published identifier.
    let forged = forger.sign(&body);
    let refusals = [
        post_report(&app, Some("github-key-1"), Some(&forged), body.clone()).await,
        // The right signature under an identifier the document does not have.
        post_report(&app, Some("github-key-9"), Some(&signature), body.clone()).await,
        // No signature, no identifier.
        post_report(&app, Some("github-key-1"), None, body.clone()).await,
        post_report(&app, None, Some(&signature), body.clone()).await,
        // The body re-serialised after signing (same JSON, other bytes).
        {
            let value: Value = serde_json::from_slice(&body).unwrap();
            let pretty = serde_json::to_vec_pretty(&value).unwrap();
            post_report(&app, Some("github-key-1"), Some(&signature), pretty).await
        },
        // The body changed after signing.
        {
            let changed = report(&[(&live, "https://github.com/octo/other")]);
            post_report(&app, Some("github-key-1"), Some(&signature), changed).await
        },
        // Not base64.
        post_report(&app, Some("github-key-1"), Some("%%%"), body.clone()).await,
    ];
    for (n, response) in refusals.into_iter().enumerate() {
        assert_eq!(response.status(), 401, "refusal {n}");
        assert!(response.headers().contains_key("www-authenticate"));
        let text = response.text().await.unwrap();
        assert!(!text.contains(&live), "refusal {n} echoes the key");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["code"], "UNAUTHORIZED", "refusal {n}");
    }
    assert_eq!(code_of(&app, &live).await, "VALID");
    assert_eq!(leaks_recorded(&pool).await, 0);
    assert_eq!(audited(&pool, "key.leaked").await, 0);

    // The genuine report acts.
    let response = post_report(&app, Some("github-key-1"), Some(&signature), body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(code_of(&app, &live).await, "REVOKED");
}

#[sqlx::test]
async fn an_unknown_key_id_fetches_the_document_again_at_most_once_a_minute(pool: PgPool) {
    let old = Signer::new("old");
    let new = Signer::new("new");
    let keys = KeysServer::start(&[&old]).await;
    let app = intake(&pool, &keys).await;
    let body = report(&[("nothing", "https://github.com/octo/app")]);

    assert_eq!(send_signed(&app, &old, body.clone()).await.status(), 200);
    assert_eq!(keys.fetches(), 1);
    assert_eq!(send_signed(&app, &old, body.clone()).await.status(), 200);
    assert_eq!(keys.fetches(), 1, "a known key is taken from the cache");

    // GitHub rotates its key: the document is fetched again, but only once a minute.
    keys.publish(&new);
    assert_eq!(send_signed(&app, &new, body.clone()).await.status(), 401);
    assert_eq!(keys.fetches(), 1, "fetched again within the minute");

    // With a shorter interval: unknown ids within it fetch nothing; after it, one fetch finds the
    // new key.
    let keys = KeysServer::start(&[&old]).await;
    let app = TestApp::spawn_with(
        pool.clone(),
        &[("GATEHOUSE_LEAK_GITHUB_KEYS_URL", &keys.url)],
        |config| config.leak_keys_refetch = Duration::from_secs(2),
    )
    .await;
    assert_eq!(send_signed(&app, &old, body.clone()).await.status(), 200);
    assert_eq!(keys.fetches(), 1);
    for _ in 0..5 {
        let unknown = post_report(&app, Some("nobody"), Some("MEUCIQ=="), body.clone()).await;
        assert_eq!(unknown.status(), 401);
    }
    assert_eq!(
        keys.fetches(),
        1,
        "unknown ids are not a way to flood the sender"
    );
    keys.publish(&new);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(send_signed(&app, &new, body.clone()).await.status(), 200);
    assert_eq!(keys.fetches(), 2);
    assert_eq!(send_signed(&app, &old, body).await.status(), 200);
    assert_eq!(keys.fetches(), 2);
}
