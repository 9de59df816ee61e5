//! The secret scanners' public keys, for their leak reports' signatures: each sender's keys
//! document (GitHub's format) cached by key identifier, fetched again for an unknown identifier at
//! most once a `leak_keys_refetch` (so unknown ids cannot make Gatehouse flood the sender).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::config::{Config, LeakSender};
use crate::domain::leaks;

/// Each sender's public keys by identifier, as last fetched.
pub struct LeakKeys {
    senders: HashMap<String, SenderKeys>,
}

/// One sender's keys.
pub struct SenderKeys {
    pub sender: LeakSender,
    fetcher: Arc<Fetcher>,
    cached: tokio::sync::Mutex<Cached>,
}

struct Fetcher {
    client: reqwest::Client,
    refetch: Duration,
}

#[derive(Default)]
struct Cached {
    /// Key identifier → the P-256 point.
    points: HashMap<String, Vec<u8>>,
    fetched_at: Option<Instant>,
}

#[derive(Deserialize)]
struct KeysDocument {
    public_keys: Vec<PublicKey>,
}

#[derive(Deserialize)]
struct PublicKey {
    key_identifier: String,
    key: String,
}

impl LeakKeys {
    pub fn new(config: &Config) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::limited(3))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("cannot build the leak reports' HTTP client: {err}"))?;
        let fetcher = Arc::new(Fetcher {
            client,
            refetch: config.leak_keys_refetch,
        });
        let senders = config
            .leak_senders
            .iter()
            .map(|sender| {
                (
                    sender.name.clone(),
                    SenderKeys {
                        sender: sender.clone(),
                        fetcher: Arc::clone(&fetcher),
                        cached: tokio::sync::Mutex::new(Cached::default()),
                    },
                )
            })
            .collect();
        Ok(Self { senders })
    }

    /// The sender of this name, if configured.
    pub fn sender(&self, name: &str) -> Option<&SenderKeys> {
        self.senders.get(name)
    }
}

impl SenderKeys {
    /// The point of `sender`'s key `id`: from the cache, or from the keys document fetched again
    /// when the id is unknown and the last fetch is older than the refetch interval.
    pub async fn point(&self, id: &str) -> Option<Vec<u8>> {
        let mut cached = self.cached.lock().await;
        if let Some(point) = cached.points.get(id) {
            return Some(point.clone());
        }
        if cached
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.fetcher.refetch)
        {
            return None;
        }
        cached.fetched_at = Some(Instant::now());
        match self.fetcher.fetch(&self.sender.keys_url).await {
            Ok(points) => cached.points = points,
            Err(err) => tracing::warn!(
                sender = self.sender.name,
                error = %err,
                "cannot fetch the leak reports' public keys"
            ),
        }
        cached.points.get(id).cloned()
    }
}

impl Fetcher {
    async fn fetch(&self, url: &str) -> Result<HashMap<String, Vec<u8>>, String> {
        let response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|err| err.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = response.bytes().await.map_err(|err| err.to_string())?;
        let document: KeysDocument =
            serde_json::from_slice(&body).map_err(|err| err.to_string())?;
        Ok(document
            .public_keys
            .into_iter()
            .filter_map(|key| Some((key.key_identifier, leaks::public_key_point(&key.key)?)))
            .collect())
    }
}
