//! The restore drill docs/operations.md describes, run for real: `pg_dump` of a live database,
//! `pg_restore` into a new one, Gatehouse started on the copy with the same
//! `GATEHOUSE_SECRET_KEY`: keys still verify and webhooks still sign with their secrets and send
//! their credentials. Without the key, the copy's sealed secrets are lost: Gatehouse refuses to
//! start.

use std::process::Command;

use gatehouse::app::AppState;
use gatehouse::config::Config;
use serde_json::json;
use sqlx::PgPool;

use super::webhook_world::{OLD_KEY, World};
use super::{TempDir, have, succeeded};
use crate::support::binary::database_url;
use crate::support::key_api::code_of;
use crate::support::management::post;
use crate::support::webhooks::verify_with_library;

#[sqlx::test]
async fn a_dump_restored_into_a_new_database_verifies_keys_and_signs_webhooks(pool: PgPool) {
    let test = "the restore drill";
    if !(have("pg_dump", test) && have("pg_restore", test)) {
        return;
    }
    let world = World::build(pool.clone(), OLD_KEY).await;
    let created = post(
        &world.app,
        "/v1/tenants/acme/keys",
        &world.token,
        json!({ "name": "checkout", "environment": "live", "full_access": true }),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(code_of(&world.app, &key).await, "VALID");

    // Back up: the custom format, as docs/operations.md says.
    let source = database_url(&pool);
    let dir = TempDir::new("backup");
    let dump = dir.path().join("gatehouse.dump");
    succeeded(
        "pg_dump",
        Command::new("pg_dump")
            .args(["--format=custom", "--no-owner", "--file"])
            .arg(&dump)
            .arg(&source)
            .output()
            .unwrap(),
    );

    // Restore into a new, empty database.
    let restored_name = format!("restored_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {restored_name}"))
        .execute(&pool)
        .await
        .unwrap();
    let restored_url = format!("{}/{restored_name}", source.rsplit_once('/').unwrap().0);
    succeeded(
        "pg_restore",
        Command::new("pg_restore")
            .args(["--no-owner", "--exit-on-error", "--dbname", &restored_url])
            .arg(&dump)
            .output()
            .unwrap(),
    );
    let restored = PgPool::connect(&restored_url).await.unwrap();

    // Without the secret key, the copy refuses to start (its webhook secrets cannot be opened).
    let keyless = Config::from_lookup(|name| {
        (name == "DATABASE_URL").then(|| "postgres://unused@127.0.0.1/unused".to_owned())
    })
    .unwrap();
    let Err(refused) = AppState::with_pool(keyless, restored.clone()).await else {
        panic!("started on sealed secrets without GATEHOUSE_SECRET_KEY");
    };
    assert!(refused.to_string().contains("GATEHOUSE_SECRET_KEY"));

    // With it: the copy answers as the original did.
    let world = world.restart_on(restored.clone(), OLD_KEY).await;
    assert_eq!(code_of(&world.app, &key).await, "VALID");
    let event = world.send_test().await;
    verify_with_library(&world.secret, &event).expect("signed with the endpoint's secret");
    assert_eq!(
        event.header("authorization"),
        Some("Bearer receiver-token-123")
    );

    world.app.stop().await;
    restored.close().await;
    sqlx::query(&format!("DROP DATABASE {restored_name} WITH (FORCE)"))
        .execute(&pool)
        .await
        .unwrap();
}
