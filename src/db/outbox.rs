//! The `outbox_message` and `outbox_attempt` tables: messages waiting to be sent, and every attempt.

use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::postgres::types::PgInterval;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// A message a sender has claimed: no other sender takes it until its lease runs out.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub outbox_message_id: Uuid,
    pub kind: String,
    /// Whom it goes to: one webhook endpoint (`webhook:<id>`), or all mail (`mail`).
    pub lane: String,
    pub payload: Value,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub give_up_at: OffsetDateTime,
}

pub fn interval(duration: std::time::Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(duration.as_micros()).unwrap_or(i64::MAX),
    }
}

/// The channel a writer notifies (on commit) when a message is due now, so senders need not wait
/// for their next poll.
const DUE_CHANNEL: &str = "outbox_due";

/// Wakes the senders once the caller's transaction commits.
pub async fn notify_due(db: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_notify('outbox_due', '')")
        .execute(db)
        .await?;
    Ok(())
}

/// A connection listening for [`notify_due`]; it reconnects by itself.
pub async fn listen_due(pool: &PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(DUE_CHANNEL).await?;
    Ok(listener)
}

pub async fn insert(db: impl PgExecutor<'_>, kind: &str, payload: &Value) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO outbox_message (kind, payload) VALUES ($1, $2) RETURNING outbox_message_id",
        kind,
        payload,
    )
    .fetch_one(db)
    .await
}

/// Lanes a claim leaves alone or limits: those already at their bound in this sender, those it
/// backs off, and those with some deliveries in flight (and how many).
#[derive(Debug, Clone, Default)]
pub struct Busy {
    /// Lanes to skip entirely.
    pub closed: Vec<String>,
    /// Lanes with deliveries in flight, and how many (`in_flight[i]` for `lanes[i]`).
    pub lanes: Vec<String>,
    pub in_flight: Vec<i32>,
}

/// Claims up to `limit` due messages of `kind`, oldest due first, at most `per_lane` in flight in
/// each lane (counting `busy`'s), none of a closed lane: rows other senders hold are skipped, and
/// each claimed row's due time moves `lease` ahead, so no other sender takes it while this one
/// sends. A sender that dies mid-send leaves the row to be sent again after the lease.
pub async fn claim(
    db: impl PgExecutor<'_>,
    kind: &str,
    limit: i64,
    per_lane: i32,
    busy: &Busy,
    lease: std::time::Duration,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as!(
        Claimed,
        r#"WITH candidate AS (
               SELECT outbox_message_id, lane, due_at FROM outbox_message
               WHERE sent_at IS NULL AND failed_at IS NULL AND due_at <= now() AND kind = $1
                 AND lane <> ALL($2)
               ORDER BY due_at
               LIMIT $3::bigint * 4
               FOR UPDATE SKIP LOCKED
           ), ranked AS (
               SELECT outbox_message_id, lane, due_at,
                      row_number() OVER (PARTITION BY lane ORDER BY due_at) AS place
               FROM candidate
           ), chosen AS (
               SELECT r.outbox_message_id
               FROM ranked r
               LEFT JOIN unnest($4::text[], $5::int[]) AS busy (lane, in_flight) ON busy.lane = r.lane
               WHERE r.place + coalesce(busy.in_flight, 0) <= $6
               ORDER BY r.due_at
               LIMIT $3
           )
           UPDATE outbox_message AS m
           SET due_at = now() + $7::interval, attempts = m.attempts + 1
           FROM chosen
           WHERE m.outbox_message_id = chosen.outbox_message_id
           RETURNING m.outbox_message_id, m.kind, m.lane AS "lane!", m.payload, m.attempts, m.give_up_at"#,
        kind,
        &busy.closed,
        limit,
        &busy.lanes,
        &busy.in_flight,
        i64::from(per_lane),
        interval(lease),
    )
    .fetch_all(db)
    .await
}

/// Backs a lane off: its waiting messages are due no sooner than `wait` from now (rows due later,
/// or held by a sender for longer, keep their time).
pub async fn defer_lane(
    db: impl PgExecutor<'_>,
    lane: &str,
    wait: std::time::Duration,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE outbox_message SET due_at = now() + $2::interval
         WHERE lane = $1 AND sent_at IS NULL AND failed_at IS NULL AND due_at < now() + $2::interval",
        lane,
        interval(wait),
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Records a successful attempt; `payload` replaces the stored one (secrets removed).
pub async fn record_sent(
    db: impl PgExecutor<'_>,
    outbox_message_id: Uuid,
    payload: &Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"WITH attempt AS (
               INSERT INTO outbox_attempt (outbox_message_id, error) VALUES ($1, NULL)
           )
           UPDATE outbox_message
           SET sent_at = now(), last_error = NULL, payload = $2
           WHERE outbox_message_id = $1"#,
        outbox_message_id,
        payload,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records a failed attempt: the message is due again after `retry_in`, or, when that is `None` or
/// would be past its `give_up_at`, given up. Returns whether it was given up.
pub async fn record_failed(
    db: impl PgExecutor<'_>,
    outbox_message_id: Uuid,
    error: &str,
    retry_in: Option<std::time::Duration>,
) -> sqlx::Result<bool> {
    let failed_at = sqlx::query_scalar!(
        r#"WITH attempt AS (
               INSERT INTO outbox_attempt (outbox_message_id, error) VALUES ($1, $2)
           )
           UPDATE outbox_message
           SET last_error = $2,
               due_at = now() + coalesce($3::interval, interval '0'),
               failed_at = CASE WHEN $3::interval IS NULL OR now() + $3::interval > give_up_at
                                THEN now() END
           WHERE outbox_message_id = $1
           RETURNING failed_at"#,
        outbox_message_id,
        error,
        retry_in.map(interval) as Option<PgInterval>,
    )
    .fetch_optional(db)
    .await?;
    Ok(matches!(failed_at, Some(Some(_))))
}

/// Messages due now and not yet sent, by kind (for metrics; the due index serves it).
pub async fn due_by_kind(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT kind, count(*) AS "due!" FROM outbox_message
           WHERE sent_at IS NULL AND failed_at IS NULL AND due_at <= now()
           GROUP BY kind ORDER BY kind"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|row| (row.kind, row.due)).collect())
}
