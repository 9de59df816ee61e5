//! The key API's cache: a changed key is forgotten at once, by this instance and by every other
//! instance on the same database.

use std::time::{Duration, Instant};

use gatehouse::db::keys::notify_changed;
use gatehouse::domain::keys::format::hash;
use gatehouse::vocabulary::Environment;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::TestApp;
use crate::support::fixtures::{Tenant, revoke_unnoticed};
use crate::support::key_api::{code_of, key_api};

/// Two instances on one database, both listening for key changes, that have both just verified
/// the same key of tenant `acme`.
async fn two_instances_that_verified_a_key(
    pool: &PgPool,
) -> (TestApp, TestApp, Tenant, String, Uuid) {
    let first = key_api(pool.clone(), &[]).await;
    let second = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(pool, "acme").await;
    let (key, id) = acme.key(pool, Environment::Live, &["read"], 1000).await;
    first.wait_until_listening().await;
    second.wait_until_listening().await;
    assert_eq!(code_of(&first, &key).await, "VALID");
    assert_eq!(code_of(&second, &key).await, "VALID");
    (first, second, acme, key, id)
}

#[sqlx::test]
async fn a_key_revoked_through_one_instance_is_refused_by_another_within_a_second(pool: PgPool) {
    let (first, second, acme, key, id) = two_instances_that_verified_a_key(&pool).await;
    assert_eq!(
        second.key_cache.len(),
        1,
        "the second instance holds the key in its cache"
    );

    // Revoked as the portal does it: in a transaction that notifies every instance.
    acme.revoke(&pool, id).await;
    let revoked_at = Instant::now();
    loop {
        let code = code_of(&second, &key).await;
        if code == "REVOKED" {
            break;
        }
        assert_eq!(code, "VALID");
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still valid on the other instance a second after revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(code_of(&first, &key).await, "REVOKED");
}

#[sqlx::test]
async fn a_notification_sent_by_hand_invalidates_every_instance(pool: PgPool) {
    let (first, second, _, key, id) = two_instances_that_verified_a_key(&pool).await;

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("UPDATE api_key SET expires_at = now() WHERE api_key_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    notify_changed(&mut *tx, &hash(&key)).await.unwrap();
    tx.commit().await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(1);
    for app in [&first, &second] {
        while code_of(app, &key).await != "EXPIRED" {
            assert!(Instant::now() < deadline, "an instance kept the key cached");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[sqlx::test]
async fn a_cached_key_is_forgotten_at_once_when_the_portal_invalidates_it(pool: PgPool) {
    let app = key_api(pool.clone(), &[]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    app.wait_until_listening().await;
    assert_eq!(code_of(&app, &key).await, "VALID");
    // Revoked behind the service's back (no notification): the cache still answers...
    revoke_unnoticed(&pool, id).await;
    assert_eq!(code_of(&app, &key).await, "VALID");
    // ...until the instance is told, as the portal's revoke handler does.
    app.key_cache.invalidate(&hash(&key));
    assert_eq!(code_of(&app, &key).await, "REVOKED");
}

#[sqlx::test]
async fn with_the_cache_off_every_verification_reads_the_database(pool: PgPool) {
    let app = key_api(pool.clone(), &[("GATEHOUSE_KEY_CACHE_SECONDS", "0")]).await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    app.wait_until_listening().await;
    assert_eq!(code_of(&app, &key).await, "VALID");
    revoke_unnoticed(&pool, id).await;
    assert_eq!(code_of(&app, &key).await, "REVOKED");
    assert!(app.key_cache.is_empty());
}
