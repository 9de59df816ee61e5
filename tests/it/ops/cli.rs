//! The binary's command line, run for real: `--help` for each command, `check-config` naming
//! every bad variable, `migrate` on an empty database, `secret-key rotate` re-sealing every
//! sealed secret (webhooks still sign and still send their credentials, a kept answer still
//! replays), audited as the operator, and refusing a wrong previous key without changing anything.

use std::process::Output;

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use tokio::process::Command;

use crate::support::binary::database_url;
use crate::support::management::send;
use crate::support::webhooks::verify_with_library;

use super::webhook_world::{NEW_KEY, OLD_KEY, STRANGER_KEY, World};

/// Runs `gatehouse args…` with only `env` set.
pub async fn gatehouse(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn every_command_has_help_and_a_wrong_one_says_where_to_look() {
    let help = gatehouse(&["--help"], &[]).await;
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    for command in [
        "serve",
        "migrate",
        "check-config",
        "secret-key rotate",
        "healthcheck",
    ] {
        assert!(
            text.contains(&format!("\n  {command} ")),
            "{command}: {text}"
        );
        let args: Vec<&str> = command.split(' ').chain(["--help"]).collect();
        let own = gatehouse(&args, &[]).await;
        assert!(own.status.success(), "{command} --help");
        let own = String::from_utf8_lossy(&own.stdout).into_owned();
        assert!(
            own.starts_with(&format!("Usage: gatehouse {command}")),
            "{own}"
        );
    }
    let wrong = gatehouse(&["serv"], &[]).await;
    assert_eq!(wrong.status.code(), Some(2));
    assert!(stderr(&wrong).contains("unknown command \"serv\""));
    assert!(stderr(&wrong).contains("gatehouse --help"));
}

#[tokio::test]
async fn check_config_names_every_bad_variable_and_passes_a_good_configuration() {
    let bad = gatehouse(
        &["check-config"],
        &[
            ("GATEHOUSE_LOG_FORMAT", "xml"),
            ("GATEHOUSE_LISTEN", "localhost"),
            ("GATEHOUSE_PUBLIC_URL", "ftp://portal.example.com"),
            ("GATEHOUSE_VERIFIER_TOKENS", "short"),
            ("GATEHOUSE_KEY_CACHE_SECONDS", "60"),
            ("GATEHOUSE_SECRET_KEY", "not-a-key"),
        ],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    let named: Vec<String> = stderr(&bad)
        .lines()
        .map(|line| {
            let rest = line
                .strip_prefix("gatehouse: configuration error: ")
                .unwrap();
            rest.split(':').next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        named,
        [
            "GATEHOUSE_LOG_FORMAT",
            "DATABASE_URL",
            "GATEHOUSE_LISTEN",
            "GATEHOUSE_PUBLIC_URL",
            "GATEHOUSE_VERIFIER_TOKENS",
            "GATEHOUSE_KEY_CACHE_SECONDS",
            "GATEHOUSE_SECRET_KEY",
        ]
    );

    let good = gatehouse(
        &["check-config"],
        &[
            ("DATABASE_URL", "postgres://gatehouse@db.internal/gatehouse"),
            ("GATEHOUSE_LISTEN", "0.0.0.0:8080"),
            ("GATEHOUSE_VERIFIER_TOKENS", "verifier-token-0123456789"),
            ("GATEHOUSE_SECRET_KEY", OLD_KEY),
        ],
    )
    .await;
    assert!(good.status.success(), "{}", stderr(&good));
    let said = String::from_utf8_lossy(&good.stdout).into_owned();
    assert!(said.contains("the configuration is valid"), "{said}");
    assert!(!said.contains("verifier-token-0123456789"), "{said}");
}

#[sqlx::test]
async fn migrate_brings_an_empty_database_up_to_date_and_is_harmless_twice(pool: PgPool) {
    let name = format!("gatehouse_migrate_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    let url = database_url(&pool).replace(pool.connect_options().get_database().unwrap(), &name);
    for _ in 0..2 {
        let migrated = gatehouse(&["migrate"], &[("DATABASE_URL", &url)]).await;
        assert!(migrated.status.success(), "{}", stderr(&migrated));
    }
    let fresh = sqlx::PgPool::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&fresh)
        .await
        .unwrap();
    let files = std::fs::read_dir(super::root().join("migrations"))
        .unwrap()
        .count();
    assert_eq!(applied, i64::try_from(files).unwrap());
    // The session store's table too: a release job leaves nothing for `serve` to create.
    let sessions: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('tower_sessions.session')::text")
            .fetch_one(&fresh)
            .await
            .unwrap();
    assert!(sessions.is_some(), "the session table");
    fresh.close().await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&pool)
        .await
        .unwrap();

    let nowhere = gatehouse(&["migrate"], &[]).await;
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(stderr(&nowhere).contains("DATABASE_URL"));
}

#[sqlx::test]
async fn rotating_the_secret_key_reseals_everything_and_webhooks_still_sign(pool: PgPool) {
    let world = World::build(pool.clone(), OLD_KEY).await;
    // A kept answer sealed under the old key: the same Idempotency-Key replays it.
    let body = json!({ "name": "kept", "environment": "test", "full_access": true });
    let first = send(
        &world.app,
        Method::POST,
        "/v1/tenants/acme/keys",
        &world.token,
        Some(body.clone()),
        Some("rotation-1"),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let sealed_before: Vec<u8> = sqlx::query_scalar("SELECT secret_sealed FROM webhook_endpoint")
        .fetch_one(&pool)
        .await
        .unwrap();

    let url = database_url(&pool);
    let rotate = |previous: &'static str| {
        let url = url.clone();
        async move {
            gatehouse(
                &["secret-key", "rotate"],
                &[
                    ("DATABASE_URL", &url),
                    ("GATEHOUSE_PREVIOUS_SECRET_KEY", previous),
                    ("GATEHOUSE_SECRET_KEY", NEW_KEY),
                ],
            )
            .await
        }
    };
    // The instance keeps running meanwhile. A wrong previous key: refused, nothing changed.
    let refused = rotate(STRANGER_KEY).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("opens with neither"),
        "{}",
        stderr(&refused)
    );
    let unchanged: Vec<u8> = sqlx::query_scalar("SELECT secret_sealed FROM webhook_endpoint")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(unchanged, sealed_before);

    let rotated = rotate(OLD_KEY).await;
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let said = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(
        said.contains(
            "re-sealed 1 webhook endpoint(s), 1 kept answer(s) and 1 token signing key(s)"
        ),
        "{said}"
    );
    let again = rotate(OLD_KEY).await;
    assert!(again.status.success(), "a second run is harmless");

    // Under the new key: deliveries are signed with the same secret and carry the credentials.
    let world = world.restart(NEW_KEY).await;
    let event = world.send_test().await;
    verify_with_library(&world.secret, &event).expect("signed with the endpoint's secret");
    assert_eq!(
        event.header("authorization"),
        Some("Bearer receiver-token-123")
    );
    let replay = send(
        &world.app,
        Method::POST,
        "/v1/tenants/acme/keys",
        &world.token,
        Some(body),
        Some("rotation-1"),
    )
    .await;
    assert_eq!(replay.status, 201, "{}", replay.body);
    assert_eq!(
        replay.body, first.body,
        "the kept answer opens under the new key"
    );

    // The key that signs access tokens opens under the new key: it is still the one published.
    let kids_after: Vec<String> =
        sqlx::query_scalar("SELECT kid FROM token_signing_key ORDER BY kid")
            .fetch_all(&pool)
            .await
            .unwrap();
    let jwks = send(
        &world.app,
        Method::GET,
        "/.well-known/jwks.json",
        &world.token,
        None,
        None,
    )
    .await;
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    assert_eq!(
        kids_after.len(),
        1,
        "no new key was made for want of the old one"
    );
    assert_eq!(
        jwks.body["keys"][0]["kid"],
        kids_after[0].as_str(),
        "{}",
        jwks.body
    );

    // Audited in the tenant, by the operator.
    let events: Vec<(Option<String>, serde_json::Value)> = sqlx::query_as(
        "SELECT actor_token, details FROM audit_event WHERE action = 'secret_key.rotated'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        events,
        [(
            Some("Operator".to_owned()),
            json!({ "webhook_endpoints": 1 })
        )]
    );
}
