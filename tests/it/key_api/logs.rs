//! The logs of a running binary never hold a key, wherever a client puts one; what an operator
//! must know about a gateway's forwarding headers is there.

use gatehouse::domain::keys::KeyChangeRequest;
use gatehouse::domain::keys::allowlist::IpAllowlist;
use gatehouse::vocabulary::Environment;
use reqwest::Method;
use sqlx::PgPool;

use crate::support::binary::Binary;
use crate::support::fixtures::Tenant;
use crate::support::key_api::VERIFIER;

#[sqlx::test]
async fn a_key_sent_in_any_part_of_a_request_is_in_no_log_line(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (good, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let (revoked, revoked_id) = acme.key(&pool, Environment::Test, &["read"], 1000).await;
    acme.revoke(&pool, revoked_id).await;
    // Well-formed but for its checksum: what a mistyped key looks like.
    let mistyped = format!("{}x", &good[..good.len() - 1]);
    let server = Binary::start(
        &pool,
        &[
            ("RUST_LOG", "debug"),
            ("GATEHOUSE_VERIFIER_TOKENS", VERIFIER),
        ],
    )
    .await;
    let app = &server.app;
    let client = app.client();

    for key in [&good, &revoked, &mistyped] {
        for verifier in [VERIFIER, "not-the-verifier-token"] {
            let mut requests = vec![
                client
                    .post(app.url("/v1/keys/verify"))
                    .bearer_auth(verifier)
                    .json(&serde_json::json!({ "key": key })),
                client
                    .post(app.url("/v1/keys/verify"))
                    .bearer_auth(verifier)
                    .header("content-type", "application/json")
                    .body(format!("{{\"key\": \"{key}\"")),
                client.get(app.url(&format!("/v1/authorize/api/{key}"))),
                client.get(app.url(&format!("/v1/authorize/{key}"))),
                client.get(app.url(&format!("/v1/authorize?key={key}&api_key={key}"))),
                client
                    .get(app.url("/v1/authorize"))
                    .header("cookie", format!("api_key={key}")),
                client
                    .request(Method::POST, app.url("/v1/authorize"))
                    .body(key.clone()),
                client.get(app.url(&format!("/{key}"))),
                client.get(app.url(&format!("/t/acme/keys?q={key}"))),
            ];
            for header in [
                "authorization",
                "x-api-key",
                "apikey",
                "x-custom-key",
                "proxy-authorization",
            ] {
                let value = if header == "authorization" {
                    format!("Bearer {key}")
                } else {
                    key.clone()
                };
                requests.push(client.get(app.url("/v1/authorize")).header(header, value));
            }
            for request in requests {
                let request = request.header("gatehouse-verifier", verifier);
                request.send().await.unwrap();
            }
        }
    }

    let logs = server.stop().await;
    for key in [&good, &revoked, &mistyped] {
        let secret = &key[8..];
        if let Some(line) = logs.lines().find(|line| line.contains(secret)) {
            panic!("a key is in the log: {line}");
        }
    }
    assert!(
        logs.contains("/v1/authorize/{*path}") && logs.contains("/v1/keys/verify"),
        "requests are logged by their route"
    );
}

#[sqlx::test]
async fn an_unreadable_forwarded_client_is_logged_as_a_warning_without_the_key(pool: PgPool) {
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.edit(
        &pool,
        id,
        KeyChangeRequest {
            ip_allowlist: Some(IpAllowlist::split("10.0.0.0/8")),
            ..KeyChangeRequest::default()
        },
    )
    .await;
    let server = Binary::start(&pool, &[("GATEHOUSE_VERIFIER_TOKENS", VERIFIER)]).await;
    let response = server
        .app
        .client()
        .get(server.app.url("/v1/authorize"))
        .header("gatehouse-verifier", VERIFIER)
        .header("x-api-key", &key)
        .header("x-forwarded-for", "garbage")
        .header("x-real-ip", "10.1.1.1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    let logs = server.stop().await;
    let warning = logs
        .lines()
        .find(|line| line.contains("WARN") && line.contains("X-Forwarded-For"))
        .unwrap_or_else(|| panic!("no warning in {logs}"));
    assert!(
        warning.contains("127.0.0.1"),
        "names the gateway: {warning}"
    );
    assert!(!logs.contains(&key[8..]), "a key is in the log");
}
