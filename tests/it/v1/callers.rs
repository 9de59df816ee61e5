//! Who may call the management API: operator tokens, tenant tokens within their tenant and
//! scopes, never verifier tokens; the rate limit per token; audit events name the token.

use serde_json::json;
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::{Tenant, TenantAdmin};
use crate::support::key_api::VERIFIER;
use crate::support::management::{OPERATOR, get, management_api, post, tenant_token};

#[sqlx::test]
async fn verifier_tokens_and_strangers_are_refused_and_operator_tokens_never_open_the_key_api(
    pool: PgPool,
) {
    let app = management_api(pool.clone(), &[]).await;
    for token in [VERIFIER, "not-a-token-at-all-000000", ""] {
        let answer = get(&app, "/v1/tenants", token).await;
        assert_eq!(answer.status, 401, "{token:?}");
        assert_eq!(answer.code(), "UNAUTHORIZED");
        assert!(answer.body["error"]["message"].as_str().unwrap().len() > 10);
    }
    assert_eq!(get(&app, "/v1/tenants", OPERATOR).await.status, 200);
    let verify = post(
        &app,
        "/v1/keys/verify",
        OPERATOR,
        json!({ "key": "ak_live_x" }),
    )
    .await;
    assert_eq!(
        verify.status, 401,
        "operator tokens are not verifier tokens"
    );
}

#[sqlx::test]
async fn a_tenant_token_sees_only_its_own_tenant_whatever_it_is_called(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let globex = Tenant::create(&pool, "globex").await;
    sqlx::query("UPDATE tenant SET external_id = 'cus_globex' WHERE tenant_id = $1")
        .bind(globex.id)
        .execute(&pool)
        .await
        .unwrap();
    let token = tenant_token(&pool, &acme, &["keys:read", "keys:write", "usage:read"]).await;

    assert_eq!(get(&app, "/v1/tenants/acme/keys", &token).await.status, 200);
    for other in [
        globex.id.to_string(),
        "globex".into(),
        "ext:cus_globex".into(),
    ] {
        for path in ["", "/keys", "/usage"] {
            let answer = get(&app, &format!("/v1/tenants/{other}{path}"), &token).await;
            assert_eq!(answer.status, 404, "{other}{path}");
            assert_eq!(answer.code(), "NOT_FOUND");
        }
        let create = post(
            &app,
            &format!("/v1/tenants/{other}/keys"),
            &token,
            json!({ "name": "sneaky", "environment": "test", "scopes": ["read"] }),
        )
        .await;
        assert_eq!(create.status, 404);
    }
    assert_eq!(app.count("api_key").await, 0);
    // The operator sees both.
    let operator = get(&app, "/v1/tenants/ext:cus_globex", OPERATOR).await;
    assert_eq!(operator.status, 200);
    assert_eq!(operator.body["slug"], "globex");
}

#[sqlx::test]
async fn each_endpoint_needs_its_scope_and_tenant_tokens_cannot_do_what_only_operators_do(
    pool: PgPool,
) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let reader = tenant_token(&pool, &acme, &["keys:read"]).await;
    let new_key = json!({ "name": "ci", "environment": "test", "scopes": ["read"] });

    let refused = post(&app, "/v1/tenants/acme/keys", &reader, new_key.clone()).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.code(), "FORBIDDEN");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keys:write")
    );
    assert_eq!(app.count("api_key").await, 0);
    assert_eq!(
        get(&app, "/v1/tenants/acme/keys", &reader).await.status,
        200
    );
    assert_eq!(
        get(&app, "/v1/tenants/acme/usage", &reader).await.status,
        403
    );

    let writer = tenant_token(&pool, &acme, &["keys:write"]).await;
    assert_eq!(
        post(&app, "/v1/tenants/acme/keys", &writer, new_key)
            .await
            .status,
        201
    );
    assert_eq!(
        get(&app, "/v1/tenants/acme/keys", &writer).await.status,
        403
    );

    for (path, body) in [
        ("/v1/tenants", json!({ "name": "Mine" })),
        ("/v1/keys/whoami", json!({ "key": "ak_live_x" })),
    ] {
        let answer = post(&app, path, &writer, body).await;
        assert_eq!(answer.status, 403, "{path}");
    }
    assert_eq!(get(&app, "/v1/tenants", &writer).await.status, 403);
    let suspend = crate::support::management::patch(
        &app,
        "/v1/tenants/acme",
        &writer,
        json!({ "suspended": true }),
    )
    .await;
    assert_eq!(suspend.status, 403);
}

#[sqlx::test]
async fn revoked_and_expired_tenant_tokens_are_refused_and_uses_are_recorded(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["keys:read"]).await;
    assert_eq!(get(&app, "/v1/tenants/acme/keys", &token).await.status, 200);
    let used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM management_token")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(used.is_some(), "the use is recorded");

    // One character changed: the checksum fails, no lookup can match.
    let mut bent = token.clone().into_bytes();
    let at = bent.len() - 12;
    bent[at] = if bent[at] == b'A' { b'B' } else { b'A' };
    let bent = String::from_utf8(bent).unwrap();
    assert_eq!(get(&app, "/v1/tenants/acme/keys", &bent).await.status, 401);

    sqlx::query("UPDATE management_token SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let expired = get(&app, "/v1/tenants/acme/keys", &token).await;
    assert_eq!(expired.status, 401);
    assert!(
        expired.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    sqlx::query("UPDATE management_token SET expires_at = NULL, revoked_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    let revoked = get(&app, "/v1/tenants/acme/keys", &token).await;
    assert_eq!(revoked.status, 401);
    assert!(
        revoked.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[sqlx::test]
async fn each_token_has_its_own_rate_limit_answered_with_retry_after(pool: PgPool) {
    crate::support::key_api::keep_within_one_minute(10).await;
    let app = management_api(pool.clone(), &[("GATEHOUSE_MANAGEMENT_RATE_LIMIT", "3")]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["keys:read"]).await;
    for _ in 0..3 {
        assert_eq!(get(&app, "/v1/tenants/acme/keys", &token).await.status, 200);
    }
    let limited = get(&app, "/v1/tenants/acme/keys", &token).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "TOO_MANY_REQUESTS");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // The limiter's own wait, not a fixed one: the window's reset, as `RateLimit` says.
    assert_eq!(
        limited.headers["ratelimit"],
        format!("\"token\";r=0;t={retry}").as_str()
    );
    assert!(
        limited.headers["ratelimit-policy"]
            .to_str()
            .unwrap()
            .starts_with("\"token\";q=3")
    );
    // The operator's budget is its own.
    assert_eq!(get(&app, "/v1/tenants", OPERATOR).await.status, 200);
}

#[sqlx::test]
async fn changes_made_with_a_token_are_audited_with_the_token_as_the_actor(pool: PgPool) {
    let app = TestApp::spawn_with(
        pool.clone(),
        &[("GATEHOUSE_OPERATOR_TOKENS", OPERATOR)],
        |_| {},
    )
    .await;
    let admin = TenantAdmin::acme(&app).await;
    let acme = Tenant {
        id: admin.tenant_id,
        slug: "acme".into(),
        admin: sqlx::query_scalar("SELECT app_user_id FROM membership WHERE tenant_id = $1")
            .bind(admin.tenant_id)
            .fetch_one(&pool)
            .await
            .unwrap(),
    };
    let token = tenant_token(&pool, &acme, &["keys:write"]).await;
    let created = post(
        &app,
        "/v1/tenants/acme/keys",
        &token,
        json!({ "name": "billing worker", "environment": "test", "full_access": true }),
    )
    .await;
    assert_eq!(created.status, 201);
    let id = created.body["key"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        post(
            &app,
            &format!("/v1/tenants/acme/keys/{id}/revoke"),
            OPERATOR,
            json!({})
        )
        .await
        .status,
        200
    );

    let page = app.get_html(&admin.client, "/t/acme/audit").await;
    assert!(
        page.contains("API token \u{201c}acme backend\u{201d}"),
        "{page}"
    );
    assert!(page.contains("Operator"));
    assert!(page.contains("key.created") && page.contains("key.revoked"));
    assert!(!page.contains("a deleted user"));
}

#[sqlx::test]
async fn tokens_that_open_nothing_throttle_their_client_address_before_any_lookup(pool: PgPool) {
    crate::support::key_api::keep_within_one_minute(15).await;
    let app = management_api(
        pool.clone(),
        &[
            ("GATEHOUSE_BAD_TOKEN_LIMIT", "5"),
            ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["keys:read"]).await;
    let keys = app.url("/v1/tenants/acme/keys");
    let from = |address: &str, token: &str| {
        app.client()
            .get(&keys)
            .bearer_auth(token)
            .header("X-Forwarded-For", address)
            .send()
    };
    // Tokens of the right shape that no tenant holds (each one looked up), and strangers.
    let guess = || gatehouse::domain::keys::format::checksummed("ak_mgmt_");
    for bad in [
        guess(),
        guess(),
        "not-a-token-at-all-000000".into(),
        guess(),
        guess(),
    ] {
        assert_eq!(from("203.0.113.9", &bad).await.unwrap().status(), 401);
    }
    let throttled = from("203.0.113.9", &guess()).await.unwrap();
    assert_eq!(throttled.status(), 429);
    let retry: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(
        throttled.headers()["ratelimit"],
        format!("\"client\";r=0;t={retry}").as_str()
    );
    let body: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_REQUESTS");

    // While throttled, the address is refused whatever it sends, before any lookup: a valid
    // token is not even looked up (its use is not recorded), nor is the operator's accepted.
    let valid = from("203.0.113.9", &token).await.unwrap();
    assert_eq!(valid.status(), 429);
    assert_eq!(from("203.0.113.9", OPERATOR).await.unwrap().status(), 429);
    let used: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT last_used_at FROM management_token")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        used.is_none(),
        "the throttled address's token was never looked up"
    );

    // Another address is not affected.
    assert_eq!(from("203.0.113.10", &guess()).await.unwrap().status(), 401);
    assert_eq!(from("203.0.113.10", &token).await.unwrap().status(), 200);
}
