//! A secret scanner for leak reports: an ECDSA P-256 key pair made and used by Node's `crypto`
//! (an independent signer: Gatehouse verifies with ring), and its public keys document served on
//! loopback in GitHub's format, counting how often it is fetched.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::support::app::TestApp;

/// Runs a Node script with `input` on stdin, answering its stdout.
fn node(script: &str, input: &Value) -> String {
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node (scripts/test installs it)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.to_string().as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "node failed");
    String::from_utf8(output.stdout).unwrap()
}

/// A P-256 key pair of a scanner: the public key as PEM SPKI, the private key kept for signing.
pub struct Signer {
    pub id: String,
    pub public_pem: String,
    private_pem: String,
}

impl Signer {
    pub fn new(id: &str) -> Self {
        let out = node(
            r#"import { generateKeyPairSync } from 'node:crypto';
const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
console.log(JSON.stringify({
  public: publicKey.export({ type: 'spki', format: 'pem' }),
  private: privateKey.export({ type: 'pkcs8', format: 'pem' }),
}));"#,
            &json!({}),
        );
        let keys: Value = serde_json::from_str(&out).unwrap();
        Self {
            id: id.to_owned(),
            public_pem: keys["public"].as_str().unwrap().to_owned(),
            private_pem: keys["private"].as_str().unwrap().to_owned(),
        }
    }

    /// Base64 of the DER ECDSA signature (SHA-256) of `body`, as GitHub sends it.
    pub fn sign(&self, body: &[u8]) -> String {
        node(
            r#"import { sign } from 'node:crypto';
let input = '';
for await (const chunk of process.stdin) input += chunk;
const { key, body } = JSON.parse(input);
process.stdout.write(sign('sha256', Buffer.from(body, 'base64'), key).toString('base64'));"#,
            &json!({
                "key": self.private_pem,
                "body": base64_encode(body),
            }),
        )
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The scanner's public keys document on loopback; `fetches` counts the GETs.
pub struct KeysServer {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Served {
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl KeysServer {
    pub async fn start(signers: &[&Signer]) -> Self {
        let keys = Arc::new(Mutex::new(Vec::new()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let served = Served {
            keys: keys.clone(),
            fetches: fetches.clone(),
        };
        let app = Router::new()
            .route(
                "/meta/public_keys/secret_scanning",
                get(|State(served): State<Served>| async move {
                    served.fetches.fetch_add(1, Ordering::SeqCst);
                    let keys = served.keys.lock().unwrap().clone();
                    axum::Json(json!({ "public_keys": keys }))
                }),
            )
            .with_state(served);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/meta/public_keys/secret_scanning",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let server = Self { url, keys, fetches };
        for signer in signers {
            server.publish(signer);
        }
        server
    }

    /// Adds `signer`'s key to the document (the current one).
    pub fn publish(&self, signer: &Signer) {
        let mut keys = self.keys.lock().unwrap();
        for key in keys.iter_mut() {
            key["is_current"] = json!(false);
        }
        keys.push(json!({
            "key_identifier": signer.id,
            "key": signer.public_pem,
            "is_current": true,
        }));
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A report body in GitHub's format: `[{"token", "type", "url", "source"}]`.
pub fn report(matches: &[(&str, &str)]) -> Vec<u8> {
    let body: Vec<Value> = matches
        .iter()
        .map(|(token, url)| {
            json!({ "token": token, "type": "gatehouse_api_key", "url": url, "source": "content" })
        })
        .collect();
    serde_json::to_vec(&body).unwrap()
}

/// POSTs `body` to `/v1/leaks/github` with `signer`'s identifier and `signature`.
pub async fn post_report(
    app: &TestApp,
    key_id: Option<&str>,
    signature: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = app
        .client()
        .post(app.url("/v1/leaks/github"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(id) = key_id {
        request = request.header("Github-Public-Key-Identifier", id);
    }
    if let Some(signature) = signature {
        request = request.header("Github-Public-Key-Signature", signature);
    }
    request.send().await.unwrap()
}

/// `body` signed by `signer` and posted.
pub async fn send_signed(app: &TestApp, signer: &Signer, body: Vec<u8>) -> reqwest::Response {
    let signature = signer.sign(&body);
    post_report(app, Some(&signer.id), Some(&signature), body).await
}

/// Hex SHA-256, as the feedback's `token_hash`.
pub fn sha256_hex(text: &str) -> String {
    gatehouse::domain::tokens::sha256(text)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
