//! Real gateways in front of a tiny upstream, configured from the files in `examples/`: nginx
//! (`auth_request`), Traefik (ForwardAuth), Caddy (`forward_auth`), with the contract profiles of
//! `examples/profiles.toml` loaded into Gatehouse. What the docs show is what these tests run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;

use super::app::TestApp;
use super::free_port;
use super::key_api::key_api;

/// The contract profiles the docs show, for `GATEHOUSE_PROFILES_FILE`.
pub const PROFILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/profiles.toml");

/// A file of `examples/` with each `{{PLACEHOLDER}}` replaced by its value; every placeholder
/// the file holds must be given one.
pub fn example(file: &str, values: &[(&str, &str)]) -> String {
    let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"));
    for (name, value) in values {
        let placeholder = format!("{{{{{name}}}}}");
        assert!(text.contains(&placeholder), "{file} has no {placeholder}");
        text = text.replace(&placeholder, value);
    }
    if let Some(at) = text.find("{{") {
        let rest = &text[at..];
        panic!(
            "{file} keeps a placeholder the test does not fill: {}",
            &rest[..rest.find("}}").map_or(rest.len(), |end| end + 2)]
        );
    }
    text
}

/// Which real gateway stands in front of the platform's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Traefik,
    Caddy,
}

impl Kind {
    /// Traefik's forwardAuth copies a 200's headers only onto the upstream request (docs/gateways.md).
    pub fn shows_ratelimit_on_success(self) -> bool {
        self != Kind::Traefik
    }
}

/// A gateway running in the foreground from a throwaway folder; stopped (SIGTERM, by pid) and
/// its folder removed when dropped.
pub struct Gateway {
    child: Child,
    folder: PathBuf,
}

impl Gateway {
    /// The example configuration of `kind` for Gatehouse at `gatehouse`, the upstream at `api`,
    /// on `port`, with `profile` (and more query, e.g. `seed004&tenant=acme`) in place of `api`.
    /// Traefik and Caddy list the profile's `key_headers` (unless empty) where the examples list
    /// the defaults.
    pub async fn from_examples(
        kind: Kind,
        gatehouse: &str,
        api: SocketAddr,
        port: u16,
        profile: &str,
        key_headers: &[&str],
    ) -> Self {
        let gatehouse = gatehouse.trim_start_matches("http://");
        let api = api.to_string();
        let listen = format!("127.0.0.1:{port}");
        let verifier = super::key_api::VERIFIER;
        let with_profile =
            |config: String| config.replace("profile=api", &format!("profile={profile}"));
        let folder =
            std::env::temp_dir().join(format!("gatehouse-gateway-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&folder).unwrap();
        let f = folder.display();
        let command = match kind {
            Kind::Nginx => {
                let config = example(
                    "nginx.conf",
                    &[
                        ("LISTEN", &listen),
                        ("GATEHOUSE", gatehouse),
                        ("UPSTREAM", &api),
                        ("VERIFIER_TOKEN", verifier),
                    ],
                );
                nginx(&folder, &with_profile(config))
            }
            Kind::Traefik => {
                let dynamic = folder.join("gatehouse.yml");
                let mut config = with_profile(example(
                    "traefik-dynamic.yml",
                    &[
                        ("GATEHOUSE", gatehouse),
                        ("UPSTREAM", &api),
                        ("VERIFIER_TOKEN", verifier),
                    ],
                ));
                if !key_headers.is_empty() {
                    let listed = format!("{}]", key_headers.join(", "));
                    config = config.replace("Authorization, X-Api-Key, ApiKey]", &listed);
                }
                std::fs::write(&dynamic, config).unwrap();
                let stat = example(
                    "traefik.yml",
                    &[
                        ("LISTEN", &listen),
                        ("DYNAMIC_CONFIG", dynamic.to_str().unwrap()),
                    ],
                ) + &format!(
                    "global:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n\
                     log:\n  level: ERROR\n  filePath: {f}/error.log\n"
                );
                std::fs::write(folder.join("traefik.yml"), stat).unwrap();
                let mut command = Command::new(tool("traefik"));
                command.arg(format!("--configFile={f}/traefik.yml"));
                command
            }
            Kind::Caddy => {
                let mut config = with_profile(example(
                    "Caddyfile",
                    &[
                        ("SITE", &format!("http://{listen}")),
                        ("GATEHOUSE", gatehouse),
                        ("UPSTREAM", &api),
                        ("VERIFIER_TOKEN", verifier),
                    ],
                ));
                if !key_headers.is_empty() {
                    let listed = format!("{}\n", key_headers.join(" "));
                    config = config.replace("Authorization X-Api-Key ApiKey\n", &listed);
                }
                std::fs::write(folder.join("Caddyfile"), config).unwrap();
                let mut command = Command::new(tool("caddy"));
                command
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(folder.join("Caddyfile"))
                    // Caddy's own state (autosaved configuration) stays in the folder.
                    .env("XDG_CONFIG_HOME", &folder)
                    .env("XDG_DATA_HOME", &folder);
                command
            }
        };
        Self::spawn(command, folder, kind, port).await
    }

    /// nginx on `port` passing every request to `backends` (`http://host:port`) in turn
    /// (round-robin, no stickiness), as a load balancer in front of several instances.
    pub async fn round_robin(backends: &[&str], port: u16) -> Self {
        let folder =
            std::env::temp_dir().join(format!("gatehouse-gateway-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&folder).unwrap();
        let servers: String = backends
            .iter()
            .map(|base| format!("server {};", base.trim_start_matches("http://")))
            .collect();
        let http = format!(
            "upstream gatehouse {{ {servers} }}\n\
             server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://gatehouse; }} }}"
        );
        let command = nginx(&folder, &http);
        Self::spawn(command, folder, Kind::Nginx, port).await
    }

    async fn spawn(mut command: Command, folder: PathBuf, kind: Kind, port: u16) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(folder.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let mut gateway = Self { child, folder };
        gateway.wait_until_routing(kind, port).await;
        gateway
    }

    /// Until the gateway answers on `port` with its routes loaded (Traefik answers 404 until its
    /// file provider has been read).
    async fn wait_until_routing(&mut self, kind: Kind, port: u16) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = client.get(format!("http://127.0.0.1:{port}/")).send().await
                && response.status() != reqwest::StatusCode::NOT_FOUND
            {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let log =
                    |name| std::fs::read_to_string(self.folder.join(name)).unwrap_or_default();
                panic!(
                    "{kind:?} exited ({status}): {}{}",
                    log("error.log"),
                    log("stderr.log")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{kind:?} did not start routing");
    }
}

/// nginx in the foreground with one worker, everything it writes in `folder`, `http` inside its
/// `http` block.
fn nginx(folder: &std::path::Path, http: &str) -> Command {
    let f = folder.display();
    let config = format!(
        "worker_processes 1;\nerror_log {f}/error.log;\npid {f}/nginx.pid;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n access_log off;\n client_body_temp_path {f}/body;\n proxy_temp_path {f}/proxy;\n\
         {http}\n}}\n"
    );
    std::fs::write(folder.join("nginx.conf"), config).unwrap();
    let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("nginx is installed (scripts/test installs nginx-light)");
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(folder)
        .arg("-c")
        .arg(folder.join("nginx.conf"))
        .args(["-g", "daemon off;"]);
    command
}

/// A binary `scripts/test` installs into `.tools/gateways` (from its PyPI wheel).
fn tool(name: &str) -> PathBuf {
    let path =
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/gateways/bin")).join(name);
    assert!(
        path.exists(),
        "{name} is installed (scripts/test installs it into .tools/gateways)"
    );
    path
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// Gatehouse with the example profiles behind a real gateway with the example configuration, in
/// front of the echoing upstream.
pub struct Through {
    pub base: String,
    pub client: reqwest::Client,
    _gateway: Gateway,
    _gatehouse: TestApp,
}

impl Through {
    /// `kind` naming `profile` (and more query); Traefik and Caddy pass `key_headers` on.
    pub async fn gateway(kind: Kind, pool: &PgPool, profile: &str, key_headers: &[&str]) -> Self {
        let gatehouse = key_api(pool.clone(), &[("GATEHOUSE_PROFILES_FILE", PROFILES)]).await;
        let port = free_port();
        let gateway = Gateway::from_examples(
            kind,
            &gatehouse.base,
            upstream().await,
            port,
            profile,
            key_headers,
        )
        .await;
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _gateway: gateway,
            _gatehouse: gatehouse,
        }
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }
}

/// Status and JSON body.
pub async fn answer(response: reqwest::Response) -> (reqwest::StatusCode, Value) {
    let status = response.status();
    let body = response.text().await.unwrap();
    let body = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    (status, body)
}

/// The platform's API: answers 200 with the path and every header it was given.
pub async fn upstream() -> SocketAddr {
    async fn echo(uri: axum::http::Uri, headers: HeaderMap) -> Json<Value> {
        let given: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap())))
            .collect();
        Json(json!({ "path": uri.path(), "headers": given }))
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(get(echo));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
