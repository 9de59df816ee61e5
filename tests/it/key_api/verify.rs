//! `POST /v1/keys/verify`: every code, status and header of the contract.

use gatehouse::vocabulary::Environment;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::fixtures::{Tenant, expire, unknown_key};
use crate::support::key_api::{
    OTHER_VERIFIER, VERIFIER, authorize, code_of, keep_within_one_minute, key_api, verify,
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
    assert_eq!(
        response.headers()["retry-after"],
        gatehouse::error::RETRY_AFTER_SECONDS.to_string()
    );
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
async fn with_a_profile_verify_says_what_to_answer_the_client(pool: PgPool) {
    let app = key_api(
        pool.clone(),
        &[(
            "GATEHOUSE_PROFILES_FILE",
            crate::support::gateways::PROFILES,
        )],
    )
    .await;
    let acme = Tenant::create(&pool, "acme").await;
    let (revoked, revoked_id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    acme.revoke(&pool, revoked_id).await;
    let body: Value = verify(&app, json!({ "key": revoked, "profile": "seed003" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["code"], "REVOKED");
    assert_eq!(body["response"]["status"], 401);
    assert_eq!(
        body["response"]["body"],
        json!({ "error": "Unauthorized: Valid API key required" })
    );
    // Without a profile the answer is unchanged; an unknown profile is a 400.
    let plain: Value = verify(&app, json!({ "key": revoked }))
        .await
        .json()
        .await
        .unwrap();
    assert!(plain.get("response").is_none());
    let response = verify(&app, json!({ "key": revoked, "profile": "nope" })).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn bad_keys_count_against_the_client_ip_the_caller_names(pool: PgPool) {
    let app = key_api(pool.clone(), &[("GATEHOUSE_BAD_KEY_LIMIT", "1")]).await;
    let from = |client: &str| json!({ "key": "not-a-key", "client_ip": client });
    for code in ["MALFORMED", "RATE_LIMITED"] {
        let body: Value = verify(&app, from("203.0.113.1"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["code"], code);
    }
    let body: Value = verify(&app, from("203.0.113.2"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["code"], "MALFORMED");
    let response = verify(&app, from("not an address")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Connections are served with their wakes coalesced (`serving::Coalesced`): a body handed over
/// while the connection is polled is read in the same poll, one handed over later wakes the task.
/// Every way a body can come late or in pieces must be answered, on one kept-alive connection,
/// well before the 30 s body timeout.
#[sqlx::test]
async fn bodies_that_come_late_in_pieces_chunked_or_after_100_continue_are_read(pool: PgPool) {
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    let body = json!({ "key": key, "scopes": ["read"] }).to_string();
    let (first, second) = body.split_at(body.len() / 2);
    let head = |extra: &str| {
        format!(
            "POST /v1/keys/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {VERIFIER}\r\n\
             Content-Type: application/json\r\n{extra}\r\n"
        )
    };
    let length = format!("Content-Length: {}\r\n", body.len());
    let pause = || tokio::time::sleep(Duration::from_millis(150));

    let stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    // One answer: its status and body (the connection stays open for the next).
    async fn answer(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> (u16, String) {
        let read = async {
            let mut status = String::new();
            reader.read_line(&mut status).await.unwrap();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await.unwrap();
            let code = status.split(' ').nth(1).unwrap().parse().unwrap();
            (code, String::from_utf8(body).unwrap())
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("an answer within 5 s")
    }

    // One answer, and it must be a 200 saying the key is valid.
    async fn answered_valid(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) {
        let (status, answered) = answer(reader).await;
        assert_eq!(status, 200, "{answered}");
        assert!(answered.contains(r#""code":"VALID""#), "{answered}");
    }

    // The head, then the whole body after a pause.
    writer.write_all(head(&length).as_bytes()).await.unwrap();
    pause().await;
    writer.write_all(body.as_bytes()).await.unwrap();
    answered_valid(&mut reader).await;

    // The head with half the body, the other half after a pause.
    writer
        .write_all(format!("{}{first}", head(&length)).as_bytes())
        .await
        .unwrap();
    pause().await;
    writer.write_all(second.as_bytes()).await.unwrap();
    answered_valid(&mut reader).await;

    // Chunked, each chunk after a pause, then the last chunk after another.
    writer
        .write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())
        .await
        .unwrap();
    for part in [first, second] {
        pause().await;
        writer
            .write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())
            .await
            .unwrap();
    }
    pause().await;
    writer.write_all(b"0\r\n\r\n").await.unwrap();
    answered_valid(&mut reader).await;

    // `Expect: 100-continue`: the body only after the server asks for it.
    writer
        .write_all(head(&format!("{length}Expect: 100-continue\r\n")).as_bytes())
        .await
        .unwrap();
    let mut interim = String::new();
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut interim))
        .await
        .expect("100 Continue within 5 s")
        .unwrap();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    let mut blank = String::new();
    reader.read_line(&mut blank).await.unwrap();
    writer.write_all(body.as_bytes()).await.unwrap();
    answered_valid(&mut reader).await;

    // A body over the limit, announced or not, is refused as too large.
    let huge = "x".repeat(20 * 1024);
    writer
        .write_all(head(&format!("Content-Length: {}\r\n", huge.len())).as_bytes())
        .await
        .unwrap();
    writer.write_all(huge.as_bytes()).await.unwrap();
    let (status, answered) = answer(&mut reader).await;
    assert_eq!(status, 413, "{answered}");
}
