//! Real gateways in front of a tiny upstream, configured from the README's blocks: nginx
//! (`auth_request`), with the README's contract profiles loaded into Gatehouse.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The README's text between `<!-- NAME-begin -->` and `<!-- NAME-end -->`, inside its code fence.
pub fn readme_block(name: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find(&format!("<!-- {name}-begin -->"))
        .unwrap_or_else(|| panic!("README marks its {name} block"));
    let end = readme.find(&format!("<!-- {name}-end -->")).unwrap();
    let block = &readme[start..end];
    let body_start = block.find("```").unwrap();
    let body_start = body_start + block[body_start..].find('\n').unwrap() + 1;
    let body_end = block.rfind("```").unwrap();
    block[body_start..body_end].to_owned()
}

/// The README's profiles written to a file, for `GATEHOUSE_PROFILES_FILE`; removed when dropped.
pub struct ProfilesFile(pub PathBuf);

impl ProfilesFile {
    pub fn from_readme() -> Self {
        let path =
            std::env::temp_dir().join(format!("gatehouse-profiles-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, readme_block("profiles")).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ProfilesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// nginx in the foreground; stopped (SIGTERM to its master, by pid) when dropped.
pub struct Nginx {
    child: Child,
    prefix: PathBuf,
}

impl Nginx {
    pub async fn start(server_block: &str, port: u16) -> Self {
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

    /// The README's nginx configuration for Gatehouse at `gatehouse`, the upstream at `api`, on
    /// `port`, with `profile` (and more query, e.g. `&tenant=acme`) in place of `api`.
    pub async fn from_readme(gatehouse: &str, api: SocketAddr, port: u16, profile: &str) -> Self {
        let config = readme_block("nginx-config")
            .replace("127.0.0.1:8080", gatehouse.trim_start_matches("http://"))
            .replace("127.0.0.1:9000", &api.to_string())
            .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
            .replace("profile=api", &format!("profile={profile}"))
            .replace("REPLACE-WITH-A-VERIFIER-TOKEN", super::key_api::VERIFIER);
        Self::start(&config, port).await
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
