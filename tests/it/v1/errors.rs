//! One error answer across `/v1` and the operations endpoints: the body
//! `{"error": {"code", "message", "field"?}}`, `WWW-Authenticate` on every 401, `Retry-After` by
//! the one policy on every 503 (the database out of reach, or every connection of the pool
//! taken).

use gatehouse::error::RETRY_AFTER_SECONDS;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::fixtures::Tenant;
use crate::support::key_api::VERIFIER;
use crate::support::management::{OPERATOR, management_api, small_pool, tenant_token};

const MANAGEMENT: &str = "Bearer realm=\"gatehouse-management\"";
const VERIFY: &str = "Bearer realm=\"gatehouse-verifier\"";
const GATEWAY: &str = "Gatehouse-Verifier realm=\"gatehouse-verifier\"";

/// Sends `request`, asserts `status`, and returns its headers and its error body after checking
/// the body's shape: an object with only `error`, which holds a code, a message and at most a
/// field.
async fn error_of(
    request: RequestBuilder,
    status: StatusCode,
    what: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), status, "{what}");
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json", "{what}");
    let body: Value = response.json().await.unwrap();
    let outer = body.as_object().unwrap();
    assert_eq!(
        outer.keys().collect::<Vec<_>>(),
        ["error"],
        "{what}: {body}"
    );
    let error = body["error"].as_object().unwrap();
    assert!(
        error
            .keys()
            .all(|key| ["code", "message", "field"].contains(&key.as_str())),
        "{what}: {body}"
    );
    let code = error["code"].as_str().unwrap();
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
        "{what}: {body}"
    );
    assert!(
        error["message"].as_str().unwrap().len() > 10,
        "{what}: {body}"
    );
    (headers, body)
}

#[sqlx::test]
async fn every_401_says_which_credentials_it_wants(pool: PgPool) {
    let app = management_api(pool, &[]).await;
    let client = app.client();
    let tenants = app.url("/v1/tenants");
    let verify = app.url("/v1/keys/verify");
    let body = json!({ "key": "ak_live_x" });
    for (what, request, challenge) in [
        ("management, no token", client.get(&tenants), MANAGEMENT),
        (
            "management, a stranger's token",
            client
                .get(&tenants)
                .bearer_auth("not-a-token-at-all-000000"),
            MANAGEMENT,
        ),
        (
            "management, a verifier token",
            client.get(&tenants).bearer_auth(VERIFIER),
            MANAGEMENT,
        ),
        (
            "management POST, no token",
            client.post(&tenants).json(&json!({ "slug": "acme" })),
            MANAGEMENT,
        ),
        ("verify, no token", client.post(&verify).json(&body), VERIFY),
        (
            "verify, a bad verifier token",
            client
                .post(&verify)
                .bearer_auth("not-the-verifier-token-at-all")
                .json(&body),
            VERIFY,
        ),
        (
            "verify, an operator token",
            client.post(&verify).bearer_auth(OPERATOR).json(&body),
            VERIFY,
        ),
        (
            "forward-auth, no verifier",
            client
                .get(app.url("/v1/authorize"))
                .header("X-Api-Key", "ak_live_x"),
            GATEWAY,
        ),
    ] {
        let (headers, body) = error_of(request, StatusCode::UNAUTHORIZED, what).await;
        assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{what}");
        assert_eq!(headers["www-authenticate"], challenge, "{what}");
    }
}

#[sqlx::test]
async fn management_verify_and_health_errors_have_one_shape(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let client = app.client();
    let cases = [
        (
            "management, no such tenant",
            client
                .get(app.url("/v1/tenants/no-such-tenant"))
                .bearer_auth(OPERATOR),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            "management, a bad limit",
            client
                .get(app.url("/v1/tenants?limit=0"))
                .bearer_auth(OPERATOR),
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID",
        ),
        (
            "management, not JSON",
            client
                .post(app.url("/v1/tenants"))
                .bearer_auth(OPERATOR)
                .body("slug=acme"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "management, no such route",
            client
                .get(app.url("/v1/no-such-thing"))
                .bearer_auth(OPERATOR),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (
            "verify, not JSON",
            client
                .post(app.url("/v1/keys/verify"))
                .bearer_auth(VERIFIER)
                .body("{"),
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
        (
            "verify, too large",
            client
                .post(app.url("/v1/keys/verify"))
                .bearer_auth(VERIFIER)
                .json(&json!({ "key": "x".repeat(20 * 1024) })),
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "verify, another method",
            client.get(app.url("/v1/keys/verify")).bearer_auth(VERIFIER),
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
        ),
        (
            "forward-auth, a bad query",
            client
                .get(app.url("/v1/authorize?environment=prod"))
                .header("Gatehouse-Verifier", VERIFIER),
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
        ),
    ];
    for (what, request, status, code) in cases {
        let (headers, body) = error_of(request, status, what).await;
        assert_eq!(body["error"]["code"], code, "{what}");
        assert_eq!(
            body["error"].get("field").is_some(),
            status == StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {body}"
        );
        assert!(!headers.contains_key("retry-after"), "{what}");
        assert!(!headers.contains_key("www-authenticate"), "{what}");
    }
    assert_eq!(
        error_of(
            client
                .get(app.url("/v1/tenants?limit=0"))
                .bearer_auth(OPERATOR),
            StatusCode::UNPROCESSABLE_ENTITY,
            "a field"
        )
        .await
        .1["error"]["field"],
        "limit"
    );

    // The database gone: health and the key API fail closed with the one Retry-After.
    pool.close().await;
    app.pool.close().await;
    for (what, request) in [
        ("readyz", client.get(app.url("/readyz"))),
        (
            "verify",
            client
                .post(app.url("/v1/keys/verify"))
                .bearer_auth(VERIFIER)
                .json(&json!({ "key": crate::support::fixtures::unknown_key() })),
        ),
    ] {
        let (headers, body) = error_of(request, StatusCode::SERVICE_UNAVAILABLE, what).await;
        assert_eq!(body["error"]["code"], "UNAVAILABLE", "{what}");
        assert_eq!(
            headers["retry-after"],
            RETRY_AFTER_SECONDS.to_string(),
            "{what}"
        );
    }
}

#[sqlx::test]
async fn an_exhausted_pool_is_a_503_with_retry_after_never_a_500(pool: PgPool) {
    let small = small_pool(&pool, 3).await;
    let app = management_api(
        small.clone(),
        &[("GATEHOUSE_DATABASE_MAX_CONNECTIONS", "3")],
    )
    .await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["keys:read", "keys:write"]).await;
    // Every connection taken: the instance's listeners (key changes, the outbox) hold theirs,
    // this test the rest.
    app.wait_until_listening().await;
    let mut held = Vec::new();
    while let Ok(conn) = small.acquire().await {
        held.push(conn);
    }
    let client = app.client();
    let keys = app.url("/v1/tenants/acme/keys");
    let new_key = json!({ "name": "ci", "environment": "test", "scopes": ["read"] });
    for (what, request) in [
        (
            "an operator's list",
            client.get(app.url("/v1/tenants")).bearer_auth(OPERATOR),
        ),
        (
            "a tenant token (its lookup)",
            client.get(&keys).bearer_auth(&token),
        ),
        (
            "an idempotent POST",
            client
                .post(&keys)
                .bearer_auth(OPERATOR)
                .header("Idempotency-Key", "exhausted")
                .json(&new_key),
        ),
        (
            "a POST",
            client.post(&keys).bearer_auth(OPERATOR).json(&new_key),
        ),
    ] {
        // Whatever a background task gave back meanwhile is taken too.
        while let Some(conn) = small.try_acquire() {
            held.push(conn);
        }
        let (headers, body) = error_of(request, StatusCode::SERVICE_UNAVAILABLE, what).await;
        assert_eq!(body["error"]["code"], "UNAVAILABLE", "{what}");
        assert_eq!(
            headers["retry-after"],
            RETRY_AFTER_SECONDS.to_string(),
            "{what}"
        );
    }
    drop(held);
    let retried = client
        .post(&keys)
        .bearer_auth(OPERATOR)
        .header("Idempotency-Key", "exhausted")
        .json(&new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::CREATED);
}
