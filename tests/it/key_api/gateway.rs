//! A real nginx, configured with the README's `auth_request` configuration and profile `api`, in
//! front of a tiny upstream that echoes the headers it receives.

use gatehouse::domain::vocabulary::Environment;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::support::app::retry_after;
use crate::support::fixtures::Tenant;
use crate::support::free_port;
use crate::support::gateways::{Nginx, ProfilesFile, upstream};
use crate::support::key_api::{keep_within_one_minute, key_api};

#[sqlx::test]
async fn nginx_with_the_readme_configuration_guards_the_platforms_api(pool: PgPool) {
    let profiles = ProfilesFile::from_readme();
    let gatehouse = key_api(
        pool.clone(),
        &[("GATEHOUSE_PROFILES_FILE", profiles.path())],
    )
    .await;
    let api = upstream().await;
    let port = free_port();
    let _nginx = Nginx::from_readme(&gatehouse.base, api, port, "api").await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let get = |path: &str, key: Option<&str>| {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(key) = key {
            request = request.header("X-Api-Key", key);
        }
        request.send()
    };

    let acme = Tenant::create(&pool, "acme").await;
    let (live, live_id) = acme
        .key(&pool, Environment::Live, &["read", "write"], 1000)
        .await;
    let (test, _) = acme.key(&pool, Environment::Test, &["read"], 1000).await;
    let (revoked, revoked_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.revoke(&pool, revoked_id).await;
    let (limited, _) = acme.key(&pool, Environment::Live, &["read"], 2).await;

    // A good key reaches the upstream with the identity headers; what the client claimed is overwritten.
    let response = client
        .get(format!("{base}/live/orders"))
        .header("Authorization", format!("Bearer {live}"))
        .header("Gatehouse-Tenant", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"key\";q=1000;w=60"
    );
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(echoed["path"], "/live/orders");
    assert_eq!(echoed["headers"]["gatehouse-key-id"], live_id.to_string());
    assert_eq!(
        echoed["headers"]["gatehouse-tenant-id"],
        acme.id.to_string()
    );
    assert_eq!(echoed["headers"]["gatehouse-tenant"], "acme");
    assert_eq!(echoed["headers"]["gatehouse-environment"], "live");
    assert_eq!(echoed["headers"]["gatehouse-scopes"], "read write");
    // The key stays with the gateway.
    assert!(echoed["headers"].get("authorization").is_none());

    // A revoked key, and no key at all: 401 with the challenge.
    for key in [Some(revoked.as_str()), None] {
        let response = get("/orders", key).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }

    // A test key: fine on the general routes, 403 on the live-only ones.
    assert_eq!(
        get("/orders", Some(&test)).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/live/orders", Some(&test)).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // Over the key's limit: 429 with Retry-After and the rate-limit headers, not nginx's 500.
    keep_within_one_minute(10).await;
    for _ in 0..2 {
        assert_eq!(
            get("/orders", Some(&limited)).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let response = get("/orders", Some(&limited)).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&retry_after(&response)));
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "RATE_LIMITED");
}
