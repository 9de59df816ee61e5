//! `POST /v1/tenants/{tenant}/keys/import`: keys a platform already handed out, in Gatehouse's
//! format or the platform's old one (`GATEHOUSE_LEGACY_KEY_PATTERN`), as secrets or SHA-256s;
//! all or nothing, each problem naming its entry.

use gatehouse::domain::keys::format::{self as key_format, NewKey};
use gatehouse::vocabulary::Environment;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::fixtures::Tenant;
use crate::support::key_api::verify;
use crate::support::management::{OPERATOR, management_api, post, send, tenant_token};

const PATTERN: (&str, &str) = ("GATEHOUSE_LEGACY_KEY_PATTERN", "sk_[0-9a-f]{32}");

fn legacy_secret(fill: char) -> String {
    format!("sk_{}", fill.to_string().repeat(32))
}

fn hex(hash: [u8; 32]) -> String {
    hash.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An entry of the import body with `secret`.
fn with_secret(secret: &str, environment: &str) -> Value {
    json!({ "secret": secret, "name": "old key", "environment": environment, "scopes": ["read"] })
}

fn with_hash(secret: &str) -> Value {
    json!({ "secret_sha256": hex(key_format::hash(secret)), "name": "hashed key",
            "environment": "live", "full_access": true })
}

#[sqlx::test]
async fn keys_of_both_formats_are_imported_once_and_each_verifies_through_the_key_api(
    pool: PgPool,
) {
    let app = management_api(pool.clone(), &[PATTERN]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &acme, &["keys:write"]).await;
    let own = NewKey::generate("ak", Environment::Test)
        .expose()
        .to_owned();
    let own_hashed = NewKey::generate("ak", Environment::Live)
        .expose()
        .to_owned();
    let legacy = legacy_secret('a');
    let legacy_hashed = legacy_secret('b');
    let mut own_by_hash = with_hash(&own_hashed);
    own_by_hash["legacy"] = json!(false);
    let body = json!({ "keys": [
        with_secret(&own, "test"),
        with_secret(&legacy, "live"),
        with_hash(&legacy_hashed),
        own_by_hash,
    ] });

    let imported = send(
        &app,
        Method::POST,
        "/v1/tenants/acme/keys/import",
        &token,
        Some(body.clone()),
        Some("import-1"),
    )
    .await;
    assert_eq!(imported.status, 201, "{}", imported.body);
    let keys = imported.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    let legacy_flags: Vec<_> = keys.iter().map(|key| key["legacy"].clone()).collect();
    assert_eq!(legacy_flags, [false, true, true, false]);
    assert_eq!(
        keys[0]["masked"],
        format!("ak_test_••••{}", &own[own.len() - 4..])
    );
    assert_eq!(keys[1]["masked"], "••••aaaa");
    assert_eq!(keys[2]["full_access"], true);
    let text = imported.body.to_string();
    for secret in [&own, &own_hashed, &legacy, &legacy_hashed] {
        assert!(!text.contains(secret.as_str()), "no secret is answered");
    }

    // A retry with the same Idempotency-Key gets the same answer and imports nothing more.
    let retried = send(
        &app,
        Method::POST,
        "/v1/tenants/acme/keys/import",
        &token,
        Some(body),
        Some("import-1"),
    )
    .await;
    assert_eq!(retried.status, 201);
    assert_eq!(retried.body, imported.body);
    assert_eq!(app.count("api_key").await, 4);

    for (secret, is_legacy) in [
        (&own, false),
        (&legacy, true),
        (&legacy_hashed, true),
        (&own_hashed, false),
    ] {
        let answer: Value = verify(&app, json!({ "key": secret, "tenant": "acme" }))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer["code"], "VALID", "{secret}");
        assert_eq!(answer["key"]["legacy"], is_legacy, "{secret}");
    }
    // A key of a third shape is still no key.
    let answer: Value = verify(&app, json!({ "key": "pk_123" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["code"], "MALFORMED");

    let audited: Vec<(String, Value)> =
        sqlx::query_as("SELECT action, details FROM audit_event WHERE action = 'keys.imported'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(audited.len(), 1, "one event for the batch");
    assert_eq!(audited[0].1["count"], 4);
}

#[sqlx::test]
async fn a_thousand_keys_fit_in_one_import_and_a_thousand_and_one_do_not(pool: PgPool) {
    let app = management_api(pool.clone(), &[PATTERN]).await;
    Tenant::create(&pool, "acme").await;
    let entries = |count: usize| -> Value {
        let keys: Vec<Value> = (0..count)
            .map(|at| with_hash(&format!("sk_{at:032x}")))
            .collect();
        json!({ "keys": keys })
    };
    let too_many = post(
        &app,
        "/v1/tenants/acme/keys/import",
        OPERATOR,
        entries(1001),
    )
    .await;
    assert_eq!(too_many.status, 422, "{}", too_many.body);
    assert_eq!(too_many.body["error"]["field"], "keys");
    assert!(
        too_many.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1001 given")
    );
    assert_eq!(app.count("api_key").await, 0);

    let thousand = post(
        &app,
        "/v1/tenants/acme/keys/import",
        OPERATOR,
        entries(1000),
    )
    .await;
    assert_eq!(thousand.status, 201, "{}", thousand.body);
    assert_eq!(thousand.body["keys"].as_array().unwrap().len(), 1000);
    assert_eq!(app.count("api_key").await, 1000);

    // Other management routes keep the small limit.
    let large = post(
        &app,
        "/v1/tenants/acme/keys",
        OPERATOR,
        json!({ "name": "x".repeat(20_000), "environment": "live", "full_access": true }),
    )
    .await;
    assert_eq!(large.status, 413);
}

#[sqlx::test]
async fn a_bad_entry_is_named_with_its_reason_and_nothing_is_imported(pool: PgPool) {
    let app = management_api(pool.clone(), &[PATTERN]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let other = Tenant::create(&pool, "other").await;
    let (taken, _) = other.key(&pool, Environment::Live, &["read"], 10).await;
    let token = tenant_token(&pool, &acme, &["keys:write"]).await;
    let good = with_secret(&legacy_secret('c'), "live");
    let mut bad_checksum = NewKey::generate("ak", Environment::Live)
        .expose()
        .to_owned();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == '0' { '1' } else { '0' });
    let live_key = NewKey::generate("ak", Environment::Live)
        .expose()
        .to_owned();
    let mut both = with_secret(&legacy_secret('d'), "live");
    both["secret_sha256"] = json!(hex(key_format::hash("x")));
    let mut neither = with_secret("x", "live");
    neither.as_object_mut().unwrap().remove("secret");
    let mut legacy_with_secret = with_secret(&legacy_secret('e'), "live");
    legacy_with_secret["legacy"] = json!(true);

    for (entry, status, field, words) in [
        (
            with_secret(&bad_checksum, "live"),
            422,
            "keys[1].secret",
            "checksum",
        ),
        (
            with_secret("sk_not-hex", "live"),
            422,
            "keys[1].secret",
            "GATEHOUSE_LEGACY_KEY_PATTERN",
        ),
        (
            with_secret(&live_key, "test"),
            422,
            "keys[1].environment",
            "live key",
        ),
        (both, 422, "keys[1].secret", "not both"),
        (neither, 422, "keys[1].secret", "secret or as secret_sha256"),
        (
            legacy_with_secret,
            422,
            "keys[1].legacy",
            "secret_sha256 only",
        ),
        (
            json!({ "secret_sha256": "abc", "name": "n", "environment": "live", "full_access": true }),
            422,
            "keys[1].secret_sha256",
            "64 hexadecimal",
        ),
        (
            with_secret(&legacy_secret('c'), "live"),
            409,
            "keys[1].secret",
            "keys[0]",
        ),
        (
            with_secret(&taken, "live"),
            409,
            "keys[1].secret",
            "already in Gatehouse",
        ),
        (
            with_hash(&taken),
            409,
            "keys[1].secret_sha256",
            "already in Gatehouse",
        ),
    ] {
        let answer = post(
            &app,
            "/v1/tenants/acme/keys/import",
            &token,
            json!({ "keys": [good.clone(), entry] }),
        )
        .await;
        assert_eq!(answer.status.as_u16(), status, "{field}: {}", answer.body);
        assert_eq!(answer.body["error"]["field"], field, "{}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message}");
        assert!(
            !message.contains("other"),
            "never says whose key it is: {message}"
        );
        assert_eq!(app.count("api_key").await, 1, "nothing imported ({field})");
    }

    // Without the pattern, a legacy secret is refused and says why.
    let strict = management_api(pool.clone(), &[]).await;
    let answer = post(
        &strict,
        "/v1/tenants/acme/keys/import",
        &token,
        json!({ "keys": [good] }),
    )
    .await;
    assert_eq!(answer.status, 422);
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no legacy format is configured")
    );
}

#[sqlx::test]
async fn a_keys_read_token_cannot_import_and_another_tenant_is_not_found(pool: PgPool) {
    let app = management_api(pool.clone(), &[PATTERN]).await;
    let acme = Tenant::create(&pool, "acme").await;
    Tenant::create(&pool, "other").await;
    let body = json!({ "keys": [with_secret(&legacy_secret('f'), "live")] });
    let reader = tenant_token(&pool, &acme, &["keys:read"]).await;
    let answer = post(&app, "/v1/tenants/acme/keys/import", &reader, body.clone()).await;
    assert_eq!(answer.status, 403);
    let writer = tenant_token(&pool, &acme, &["keys:write"]).await;
    let answer = post(&app, "/v1/tenants/other/keys/import", &writer, body).await;
    assert_eq!(answer.status, 404);
    assert_eq!(app.count("api_key").await, 0);
}

#[sqlx::test]
async fn a_key_stored_while_an_import_runs_is_refused_as_taken_never_a_server_error(pool: PgPool) {
    let app = management_api(pool.clone(), &[PATTERN]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let other = Tenant::create(&pool, "other").await;
    let token = tenant_token(&pool, &acme, &["keys:write"]).await;
    let secret = legacy_secret('f');

    // Another writer stores the same secret and has not committed yet: the import's check cannot
    // see it, and its insert waits on the unique index until that writer commits.
    let mut writer = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO api_key (tenant_id, name, environment, secret_hash, last_four, scopes, rate_limit)
         VALUES ($1, 'elsewhere', 'live', $2, 'ffff', '{read}', 10)",
    )
    .bind(other.id)
    .bind(key_format::hash(&secret).to_vec())
    .execute(&mut *writer)
    .await
    .unwrap();
    let body =
        json!({ "keys": [with_secret(&legacy_secret('a'), "live"), with_secret(&secret, "live")] });
    let import = post(&app, "/v1/tenants/acme/keys/import", &token, body);
    tokio::pin!(import);
    let early = tokio::time::timeout(std::time::Duration::from_millis(500), &mut import).await;
    assert!(early.is_err(), "the import waits for the other writer");
    writer.commit().await.unwrap();

    let answer = import.await;
    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert_eq!(answer.body["error"]["field"], "keys[1].secret");
    let imported: i64 = sqlx::query_scalar("SELECT count(*) FROM api_key WHERE tenant_id = $1")
        .bind(acme.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(imported, 0, "nothing of the import is kept");
}
