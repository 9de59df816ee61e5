//! A PostgreSQL cluster of the test's own, in a temporary folder on a free port, that the test may
//! stop and start (the shared clusters are never stopped). Stopped and deleted when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::free_port;

pub struct Cluster {
    dir: PathBuf,
    bindir: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("GATEHOUSE_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .filter(|bin| bin.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates
        .pop()
        .expect("PostgreSQL server binaries (scripts/test installs them)")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Cluster {
    pub fn start_new() -> Self {
        let dir = std::env::temp_dir().join(format!("gatehouse-test-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let cluster = Self {
            dir,
            bindir: bindir(),
            port,
            as_postgres: is_root(),
        };
        if cluster.as_postgres {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(&cluster.dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = cluster.dir.join("data");
        cluster.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        cluster.start();
        cluster
    }

    /// A migrated pool on this cluster with the production settings (statement and acquire
    /// timeouts), as `db::connect` makes it.
    pub async fn production_pool(&self) -> sqlx::PgPool {
        let url = self.url();
        let config = gatehouse::config::Config::from_lookup(|name| {
            (name == "DATABASE_URL").then(|| url.clone())
        })
        .unwrap();
        let pool = gatehouse::db::connect(&config.database_url, config.database_max_connections)
            .await
            .unwrap();
        gatehouse::db::MIGRATOR.run(&pool).await.unwrap();
        pool
    }

    /// Adds a line to the server's configuration (read at the next start).
    pub fn configure(&self, line: &str) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("data").join("postgresql.conf"))
            .unwrap();
        writeln!(file, "{line}").unwrap();
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off",
            self.port,
            path(&self.dir)
        );
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops the server the way an outage looks to clients: connections are cut.
    pub fn stop(&self) {
        let data = self.dir.join("data");
        self.run("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"]);
    }

    /// Runs one of the server's programs, as `postgres` when this process is root.
    fn output(&self, program: &str, args: &[&str]) -> std::io::Result<Output> {
        let binary = self.bindir.join(program);
        if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&binary)
                .args(args)
                .output()
        } else {
            Command::new(&binary).args(args).output()
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.output(program, args).unwrap();
        assert!(
            output.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = self.output(
            "pg_ctl",
            &["-D", path(&data), "-m", "immediate", "-w", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
