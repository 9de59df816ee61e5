//! `/v1/tenants/{tenant}/keys…` and `/v1/keys/whoami`: the lifecycle through the API (the same
//! domain as the portal: audit, cache invalidation), filters and pages, idempotent POSTs.

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;

use crate::support::fixtures::Tenant;
use crate::support::key_api::code_of;
use crate::support::management::{OPERATOR, get, management_api, patch, post, send, tenant_token};

#[sqlx::test]
async fn a_key_is_created_read_changed_rolled_and_revoked_through_the_api(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["keys:read", "keys:write"]).await;

    let created = post(
        &app,
        "/v1/tenants/acme/keys",
        &token,
        json!({ "name": "checkout", "environment": "live", "scopes": ["read"], "rate_limit": 50,
                "expires_at": "2999-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("ak_live_"));
    let key = &created.body["key"];
    assert_eq!(key["status"], "active");
    assert_eq!(key["scopes"], json!(["read"]));
    assert_eq!(key["rate_limit"], 50);
    assert_eq!(key["expires_at"], "2999-01-01T00:00:00Z");
    assert_eq!(
        key["masked"],
        format!("ak_live_••••{}", &secret[secret.len() - 4..])
    );
    let id = key["id"].as_str().unwrap().to_owned();
    assert_eq!(code_of(&app, &secret).await, "VALID");

    let read = get(&app, &format!("/v1/tenants/acme/keys/{id}"), &token).await;
    assert_eq!(read.status, 200);
    assert!(
        !read.body.to_string().contains(&secret),
        "the secret is shown once"
    );

    let changed = patch(
        &app,
        &format!("/v1/tenants/acme/keys/{id}"),
        &token,
        json!({ "name": "checkout v2", "scopes": ["read", "write"], "expires_at": null }),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["name"], "checkout v2");
    assert_eq!(changed.body["scopes"], json!(["read", "write"]));
    assert!(changed.body["expires_at"].is_null());
    let verified =
        crate::support::key_api::verify(&app, json!({ "key": secret, "scopes": ["write"] })).await;
    let verified: serde_json::Value = verified.json().await.unwrap();
    assert_eq!(verified["code"], "VALID", "the cache forgot the old scopes");

    let rolled = post(
        &app,
        &format!("/v1/tenants/acme/keys/{id}/roll"),
        &token,
        json!({ "grace_seconds": 0 }),
    )
    .await;
    assert_eq!(rolled.status, 201);
    let successor = rolled.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(rolled.body["key"]["rolled_from"], id.as_str());
    assert_eq!(code_of(&app, &secret).await, "EXPIRED");
    assert_eq!(code_of(&app, &successor).await, "VALID");
    let again = post(
        &app,
        &format!("/v1/tenants/acme/keys/{id}/roll"),
        &token,
        json!({ "grace_seconds": 0 }),
    )
    .await;
    assert_eq!((again.status.as_u16(), again.code()), (409, "CONFLICT"));

    let successor_id = rolled.body["key"]["id"].as_str().unwrap().to_owned();
    let revoked = post(
        &app,
        &format!("/v1/tenants/acme/keys/{successor_id}/revoke"),
        &token,
        json!({}),
    )
    .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(code_of(&app, &successor).await, "REVOKED");

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_event ORDER BY at, action")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        actions,
        [
            "api_token.created",
            "key.created",
            "key.updated",
            "key.rolled",
            "key.revoked"
        ]
    );
}

#[sqlx::test]
async fn a_key_is_noted_given_metadata_pinned_to_addresses_and_disabled_through_the_api(
    pool: PgPool,
) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["keys:read", "keys:write"]).await;
    let created = post(
        &app,
        "/v1/tenants/acme/keys",
        &token,
        json!({ "name": "billing", "environment": "live", "scopes": ["read"] }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let path = format!(
        "/v1/tenants/acme/keys/{}",
        created.body["key"]["id"].as_str().unwrap()
    );

    let changed = patch(
        &app,
        &path,
        &token,
        json!({ "note": "for the billing job", "meta": { "plan": "pro" },
                "ip_allowlist": ["203.0.113.7/24", "2001:db8::1"] }),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["note"], "for the billing job");
    assert_eq!(changed.body["meta"], json!({ "plan": "pro" }));
    assert_eq!(
        changed.body["ip_allowlist"],
        json!(["203.0.113.0/24", "2001:db8::1/128"]),
        "stored canonical"
    );
    let inside = crate::support::key_api::verify(
        &app,
        json!({ "key": secret, "client_ip": "203.0.113.99" }),
    )
    .await
    .json::<serde_json::Value>()
    .await
    .unwrap();
    assert_eq!(inside["code"], "VALID");
    assert_eq!(inside["key"]["meta"], json!({ "plan": "pro" }));
    let outside = crate::support::key_api::verify(
        &app,
        json!({ "key": secret, "client_ip": "198.51.100.1" }),
    )
    .await
    .json::<serde_json::Value>()
    .await
    .unwrap();
    assert_eq!(outside["code"], "IP_NOT_ALLOWED");

    let bad = patch(
        &app,
        &path,
        &token,
        json!({ "ip_allowlist": ["10.0.0.300"] }),
    )
    .await;
    assert_eq!(
        (bad.status.as_u16(), bad.code()),
        (422, "INVALID"),
        "{}",
        bad.body
    );
    assert_eq!(bad.body["error"]["field"], "ip_allowlist");
    let bad = patch(&app, &path, &token, json!({ "meta": [1, 2] })).await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["error"]["field"], "meta");

    let disabled = patch(
        &app,
        &path,
        &token,
        json!({ "disabled": true, "ip_allowlist": [] }),
    )
    .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert_eq!(disabled.body["status"], "disabled");
    assert_eq!(code_of(&app, &secret).await, "DISABLED");
    let enabled = patch(&app, &path, &token, json!({ "disabled": false })).await;
    assert_eq!(enabled.body["status"], "active");
    assert_eq!(code_of(&app, &secret).await, "VALID");

    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_event WHERE action LIKE 'key.%' ORDER BY at, action",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        ["key.created", "key.updated", "key.disabled", "key.enabled"]
    );
}

#[sqlx::test]
async fn bad_key_requests_are_refused_with_the_field_at_fault(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    Tenant::create(&pool, "acme").await;
    let cases = [
        (
            json!({ "name": "k", "environment": "prod", "scopes": ["read"] }),
            422,
            Some("environment"),
        ),
        (
            json!({ "name": "k", "environment": "test", "scopes": ["admin"] }),
            422,
            Some("scopes"),
        ),
        (
            json!({ "name": "k", "environment": "test" }),
            422,
            Some("scopes"),
        ),
        (
            json!({ "name": "k", "environment": "test", "full_access": true, "scopes": ["read"] }),
            422,
            Some("scopes"),
        ),
        (
            json!({ "name": "", "environment": "test", "full_access": true }),
            422,
            Some("name"),
        ),
        (
            json!({ "name": "k", "environment": "test", "full_access": true, "rate_limit": 0 }),
            422,
            Some("rate_limit"),
        ),
        (
            json!({ "name": "k", "environment": "test", "full_access": true, "expires_at": "2001-01-01T00:00:00Z" }),
            422,
            Some("expires_at"),
        ),
        (
            json!({ "name": "k", "environment": "test", "full_access": true, "expires_at": "tomorrow" }),
            422,
            Some("expires_at"),
        ),
        (
            json!({ "name": "k", "environment": "test", "full_access": true, "ip_allowlist": ["nope"] }),
            422,
            Some("ip_allowlist"),
        ),
        (
            json!({ "name": "k", "environment": "test", "full_access": true, "meta": { "x": "a".repeat(2000) } }),
            422,
            Some("meta"),
        ),
        // What only a change can say is refused when making a key.
        (
            json!({ "name": "k", "environment": "test", "full_access": true, "disabled": true }),
            400,
            None,
        ),
    ];
    for (body, status, field) in cases {
        let answer = post(&app, "/v1/tenants/acme/keys", OPERATOR, body.clone()).await;
        assert_eq!(answer.status, status, "{body}: {}", answer.body);
        assert_eq!(answer.body["error"]["field"].as_str(), field, "{body}");
    }
    assert_eq!(app.count("api_key").await, 0);
    let missing = uuid::Uuid::new_v4();
    for path in [
        format!("/v1/tenants/acme/keys/{missing}"),
        "/v1/tenants/acme/keys/nope".into(),
    ] {
        assert_eq!(get(&app, &path, OPERATOR).await.status, 404, "{path}");
    }
    let grace = post(
        &app,
        &format!("/v1/tenants/acme/keys/{missing}/roll"),
        OPERATOR,
        json!({ "grace_seconds": 999_999 }),
    )
    .await;
    assert_eq!(grace.status, 422);
    let bad_filter = get(&app, "/v1/tenants/acme/keys?status=sleeping", OPERATOR).await;
    assert_eq!(bad_filter.body["error"]["field"], "status");
}

#[sqlx::test]
async fn keys_are_listed_with_filters_a_page_at_a_time(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let globex = Tenant::create(&pool, "globex").await;
    for _ in 0..3 {
        acme.key(
            &pool,
            gatehouse::vocabulary::Environment::Test,
            &["read"],
            10,
        )
        .await;
    }
    let (_, live) = acme
        .key(
            &pool,
            gatehouse::vocabulary::Environment::Live,
            &["read"],
            10,
        )
        .await;
    globex
        .key(
            &pool,
            gatehouse::vocabulary::Environment::Test,
            &["read"],
            10,
        )
        .await;
    acme.revoke(&pool, live).await;

    let first = get(&app, "/v1/tenants/acme/keys?limit=2", OPERATOR).await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = get(
        &app,
        &format!("/v1/tenants/acme/keys?limit=2&cursor={cursor}"),
        OPERATOR,
    )
    .await;
    assert_eq!(second.body["data"].as_array().unwrap().len(), 2);
    assert!(second.body["next_cursor"].is_null());

    let test = get(&app, "/v1/tenants/acme/keys?environment=test", OPERATOR).await;
    assert_eq!(test.body["data"].as_array().unwrap().len(), 3);
    let revoked = get(&app, "/v1/tenants/acme/keys?status=revoked", OPERATOR).await;
    let revoked = revoked.body["data"].as_array().unwrap().clone();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["id"], live.to_string());
}

#[sqlx::test]
async fn a_retried_post_with_the_same_idempotency_key_makes_one_key_and_gets_the_same_answer(
    pool: PgPool,
) {
    let app = management_api(pool.clone(), &[]).await;
    Tenant::create(&pool, "acme").await;
    let body = json!({ "name": "ci", "environment": "test", "scopes": ["read"] });
    let path = "/v1/tenants/acme/keys";
    let first = send(
        &app,
        Method::POST,
        path,
        OPERATOR,
        Some(body.clone()),
        Some("retry-1"),
    )
    .await;
    let second = send(
        &app,
        Method::POST,
        path,
        OPERATOR,
        Some(body.clone()),
        Some("retry-1"),
    )
    .await;
    assert_eq!(first.status, 201);
    assert_eq!(second.status, 201);
    assert_eq!(first.body, second.body, "the same key and secret");
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(app.count("api_key").await, 1);
    let stored: Vec<u8> = sqlx::query_scalar("SELECT response FROM idempotency_key")
        .fetch_one(&pool)
        .await
        .unwrap();
    let secret = first.body["secret"].as_str().unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains(secret),
        "the kept answer is sealed"
    );

    let other = send(
        &app,
        Method::POST,
        path,
        OPERATOR,
        Some(json!({ "name": "other", "environment": "test", "scopes": ["read"] })),
        Some("retry-1"),
    )
    .await;
    assert_eq!(
        (other.status.as_u16(), other.code()),
        (409, "IDEMPOTENCY_KEY_REUSED")
    );
    assert_eq!(app.count("api_key").await, 1);

    let fresh = send(
        &app,
        Method::POST,
        path,
        OPERATOR,
        Some(body.clone()),
        Some("retry-2"),
    )
    .await;
    assert_eq!(fresh.status, 201);
    assert_ne!(fresh.body["secret"], first.body["secret"]);
    assert_eq!(app.count("api_key").await, 2);

    // After 24 hours a key starts afresh (and its old answer is pruned).
    sqlx::query("UPDATE idempotency_key SET created_at = now() - interval '25 hours'")
        .execute(&pool)
        .await
        .unwrap();
    let later = send(
        &app,
        Method::POST,
        path,
        OPERATOR,
        Some(body),
        Some("retry-1"),
    )
    .await;
    assert_eq!(later.status, 201);
    assert!(later.headers.get("idempotent-replayed").is_none());
    assert_eq!(app.count("api_key").await, 3);
    assert_eq!(app.count("idempotency_key").await, 1);
}

#[sqlx::test]
async fn whoami_names_the_tenant_and_key_of_a_leaked_secret_and_tells_the_tenant(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (secret, id) = acme
        .key(
            &pool,
            gatehouse::vocabulary::Environment::Live,
            &["read"],
            10,
        )
        .await;
    let found = post(&app, "/v1/keys/whoami", OPERATOR, json!({ "key": secret })).await;
    assert_eq!(found.status, 200);
    assert_eq!(found.body["tenant"]["slug"], "acme");
    assert_eq!(found.body["key"]["id"], id.to_string());
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_event WHERE action = 'key.identified' AND actor_token = 'Operator'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    let unknown = post(
        &app,
        "/v1/keys/whoami",
        OPERATOR,
        json!({ "key": crate::support::fixtures::unknown_key() }),
    )
    .await;
    assert_eq!(unknown.status, 404);
    let shapeless = post(&app, "/v1/keys/whoami", OPERATOR, json!({ "key": "hello" })).await;
    assert_eq!(shapeless.status, 422);
}
