//! Rolling upgrades: every release runs beside the previous one on one database while the new
//! migrations apply. The suite holds every migration to the rules that make that true (checked
//! statically here); `scripts/upgrade-check` runs the previous release's binary and this one
//! side by side for real (the test at the end, which runs when it is given the previous binary).

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use super::root;
use crate::support::app::TestApp;
use crate::support::binary::{Binary, database_url};
use crate::support::key_api::VERIFIER;
use crate::support::management::{OPERATOR, post};

/// What a statement does that the previous release cannot live with, if anything.
fn breaks_the_previous_release(statement: &str) -> Option<&'static str> {
    let sql = statement.to_ascii_uppercase();
    let sql = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let rules: [(&str, &str); 7] = [
        ("DROP TABLE", "drops a table the previous release reads"),
        ("DROP COLUMN", "drops a column the previous release reads"),
        ("RENAME", "renames what the previous release names"),
        ("SET NOT NULL", "makes the previous release's inserts fail"),
        (
            "DROP NOT NULL",
            "lets NULLs reach the previous release, which reads NOT NULL",
        ),
        (
            " TYPE ",
            "changes a column's type under the previous release",
        ),
        ("ADD CONSTRAINT", "may refuse the previous release's writes"),
    ];
    // A constraint added with its columns judges only what the new release writes.
    let applies = |pattern: &str| match pattern {
        " TYPE " => sql.contains("ALTER COLUMN"),
        "ADD CONSTRAINT" => !sql.contains("ADD COLUMN"),
        _ => true,
    };
    if let Some((_, why)) = rules
        .iter()
        .find(|(pattern, _)| sql.contains(pattern) && applies(pattern))
    {
        return Some(why);
    }
    // A NOT NULL column the previous release does not fill needs a default (or is generated).
    sql.split("ADD COLUMN").skip(1).find_map(|column| {
        (column.contains("NOT NULL")
            && !column.contains("DEFAULT")
            && !column.contains("GENERATED"))
        .then_some("adds a NOT NULL column without a default: the previous release's inserts fail")
    })
}

/// A migration's statements, comments removed.
fn statements(sql: &str) -> Vec<String> {
    let code: String = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|statement| !statement.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Migrations released before these rules, which broke them knowingly. Released migrations are
/// never edited (sqlx refuses a changed checksum), so the reasons live here.
const RELEASED_EXCEPTIONS: [(&str, &str); 1] = [(
    "20261207120001_idempotency_in_progress.sql",
    "an Idempotency-Key claimed by the new release is a row without an answer: the previous \
     release replaying that key in the same minute would fail to read it (a 500 for one retry)",
)];

#[test]
fn every_migration_keeps_the_previous_release_working() {
    let mut broken = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root().join("migrations"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if RELEASED_EXCEPTIONS.iter().any(|(file, _)| *file == name) {
            continue;
        }
        for statement in statements(&std::fs::read_to_string(&path).unwrap()) {
            if let Some(why) = breaks_the_previous_release(&statement) {
                broken.push(format!("{name}: {why}:\n  {statement}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "migrations must be safe beside the previous release (add nullable or defaulted columns \
         now, remove them a release later; docs/operations.md, Upgrades):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_rules_catch_what_would_break_a_rolling_upgrade() {
    for bad in [
        "ALTER TABLE api_key DROP COLUMN note",
        "ALTER TABLE api_key ADD COLUMN owner uuid NOT NULL",
        "ALTER TABLE api_key ALTER COLUMN name SET NOT NULL",
        "ALTER TABLE api_key RENAME COLUMN name TO label",
        "ALTER TABLE api_key ALTER COLUMN name TYPE varchar(10)",
        "DROP TABLE key_request",
        "ALTER TABLE api_key ADD COLUMN a text, ADD COLUMN b int NOT NULL",
        "ALTER TABLE api_key ADD CONSTRAINT short_names CHECK (length(name) < 9)",
    ] {
        assert!(breaks_the_previous_release(bad).is_some(), "{bad}");
    }
    for fine in [
        "ALTER TABLE api_key ADD COLUMN owner uuid",
        "ALTER TABLE api_key ADD COLUMN legacy boolean NOT NULL DEFAULT false",
        "ALTER TABLE o ADD COLUMN lane text NOT NULL GENERATED ALWAYS AS (kind) STORED",
        "CREATE TABLE thing (id uuid PRIMARY KEY, kind text NOT NULL)",
        "CREATE INDEX thing_kind_idx ON thing (kind)",
        "DROP INDEX thing_kind_idx",
        "ALTER TABLE t ADD COLUMN x text, ADD CONSTRAINT x_short CHECK (length(x) < 9)",
    ] {
        assert_eq!(breaks_the_previous_release(fine), None, "{fine}");
    }
}

#[sqlx::test]
async fn this_release_starts_on_a_database_a_newer_release_has_migrated(pool: PgPool) {
    // What the next release's migration leaves: a version this binary does not carry.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99991231000001, 'from the next release', true, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let url = database_url(&pool);
    let migrated = super::cli::gatehouse(&["migrate"], &[("DATABASE_URL", &url)]).await;
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    // An instance restarting in the middle of a rolling upgrade comes back.
    let instance = Binary::start(&pool, &[]).await;
    let ready = instance.app.get(&instance.app.client(), "/readyz").await;
    let status = ready.status();
    let logs = instance.stop().await;
    assert_eq!(status, 200, "{logs}");
}

/// The previous release's binary, as `scripts/upgrade-check` builds it.
fn previous_binary() -> Option<String> {
    std::env::var("GATEHOUSE_PREVIOUS_BIN")
        .ok()
        .filter(|path| !path.is_empty())
}

#[sqlx::test(migrations = false)]
async fn the_previous_release_and_this_one_serve_one_database_through_the_migrations(pool: PgPool) {
    let Some(previous) = previous_binary() else {
        eprintln!(
            "SKIPPED the rolling upgrade test: GATEHOUSE_PREVIOUS_BIN is not set \
             (scripts/upgrade-check builds the previous release and sets it)"
        );
        return;
    };
    let env = [
        ("GATEHOUSE_VERIFIER_TOKENS", VERIFIER),
        ("GATEHOUSE_OPERATOR_TOKENS", OPERATOR),
    ];
    // The previous release creates its schema, a tenant and a key, and serves.
    let old = Binary::start_program(&previous, &pool, &env).await;
    assert_eq!(
        old.app.get(&old.app.client(), "/readyz").await.status(),
        200
    );
    let tenant = post(
        &old.app,
        "/v1/tenants",
        OPERATOR,
        json!({ "name": "Acme", "slug": "acme" }),
    )
    .await;
    assert_eq!(tenant.status, 201, "{}", tenant.body);
    let before = new_key(&old.app).await;

    // This release migrates while the previous one serves, then serves beside it.
    let migrated =
        super::cli::gatehouse(&["migrate"], &[("DATABASE_URL", &database_url(&pool))]).await;
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let new = Binary::start(&pool, &env).await;
    let after = new_key(&new.app).await;

    for (which, instance) in [("previous", &old.app), ("new", &new.app)] {
        assert_eq!(
            instance.get(&instance.client(), "/readyz").await.status(),
            200,
            "{which}"
        );
        for key in [&before, &after] {
            assert_eq!(code(instance, key).await, "VALID", "{which} release, {key}");
        }
        let page = instance.get(&instance.client(), "/signin").await;
        assert_eq!(page.status(), 200, "{which} release's sign-in page");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = old.stop().await;
    assert!(!logs.contains("ERROR"), "the previous release: {logs}");
    let logs = new.stop().await;
    assert!(!logs.contains("ERROR"), "this release: {logs}");
}

/// A live key made through the management API of `app`.
async fn new_key(app: &TestApp) -> String {
    let body = json!({ "name": "checkout", "environment": "live", "full_access": true });
    let created = post(app, "/v1/tenants/acme/keys", OPERATOR, body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["secret"].as_str().unwrap().to_owned()
}

async fn code(app: &TestApp, key: &str) -> String {
    let answer = app
        .client()
        .post(app.url("/v1/keys/verify"))
        .bearer_auth(VERIFIER)
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    body["code"].as_str().unwrap().to_owned()
}
