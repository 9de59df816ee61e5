//! The `Containerfile`, built and run for real with podman (runc, host network, no daemon): the
//! runtime stage on a base made here from Debian packages (mmdebstrap) and tagged under the name
//! the `Containerfile` uses, with the binary this suite built in place of the `build` stage
//! (`--build-context build=DIR`). The image serves the test database, answers a verify call, runs
//! as a user that is not root, reports healthy and stops gracefully on SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse::vocabulary::Environment;
use serde_json::json;
use sqlx::PgPool;

use super::{TempDir, have, root, succeeded};
use crate::support::binary::database_url;
use crate::support::fixtures::Tenant;
use crate::support::free_port;
use crate::support::key_api::VERIFIER;

/// The runtime base the `Containerfile` names (its `RUNTIME_IMAGE` default).
const RUNTIME_IMAGE: &str = "gcr.io/distroless/cc-debian12:nonroot";
/// What the base holds: glibc, libgcc and CA certificates, as distroless cc does.
const BASE_PACKAGES: &str = "libc6,libgcc-s1,ca-certificates";
/// podman with runc (crun cannot raise rlimits here) and limits it may set.
const PODMAN: [&str; 2] = ["--runtime", "runc"];
const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

fn podman(args: &[&str]) -> Command {
    let mut command = Command::new("podman");
    command.args(PODMAN).args(args);
    command
}

/// The base image, imported from a tarball kept in the git-ignored `.tools/` (made once with
/// mmdebstrap, about 7 s and 22 MB).
fn ensure_runtime_base() {
    let exists = podman(&["image", "exists", RUNTIME_IMAGE])
        .status()
        .unwrap();
    if exists.success() {
        return;
    }
    let dir = root().join(".tools/container-base");
    std::fs::create_dir_all(&dir).unwrap();
    let tarball = dir.join(format!("bookworm-{}.tar", BASE_PACKAGES.replace(',', "-")));
    if !tarball.exists() {
        // mmdebstrap chooses its output's format by the extension: keep `.tar`.
        let partial = dir.join(format!("partial-{}.tar", std::process::id()));
        succeeded(
            "mmdebstrap",
            Command::new("mmdebstrap")
                .stdin(std::process::Stdio::null())
                .args(["--variant=extract", "--mode=root", "--quiet"])
                .arg(format!("--include={BASE_PACKAGES}"))
                .args(["bookworm"])
                .arg(&partial)
                .output()
                .unwrap(),
        );
        std::fs::rename(&partial, &tarball).unwrap();
    }
    succeeded(
        "podman import",
        podman(&["import", tarball.to_str().unwrap(), RUNTIME_IMAGE])
            .output()
            .unwrap(),
    );
}

/// Removes the test's container and image however the test ends.
struct Cleanup {
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "0", &self.container]).output();
        let _ = podman(&["rmi", "--force", &self.image]).output();
    }
}

/// `podman image inspect` or `podman container inspect` (`kind`) of `what`, in `format`.
fn inspect(kind: &str, what: &str, format: &str) -> String {
    succeeded(
        "podman inspect",
        podman(&[kind, "inspect", "--format", format, what])
            .output()
            .unwrap(),
    )
    .trim()
    .to_owned()
}

#[sqlx::test]
async fn the_image_serves_the_database_answers_a_verify_call_as_a_user_that_is_not_root(
    pool: PgPool,
) {
    let test = "the container image test";
    if !(have("podman", test) && have("runc", test) && have("mmdebstrap", test)) {
        return;
    }
    let started = Instant::now();
    ensure_runtime_base();
    let based = started.elapsed();

    // The build stage's output, from the binary this suite built (debug symbols stripped).
    let context = TempDir::new("image");
    std::fs::create_dir(context.path().join("out")).unwrap();
    let binary = context.path().join("out/gatehouse");
    succeeded(
        "strip",
        Command::new("strip")
            .arg("-o")
            .arg(&binary)
            .arg(env!("CARGO_BIN_EXE_gatehouse"))
            .output()
            .unwrap(),
    );
    let empty = TempDir::new("empty");
    let name = format!("gatehouse-test-{}", uuid::Uuid::new_v4().simple());
    let image = format!("localhost/{name}:test");
    let _cleanup = Cleanup {
        container: name.clone(),
        image: image.clone(),
    };
    let containerfile = root().join("Containerfile");
    let build_context = format!("build={}", context.path().display());
    let mut build = podman(&["build", "--pull=never", "--format", "docker", "--quiet"]);
    build
        .args(ULIMITS)
        .args(["--build-context", &build_context, "-t", &image, "-f"])
        .arg(&containerfile)
        .arg(empty.path());
    succeeded("podman build", build.output().unwrap());
    let built = started.elapsed();

    // The image as users get it: not root, a health check on /readyz, the binary as entrypoint.
    assert_eq!(inspect("image", &image, "{{.Config.User}}"), "65532:65532");
    let healthcheck = inspect("image", &image, "{{json .Config.Healthcheck.Test}}");
    assert_eq!(
        healthcheck,
        r#"["CMD","/usr/local/bin/gatehouse","healthcheck"]"#
    );
    assert_eq!(
        inspect("image", &image, "{{json .Config.Entrypoint}}"),
        r#"["/usr/local/bin/gatehouse"]"#
    );
    let size: u64 = inspect("image", &image, "{{.Size}}").parse().unwrap();

    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    let port = free_port();
    let listen = format!("GATEHOUSE_LISTEN=127.0.0.1:{port}");
    let url = format!("DATABASE_URL={}", database_url(&pool));
    let tokens = format!("GATEHOUSE_VERIFIER_TOKENS={VERIFIER}");
    let run_started = Instant::now();
    let mut run = podman(&["run", "--detach", "--name", &name, "--network", "host"]);
    run.args(ULIMITS)
        .args(["-e", &listen, "-e", &url, "-e", &tokens, &image]);
    succeeded("podman run", run.output().unwrap());

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(answer) = client.get(format!("{base}/readyz")).send().await
            && answer.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = run_started.elapsed();
    let logs = || succeeded("podman logs", podman(&["logs", &name]).output().unwrap());
    assert!(ready, "not ready within 15 s:\n{}", logs());

    let verified = client
        .post(format!("{base}/v1/keys/verify"))
        .bearer_auth(VERIFIER)
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let body: serde_json::Value = verified.json().await.unwrap();
    assert_eq!(body["code"], "VALID", "{body}");

    // The process runs as 65532 (seen from the host as such when podman runs as root; rootless
    // podman maps it to a subordinate id, never to the caller's).
    let uid_of = |pid: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with("Uid:"))
            .unwrap();
        line.split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let pid = inspect("container", &name, "{{.State.Pid}}");
    let ours = uid_of("self");
    if ours[0] == "0" {
        assert_eq!(uid_of(&pid), ["65532", "65532", "65532", "65532"]);
    } else {
        assert_ne!(
            uid_of(&pid)[0],
            ours[0],
            "the container runs as its own user"
        );
    }
    // The image's own health check passes (the binary asks /readyz; no shell in the image).
    let health = podman(&["healthcheck", "run", &name]).output().unwrap();
    assert!(
        health.status.success(),
        "healthcheck: {}",
        String::from_utf8_lossy(&health.stderr)
    );

    // SIGTERM: a graceful stop, status 0, the last counters written.
    succeeded(
        "podman stop",
        podman(&["stop", "--time", "10", &name]).output().unwrap(),
    );
    assert_eq!(inspect("container", &name, "{{.State.ExitCode}}"), "0");
    let logs = logs();
    assert!(
        logs.contains("usage counters written at shutdown"),
        "{logs}"
    );
    assert!(
        logs.lines().all(|line| !line.starts_with('{')
            || serde_json::from_str::<serde_json::Value>(line).is_ok()),
        "the image logs JSON: {logs}"
    );
    eprintln!(
        "container image: base ready in {based:?}, built in {:?}, {} MB with a debug binary, \
         ready {ready_after:?} after `podman run`, whole test {:?}",
        built - based,
        size / 1_000_000,
        started.elapsed()
    );
}
