//! The key API fails closed: with the database down it answers 503, never `valid: true` past the
//! moment the loss is noticed, and serves again without a restart when the database is back.

use std::time::{Duration, Instant};

use gatehouse::error::RETRY_AFTER_SECONDS;
use gatehouse::vocabulary::Environment;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::clusters::Cluster;
use crate::support::fixtures::Tenant;
use crate::support::key_api::{authorize, key_api, verify};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_gets_503_never_valid_and_service_resumes_when_it_returns() {
    let cluster = Cluster::start_new();
    let pool = cluster.production_pool().await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 100_000).await;
    let app = key_api(pool.clone(), &[]).await;
    app.wait_until_listening().await;
    let body = json!({ "key": key });
    let answer = verify(&app, body.clone())
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(answer["code"], "VALID");
    assert_eq!(
        app.key_cache.len(),
        1,
        "the key is cached before the outage"
    );

    cluster.stop();
    // The LISTEN connection sees the server go; give the instance a moment to notice.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = Instant::now();
    let mut answers = 0;
    while stopped.elapsed() < Duration::from_secs(3) {
        let response = verify(&app, body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "verify while the database is down"
        );
        assert_eq!(
            response.headers()["retry-after"],
            RETRY_AFTER_SECONDS.to_string()
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "UNAVAILABLE");
        let response = authorize(&app, "", Some(("X-Api-Key", &key))).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "forward-auth while the database is down"
        );
        assert_eq!(
            response.headers()["retry-after"],
            RETRY_AFTER_SECONDS.to_string()
        );
        assert!(!response.headers().contains_key("gatehouse-key-id"));
        answers += 1;
    }
    assert!(answers > 0);

    cluster.start();
    let restarted = Instant::now();
    loop {
        let response = verify(&app, body.clone()).await;
        if response.status() == StatusCode::OK {
            let answer: Value = response.json().await.unwrap();
            assert_eq!(answer["code"], "VALID");
            break;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            restarted.elapsed() < Duration::from_secs(20),
            "still unavailable 20 s after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let response = authorize(&app, "", Some(("X-Api-Key", &key))).await;
    assert_eq!(response.status(), StatusCode::OK);
}
