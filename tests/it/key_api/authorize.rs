//! `/v1/authorize`: forward auth as a gateway calls it.

use gatehouse::vocabulary::Environment;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::support::app::retry_after;
use crate::support::fixtures::{Tenant, expire, unknown_key};
use crate::support::key_api::{VERIFIER, authorize, keep_within_one_minute, key_api};

#[sqlx::test]
async fn forward_auth_passes_a_good_key_with_gatehouse_headers(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme
        .key(&pool, Environment::Live, &["read", "write"], 100)
        .await;
    let bearer = format!("Bearer {key}");
    for (header, value) in [
        ("Authorization", bearer.as_str()),
        ("X-Api-Key", key.as_str()),
        ("ApiKey", key.as_str()),
    ] {
        let response = authorize(
            &app,
            "?environment=live&scope=read&scope=write&tenant=acme",
            Some((header, value)),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{header}");
        let headers = response.headers();
        assert_eq!(headers["gatehouse-key-id"], id.to_string().as_str());
        assert_eq!(headers["gatehouse-tenant-id"], acme.id.to_string().as_str());
        assert_eq!(headers["gatehouse-tenant"], "acme");
        assert_eq!(headers["gatehouse-environment"], "live");
        assert_eq!(headers["gatehouse-scopes"], "read write");
        assert_eq!(headers["ratelimit-policy"], "\"key\";q=100;w=60");
        assert!(headers.contains_key("ratelimit"));
    }
    // Any method, and any path below /v1/authorize (Envoy appends the original path).
    let response = app
        .client()
        .post(app.url("/v1/authorize/orders/17?environment=live"))
        .header("Gatehouse-Verifier", VERIFIER)
        .header("X-Api-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[sqlx::test]
async fn forward_auth_answers_401_with_a_challenge_for_missing_bad_expired_and_revoked_keys(
    pool: PgPool,
) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (expired, expired_id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    expire(&pool, expired_id).await;
    let (revoked, revoked_id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    acme.revoke(&pool, revoked_id).await;
    let unknown = unknown_key();
    for (key, code) in [
        (None, "MISSING_KEY"),
        (Some(("Authorization", "Basic dXNlcjpwdw==")), "MISSING_KEY"),
        (Some(("X-Api-Key", "not-a-key")), "MALFORMED"),
        (Some(("X-Api-Key", unknown.as_str())), "NOT_FOUND"),
        (Some(("X-Api-Key", expired.as_str())), "EXPIRED"),
        (Some(("X-Api-Key", revoked.as_str())), "REVOKED"),
    ] {
        let response = authorize(&app, "", key).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{code}");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"gatehouse\""
        );
        assert!(!response.headers().contains_key("gatehouse-key-id"));
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code);
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

#[sqlx::test]
async fn forward_auth_answers_403_for_environment_tenant_and_scope_mismatches(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Test, &["read"], 100).await;
    for (query, code) in [
        ("?environment=live", "ENVIRONMENT_MISMATCH"),
        ("?tenant=globex", "TENANT_MISMATCH"),
        ("?scope=write", "INSUFFICIENT_SCOPE"),
    ] {
        let response = authorize(&app, query, Some(("X-Api-Key", &key))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{query}");
        assert!(!response.headers().contains_key("gatehouse-key-id"));
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code);
    }
    let response = authorize(&app, "?environment=staging", Some(("X-Api-Key", &key))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn forward_auth_answers_429_with_retry_after_over_the_limit(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 2).await;
    keep_within_one_minute(10).await;
    for remaining in ["1", "0"] {
        let response = authorize(&app, "", Some(("X-Api-Key", &key))).await;
        assert_eq!(response.status(), StatusCode::OK);
        let ratelimit = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            ratelimit.starts_with(&format!("\"key\";r={remaining};t=")),
            "{ratelimit}"
        );
    }
    let response = authorize(&app, "", Some(("X-Api-Key", &key))).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&retry_after(&response)));
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "RATE_LIMITED");
}

#[sqlx::test]
async fn forward_auth_needs_the_verifier_header(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    for verifier in [None, Some("wrong-verifier-token-000000")] {
        let mut request = app
            .client()
            .get(app.url("/v1/authorize"))
            .header("X-Api-Key", &key);
        if let Some(verifier) = verifier {
            request = request.header("Gatehouse-Verifier", verifier);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(!response.headers().contains_key("gatehouse-key-id"));
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "UNAUTHORIZED");
    }
}

#[sqlx::test]
async fn forward_auth_reads_the_key_from_the_configured_headers(pool: PgPool) {
    let app = key_api(
        pool.clone(),
        &[("GATEHOUSE_KEY_HEADERS", "X-Platform-Api-Key")],
    )
    .await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    let response = authorize(&app, "", Some(("X-Platform-Api-Key", &key))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = authorize(&app, "", Some(("X-Api-Key", &key))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "MISSING_KEY");
}

#[sqlx::test]
async fn a_jwt_in_authorization_neither_hides_an_apikey_nor_counts_as_a_bad_key(pool: PgPool) {
    let app = key_api(pool.clone(), &[("GATEHOUSE_BAD_KEY_LIMIT", "2")]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    let jwt = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
    for _ in 0..4 {
        let response = app
            .client()
            .get(app.url("/v1/authorize"))
            .header("Gatehouse-Verifier", VERIFIER)
            .header("Authorization", jwt)
            .header("ApiKey", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["gatehouse-key-id"],
            id.to_string().as_str()
        );
    }
    for _ in 0..4 {
        let response = authorize(&app, "", Some(("Authorization", jwt))).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "MISSING_KEY");
    }
}

#[sqlx::test]
async fn bad_keys_count_against_the_client_the_gateway_names_in_x_forwarded_for(pool: PgPool) {
    let app = key_api(pool.clone(), &[("GATEHOUSE_BAD_KEY_LIMIT", "2")]).await;
    let from = |client: &'static str| {
        app.client()
            .get(app.url("/v1/authorize"))
            .header("Gatehouse-Verifier", VERIFIER)
            .header("X-Forwarded-For", format!("6.6.6.6, {client}"))
            .header("X-Api-Key", "not-a-key")
            .send()
    };
    for code in ["MALFORMED", "MALFORMED", "RATE_LIMITED"] {
        let error: Value = from("203.0.113.1").await.unwrap().json().await.unwrap();
        assert_eq!(error["error"]["code"], code);
    }
    let error: Value = from("203.0.113.2").await.unwrap().json().await.unwrap();
    assert_eq!(error["error"]["code"], "MALFORMED");
}
