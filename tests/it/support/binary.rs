//! The real `gatehouse` binary on a test's database, as an operator runs it, its output captured.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use tokio::process::{Child, Command};

use super::app::TestApp;
use super::free_port;

/// The URL of `pool`'s database (each test has its own), for a process of its own to connect to.
pub fn database_url(pool: &PgPool) -> String {
    let database = pool.connect_options().get_database().unwrap().to_owned();
    let base_url = std::env::var("DATABASE_URL").unwrap();
    format!("{}/{database}", base_url.rsplit_once('/').unwrap().0)
}

pub struct Binary {
    /// Client helpers pointed at the binary.
    pub app: TestApp,
    process: Child,
    log_path: PathBuf,
}

impl Binary {
    /// Starts the binary on `pool`'s database with `env` added, and waits until it answers.
    pub async fn start(pool: &PgPool, env: &[(&str, &str)]) -> Self {
        Self::start_program(env!("CARGO_BIN_EXE_gatehouse"), pool, env).await
    }

    /// As [`Binary::start`], with another build of Gatehouse (the previous release's).
    pub async fn start_program(program: &str, pool: &PgPool, env: &[(&str, &str)]) -> Self {
        let url = database_url(pool);
        let port = free_port();
        let log_path =
            std::env::temp_dir().join(format!("gatehouse-log-{}.txt", uuid::Uuid::new_v4()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(program);
        command
            .env("DATABASE_URL", &url)
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEHOUSE_PUBLIC_URL", format!("http://127.0.0.1:{port}"));
        for (name, value) in env {
            command.env(name, value);
        }
        let process = command
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let app = TestApp::external(format!("http://127.0.0.1:{port}"), pool.clone());
        for _ in 0..100 {
            if reqwest::get(app.url("/healthz")).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            app,
            process,
            log_path,
        }
    }

    /// Its resident memory in MiB: `VmRSS` (now) or `VmHWM` (its peak so far).
    pub fn resident_mib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.id().unwrap()))
                .unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"));
        kib / 1024
    }

    /// Stops it as SIGTERM does and returns everything it wrote.
    pub async fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.process.id().unwrap().to_string())
            .status()
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.process.wait()).await;
        let logs = std::fs::read_to_string(&self.log_path).unwrap();
        let _ = std::fs::remove_file(&self.log_path);
        logs
    }
}
