//! schemathesis (pinned from PyPI, installed by `scripts/test` into `.tools/schemathesis`) fuzzes
//! the live server from the document it serves, once with an operator token and once with a
//! tenant token: no 5xx, and every answer fits the document (status, content type, body).

use std::path::PathBuf;

use gatehouse::vocabulary::Environment;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::app::TestApp;
use crate::support::fixtures::Tenant;
use crate::support::management::{OPERATOR, management_api, post, tenant_token};

fn tools() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/schemathesis")
}

/// Runs schemathesis against `app` with `token`; returns its report when it found something.
async fn fuzz(app: &TestApp, token: &str, key_id: Uuid, webhook_id: &str) -> Result<(), String> {
    // Real path values, so requests reach the handlers rather than stopping at a 404.
    let config = std::env::temp_dir().join(format!("schemathesis-{}.toml", Uuid::new_v4()));
    std::fs::write(
        &config,
        format!(
            "[parameters]\n\"path.tenant\" = \"acme\"\n\"path.key_id\" = \"{key_id}\"\n\
             \"path.webhook_id\" = \"{webhook_id}\"\n"
        ),
    )
    .unwrap();
    let output = tokio::process::Command::new(tools().join("bin/st"))
        .env("PYTHONPATH", tools())
        .env("SCHEMATHESIS_HOOKS", "")
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &app.url("/v1/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--workers",
            "1",
            "--seed",
            "14",
            "--no-color",
            "-H",
            &format!("Authorization: Bearer {token}"),
        ])
        .output()
        .await
        .expect("schemathesis is installed by scripts/test");
    let _ = std::fs::remove_file(&config);
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        println!("{report}");
        Ok(())
    } else {
        Err(report)
    }
}

#[sqlx::test]
async fn schemathesis_finds_nothing_with_an_operator_token_or_a_tenant_token(pool: PgPool) {
    let app = management_api(
        pool.clone(),
        &[("GATEHOUSE_MANAGEMENT_RATE_LIMIT", "100000")],
    )
    .await;
    let acme = Tenant::create(&pool, "acme").await;
    let (_, key_id) = acme.key(&pool, Environment::Live, &["read"], 100).await;
    let tenant = tenant_token(
        &pool,
        &acme,
        &[
            "keys:read",
            "keys:write",
            "usage:read",
            "webhooks:read",
            "webhooks:write",
        ],
    )
    .await;
    let started = std::time::Instant::now();
    for token in [OPERATOR.to_owned(), tenant] {
        // A webhook endpoint for each run: the operator's run may delete its one.
        let endpoint = post(
            &app,
            "/v1/tenants/acme/webhooks",
            OPERATOR,
            serde_json::json!({ "name": "Fuzzed", "url": "https://hooks.example.com/in", "environment": "live" }),
        )
        .await;
        assert_eq!(endpoint.status, 201, "{}", endpoint.body);
        let webhook_id = endpoint.body["endpoint"]["id"].as_str().unwrap().to_owned();
        if let Err(report) = fuzz(&app, &token, key_id, &webhook_id).await {
            panic!("schemathesis found problems:\n{report}");
        }
    }
    println!("schemathesis took {:?}", started.elapsed());
}
