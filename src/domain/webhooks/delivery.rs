//! Delivering events: the secrets a delivery signs and authenticates with, recording each outcome
//! (an endpoint failing for days, or answering 410, is disabled and its tenant's admins are told),
//! the retry schedule and `Retry-After`, and the deliveries a person asks for (a test event, a
//! resend). The courier that sends them over HTTP is `crate::webhook_courier`.

use std::time::Duration;

use rand::Rng;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::audit;
use crate::db::tenants as db_tenants;
use crate::db::webhooks::{self as db_webhooks, Endpoint};
use crate::domain::audit::Actor;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::mail::{self, Mail};
use crate::domain::sealing::SecretKey;
use crate::vocabulary::PublicUrl;

use super::endpoints::{ReceiverAuth, endpoint_of};
use super::events::{Event, WebhookTest, publish_to};
use super::signing::{SigningSecret, auth_context, secret_context};

/// The outbox kind of webhook deliveries.
pub const KIND: &str = "webhook";
/// After failing this long, an endpoint is disabled and the tenant's admins are told.
pub const DISABLE_AFTER: time::Duration = time::Duration::days(3);

/// The secrets a delivery to `endpoint` uses: the signing secrets (the previous one too while the
/// overlap lasts) and the receiver's credentials.
pub struct DeliverySecrets {
    pub signing: Vec<SigningSecret>,
    pub auth: ReceiverAuth,
}

pub fn open_secrets(
    key: &SecretKey,
    endpoint: &Endpoint,
    now: OffsetDateTime,
) -> Result<DeliverySecrets, String> {
    let id = endpoint.webhook_endpoint_id;
    let context = secret_context(id);
    let mut signing = vec![SigningSecret::from_bytes(
        key.open(&endpoint.secret_sealed, &context)
            .map_err(|e| e.to_string())?,
    )];
    if let (Some(previous), Some(until)) = (
        &endpoint.previous_secret_sealed,
        endpoint.previous_secret_until,
    ) && until > now
    {
        signing.push(SigningSecret::from_bytes(
            key.open(previous, &context).map_err(|e| e.to_string())?,
        ));
    }
    let auth = match &endpoint.auth_sealed {
        None => ReceiverAuth::None,
        Some(sealed) => {
            let plain = key
                .open(sealed, &auth_context(id))
                .map_err(|e| e.to_string())?;
            serde_json::from_slice(&plain)
                .map_err(|_| "unreadable receiver credentials".to_owned())?
        }
    };
    Ok(DeliverySecrets { signing, auth })
}

/// Records a delivery's outcome on the endpoint. A `410 Gone` disables it at once; failures for
/// 3 days disable it too, and then the tenant's admins are mailed.
pub async fn record_outcome(
    pool: &PgPool,
    endpoint: &Endpoint,
    delivered: bool,
    gone: bool,
    status: Option<i32>,
    public_url: &PublicUrl,
) -> DomainResult<()> {
    let id = endpoint.webhook_endpoint_id;
    if delivered {
        // Nothing to disable: one statement, no transaction (the busy path of every delivery).
        db_webhooks::record_outcome(pool, id, delivered, status).await?;
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let failing_since = db_webhooks::record_outcome(&mut *tx, id, delivered, status).await?;
    let reason = if gone {
        Some("The receiver answered 410 Gone.".to_owned())
    } else {
        failing_since
            .filter(|since| *since <= OffsetDateTime::now_utc() - DISABLE_AFTER)
            .map(|since| format!("Every delivery failed since {}.", since.date()))
    };
    if let Some(reason) = reason
        && db_webhooks::set_enabled(&mut *tx, id, false, Some(&reason)).await?
    {
        let tenant = db_tenants::by_id(&mut *tx, endpoint.tenant_id).await?;
        let link = public_url.link(&format!("/t/{}/webhooks/{id}", tenant.slug));
        for (email, name) in db_webhooks::admins(&mut *tx, endpoint.tenant_id).await? {
            mail::send(
                &mut *tx,
                &email,
                Mail::WebhookDisabled {
                    name,
                    tenant: tenant.name.clone(),
                    endpoint: endpoint.name.clone(),
                    reason: reason.clone(),
                    link: link.clone(),
                },
            )
            .await?;
        }
        // Gatehouse itself disables it: the audit log says so ("Gatehouse"), not a deleted user.
        audit::insert(
            &mut *tx,
            &Actor::system().event(
                endpoint.tenant_id,
                "webhook.disabled",
                format!("webhook:{}", endpoint.name),
                json!({ "reason": reason }),
            ),
        )
        .await?;
        tracing::warn!(webhook.id = %id, tenant.id = %endpoint.tenant_id, %reason, "webhook endpoint disabled");
    }
    tx.commit().await?;
    Ok(())
}

/// Steps of the retry schedule, in units of the first retry (5 s): 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 10 h: about 28 hours in all.
const SCHEDULE: [u32; 7] = [1, 60, 360, 1440, 3600, 7200, 7200];
/// The longest `Retry-After` honoured.
pub const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(10 * 3600);

/// The wait a receiver's `Retry-After` asks for (RFC 9110: delay seconds, or an HTTP date in
/// IMF-fixdate or the two obsolete formats), at most `LONGEST_RETRY_AFTER`; a date already past
/// asks for no wait. `None` when the value is neither.
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(LONGEST_RETRY_AFTER))
}

/// The wait after the `attempts`-th failed attempt, with ±10 % jitter; `None` once the schedule is done.
pub fn retry_in(attempts: i32, first: Duration) -> Option<Duration> {
    let step = usize::try_from(attempts.checked_sub(1)?).ok()?;
    let base = first.saturating_mul(*SCHEDULE.get(step)?);
    Some(base.mul_f64(rand::rng().random_range(0.9..=1.1)))
}

/// Sends `webhook.test` to one endpoint; returns the event's id, or `None` when the endpoint is
/// disabled (it gets nothing).
pub async fn send_test(
    pool: &PgPool,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    actor: &Actor,
) -> DomainResult<Option<String>> {
    let mut tx = pool.begin().await?;
    let endpoint = endpoint_of(&mut tx, tenant_id, endpoint_id).await?;
    let event = Event::WebhookTest(WebhookTest::new(endpoint_id, &endpoint.name, actor));
    let (event_id, queued) =
        publish_to(&mut tx, tenant_id, None, Some(endpoint_id), &event).await?;
    if queued == 0 {
        // Nothing was sent, so nothing is recorded.
        return Ok(None);
    }
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "webhook.test_sent",
            format!("webhook:{}", endpoint.name),
            json!({}),
        )
        .await?;
    Ok(Some(event_id))
}

/// Queues an event again for one endpoint: the same `webhook-id`, a new attempt.
pub async fn resend(
    pool: &PgPool,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    event_id: &str,
    actor: &Actor,
) -> DomainResult<()> {
    let mut tx = pool.begin().await?;
    let endpoint = endpoint_of(&mut tx, tenant_id, endpoint_id).await?;
    if !db_webhooks::requeue(&mut *tx, tenant_id, endpoint_id, event_id).await? {
        return Err(DomainError::NotFound);
    }
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "webhook.resent",
            format!("webhook:{}", endpoint.name),
            json!({ "event": event_id }),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates_in_all_three_formats() {
        use std::time::{Duration, SystemTime};
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 90);
        let ninety = Some(Duration::from_secs(90));
        assert_eq!(
            super::retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            ninety
        );
        assert_eq!(
            super::retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            ninety
        );
        assert_eq!(super::retry_after("Sun Nov  6 08:49:37 1994", now), ninety);
        assert_eq!(
            super::retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            super::retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO),
            "a date already past asks for no wait"
        );
        assert_eq!(
            super::retry_after(
                &httpdate::fmt_http_date(now + Duration::from_secs(86_400)),
                now
            ),
            Some(super::LONGEST_RETRY_AFTER)
        );
        assert_eq!(super::retry_after("soon", now), None);
        assert_eq!(super::retry_after("-5", now), None);
    }

    #[test]
    fn retries_follow_the_schedule_with_jitter_then_stop() {
        let first = Duration::from_secs(5);
        let expected = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
        for (attempt, secs) in (1..).zip(expected) {
            let wait = retry_in(attempt, first).unwrap().as_secs_f64();
            assert!(
                wait >= f64::from(secs) * 0.9 && wait <= f64::from(secs) * 1.1,
                "{attempt}: {wait}"
            );
        }
        assert_eq!(retry_in(8, first), None);
    }
}
