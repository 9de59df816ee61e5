//! Key-expiry reminders: 30, 7 and 1 days before an active key expires, a mail to its creator and,
//! for live keys, to the tenant's admins (each reminder once, whichever instance claims it first;
//! people can turn them off on the account page).

use std::time::Duration;

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::db::reminders;
use crate::domain::error::DomainResult;
use crate::domain::mail::{self, Mail};
use crate::domain::webhooks::{
    self, ActorRef, Event, EventTime, KeyExpired, KeyExpiring, SweptKey,
};
use crate::vocabulary::Environment;
use crate::vocabulary::PublicUrl;

/// Claims the reminders now due and puts their mails in the outbox, in one transaction.
/// Returns how many reminders went out.
pub async fn send_due(pool: &PgPool, public_url: &PublicUrl) -> DomainResult<usize> {
    let mut tx = pool.begin().await?;
    let due = reminders::claim_due(&mut *tx).await?;
    let now = OffsetDateTime::now_utc();
    for reminder in &due {
        let people = reminders::recipients(
            &mut *tx,
            reminder.tenant_id,
            reminder.created_by,
            reminder.live,
        )
        .await?;
        let seconds_left = (reminder.expires_at - now).whole_seconds().max(1);
        let days_left = (seconds_left + 86_399) / 86_400;
        for (email, name) in people {
            let mail = Mail::KeyExpiring {
                name,
                tenant: reminder.tenant_name.clone(),
                key_name: reminder.key_name.clone(),
                environment: if reminder.live { "live" } else { "test" }.into(),
                days_left,
                expires: reminder.expires_at.date().to_string(),
                link: public_url.link(&format!(
                    "/t/{}/keys/{}",
                    reminder.tenant_slug, reminder.api_key_id
                )),
            };
            mail::send(&mut *tx, &email, mail).await?;
        }
        let environment = if reminder.live {
            Environment::Live
        } else {
            Environment::Test
        };
        let event = Event::KeyExpiring(KeyExpiring {
            key: SweptKey {
                id: reminder.api_key_id,
                name: reminder.key_name.clone(),
                environment,
            },
            expires_at: EventTime(reminder.expires_at),
            days_ahead: reminder.days_ahead,
            actor: ActorRef::System,
        });
        webhooks::publish(&mut tx, reminder.tenant_id, Some(environment), &event).await?;
        tracing::info!(key.id = %reminder.api_key_id, days_ahead = reminder.days_ahead, "key expiry reminder queued");
    }
    tx.commit().await?;
    Ok(due.len())
}

/// Keys claimed per transaction by the expiry sweep.
const EXPIRED_BATCH: i64 = 500;

/// Publishes `key.expired` for every key that has passed its expiry since the last sweep, once
/// per key (the claim marks it). Returns how many were announced.
pub async fn announce_expired(pool: &PgPool) -> DomainResult<usize> {
    let mut announced = 0;
    loop {
        let mut tx = pool.begin().await?;
        let expired = reminders::claim_expired(&mut *tx, EXPIRED_BATCH).await?;
        for key in &expired {
            let event = Event::KeyExpired(KeyExpired {
                key: SweptKey {
                    id: key.api_key_id,
                    name: key.name.clone(),
                    environment: key.environment,
                },
                expired_at: EventTime(key.expires_at),
                actor: ActorRef::System,
            });
            webhooks::publish(&mut tx, key.tenant_id, Some(key.environment), &event).await?;
            tracing::info!(key.id = %key.api_key_id, "key expired: event published");
        }
        tx.commit().await?;
        announced += expired.len();
        if expired.len() < usize::try_from(EXPIRED_BATCH).unwrap_or(usize::MAX) {
            return Ok(announced);
        }
    }
}

/// Looks for due reminders and newly expired keys every `every` until `stop`.
pub async fn run(
    pool: PgPool,
    public_url: PublicUrl,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(err) = send_due(&pool, &public_url).await {
            tracing::warn!(error = %err, "cannot send key expiry reminders; retrying");
        }
        if let Err(err) = announce_expired(&pool).await {
            tracing::warn!(error = %err, "cannot announce expired keys; retrying");
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
