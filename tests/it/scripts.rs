//! `scripts/run` and `scripts/stop` as a new user runs them, from a copy of the project's scripts
//! (so their clusters and files are the test's own).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::app::TestApp;
use crate::support::binary::database_url;
use crate::support::free_port;

/// A folder with a copy of `scripts/`, removed when dropped.
struct Project(PathBuf);

impl Project {
    fn copy() -> Self {
        let root = std::env::temp_dir().join(format!("gatehouse-project-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).unwrap();
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts"))
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success());
        Self(root)
    }

    fn script(&self, name: &str) -> PathBuf {
        self.0.join("scripts").join(name)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn accepts_connections(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test]
async fn scripts_stop_stops_the_clusters_the_other_scripts_started() {
    let project = Project::copy();
    let port = free_port();
    let started = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "PROJECT_ROOT=$PWD; . scripts/lib/postgres.sh; ensure_postgres run {port}"
        ))
        .current_dir(&project.0)
        .status()
        .await
        .unwrap();
    assert!(started.success());
    assert!(accepts_connections(port), "the run cluster is up");

    let stop = Command::new(project.script("stop")).output().await.unwrap();
    assert!(stop.status.success(), "{stop:?}");
    let said = String::from_utf8_lossy(&stop.stdout);
    assert!(said.contains("stopped the run cluster"), "{said}");
    assert!(!accepts_connections(port), "the run cluster is stopped");
    // Nothing left to stop: says nothing, still succeeds.
    let again = Command::new(project.script("stop")).output().await.unwrap();
    assert!(
        again.status.success() && again.stdout.is_empty(),
        "{again:?}"
    );
}

/// Starts `scripts/run` on the test's database; returns it and its output up to the line saying
/// where to go.
async fn run_script(
    project: &Project,
    pool: &PgPool,
    port: u16,
) -> (tokio::process::Child, String) {
    run_script_with(project, pool, port, |_| {}).await
}

/// [`run_script`] with more of the environment set by `adjust`.
async fn run_script_with(
    project: &Project,
    pool: &PgPool,
    port: u16,
    adjust: impl FnOnce(&mut Command),
) -> (tokio::process::Child, String) {
    let mut command = Command::new(project.script("run"));
    command
        .env("DATABASE_URL", database_url(pool))
        .env("GATEHOUSE_BIN", env!("CARGO_BIN_EXE_gatehouse"))
        .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env_remove("GATEHOUSE_VERIFIER_TOKENS")
        .env_remove("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE");
    adjust(&mut command);
    let mut run = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(run.stdout.take().unwrap()).lines();
    let mut said = String::new();
    let wanted = format!("open http://127.0.0.1:{port}");
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push_str(&line);
            said.push('\n');
            if line == wanted {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "scripts/run never said {wanted:?}: {said}");
    (run, said)
}

async fn terminate(mut run: tokio::process::Child, port: u16) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(run.id().unwrap().to_string())
        .status()
        .await;
    let status = tokio::time::timeout(Duration::from_secs(10), run.wait()).await;
    assert!(status.is_ok(), "scripts/run did not end on SIGTERM");
    assert!(
        !accepts_connections(port),
        "the server ended with the script"
    );
}

#[sqlx::test]
async fn scripts_run_says_where_to_go_and_makes_a_development_verifier_token_it_reuses(
    pool: PgPool,
) {
    let project = Project::copy();
    let port = free_port();
    let (run, said) = run_script(&project, &pool, port).await;
    let token = said
        .lines()
        .find_map(|line| {
            line.split_once("Development verifier token")
                .map(|(_, rest)| rest)
        })
        .and_then(|rest| rest.rsplit(": ").next())
        .unwrap_or_else(|| panic!("no token in {said}"))
        .to_owned();
    assert!(token.len() >= 32, "{token}");
    assert!(said.contains(&format!(
        "curl -s http://127.0.0.1:{port}/v1/keys/verify -H \"Authorization: Bearer {token}\""
    )));

    // The printed line works: the key API accepts the token (and judges the key).
    let app = TestApp::external(format!("http://127.0.0.1:{port}"), pool.clone());
    let answer = app
        .client()
        .post(app.url("/v1/keys/verify"))
        .bearer_auth(&token)
        .json(&json!({ "key": "ak_test_..." }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.json::<Value>().await.unwrap()["code"], "MALFORMED");
    terminate(run, port).await;

    let (run, said) = run_script(&project, &pool, port).await;
    assert!(said.contains(&token), "the token is reused: {said}");
    terminate(run, port).await;
}

#[sqlx::test]
async fn scripts_run_lets_webhooks_reach_this_machine_unless_told_otherwise(pool: PgPool) {
    let project = Project::copy();
    // The binary as scripts/run starts it, telling what it was given.
    let seen = project.0.join("allow-private");
    let wrapper = project.0.join("gatehouse-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/usr/bin/env bash\nprintf '%s' \"${{GATEHOUSE_WEBHOOK_ALLOW_PRIVATE-unset}}\" > {}\nexec {}\n",
            seen.display(),
            env!("CARGO_BIN_EXE_gatehouse")
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let port = free_port();
    let (run, _) = run_script_with(&project, &pool, port, |command| {
        command.env("GATEHOUSE_BIN", &wrapper);
    })
    .await;
    // Read, then stop the server before asserting (a failed assertion would leave it running).
    let given = std::fs::read_to_string(&seen).unwrap();
    terminate(run, port).await;
    assert_eq!(given, "1", "set for local development");

    // Set by the caller: kept as it is.
    let (run, _) = run_script_with(&project, &pool, port, |command| {
        command
            .env("GATEHOUSE_BIN", &wrapper)
            .env("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE", "false");
    })
    .await;
    let given = std::fs::read_to_string(&seen).unwrap();
    terminate(run, port).await;
    assert_eq!(given, "false", "kept as the caller set it");
    // The server's connections end a moment after it does; the test's database is dropped next.
    for _ in 0..100 {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if others == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
