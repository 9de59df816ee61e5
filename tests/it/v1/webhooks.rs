//! `/v1/tenants/{tenant}/webhooks…`: endpoints made and changed through the API reach a real
//! receiver, every signature judged by the Standard Webhooks reference library; the portal's
//! rules (URL checks, event types, receiver credentials) hold; scopes and tenants stay apart.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::TestApp;
use crate::support::fixtures::Tenant;
use crate::support::management::{Answer, OPERATOR, call, get, patch, post, send, tenant_token};
use crate::support::webhooks::{Receiver, verify_with_library};

/// Gatehouse with the operator token, webhooks allowed to loopback receivers (unless `strict`)
/// and a quick sender.
async fn app(pool: PgPool, strict: bool) -> TestApp {
    let mut env = vec![("GATEHOUSE_OPERATOR_TOKENS", OPERATOR)];
    if !strict {
        env.push(("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "true"));
    }
    TestApp::spawn_with(pool, &env, |config| {
        config.outbox_poll = Duration::from_millis(50);
        config.webhook_first_retry = Duration::from_millis(300);
    })
    .await
}

const ALL: [&str; 3] = ["webhooks:read", "webhooks:write", "keys:write"];

async fn create(app: &TestApp, token: &str, body: Value) -> (String, String) {
    let created = post(app, "/v1/tenants/acme/webhooks", token, body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    (
        created.body["endpoint"]["id"].as_str().unwrap().to_owned(),
        created.body["secret"].as_str().unwrap().to_owned(),
    )
}

fn endpoint(url: &str) -> Value {
    json!({ "name": "Billing", "url": url, "environment": "live" })
}

async fn send_test(app: &TestApp, token: &str, id: &str) -> Answer {
    call(
        app,
        Method::POST,
        &format!("/v1/tenants/acme/webhooks/{id}/test"),
        token,
        None,
    )
    .await
}

async fn api_key(app: &TestApp, token: &str) -> String {
    let key = post(
        app,
        "/v1/tenants/acme/keys",
        token,
        json!({ "name": "checkout", "environment": "live", "full_access": true }),
    )
    .await;
    assert_eq!(key.status, 201, "{}", key.body);
    key.body["key"]["id"].as_str().unwrap().to_owned()
}

#[sqlx::test]
async fn an_endpoint_made_through_the_api_shows_its_secret_once_and_gets_signed_events(
    pool: PgPool,
) {
    let app = app(pool.clone(), false).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &ALL).await;
    let receiver = Receiver::start().await;
    let created = post(
        &app,
        "/v1/tenants/acme/webhooks",
        &token,
        json!({ "name": "Billing", "url": receiver.url, "environment": "live",
                "auth": { "kind": "bearer", "token": "receiver-token-123" } }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created.body["endpoint"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["endpoint"]["auth_kind"], "bearer");
    assert!(
        created.body["endpoint"]["event_types"].is_null(),
        "all events"
    );

    let read = get(&app, &format!("/v1/tenants/acme/webhooks/{id}"), &token).await;
    assert_eq!(read.status, 200);
    let list = get(&app, "/v1/tenants/acme/webhooks", &token).await;
    assert_eq!(list.body["data"][0]["id"], id.as_str());
    for answer in [&read.body, &list.body] {
        let text = answer.to_string();
        assert!(!text.contains(&secret[6..]), "the secret is shown once");
        assert!(!text.contains("receiver-token-123"), "credentials never");
    }
    assert_eq!(read.body["delivery"]["health"], "no deliveries yet");

    let sent = send_test(&app, &token, &id).await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let event_id = sent.body["event_id"].as_str().unwrap();
    let test = receiver.event("webhook.test").await;
    assert_eq!(test.header("webhook-id"), Some(event_id));
    assert_eq!(
        test.header("authorization"),
        Some("Bearer receiver-token-123")
    );
    let verified = verify_with_library(&secret, &test).expect("signed with the secret");
    assert_eq!(verified["data"]["endpoint"]["id"], id.as_str());
    // The token that pressed the button is the event's actor.
    let token_id: Uuid = sqlx::query_scalar("SELECT management_token_id FROM management_token")
        .fetch_one(&pool)
        .await
        .unwrap();
    let by_token = json!({ "type": "token", "id": token_id, "name": "acme backend" });
    assert_eq!(verified["data"]["actor"], by_token);

    // A key revoked through the API arrives at the endpoint the API made.
    let key_id = api_key(&app, &token).await;
    let revoked = call(
        &app,
        Method::POST,
        &format!("/v1/tenants/acme/keys/{key_id}/revoke"),
        &token,
        None,
    )
    .await;
    assert_eq!(revoked.status, 200);
    let event = receiver.event("key.revoked").await;
    let verified = verify_with_library(&secret, &event).expect("signed");
    assert_eq!(verified["data"]["key"]["id"], key_id.as_str());
    assert_eq!(verified["data"]["actor"], by_token);

    let read = get(&app, &format!("/v1/tenants/acme/webhooks/{id}"), &token).await;
    assert_eq!(read.body["delivery"]["last_status"], 200);
    assert_eq!(read.body["delivery"]["health"], "delivering");
    let actors: Vec<String> = sqlx::query_scalar(
        "SELECT actor_token FROM audit_event WHERE action IN ('webhook.created', 'webhook.test_sent') ORDER BY at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(actors.len(), 2);
    assert!(
        actors.iter().all(|actor| actor.contains("acme backend")),
        "{actors:?}"
    );
}

#[sqlx::test]
async fn patch_changes_settings_and_enabled_false_stops_deliveries_until_true(pool: PgPool) {
    let app = app(pool.clone(), false).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &ALL).await;
    let receiver = Receiver::start().await;
    let (id, secret) = create(&app, &token, endpoint(&receiver.url)).await;
    let path = format!("/v1/tenants/acme/webhooks/{id}");

    let changed = patch(
        &app,
        &path,
        &token,
        json!({ "name": "Billing v2", "event_types": ["key.created", "key.revoked"],
                "seed_signature": true }),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["name"], "Billing v2");
    assert_eq!(
        changed.body["event_types"],
        json!(["key.created", "key.revoked"])
    );
    assert_eq!(changed.body["seed_signature"], true);
    assert_eq!(changed.body["url"], receiver.url.as_str(), "unchanged");

    let off = patch(&app, &path, &token, json!({ "enabled": false })).await;
    assert_eq!(off.status, 200);
    assert_eq!(off.body["enabled"], false);
    assert_eq!(off.body["delivery"]["health"], "disabled");
    api_key(&app, &token).await;
    assert_eq!(send_test(&app, &token, &id).await.status, 409);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(receiver.received().is_empty(), "nothing while disabled");

    let on = patch(&app, &path, &token, json!({ "enabled": true })).await;
    assert_eq!(on.body["enabled"], true);
    api_key(&app, &token).await;
    let created = receiver.event("key.created").await;
    verify_with_library(&secret, &created).expect("signed");
    assert_eq!(
        receiver.received().len(),
        1,
        "only the event after enabling"
    );

    // event_types null: every type again.
    let all = patch(&app, &path, &token, json!({ "event_types": null })).await;
    assert!(all.body["event_types"].is_null());
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_event WHERE action LIKE 'webhook.%' ORDER BY at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "webhook.created",
            "webhook.updated",
            "webhook.disabled",
            "webhook.enabled",
            "webhook.updated"
        ]
    );
}

#[sqlx::test]
async fn a_deleted_endpoint_is_gone_and_nothing_is_delivered_to_it(pool: PgPool) {
    let app = app(pool.clone(), false).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &ALL).await;
    let receiver = Receiver::start().await;
    let (id, _) = create(&app, &token, endpoint(&receiver.url)).await;
    let path = format!("/v1/tenants/acme/webhooks/{id}");
    // The first delivery fails, so its retry (300 ms later) waits in the outbox.
    receiver.answer(vec![(503, Vec::new())]);
    assert_eq!(send_test(&app, &token, &id).await.status, 202);
    receiver.wait_for(1).await;

    let deleted = call(&app, Method::DELETE, &path, &token, None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(get(&app, &path, &token).await.status, 404);
    assert_eq!(
        call(&app, Method::DELETE, &path, &token, None).await.status,
        404
    );
    api_key(&app, &token).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "neither the retry nor a new event"
    );
    let list = get(&app, "/v1/tenants/acme/webhooks", &token).await;
    assert_eq!(list.body["data"], json!([]));
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_event WHERE action = 'webhook.deleted' AND actor_token LIKE '%acme backend%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test]
async fn bad_settings_are_refused_with_the_field_at_fault_and_nothing_is_made(pool: PgPool) {
    let app = app(pool.clone(), true).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &ALL).await;
    let good = endpoint("https://hooks.example.com/in");
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (with("url", json!("ftp://hooks.example.com/in")), "url"),
        (
            with("url", json!("https://user:pw@hooks.example.com/in")),
            "url",
        ),
        (with("url", json!("http://127.0.0.1:9/in")), "url"),
        (with("url", json!("http://169.254.169.254/latest")), "url"),
        (with("name", json!("")), "name"),
        (with("environment", json!("staging")), "environment"),
        (with("event_types", json!(["key.deleted"])), "event_types"),
        (with("event_types", json!([])), "event_types"),
        (with("auth", json!({ "kind": "bearer" })), "auth"),
        (
            with("auth", json!({ "kind": "token", "token": "x" })),
            "auth.kind",
        ),
        (
            with(
                "auth",
                json!({ "kind": "basic", "username": "a:b", "password": "pw" }),
            ),
            "auth",
        ),
        (
            with(
                "auth",
                json!({ "kind": "headers", "headers": { "webhook-id": "1" } }),
            ),
            "auth",
        ),
        (
            with(
                "auth",
                json!({ "kind": "bearer", "token": "x", "password": "pw" }),
            ),
            "auth",
        ),
    ] {
        let refused = post(&app, "/v1/tenants/acme/webhooks", &token, body.clone()).await;
        assert_eq!(refused.status, 422, "{body}: {}", refused.body);
        assert_eq!(refused.body["error"]["field"], field, "{body}");
        assert!(
            !refused.body.to_string().contains("user:pw"),
            "no credentials echoed"
        );
    }
    let list = get(&app, "/v1/tenants/acme/webhooks", &token).await;
    assert_eq!(list.body["data"], json!([]), "nothing made");

    // The same rules when changing one.
    let (id, _) = create(&app, &token, good.clone()).await;
    let refused = patch(
        &app,
        &format!("/v1/tenants/acme/webhooks/{id}"),
        &token,
        json!({ "url": "http://10.0.0.1/in", "enabled": false }),
    )
    .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["error"]["field"], "url");
    let read = get(&app, &format!("/v1/tenants/acme/webhooks/{id}"), &token).await;
    assert_eq!(read.body["url"], "https://hooks.example.com/in");
    assert_eq!(
        read.body["enabled"], true,
        "nothing of a refused change happens"
    );
}

#[sqlx::test]
async fn scopes_and_tenants_are_kept_apart(pool: PgPool) {
    let app = app(pool.clone(), false).await;
    let acme = Tenant::create(&pool, "acme").await;
    let globex = Tenant::create(&pool, "globex").await;
    let writer = tenant_token(&pool, &acme, &ALL).await;
    let reader = tenant_token(&pool, &acme, &["webhooks:read"]).await;
    let keys_only = tenant_token(&pool, &acme, &["keys:write"]).await;
    let other = tenant_token(&pool, &globex, &["webhooks:read", "webhooks:write"]).await;
    let (id, _) = create(&app, &writer, endpoint("https://hooks.example.com/in")).await;

    let refused = post(
        &app,
        "/v1/tenants/acme/webhooks",
        &reader,
        endpoint("https://hooks.example.com/2"),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        get(&app, "/v1/tenants/acme/webhooks", &reader).await.status,
        200
    );
    assert_eq!(
        get(&app, "/v1/tenants/acme/webhooks", &keys_only)
            .await
            .status,
        403
    );
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("/v1/tenants/acme/webhooks/{id}"),
            &reader,
            None
        )
        .await
        .status,
        403
    );

    // Another tenant's token: acme does not exist for it, nor does acme's endpoint under globex.
    for path in [
        format!("/v1/tenants/acme/webhooks/{id}"),
        format!("/v1/tenants/globex/webhooks/{id}"),
    ] {
        assert_eq!(get(&app, &path, &other).await.status, 404, "{path}");
        assert_eq!(
            call(&app, Method::DELETE, &path, &other, None).await.status,
            404,
            "{path}"
        );
        let test_path = format!("{path}/test");
        assert_eq!(
            call(&app, Method::POST, &test_path, &other, None)
                .await
                .status,
            404
        );
    }
    // The operator sees every tenant's.
    assert_eq!(
        get(&app, &format!("/v1/tenants/acme/webhooks/{id}"), OPERATOR)
            .await
            .status,
        200
    );
}

#[sqlx::test]
async fn an_idempotent_create_returns_the_same_endpoint_and_secret_and_makes_one(pool: PgPool) {
    let app = app(pool.clone(), false).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &ALL).await;
    let body = endpoint("https://hooks.example.com/in");
    let first = send(
        &app,
        Method::POST,
        "/v1/tenants/acme/webhooks",
        &token,
        Some(body.clone()),
        Some("create-billing-1"),
    )
    .await;
    assert_eq!(first.status, 201);
    let again = send(
        &app,
        Method::POST,
        "/v1/tenants/acme/webhooks",
        &token,
        Some(body),
        Some("create-billing-1"),
    )
    .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "the same endpoint and secret");
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let list = get(&app, "/v1/tenants/acme/webhooks", &token).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
}

#[sqlx::test]
async fn a_secret_rolled_through_the_api_signs_beside_the_old_one(pool: PgPool) {
    let app = app(pool.clone(), false).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &ALL).await;
    let receiver = Receiver::start().await;
    let (id, old) = create(&app, &token, endpoint(&receiver.url)).await;
    let rolled = call(
        &app,
        Method::POST,
        &format!("/v1/tenants/acme/webhooks/{id}/roll_secret"),
        &token,
        None,
    )
    .await;
    assert_eq!(rolled.status, 200, "{}", rolled.body);
    let new = rolled.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(rolled.body["endpoint"]["previous_secret_until"].is_string());
    assert_eq!(send_test(&app, &token, &id).await.status, 202);
    let test = receiver.event("webhook.test").await;
    verify_with_library(&new, &test).expect("the new secret signs");
    verify_with_library(&old, &test).expect("the old one too, for a day");
    let read = get(&app, &format!("/v1/tenants/acme/webhooks/{id}"), &token).await;
    assert!(!read.body.to_string().contains(&new[6..]), "shown once");
}

#[sqlx::test]
async fn pages_of_endpoints_follow_the_cursor(pool: PgPool) {
    let app = app(pool.clone(), false).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &ALL).await;
    for n in 0..3 {
        create(
            &app,
            &token,
            endpoint(&format!("https://hooks.example.com/{n}")),
        )
        .await;
    }
    let first = get(&app, "/v1/tenants/acme/webhooks?limit=2", &token).await;
    assert_eq!(first.body["data"].as_array().unwrap().len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = get(
        &app,
        &format!("/v1/tenants/acme/webhooks?limit=2&cursor={cursor}"),
        &token,
    )
    .await;
    assert_eq!(second.body["data"][0]["url"], "https://hooks.example.com/2");
    assert!(second.body["next_cursor"].is_null());
}
