//! `POST /v1/keys/verify` and `/v1/authorize`: every code, status and header of the contract.

use gatehouse::domain::keys::{Environment, hash};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::fixtures::{
    OTHER_VERIFIER, Tenant, VERIFIER, authorize, code_of, expire, keep_within_one_minute, key_api,
    unknown_key, verify,
};

#[sqlx::test]
async fn a_good_key_is_valid_with_its_key_tenant_and_rate_limit(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme
        .key(&pool, Environment::Live, &["read", "write"], 50)
        .await;
    keep_within_one_minute(5).await;

    let response = verify(
        &app,
        json!({ "key": key, "environment": "live", "tenant": "acme", "scopes": ["write"] }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=50;w=60");
    let ratelimit = response.headers()["ratelimit"].to_str().unwrap().to_owned();
    assert!(ratelimit.starts_with("\"key\";r=49;t="), "{ratelimit}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["valid"], true);
    assert_eq!(body["code"], "VALID");
    assert_eq!(body["key"]["id"], id.to_string());
    assert_eq!(body["key"]["name"], "live key");
    assert_eq!(body["key"]["environment"], "live");
    assert_eq!(body["key"]["tenant"]["id"], acme.id.to_string());
    assert_eq!(body["key"]["tenant"]["slug"], "acme");
    assert_eq!(body["key"]["scopes"], json!(["read", "write"]));
    assert_eq!(body["key"]["expires_at"], Value::Null);
    assert_eq!(body["ratelimit"]["limit"], 50);
    assert_eq!(body["ratelimit"]["remaining"], 49);
    let reset = body["ratelimit"]["reset"].as_u64().unwrap();
    assert!((1..=60).contains(&reset));

    // The other configured verifier token works too; the tenant may be named by id.
    let response = app
        .client()
        .post(app.url("/v1/keys/verify"))
        .bearer_auth(OTHER_VERIFIER)
        .json(&json!({ "key": key, "tenant": acme.id.to_string() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "VALID");
}

#[sqlx::test]
async fn malformed_unknown_expired_and_revoked_keys_are_refused_with_their_codes(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (expired, expired_id) = acme.key(&pool, Environment::Live, &["read"], 50).await;
    expire(&pool, expired_id).await;
    let (revoked, revoked_id) = acme.key(&pool, Environment::Live, &["read"], 50).await;
    acme.revoke(&pool, revoked_id).await;

    let mut bad_checksum = unknown_key();
    bad_checksum.pop();
    bad_checksum.push('0');
    for (key, code) in [
        ("".to_owned(), "MALFORMED"),
        ("ak_live_short".to_owned(), "MALFORMED"),
        (bad_checksum, "MALFORMED"),
        (unknown_key().replacen("ak_", "xx_", 1), "MALFORMED"),
        (unknown_key(), "NOT_FOUND"),
        (expired, "EXPIRED"),
        (revoked, "REVOKED"),
    ] {
        let response = verify(&app, json!({ "key": key })).await;
        assert_eq!(response.status(), StatusCode::OK, "{code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["valid"], false, "{code}");
        assert_eq!(body["code"], code);
        assert!(body.get("ratelimit").is_none(), "{code}");
        // A found key is described; a key that does not exist is not.
        assert_eq!(
            body.get("key").is_some(),
            matches!(code, "EXPIRED" | "REVOKED"),
            "{code}"
        );
    }
}

#[sqlx::test]
async fn a_rolled_key_works_during_its_grace_and_is_expired_after_it(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (old, old_id) = acme.key(&pool, Environment::Live, &["read"], 50).await;
    let new = acme.roll(&pool, old_id, time::Duration::hours(1)).await;
    assert_eq!(code_of(&app, &old).await, "VALID");
    assert_eq!(code_of(&app, &new).await, "VALID");

    let (old, old_id) = acme.key(&pool, Environment::Live, &["read"], 50).await;
    let new = acme.roll(&pool, old_id, time::Duration::ZERO).await;
    assert_eq!(code_of(&app, &old).await, "EXPIRED");
    assert_eq!(code_of(&app, &new).await, "VALID");
}

#[sqlx::test]
async fn environment_tenant_and_scope_requirements_are_enforced(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    Tenant::create(&pool, "globex").await;
    let (key, _) = acme.key(&pool, Environment::Test, &["read"], 50).await;
    for (requirements, code) in [
        (json!({ "environment": "live" }), "ENVIRONMENT_MISMATCH"),
        (json!({ "environment": "test" }), "VALID"),
        (json!({ "tenant": "globex" }), "TENANT_MISMATCH"),
        (
            json!({ "tenant": uuid::Uuid::new_v4().to_string() }),
            "TENANT_MISMATCH",
        ),
        (json!({ "scopes": ["read", "write"] }), "INSUFFICIENT_SCOPE"),
        (json!({ "scopes": ["read"] }), "VALID"),
    ] {
        let mut body = requirements.clone();
        body["key"] = json!(key);
        let response = verify(&app, body).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{requirements}");
        assert_eq!(body["valid"], code == "VALID");
        assert_eq!(body["key"]["tenant"]["slug"], "acme");
    }
}

#[sqlx::test]
async fn a_key_over_its_limit_per_minute_is_rate_limited(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 3).await;
    keep_within_one_minute(10).await;
    for _ in 0..3 {
        assert_eq!(code_of(&app, &key).await, "VALID");
    }
    let response = verify(&app, json!({ "key": key })).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=3;w=60");
    assert!(
        response.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"key\";r=0;t=")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["valid"], false);
    assert_eq!(body["code"], "RATE_LIMITED");
    assert_eq!(body["ratelimit"]["remaining"], 0);
    assert_eq!(body["ratelimit"]["limit"], 3);
}

#[sqlx::test]
async fn verify_needs_a_configured_verifier_token(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let body = json!({ "key": unknown_key() });
    let client = app.client();
    let url = app.url("/v1/keys/verify");
    for request in [
        client.post(&url).json(&body),
        client
            .post(&url)
            .bearer_auth("not-the-verifier-token-at-all")
            .json(&body),
        client
            .post(&url)
            .bearer_auth(&VERIFIER[..VERIFIER.len() - 1])
            .json(&body),
        client.post(&url).basic_auth(VERIFIER, Some("")).json(&body),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "UNAUTHORIZED");
    }

    // No tokens configured: the key API refuses everyone.
    let closed = crate::support::app::TestApp::spawn(pool).await;
    let response = verify(&closed, body).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test]
async fn bad_bodies_get_400_and_oversized_ones_413_as_json(pool: PgPool) {
    let app = key_api(pool, &[]).await;
    let client = app.client();
    let url = app.url("/v1/keys/verify");
    for body in [
        "not json".to_owned(),
        "{}".to_owned(),
        r#"{"key": 42}"#.to_owned(),
        r#"{"key": "ak_live_x", "environment": "prod"}"#.to_owned(),
        r#"{"key": "ak_live_x", "scopes": "read"}"#.to_owned(),
    ] {
        let response = client
            .post(&url)
            .bearer_auth(VERIFIER)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "BAD_REQUEST", "{body}");
    }

    let huge = json!({ "key": "x".repeat(20 * 1024) });
    let response = verify(&app, huge).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "PAYLOAD_TOO_LARGE");
}

#[sqlx::test]
async fn malformed_keys_are_answered_without_the_database(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    pool.close().await;
    // The database is gone for this instance: malformed keys are still judged...
    assert_eq!(code_of(&app, "ak_live_nope").await, "MALFORMED");
    let response = authorize(&app, "", Some(("X-Api-Key", "ak_live_nope"))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // ...while a well-formed key needs it, so it fails closed.
    let response = verify(&app, json!({ "key": unknown_key() })).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "UNAVAILABLE");
}

#[sqlx::test]
async fn bad_key_attempts_are_throttled_per_client_address(pool: PgPool) {
    let app = key_api(
        pool.clone(),
        &[
            ("GATEHOUSE_BAD_KEY_LIMIT", "3"),
            ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    let acme = Tenant::create(&pool, "acme").await;
    let (good, _) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    app.wait_until_listening().await;
    keep_within_one_minute(10).await;
    // Known before the flood: answered from the cache later.
    assert_eq!(code_of(&app, &good).await, "VALID");

    assert_eq!(code_of(&app, &unknown_key()).await, "NOT_FOUND");
    assert_eq!(code_of(&app, "ak_live_bad").await, "MALFORMED");
    assert_eq!(code_of(&app, &unknown_key()).await, "NOT_FOUND");

    let response = verify(&app, json!({ "key": unknown_key() })).await;
    assert_eq!(
        response.headers()["ratelimit-policy"],
        "\"client\";q=3;w=60"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
    assert_eq!(body["ratelimit"]["remaining"], 0);
    let response = authorize(&app, "", Some(("X-Api-Key", &unknown_key()))).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));

    // The throttled address still gets answers the cache holds; other addresses are not throttled.
    assert_eq!(code_of(&app, &good).await, "VALID");
    let response = app
        .client()
        .post(app.url("/v1/keys/verify"))
        .bearer_auth(VERIFIER)
        .header("X-Forwarded-For", "198.51.100.23")
        .json(&json!({ "key": unknown_key() }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "NOT_FOUND");
}

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
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
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
async fn a_cached_key_is_forgotten_at_once_when_the_portal_invalidates_it(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    app.wait_until_listening().await;
    assert_eq!(code_of(&app, &key).await, "VALID");
    // Revoked behind the service's back (no notification): the cache still answers...
    sqlx::query("UPDATE api_key SET revoked_at = now() WHERE api_key_id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(code_of(&app, &key).await, "VALID");
    // ...until the instance is told, as the portal's revoke handler does.
    app.key_cache.invalidate(&hash(&key));
    assert_eq!(code_of(&app, &key).await, "REVOKED");
}

#[sqlx::test]
async fn with_the_cache_off_every_verification_reads_the_database(pool: PgPool) {
    let app = key_api(pool.clone(), &[("GATEHOUSE_KEY_CACHE_SECONDS", "0")]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    app.wait_until_listening().await;
    assert_eq!(code_of(&app, &key).await, "VALID");
    sqlx::query("UPDATE api_key SET revoked_at = now() WHERE api_key_id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(code_of(&app, &key).await, "REVOKED");
    assert!(app.key_cache.is_empty());
}
