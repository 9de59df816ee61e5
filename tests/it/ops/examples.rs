//! The deployment files of `examples/`, each checked by the tool that reads it: the systemd unit
//! by `systemd-analyze verify`, the compose file by `podman-compose config` (its Gatehouse
//! environment then passing `gatehouse check-config`), the Grafana dashboard against the metric
//! names a running Gatehouse exports on `/metrics`.

use std::collections::BTreeSet;
use std::process::Command;

use gatehouse::vocabulary::Environment;
use sqlx::PgPool;

use super::cli::gatehouse;
use super::{TempDir, have, root, succeeded};
use crate::support::fixtures::Tenant;
use crate::support::key_api::{code_of, key_api};
use crate::support::yaml;

#[test]
fn the_systemd_unit_is_hardened_and_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(root().join("examples/gatehouse.service")).unwrap();
    for setting in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "EnvironmentFile=/etc/gatehouse/gatehouse.env",
        "ExecStart=/usr/local/bin/gatehouse serve",
        "ExecStartPre=/usr/local/bin/gatehouse check-config",
        "KillSignal=SIGTERM",
    ] {
        assert!(
            unit.lines().any(|line| line == setting),
            "the unit has {setting}"
        );
    }
    if !have("systemd-analyze", "the systemd unit test") {
        return;
    }
    // verify checks that the commands exist: point them at the binary this suite built.
    let dir = TempDir::new("unit");
    let path = dir.path().join("gatehouse.service");
    let here = unit.replace("/usr/local/bin/gatehouse", env!("CARGO_BIN_EXE_gatehouse"));
    std::fs::write(&path, here).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verified.stderr).into_owned();
    assert!(verified.status.success(), "{complaints}");
    // Unknown or misspelt settings are only warnings: none is allowed.
    assert_eq!(complaints, "", "systemd-analyze verify");
}

fn compose_config(env: &[(&str, &str)]) -> std::process::Output {
    Command::new("python3")
        .args(["-m", "podman_compose", "-f"])
        .arg(root().join("examples/compose.yaml"))
        .arg("config")
        .env("PYTHONPATH", root().join(".tools/podman-compose"))
        .env_remove("GATEHOUSE_SECRET_KEY")
        .env_remove("GATEHOUSE_VERIFIER_TOKENS")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_compose_file_is_read_by_podman_compose_and_its_settings_pass_check_config() {
    if !root()
        .join(".tools/podman-compose/podman_compose.py")
        .exists()
    {
        eprintln!(
            "SKIPPED the compose file test: podman-compose is not in .tools/podman-compose \
             (scripts/test installs it)"
        );
        return;
    }
    let key = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
    let verifier = "compose-verifier-token-0123";
    let config = succeeded(
        "podman-compose config",
        compose_config(&[
            ("GATEHOUSE_SECRET_KEY", key),
            ("GATEHOUSE_VERIFIER_TOKENS", verifier),
        ]),
    );
    let compose = yaml::parse(&config);
    let services = compose.at(&["services"]);
    for service in ["postgres", "mail", "gatehouse"] {
        assert!(services.get(service).is_some(), "{service} in {config}");
    }
    let gatehouse_service = services.at(&["gatehouse"]);
    assert_eq!(
        gatehouse_service.at(&["build", "dockerfile"]).scalar(),
        "Containerfile"
    );
    let context = gatehouse_service.at(&["build", "context"]).scalar();
    assert!(
        std::path::Path::new(context)
            .join("Containerfile")
            .is_file(),
        "{context}"
    );
    let yaml::Yaml::Map(environment) = gatehouse_service.at(&["environment"]) else {
        panic!("environment is a mapping: {config}");
    };
    let environment: Vec<(String, String)> = environment
        .iter()
        .map(|(name, value)| {
            let value = value.scalar().trim_matches('\'').to_owned();
            (name.clone(), value)
        })
        .collect();
    assert!(
        environment
            .iter()
            .any(|(name, value)| name == "GATEHOUSE_SMTP_URL" && value == "smtp://mail:1025")
    );
    // What the compose file gives Gatehouse is a valid configuration.
    let env: Vec<(&str, &str)> = environment
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let checked = gatehouse(&["check-config"], &env).await;
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    // Without a secret key it refuses to start at all, saying how to make one.
    let keyless = compose_config(&[("GATEHOUSE_VERIFIER_TOKENS", verifier)]);
    assert!(!keyless.status.success());
    let said = String::from_utf8_lossy(&keyless.stderr).into_owned();
    assert!(said.contains("openssl rand -base64 32"), "{said}");
}

/// Every metric name in a `/metrics` text: samples and `# TYPE` lines.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split(' ').next(),
            None if !line.starts_with('#') => line.split(['{', ' ']).next(),
            None => None,
        })
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every `gatehouse_…` name in the dashboard's queries.
fn referenced(dashboard: &serde_json::Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let text = dashboard.to_string();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("gatehouse_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[sqlx::test]
async fn the_grafana_dashboard_queries_only_metrics_gatehouse_exports(pool: PgPool) {
    let path = root().join("examples/grafana-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let address = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().to_string()
    };
    let app = key_api(pool.clone(), &[("GATEHOUSE_METRICS_LISTEN", &address)]).await;
    app.wait_until_listening().await;
    let acme = Tenant::create(&pool, "acme").await;
    let (key, _) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    assert_eq!(code_of(&app, &key).await, "VALID");
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exported = exported(&text);
    let referenced = referenced(&dashboard);
    let unknown: Vec<&String> = referenced.difference(&exported).collect();
    assert!(unknown.is_empty(), "not exported: {unknown:?}\n{text}");

    // What the dashboard is for: each of these is charted.
    for wanted in [
        "gatehouse_verifications_total",
        "gatehouse_verification_duration_seconds_bucket",
        "gatehouse_key_cache_hits_total",
        "gatehouse_outbox_due",
        "gatehouse_outbox_lag_seconds",
        "gatehouse_usage_flush_lag_seconds",
    ] {
        assert!(referenced.contains(wanted), "the dashboard charts {wanted}");
    }
    // Labels it groups by exist on the series.
    for label in ["code", "state", "le"] {
        assert!(
            dashboard.to_string().contains(&format!("by ({label})")),
            "groups by {label}"
        );
        assert!(text.contains(&format!("{label}=")), "{label} in {text}");
    }
}
