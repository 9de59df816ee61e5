//! The real `gatehouse` binary on a test's database, its log captured: for what only the
//! shipped program shows (start-up checks, what reaches the log).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::app::TestApp;
use super::free_port;

pub struct RealBinary {
    pub app: TestApp,
    child: tokio::process::Child,
    log_path: PathBuf,
}

impl RealBinary {
    /// Starts the binary on `pool`'s database with `env` (and `RUST_LOG=debug`), and waits until
    /// it answers `/healthz`.
    pub async fn start(pool: &PgPool, env: &[(&str, &str)]) -> Self {
        let database = pool.connect_options().get_database().unwrap().to_owned();
        let base_url = std::env::var("DATABASE_URL").unwrap();
        let url = format!("{}/{database}", base_url.rsplit_once('/').unwrap().0);
        let port = free_port();
        let log_path = std::env::temp_dir().join(format!("gatehouse-log-{}.txt", Uuid::new_v4()));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .env("DATABASE_URL", &url)
            .env("GATEHOUSE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GATEHOUSE_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env("RUST_LOG", "debug")
            .envs(env.iter().copied())
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
            child,
            log_path,
        }
    }

    /// Stops it as SIGTERM does and returns everything it logged.
    pub async fn stop(mut self) -> String {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().unwrap().to_string())
            .status()
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let logs = std::fs::read_to_string(&self.log_path).unwrap();
        let _ = std::fs::remove_file(&self.log_path);
        logs
    }
}
