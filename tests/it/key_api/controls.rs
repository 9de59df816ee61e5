//! Key controls at the key API: disabled keys, IP allowlists, metadata and edits, on one instance
//! and seen by another within a second.

use std::time::{Duration, Instant};

use gatehouse::domain::keys::allowlist::IpAllowlist;
use gatehouse::domain::keys::{AccessChoice, KeyChangeRequest};
use gatehouse::vocabulary::Environment;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::app::TestApp;
use crate::support::fixtures::Tenant;
use crate::support::key_api::{VERIFIER, authorize, code_of, key_api, verify};

fn disabled(yes: bool) -> KeyChangeRequest {
    KeyChangeRequest {
        disabled: Some(yes),
        ..KeyChangeRequest::default()
    }
}

fn allowlist(entries: &str) -> KeyChangeRequest {
    KeyChangeRequest {
        ip_allowlist: Some(IpAllowlist::split(entries)),
        ..KeyChangeRequest::default()
    }
}

/// verify's answer for `key` from a client at `client_ip` (none: not sent).
async fn verify_from(app: &TestApp, key: &str, client_ip: Option<&str>) -> Value {
    let mut body = json!({ "key": key });
    if let Some(ip) = client_ip {
        body["client_ip"] = json!(ip);
    }
    let response = verify(app, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Forward-auth for `key` with the gateway's forwarding headers.
async fn authorize_from(app: &TestApp, key: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client()
        .get(app.url("/v1/authorize"))
        .header("Gatehouse-Verifier", VERIFIER)
        .header("X-Api-Key", key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[sqlx::test]
async fn a_disabled_key_is_refused_at_verify_and_forward_auth_until_it_is_enabled(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    app.wait_until_listening().await;
    assert_eq!(code_of(&app, &key).await, "VALID");

    // Edited beside this instance, as another instance would: it hears within a second.
    acme.edit(&pool, id, disabled(true)).await;
    seen_within_a_second(&app, &key, json!({}), "DISABLED").await;
    let body = verify_from(&app, &key, None).await;
    assert_eq!(body["valid"], false);
    assert_eq!(body["code"], "DISABLED");
    assert_eq!(body["message"], "The API key is disabled.");
    let response = authorize(&app, "", Some(("X-Api-Key", &key))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "DISABLED");

    acme.edit(&pool, id, disabled(false)).await;
    seen_within_a_second(&app, &key, json!({}), "VALID").await;
    let response = authorize(&app, "", Some(("X-Api-Key", &key))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[sqlx::test]
async fn an_ip_allowlist_admits_its_addresses_and_refuses_others_by_name(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.edit(&pool, id, allowlist("203.0.113.0/24, 2001:db8::/32"))
        .await;

    for inside in ["203.0.113.9", "2001:db8:5::1", "::ffff:203.0.113.77"] {
        let body = verify_from(&app, &key, Some(inside)).await;
        assert_eq!(body["code"], "VALID", "{inside}");
    }
    for (outside, named) in [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db9::1", "2001:db9::1"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
    ] {
        let body = verify_from(&app, &key, Some(outside)).await;
        assert_eq!(body["valid"], false, "{outside}");
        assert_eq!(body["code"], "IP_NOT_ALLOWED", "{outside}");
        assert_eq!(
            body["message"],
            format!("The address {named} is not on this API key's allowlist.")
        );
    }
}

#[sqlx::test]
async fn verify_without_a_client_ip_fails_closed_for_a_key_with_an_allowlist(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (open, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let (pinned, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.edit(&pool, id, allowlist("127.0.0.1")).await;

    // The caller itself is at 127.0.0.1, but only a client_ip it names counts.
    let body = verify_from(&app, &pinned, None).await;
    assert_eq!(body["code"], "IP_NOT_ALLOWED");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("send `client_ip`"),
        "{body}"
    );
    assert_eq!(verify_from(&app, &open, None).await["code"], "VALID");
    assert_eq!(
        verify_from(&app, &pinned, Some("127.0.0.1")).await["code"],
        "VALID"
    );
}

#[sqlx::test]
async fn forward_auth_checks_the_allowlist_against_the_client_the_gateway_names(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.edit(&pool, id, allowlist("203.0.113.0/24")).await;

    let response = authorize_from(
        &app,
        &key,
        &[("X-Forwarded-For", "203.0.113.5, 198.51.100.7")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "IP_NOT_ALLOWED");
    assert_eq!(
        error["error"]["message"],
        "The address 198.51.100.7 is not on this API key's allowlist."
    );

    let response = authorize_from(
        &app,
        &key,
        &[("X-Forwarded-For", "198.51.100.7, 203.0.113.5")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = authorize_from(&app, &key, &[("X-Real-IP", "203.0.113.200")]).await;
    assert_eq!(response.status(), StatusCode::OK);
    // No forwarding headers: the peer (this test, at 127.0.0.1) is the client.
    let response = authorize_from(&app, &key, &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test]
async fn forward_auth_refuses_a_restricted_key_when_the_forwarded_client_does_not_parse(
    pool: PgPool,
) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let (open, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.edit(&pool, id, allowlist("10.0.0.0/8")).await;
    let forwarded = [("X-Forwarded-For", "garbage"), ("X-Real-IP", "10.1.1.1")];

    // X-Real-IP names an allowed address, but the gateway's own entry is unreadable: the
    // client's address is unknown, and the key is refused.
    let response = authorize_from(&app, &key, &forwarded).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "IP_NOT_ALLOWED");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Forwarded-For"),
        "{error}"
    );
    // Nor does an entry further left count.
    let response = authorize_from(&app, &key, &[("X-Forwarded-For", "10.1.1.1, garbage")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // A key without an allowlist does not depend on the address.
    let response = authorize_from(&app, &open, &forwarded).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = authorize_from(&app, &key, &[("X-Forwarded-For", "10.1.1.1")]).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[sqlx::test]
async fn metadata_is_returned_as_key_meta_and_a_scope_removed_by_an_edit_is_missing(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme
        .key(&pool, Environment::Live, &["read", "write"], 1000)
        .await;
    app.wait_until_listening().await;
    let body = verify(&app, json!({ "key": key, "scopes": ["write"] }))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(body["code"], "VALID");
    assert_eq!(body["key"]["meta"], json!({}));

    acme.edit(
        &pool,
        id,
        KeyChangeRequest {
            access: Some(AccessChoice {
                full: Some(false),
                scopes: vec!["read".into()],
            }),
            meta: Some(Ok(json!({ "plan": "pro", "customer": "cus_42" }))),
            ..KeyChangeRequest::default()
        },
    )
    .await;
    // Edited beside this instance, as another instance would: it hears within a second.
    seen_within_a_second(
        &app,
        &key,
        json!({ "scopes": ["write"] }),
        "INSUFFICIENT_SCOPE",
    )
    .await;
    let body = verify(&app, json!({ "key": key, "scopes": ["write"] }))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(body["code"], "INSUFFICIENT_SCOPE");
    assert_eq!(body["key"]["scopes"], json!(["read"]));
    assert_eq!(
        body["key"]["meta"],
        json!({ "plan": "pro", "customer": "cus_42" })
    );
}

/// Asks `app` until `key`'s code is `expected`, failing if that takes a second or more.
async fn seen_within_a_second(app: &TestApp, key: &str, body: Value, expected: &str) {
    let changed_at = Instant::now();
    loop {
        let mut request = body.clone();
        request["key"] = json!(key);
        let answer: Value = verify(app, request).await.json().await.unwrap();
        if answer["code"] == expected {
            return;
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(1),
            "another instance still answers {} a second after the change to {expected}",
            answer["code"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test]
async fn edits_and_disabling_are_seen_by_another_instance_within_a_second(pool: PgPool) {
    let first = key_api(pool.clone(), &[]).await;
    let second = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme
        .key(&pool, Environment::Live, &["read", "write"], 1000)
        .await;
    first.wait_until_listening().await;
    second.wait_until_listening().await;
    let needs_write = json!({ "scopes": ["write"], "client_ip": "198.51.100.7" });
    for app in [&first, &second] {
        seen_within_a_second(app, &key, needs_write.clone(), "VALID").await;
    }
    assert_eq!(second.key_cache.len(), 1, "the second instance cached it");

    acme.edit(&pool, id, disabled(true)).await;
    seen_within_a_second(&second, &key, needs_write.clone(), "DISABLED").await;
    acme.edit(&pool, id, disabled(false)).await;
    seen_within_a_second(&second, &key, needs_write.clone(), "VALID").await;
    acme.edit(&pool, id, allowlist("203.0.113.0/24")).await;
    seen_within_a_second(&second, &key, needs_write.clone(), "IP_NOT_ALLOWED").await;
    acme.edit(
        &pool,
        id,
        KeyChangeRequest {
            access: Some(AccessChoice {
                full: Some(false),
                scopes: vec!["read".into()],
            }),
            ip_allowlist: Some(vec![]),
            ..KeyChangeRequest::default()
        },
    )
    .await;
    seen_within_a_second(&second, &key, needs_write, "INSUFFICIENT_SCOPE").await;
}
