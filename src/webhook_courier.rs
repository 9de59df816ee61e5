//! The outbox's webhook courier: POSTs an event to one endpoint with Standard Webhooks headers
//! (and the seeds' `X-Webhook-Signature` when asked), the receiver's credentials, a 15 s timeout,
//! redirects never followed, and the SSRF guard on the address the name resolves to at send time.
//! Every attempt goes into the endpoint's delivery log; the rules (schedule, disabling) are the
//! domain's (`domain::webhooks`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::{Config, PublicUrl};
use crate::db::webhooks::{self as db_webhooks, NewAttempt};
use crate::domain::outbox::{Bounds, Courier, Delivery, Failure, SenderPolicy};
use crate::domain::sealing::SecretKey;
use crate::domain::webhooks;

/// How much of a receiver's answer the delivery log keeps.
const RESPONSE_KEPT: usize = 1024;
/// Deliveries one sender runs at once: in all, and to one endpoint.
const IN_FLIGHT: usize = 64;
const PER_ENDPOINT: i32 = 4;

pub struct WebhookCourier {
    pool: PgPool,
    key: Option<SecretKey>,
    client: reqwest::Client,
    allow_private: bool,
    first_retry: Duration,
    /// How long a receiver has to answer (15 s; less when the outbox's lease is short).
    timeout: Duration,
    public_url: PublicUrl,
}

/// The outbox payload of a delivery: which event to which endpoint (no secret in it).
#[derive(Deserialize)]
struct Target {
    endpoint_id: Uuid,
    event_id: String,
}

/// One attempt's result, before it is logged.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    response: Option<String>,
    retry_after: Option<Duration>,
    /// No answer in time (or a trickle that took too long).
    slow: bool,
}

impl WebhookCourier {
    pub fn new(config: &Config, pool: PgPool) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would connect for us, past the address check.
            .no_proxy()
            .timeout(config.webhook_timeout)
            .connect_timeout(config.webhook_timeout)
            .user_agent(concat!("Gatehouse-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.webhook_allow_private,
            }))
            .pool_max_idle_per_host(4)
            .build()
            .map_err(|err| format!("cannot build the webhook HTTP client: {err}"))?;
        Ok(Self {
            pool,
            key: config.secret_key.clone(),
            client,
            allow_private: config.webhook_allow_private,
            first_retry: config.webhook_first_retry,
            timeout: config.webhook_timeout,
            public_url: config.public_url.clone(),
        })
    }

    async fn deliver_event(
        &self,
        id: Uuid,
        payload: &Value,
        within: Duration,
    ) -> Result<Value, Failure> {
        let target: Target = serde_json::from_value(payload.clone())
            .map_err(|err| format!("unreadable webhook payload: {err}"))?;
        let endpoint = db_webhooks::for_delivery(&self.pool, target.endpoint_id)
            .await
            .map_err(|err| format!("cannot read the endpoint: {err}"))?;
        let Some(endpoint) = endpoint.filter(|endpoint| endpoint.enabled) else {
            return Err(give_up("the endpoint is disabled or gone"));
        };
        let event = db_webhooks::event_payload(&self.pool, &target.event_id)
            .await
            .map_err(|err| format!("cannot read the event: {err}"))?
            .ok_or_else(|| give_up("the event is gone"))?;
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| Failure::from("GATEHOUSE_SECRET_KEY is not set".to_owned()))?;
        let secrets = webhooks::open_secrets(key, &endpoint, OffsetDateTime::now_utc())?;
        let body = serde_json::to_vec(&event).map_err(|err| err.to_string())?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signatures: Vec<String> = secrets
            .signing
            .iter()
            .map(|secret| secret.sign(&target.event_id, timestamp, &body))
            .collect();

        let mut shown = Map::new();
        let mut headers = HeaderMap::new();
        let mut add = |name: &str, value: &str, secret: bool| {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                shown.insert(
                    name.to_string(),
                    Value::from(if secret {
                        "(hidden)"
                    } else {
                        value.to_str().unwrap_or("")
                    }),
                );
                headers.insert(name, value);
            }
        };
        add("content-type", "application/json", false);
        add("webhook-id", &target.event_id, false);
        add("webhook-timestamp", &timestamp.to_string(), false);
        add("webhook-signature", &signatures.join(" "), true);
        if endpoint.seed_signature
            && let Some(current) = secrets.signing.first()
        {
            add("x-webhook-signature", &current.sign_seed(&body), true);
        }
        for (name, value) in secrets.auth.headers() {
            add(&name, &value, true);
        }

        let started = Instant::now();
        let outcome = self
            .post(&endpoint.url, headers, body, within.min(self.timeout))
            .await;
        let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let status = outcome.status.map(i32::from);
        db_webhooks::insert_attempt(
            &self.pool,
            &NewAttempt {
                webhook_endpoint_id: endpoint.webhook_endpoint_id,
                webhook_event_id: &target.event_id,
                outbox_message_id: id,
                status,
                duration_ms,
                error: outcome.error.as_deref(),
                response: outcome.response.as_deref(),
                request_headers: &Value::Object(shown),
            },
        )
        .await
        .map_err(|err| format!("cannot record the attempt: {err}"))?;

        let delivered = outcome.error.is_none();
        let gone = outcome.status == Some(410);
        webhooks::record_outcome(
            &self.pool,
            &endpoint,
            delivered,
            gone,
            status,
            &self.public_url,
        )
        .await
        .map_err(|err| format!("cannot record the outcome: {err}"))?;
        match outcome.error {
            None => Ok(payload.clone()),
            Some(why) => Err(Failure {
                why: format!("{}: {why}", endpoint.webhook_endpoint_id),
                retry_after: outcome.retry_after,
                give_up: gone,
                slow: outcome.slow,
            }),
        }
    }

    async fn post(
        &self,
        url: &str,
        headers: HeaderMap,
        body: Vec<u8>,
        within: Duration,
    ) -> Outcome {
        let failed = |error: String, slow: bool| Outcome {
            status: None,
            error: Some(error),
            response: None,
            retry_after: None,
            slow,
        };
        // Names are checked by the resolver; an address written in the URL is checked here.
        if let Some(ip) = webhooks::literal_address(url)
            && !self.allow_private
            && webhooks::is_internal(ip)
        {
            return failed(
                format!("refused: {ip} is an internal address{ALLOW_PRIVATE_HINT}"),
                false,
            );
        }
        let response = match self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .timeout(within)
            .send()
            .await
        {
            Ok(response) => response,
            Err(err) => return failed(describe(&err), err.is_timeout()),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| webhooks::retry_after(value, std::time::SystemTime::now()));
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let (answer, slow) = read_start(response).await;
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(format!(
                "HTTP {status}: redirects are not followed (to {})",
                location.as_deref().unwrap_or("?")
            ))
        } else if slow {
            Some(format!("HTTP {status}, then the answer timed out"))
        } else if status == reqwest::StatusCode::GONE {
            Some("HTTP 410 Gone: the endpoint was disabled".to_owned())
        } else {
            Some(format!("HTTP {status}"))
        };
        Outcome {
            status: Some(status.as_u16()),
            error,
            response: Some(answer),
            retry_after,
            slow,
        }
    }
}

fn give_up(why: &str) -> Failure {
    Failure {
        why: why.to_owned(),
        retry_after: None,
        give_up: true,
        slow: false,
    }
}

/// The first KB of an answer, as text, and whether reading it timed out (a trickle).
async fn read_start(mut response: reqwest::Response) -> (String, bool) {
    let mut kept = Vec::new();
    let mut slow = false;
    while kept.len() < RESPONSE_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => {
                slow = err.is_timeout();
                break;
            }
        }
    }
    kept.truncate(RESPONSE_KEPT);
    (String::from_utf8_lossy(&kept).into_owned(), slow)
}

/// A send error for the log, with its cause (a refused address, a timeout), never the URL's secrets.
fn describe(err: &reqwest::Error) -> String {
    let mut text = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Courier for WebhookCourier {
    fn kind(&self) -> &'static str {
        webhooks::KIND
    }

    fn deliver<'a>(&'a self, id: Uuid, payload: &'a Value, within: Duration) -> Delivery<'a> {
        Box::pin(self.deliver_event(id, payload, within))
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            in_flight: IN_FLIGHT,
            per_lane: PER_ENDPOINT,
        }
    }

    fn retry_in(&self, attempts: i32, _: SenderPolicy) -> Option<Duration> {
        webhooks::retry_in(attempts, self.first_retry)
    }
}

/// What a refusal of an internal address adds for someone trying webhooks on their own machine.
const ALLOW_PRIVATE_HINT: &str =
    " (for local use, GATEHOUSE_WEBHOOK_ALLOW_PRIVATE=1 allows internal addresses)";

/// Resolves names for webhook deliveries and drops internal addresses (unless allowed), so the
/// address checked is the address connected to.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|addr| allow_private || !webhooks::is_internal(addr.ip()))
                .collect();
            if allowed.is_empty() {
                let shown = found
                    .first()
                    .map_or_else(String::new, |addr| addr.ip().to_string());
                return Err(format!(
                    "refused: {host} resolves to an internal address {shown}{ALLOW_PRIVATE_HINT}"
                )
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}
