//! The keys that sign access tokens: ES256, published in the JWKS 15 minutes before they sign,
//! kept there until their tokens expired, sealed at rest, rotated on a schedule and on demand.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse::domain::access_tokens::{Rotation, SigningKeys};
use gatehouse::domain::sealing::SecretKey;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use crate::support::app::TestApp;
use crate::support::fixtures::Tenant;
use crate::support::management::{OPERATOR, get, management_api, post, tenant_token};

/// The key `TestApp` configures as `GATEHOUSE_SECRET_KEY`.
const SECRET_KEY: &str = "dGVzdC1vbmx5LXNlY3JldC1rZXktMzItYnl0ZXMhISE=";

fn secret_key() -> SecretKey {
    SecretKey::parse(SECRET_KEY).unwrap()
}

/// What the JWKS publishes, fetched as a verifier would: from the metadata's `jwks_uri`.
async fn published(app: &TestApp) -> Vec<Value> {
    let metadata: Value = reqwest::get(app.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks: Value = reqwest::get(metadata["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"].as_array().unwrap().clone()
}

fn kids(keys: &[Value]) -> Vec<String> {
    keys.iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// A verifying key from a JWK, by an independent ECDSA implementation (RustCrypto's p256).
fn verifying_key(jwk: &Value) -> VerifyingKey {
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let point = [vec![4u8], coordinate("x"), coordinate("y")].concat();
    VerifyingKey::from_sec1_bytes(&point).unwrap()
}

#[sqlx::test]
async fn the_metadata_names_the_issuer_and_a_jwks_whose_p256_key_verifies_what_gatehouse_signs(
    pool: PgPool,
) {
    let app = TestApp::spawn(pool.clone()).await;
    let response = reqwest::get(app.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["issuer"], app.base.as_str());
    assert_eq!(
        metadata["jwks_uri"],
        app.url("/.well-known/jwks.json").as_str()
    );
    assert_eq!(metadata["scopes_supported"], json!(["read", "write"]));

    let response = reqwest::get(app.url("/.well-known/jwks.json"))
        .await
        .unwrap();
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let keys = published(&app).await;
    let [jwk] = keys.as_slice() else {
        panic!("one key expected: {keys:?}")
    };
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk.get("d").is_none(), "never the private half");

    // The key sealed in the database signs; the published key verifies it.
    let keys = SigningKeys::new(secret_key());
    keys.reload(&pool).await.unwrap();
    let signer = keys.signer(OffsetDateTime::now_utc()).unwrap();
    assert_eq!(signer.kid, jwk["kid"].as_str().unwrap());
    let signature = signer.sign(b"header.payload").unwrap();
    let signature = Signature::from_slice(&signature).unwrap();
    verifying_key(jwk)
        .verify(b"header.payload", &signature)
        .unwrap();
    assert!(
        verifying_key(jwk)
            .verify(b"header.payloaD", &signature)
            .is_err()
    );
}

#[sqlx::test]
async fn two_instances_starting_together_make_one_key(pool: PgPool) {
    let (first, second) = tokio::join!(TestApp::spawn(pool.clone()), TestApp::spawn(pool.clone()));
    assert_eq!(
        kids(&published(&first).await),
        kids(&published(&second).await)
    );
    assert_eq!(first.count("token_signing_key").await, 1);
}

#[sqlx::test]
async fn private_keys_are_sealed_and_do_not_open_in_another_row(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let rotated = post(&app, "/v1/signing-keys/rotate", OPERATOR, json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let rows: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT kid, private_key_sealed FROM token_signing_key ORDER BY sign_from")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    for (kid, sealed) in &rows {
        // A PKCS#8 P-256 document starts with this sequence; the sealed value shows none of it.
        let pkcs8_start = [0x30, 0x81, 0x87, 0x02, 0x01, 0x00];
        assert!(
            !sealed.windows(6).any(|window| window == pkcs8_start),
            "{kid}"
        );
        assert!(
            secret_key()
                .open(sealed, &format!("token_signing_key.private_key:{kid}"))
                .is_ok()
        );
    }
    // The signing key's sealed value copied into the other row opens there no more: nothing signs.
    let keys = SigningKeys::new(secret_key());
    keys.reload(&pool).await.unwrap();
    assert!(keys.signer(OffsetDateTime::now_utc()).is_some());
    sqlx::query("UPDATE token_signing_key SET private_key_sealed = $1 WHERE kid = $2")
        .bind(&rows[1].1)
        .bind(&rows[0].0)
        .execute(&pool)
        .await
        .unwrap();
    keys.reload(&pool).await.unwrap();
    assert!(keys.signer(OffsetDateTime::now_utc()).is_none());
    // Nor with another GATEHOUSE_SECRET_KEY.
    let other = SigningKeys::new(SecretKey::parse(&STANDARD.encode([9u8; 32])).unwrap());
    other.reload(&pool).await.unwrap();
    let later = OffsetDateTime::now_utc() + Duration::minutes(16);
    assert!(other.signer(later).is_none());
    assert!(
        keys.signer(later).is_some(),
        "the successor's own row opens"
    );
}

#[sqlx::test]
async fn an_operator_rotation_publishes_the_next_key_15_minutes_before_it_signs(pool: PgPool) {
    let app = management_api(pool.clone(), &[]).await;
    let first = kids(&published(&app).await);

    let rotated = post(&app, "/v1/signing-keys/rotate", OPERATOR, json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let listed = rotated.body["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    let (next, current) = (&listed[0], &listed[1]);
    assert_eq!(next["state"], "next");
    assert_eq!(current["state"], "signing");
    assert_eq!(current["kid"].as_str(), Some(first[0].as_str()));
    // Answers give whole seconds: a second later is past the instant they name.
    let at = |value: &Value| {
        OffsetDateTime::parse(
            value.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
            + Duration::seconds(1)
    };
    assert_eq!(
        at(&next["sign_from"]) - at(&next["publish_at"]),
        Duration::minutes(15)
    );
    assert_eq!(at(&current["retire_at"]), at(&next["sign_from"]));
    assert_eq!(
        at(&current["unpublish_at"]) - at(&current["retire_at"]),
        Duration::minutes(61),
        "published until every token it signed (at most an hour) expired, with the skew"
    );
    // Both are published now; the current one still signs until the next one's time.
    let mut both = kids(&published(&app).await);
    both.sort();
    let mut expected = vec![next["kid"].as_str().unwrap().to_owned(), first[0].clone()];
    expected.sort();
    assert_eq!(both, expected);
    let keys = SigningKeys::new(secret_key());
    keys.reload(&pool).await.unwrap();
    let now = OffsetDateTime::now_utc();
    assert_eq!(keys.signer(now).unwrap().kid, first[0]);
    assert_eq!(
        keys.signer(at(&next["sign_from"])).unwrap().kid,
        next["kid"].as_str().unwrap()
    );
    let after = at(&current["unpublish_at"]);
    assert_eq!(
        keys.published(after)
            .iter()
            .map(|jwk| &jwk.kid)
            .collect::<Vec<_>>(),
        [next["kid"].as_str().unwrap()]
    );

    // Asking again while a rotation is under way changes nothing.
    let again = post(&app, "/v1/signing-keys/rotate", OPERATOR, json!({})).await;
    assert_eq!(again.body["data"].as_array().unwrap().len(), 2);
    let listed = get(&app, "/v1/signing-keys", OPERATOR).await;
    assert_eq!(listed.body["data"], rotated.body["data"]);

    // Only operators rotate.
    let tenant = Tenant::create(&pool, "acme").await;
    let token = tenant_token(&pool, &tenant, &["keys:write"]).await;
    let refused = post(&app, "/v1/signing-keys/rotate", &token, json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let anonymous = reqwest::Client::new()
        .post(app.url("/v1/signing-keys/rotate"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.count("token_signing_key").await, 2);
}

#[sqlx::test]
async fn the_schedule_publishes_a_successor_ahead_and_keeps_the_old_key_until_its_tokens_expired(
    pool: PgPool,
) {
    let _app = TestApp::spawn(pool.clone()).await;
    let keys = SigningKeys::new(secret_key());
    keys.reload(&pool).await.unwrap();
    let start = OffsetDateTime::now_utc();
    let first = keys.signer(start).unwrap().kid;
    let period = Rotation::Scheduled {
        period: Duration::days(30),
    };
    // Not due until 15 minutes before the period ends.
    let early = start + Duration::days(30) - Duration::minutes(20);
    assert!(!keys.rotate(&pool, early, period).await.unwrap());
    let due = start + Duration::days(30) - Duration::minutes(14);
    assert!(keys.rotate(&pool, due, period).await.unwrap());
    let published = |at| {
        let mut kids: Vec<String> = keys.published(at).into_iter().map(|jwk| jwk.kid).collect();
        kids.sort();
        kids
    };
    let successor = keys
        .published(due)
        .into_iter()
        .map(|jwk| jwk.kid)
        .find(|kid| *kid != first)
        .unwrap();
    // Published at once; signs only once 15 minutes passed.
    assert_eq!(keys.signer(due + Duration::minutes(14)).unwrap().kid, first);
    let switch = due + Duration::minutes(15);
    assert_eq!(keys.signer(switch).unwrap().kid, successor);
    // The old key stays published an hour (the longest token) and a minute (the skew) more.
    assert_eq!(published(switch + Duration::minutes(60)).len(), 2);
    assert_eq!(published(switch + Duration::minutes(61)), [successor]);
}

#[sqlx::test]
async fn an_immediate_rotation_unpublishes_every_other_key_on_every_instance_within_a_second(
    pool: PgPool,
) {
    let app = management_api(pool.clone(), &[]).await;
    let other = TestApp::spawn(pool.clone()).await;
    let before = kids(&published(&app).await);
    // Give the other instance time to listen for changes.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let rotated = post(
        &app,
        "/v1/signing-keys/rotate",
        OPERATOR,
        json!({"immediately": true}),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let states: Vec<&str> = rotated.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["signing", "unpublished"]);
    let now = kids(&published(&app).await);
    assert_eq!(now.len(), 1);
    assert_ne!(now, before);
    let changed = std::time::Instant::now();
    loop {
        if kids(&published(&other).await) == now {
            break;
        }
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(1),
            "the other instance still publishes the old key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[sqlx::test]
async fn without_a_secret_key_there_are_no_tokens_to_publish(pool: PgPool) {
    let app = management_api(pool, &[("GATEHOUSE_SECRET_KEY", "")]).await;
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("GATEHOUSE_SECRET_KEY"),
            "{body}"
        );
    }
    assert_eq!(
        get(&app, "/v1/signing-keys", OPERATOR).await.status,
        StatusCode::NOT_FOUND
    );
}
