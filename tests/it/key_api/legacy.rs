//! Keys of the platform's old format (`GATEHOUSE_LEGACY_KEY_PATTERN`) through the key API: looked
//! up by SHA-256 like Gatehouse's own, while a key of neither shape never reaches the database.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::fixtures::{Tenant, legacy_key, revoke_unnoticed};
use crate::support::key_api::{code_of, key_api, verify};

const PATTERN: (&str, &str) = ("GATEHOUSE_LEGACY_KEY_PATTERN", "sk_[0-9a-f]{32}");

fn legacy_secret(fill: char) -> String {
    format!("sk_{}", fill.to_string().repeat(32))
}

#[sqlx::test]
async fn a_legacy_key_is_valid_says_so_and_is_then_answered_from_the_cache(pool: PgPool) {
    let app = key_api(pool.clone(), &[PATTERN]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let secret = legacy_secret('a');
    let id = legacy_key(&pool, acme.id, &secret).await;

    let response = verify(
        &app,
        json!({ "key": secret, "tenant": "acme", "scopes": ["read"] }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "VALID");
    assert_eq!(body["key"]["id"], id.to_string());
    assert_eq!(body["key"]["legacy"], true);

    // Gatehouse's own keys say they are not legacy.
    let (own, _) = acme
        .key(
            &pool,
            gatehouse::vocabulary::Environment::Live,
            &["read"],
            50,
        )
        .await;
    let body: Value = verify(&app, json!({ "key": own }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["key"]["legacy"], false);

    // Cached like any key: revoked behind the service's back, it is still answered from memory.
    revoke_unnoticed(&pool, id).await;
    assert_eq!(code_of(&app, &secret).await, "VALID");

    // Without the database, an unknown legacy-shaped key needs it (503), and a key of neither
    // shape is MALFORMED without it.
    pool.close().await;
    let unknown = verify(&app, json!({ "key": legacy_secret('b') })).await;
    assert_eq!(unknown.status(), StatusCode::SERVICE_UNAVAILABLE);
    for third_shape in ["sk_123", "pk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "hello"] {
        assert_eq!(
            code_of(&app, third_shape).await,
            "MALFORMED",
            "{third_shape}"
        );
    }
    // The pattern matches whole keys only.
    assert_eq!(code_of(&app, &format!("x{secret}")).await, "MALFORMED");
}

#[sqlx::test]
async fn without_the_pattern_legacy_shaped_keys_are_malformed_without_a_query(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let secret = legacy_secret('c');
    legacy_key(&pool, acme.id, &secret).await;
    assert_eq!(code_of(&app, &secret).await, "MALFORMED");
    pool.close().await;
    assert_eq!(code_of(&app, &secret).await, "MALFORMED");
}
