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
use crate::db::webhook_deliveries::{self as db_deliveries, NewAttempt};
use crate::db::webhooks::Endpoint;
use crate::domain::error::DomainResult;
use crate::domain::outbox::{Bounds, ClaimTerms, Claimed, Courier, Failure, NotSent, SenderPolicy};
use crate::domain::sealing::SecretKey;
use crate::domain::webhooks;

/// How much of a receiver's answer the delivery log keeps.
const RESPONSE_KEPT: usize = 1024;
/// Deliveries one sender runs at once: in all, and to one endpoint.
const IN_FLIGHT: usize = 64;
const PER_ENDPOINT: i32 = 4;

pub struct WebhookCourier {
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
    event_id: String,
}

/// A claimed delivery: its payload, and its endpoint and event as the claim read them.
pub struct Delivery {
    payload: Value,
    endpoint: Option<Endpoint>,
    event: Option<Value>,
}

/// A request made to an endpoint: what its delivery log keeps of it.
pub struct Attempt {
    endpoint: Endpoint,
    event_id: String,
    status: Option<i32>,
    duration_ms: i32,
    error: Option<String>,
    response: Option<String>,
    request_headers: Value,
}

impl Attempt {
    fn logged(&self, outbox_message_id: Uuid) -> NewAttempt<'_> {
        NewAttempt {
            webhook_endpoint_id: self.endpoint.webhook_endpoint_id,
            webhook_event_id: &self.event_id,
            outbox_message_id,
            status: self.status,
            duration_ms: self.duration_ms,
            error: self.error.as_deref(),
            response: self.response.as_deref(),
            request_headers: &self.request_headers,
        }
    }
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
    pub fn new(config: &Config) -> Result<Self, String> {
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
            // Connections to a receiver are kept and reused: as many as one endpoint may have
            // deliveries in flight.
            .pool_max_idle_per_host(usize::try_from(PER_ENDPOINT).unwrap_or(4))
            .build()
            .map_err(|err| format!("cannot build the webhook HTTP client: {err}"))?;
        Ok(Self {
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
        delivery: &Delivery,
        within: Duration,
    ) -> Result<Attempt, NotSent<Attempt>> {
        let target: Target = serde_json::from_value(delivery.payload.clone())
            .map_err(|err| format!("unreadable webhook payload: {err}"))?;
        let Some(endpoint) = delivery
            .endpoint
            .as_ref()
            .filter(|endpoint| endpoint.enabled)
        else {
            return Err(give_up("the endpoint is disabled or gone").into());
        };
        let event = delivery
            .event
            .as_ref()
            .ok_or_else(|| give_up("the event is gone"))?;
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| Failure::from("GATEHOUSE_SECRET_KEY is not set".to_owned()))?;
        let secrets = webhooks::open_secrets(key, endpoint, OffsetDateTime::now_utc())?;
        let body = serde_json::to_vec(event).map_err(|err| err.to_string())?;
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
        let attempt = Attempt {
            endpoint: endpoint.clone(),
            event_id: target.event_id,
            status: outcome.status.map(i32::from),
            duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
            error: outcome.error.clone(),
            response: outcome.response,
            request_headers: Value::Object(shown),
        };
        match outcome.error {
            None => Ok(attempt),
            Some(why) => Err(NotSent {
                failure: Failure {
                    why: format!("{}: {why}", endpoint.webhook_endpoint_id),
                    retry_after: outcome.retry_after,
                    give_up: outcome.status == Some(410),
                    slow: outcome.slow,
                },
                record: Some(attempt),
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
        if let Some(refusal) = refused_literal(url, self.allow_private) {
            return failed(format!("{refusal}{ALLOW_PRIVATE_HINT}"), false);
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

/// Why a URL with an internal address written in it is refused at send time, naming the IPv4
/// address an IPv6 form carries; `None` when it may be sent to.
fn refused_literal(url: &str, allow_private: bool) -> Option<String> {
    let ip = webhooks::literal_address(url)?;
    (!allow_private && webhooks::is_internal(ip))
        .then(|| format!("refused: {} is an internal address", webhooks::shown(ip)))
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
    type Message = Delivery;
    type Record = Attempt;

    fn kind(&self) -> &'static str {
        webhooks::KIND
    }

    /// The claim reads each delivery's endpoint (its sealed secrets too) and event with it.
    async fn claim(
        &self,
        pool: &PgPool,
        terms: ClaimTerms<'_>,
    ) -> sqlx::Result<Vec<(Claimed, Delivery)>> {
        let claimed = db_deliveries::claim(pool, terms).await?;
        Ok(claimed
            .into_iter()
            .map(|claimed| {
                let delivery = Delivery {
                    payload: claimed.claimed.payload.clone(),
                    endpoint: claimed.endpoint,
                    event: claimed.event,
                };
                (claimed.claimed, delivery)
            })
            .collect())
    }

    async fn deliver(
        &self,
        _: Uuid,
        delivery: &Delivery,
        within: Duration,
    ) -> Result<Attempt, NotSent<Attempt>> {
        self.deliver_event(delivery, within).await
    }

    /// The delivery log's rows, the outbox's and the endpoints' last delivery: one statement.
    async fn record_sent(&self, pool: &PgPool, sent: &[(Uuid, Attempt)]) -> DomainResult<()> {
        let attempts: Vec<NewAttempt<'_>> = sent
            .iter()
            .map(|(id, attempt)| attempt.logged(*id))
            .collect();
        Ok(db_deliveries::record_delivered(pool, &attempts).await?)
    }

    /// The delivery log's row, and the failure on the endpoint (which may disable it).
    async fn record_failure(&self, pool: &PgPool, id: Uuid, attempt: Attempt) -> DomainResult<()> {
        db_deliveries::insert_attempt(pool, &attempt.logged(id)).await?;
        webhooks::record_outcome(
            pool,
            &attempt.endpoint,
            false,
            attempt.status == Some(410),
            attempt.status,
            &self.public_url,
        )
        .await
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
                    .map_or_else(String::new, |addr| webhooks::shown(addr.ip()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_at_send_time_names_the_ipv4_address_an_ipv6_form_carries() {
        let refused = |url: &str| refused_literal(url, false);
        assert_eq!(
            refused("http://[::127.0.0.1]:8080/hooks").as_deref(),
            Some("refused: ::7f00:1 (127.0.0.1) is an internal address")
        );
        assert_eq!(
            refused("http://[2002:a9fe:a9fe::1]/hooks").as_deref(),
            Some("refused: 2002:a9fe:a9fe::1 (169.254.169.254) is an internal address")
        );
        assert_eq!(
            refused("http://[::ffff:127.0.0.1]/hooks").as_deref(),
            Some("refused: ::ffff:127.0.0.1 is an internal address"),
            "written with its IPv4 address already"
        );
        assert_eq!(
            refused("http://10.0.0.1/hooks").as_deref(),
            Some("refused: 10.0.0.1 is an internal address")
        );
        assert_eq!(refused("https://93.184.216.34/hooks"), None);
        assert_eq!(
            refused("https://hooks.example.com/"),
            None,
            "names: the resolver's"
        );
        assert_eq!(refused_literal("http://[::127.0.0.1]/hooks", true), None);
    }
}
