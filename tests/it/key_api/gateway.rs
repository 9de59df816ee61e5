//! A real nginx, configured with the README's `auth_request` configuration, in front of a tiny
//! upstream that echoes the identity headers it receives.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::get;
use gatehouse::domain::vocabulary::Environment;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::support::app::retry_after;
use crate::support::fixtures::Tenant;
use crate::support::free_port;
use crate::support::key_api::{VERIFIER, keep_within_one_minute, key_api};

/// The nginx block between the README's markers, without the code fence.
fn readme_nginx_config() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("<!-- nginx-config-begin -->")
        .expect("README marks its nginx config");
    let end = readme.find("<!-- nginx-config-end -->").unwrap();
    let block = &readme[start..end];
    let body_start = block.find("```nginx\n").unwrap() + "```nginx\n".len();
    let body_end = block.rfind("```").unwrap();
    block[body_start..body_end].to_owned()
}

/// nginx in the foreground; stopped (SIGTERM to its master, by pid) when dropped.
struct Nginx {
    child: Child,
    prefix: PathBuf,
}

impl Nginx {
    async fn start(server_block: &str, port: u16) -> Self {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("nginx is installed (scripts/test installs nginx-light)");
        let prefix = std::env::temp_dir().join(format!("gatehouse-nginx-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&prefix).unwrap();
        let p = prefix.display();
        let config = format!(
            "worker_processes 1;\nerror_log {p}/error.log;\npid {p}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n access_log off;\n client_body_temp_path {p}/body;\n proxy_temp_path {p}/proxy;\n\
             {server_block}\n}}\n"
        );
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut nginx = Self { child, prefix };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return nginx;
            }
            if let Some(status) = nginx.child.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(nginx.prefix.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not start listening");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.prefix);
    }
}

/// The platform's API: answers with the path and the `gatehouse-*` headers it was given.
async fn upstream() -> SocketAddr {
    async fn echo(uri: axum::http::Uri, headers: HeaderMap) -> Json<Value> {
        let identity: serde_json::Map<String, Value> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("gatehouse-"))
            .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap())))
            .collect();
        Json(json!({ "path": uri.path(), "headers": identity }))
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(get(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[sqlx::test]
async fn nginx_with_the_readme_configuration_guards_the_platforms_api(pool: PgPool) {
    let gatehouse = key_api(pool.clone(), &[("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let api = upstream().await;
    let port = free_port();
    let config = readme_nginx_config()
        .replace(
            "127.0.0.1:8080",
            gatehouse.base.trim_start_matches("http://"),
        )
        .replace("127.0.0.1:9000", &api.to_string())
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
        .replace("REPLACE-WITH-A-VERIFIER-TOKEN", VERIFIER);
    let _nginx = Nginx::start(&config, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let get = |path: &str, key: Option<&str>| {
        let mut request = client.get(format!("{base}{path}"));
        if let Some(key) = key {
            request = request.header("X-Api-Key", key);
        }
        request.send()
    };

    let acme = Tenant::create(&pool, "acme").await;
    let (live, live_id) = acme
        .key(&pool, Environment::Live, &["read", "write"], 1000)
        .await;
    let (test, _) = acme.key(&pool, Environment::Test, &["read"], 1000).await;
    let (revoked, revoked_id) = acme.key(&pool, Environment::Live, &["read"], 1000).await;
    acme.revoke(&pool, revoked_id).await;
    let (limited, _) = acme.key(&pool, Environment::Live, &["read"], 2).await;

    // A good key reaches the upstream with the identity headers; what the client claimed is overwritten.
    let response = client
        .get(format!("{base}/live/orders"))
        .header("Authorization", format!("Bearer {live}"))
        .header("Gatehouse-Tenant", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(echoed["path"], "/live/orders");
    assert_eq!(echoed["headers"]["gatehouse-key-id"], live_id.to_string());
    assert_eq!(
        echoed["headers"]["gatehouse-tenant-id"],
        acme.id.to_string()
    );
    assert_eq!(echoed["headers"]["gatehouse-tenant"], "acme");
    assert_eq!(echoed["headers"]["gatehouse-environment"], "live");
    assert_eq!(echoed["headers"]["gatehouse-scopes"], "read write");

    // A revoked key, and no key at all: 401 with the challenge.
    for key in [Some(revoked.as_str()), None] {
        let response = get("/orders", key).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }

    // A test key: fine on the general routes, 403 on the live-only ones.
    assert_eq!(
        get("/orders", Some(&test)).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/live/orders", Some(&test)).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // Over the key's limit: 429 with Retry-After and the rate-limit headers, not nginx's 500.
    keep_within_one_minute(10).await;
    for _ in 0..2 {
        assert_eq!(
            get("/orders", Some(&limited)).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let response = get("/orders", Some(&limited)).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!((1..=60).contains(&retry_after(&response)));
    assert_eq!(response.headers()["ratelimit-policy"], "\"key\";q=2;w=60");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "RATE_LIMITED");
}
