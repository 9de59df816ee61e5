//! A real webhook receiver for the tests (an HTTP server on a loopback port that records each
//! request and answers as scripted), and the Standard Webhooks reference library
//! (tests/webhooks/verify.py, installed by scripts/test into .tools/standardwebhooks) as the
//! judge of every signature.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// What the receiver answers next: a status and extra headers.
pub type Answer = (u16, Vec<(&'static str, &'static str)>);

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
    });
    let (status, extra) = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, Vec::new()));
    let mut response = (StatusCode::from_u16(status).unwrap(), "thanks").into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

impl Receiver {
    /// Listens on 127.0.0.1 (so Gatehouse must allow private addresses to reach it), at `/hooks`.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/hooks"),
            shared,
            server,
        }
    }

    /// The next answers, in order; after them, 200.
    pub fn answer(&self, answers: Vec<Answer>) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until `count` requests have arrived and returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} deliveries, got {}: {:?}",
                received.len(),
                received
                    .iter()
                    .map(Received::event_type)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the first delivery of `event_type`.
    pub async fn event(&self, event_type: &str) -> Received {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = self
                .received()
                .into_iter()
                .find(|r| r.event_type() == event_type)
            {
                return found;
            }
            assert!(Instant::now() < deadline, "no {event_type} delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn tools_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/standardwebhooks")
}

/// Asks the Standard Webhooks library whether `received` is signed with `secret`; returns the
/// payload it verified, or why it refused.
pub fn verify_with_library(secret: &str, received: &Received) -> Result<Value, String> {
    let headers: serde_json::Map<String, Value> = received
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), Value::from(v.clone())))
        .collect();
    let request = serde_json::json!({
        "secret": secret,
        "headers": headers,
        "body": String::from_utf8(received.body.clone()).unwrap(),
    });
    let mut child = Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/webhooks/verify.py"))
        .env("PYTHONPATH", tools_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() {
        Ok(serde_json::from_str(&stdout).unwrap())
    } else {
        Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The seeds' check: `X-Webhook-Signature` is `sha256=` and the hex HMAC-SHA256 of the raw body.
pub fn seed_signature_matches(secret: &str, received: &Received) -> bool {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(&received.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    received.header("x-webhook-signature") == Some(&format!("sha256={expected}"))
}

/// A receiver that accepts connections and never answers: it reads what it is sent and stays
/// silent, or, trickling, sends the start of a status line one byte a second. It notes when each
/// connection opened and closed, and the most it had open at once.
pub struct Tarpit {
    pub url: String,
    shared: Arc<TarpitShared>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct TarpitShared {
    open: std::sync::atomic::AtomicUsize,
    most_open: std::sync::atomic::AtomicUsize,
    /// Each connection's opening, and how long it stayed open once closed.
    connections: Mutex<Vec<(Instant, Option<Duration>)>>,
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Tarpit {
    pub async fn start(trickle: bool) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let shared = Arc::new(TarpitShared::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = shared.clone();
        let server = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let state = state.clone();
                let open = state.open.fetch_add(1, Ordering::SeqCst) + 1;
                state.most_open.fetch_max(open, Ordering::SeqCst);
                let opened = Instant::now();
                let index = {
                    let mut all = state.connections.lock().unwrap();
                    all.push((opened, None));
                    all.len() - 1
                };
                connections.spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let status = b"HTTP/1.1 200 OK\r\n";
                    let mut sent = 0;
                    loop {
                        tokio::select! {
                            read = socket.read(&mut buffer) => {
                                if matches!(read, Ok(0) | Err(_)) { break; }
                            }
                            () = tokio::time::sleep(Duration::from_secs(1)), if trickle && sent < status.len() => {
                                if socket.write_all(&status[sent..=sent]).await.is_err() { break; }
                                sent += 1;
                            }
                        }
                    }
                    state.open.fetch_sub(1, Ordering::SeqCst);
                    state.connections.lock().unwrap()[index].1 = Some(opened.elapsed());
                });
            }
        });
        Self {
            url: format!("http://{addr}/hooks"),
            shared,
            server,
        }
    }

    /// The most connections it had open at once.
    pub fn most_open(&self) -> usize {
        self.shared
            .most_open
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Each connection's opening and, once closed, how long it stayed open.
    pub fn connections(&self) -> Vec<(Instant, Option<Duration>)> {
        self.shared.connections.lock().unwrap().clone()
    }
}
