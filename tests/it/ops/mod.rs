//! Operations as an operator meets them: the container image built and run for real, the compose
//! file, the systemd unit, the Grafana dashboard, the command line (`migrate`, `check-config`,
//! `secret-key rotate`, `--help`), a restore drill and the rules that keep upgrades rolling.

mod backup;
mod cli;
mod container;
mod examples;
mod upgrade;
mod webhook_world;

use std::path::{Path, PathBuf};
use std::process::Output;

/// The repository's root (where `Containerfile` and `examples/` are).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `tool` is on the PATH; when not, says why the test stops there (scripts/test installs
/// every tool these tests use, so on CI none is missing).
pub fn have(tool: &str, test: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(tool).is_file())
    });
    if !found {
        eprintln!("SKIPPED {test}: `{tool}` is not installed (scripts/test installs it)");
    }
    found
}

/// Output of a finished command, panicking with its stderr unless it succeeded.
pub fn succeeded(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A fresh directory under the system's temporary folder, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        let path = std::env::temp_dir().join(format!("gatehouse-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
