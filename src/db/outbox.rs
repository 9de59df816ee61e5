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

/// What a sender claims: up to `limit` messages of one kind, at most `per_lane` in flight in each
/// lane (counting `busy`'s), each held for `lease`.
#[derive(Debug, Clone, Copy)]
pub struct ClaimTerms<'a> {
    pub limit: i64,
    pub per_lane: i32,
    pub busy: &'a Busy,
    pub lease: std::time::Duration,
}

/// Claims due messages of `kind` on `terms` (the SQL function `outbox_claim`): oldest due first,
/// none of a closed lane, rows other senders hold skipped; each claimed row's due time moves the
/// lease ahead, so no other sender takes it while this one sends. A sender that dies mid-send
/// leaves the row to be sent again after the lease.
pub async fn claim(
    db: impl PgExecutor<'_>,
    kind: &str,
    terms: ClaimTerms<'_>,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as!(
        Claimed,
        r#"SELECT outbox_message_id AS "outbox_message_id!", kind AS "kind!", lane AS "lane!",
                  payload AS "payload!", attempts AS "attempts!", give_up_at AS "give_up_at!"
           FROM outbox_claim($1, $2, $3, $4, $5, $6, $7)"#,
        kind,
        &terms.busy.closed,
        terms.limit,
        &terms.busy.lanes,
        &terms.busy.in_flight,
        i64::from(terms.per_lane),
        interval(terms.lease),
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

/// Gives claimed messages back unsent (a sender held them and did not start them): each is due
/// now again, for any sender, and its claim is not counted as an attempt. `attempts[i]` is what
/// the claim of `outbox_message_ids[i]` returned: a row claimed again since (its lease ran out)
/// or recorded meanwhile is left alone. Returns how many were given back.
pub async fn release(
    db: impl PgExecutor<'_>,
    outbox_message_ids: &[Uuid],
    attempts: &[i32],
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        r#"UPDATE outbox_message AS m
           SET due_at = now(), attempts = m.attempts - 1
           FROM unnest($1::uuid[], $2::int[]) AS r (outbox_message_id, attempts)
           -- `= ANY`: the rows through the primary key, not a scan of every message ever sent.
           WHERE m.outbox_message_id = ANY($1) AND m.outbox_message_id = r.outbox_message_id
             AND m.attempts = r.attempts AND m.sent_at IS NULL AND m.failed_at IS NULL"#,
        outbox_message_ids,
        attempts,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Records successful attempts, all in one statement: an `outbox_attempt` row each (in the order
/// given), and each message sent, its payload replaced by `payloads[i]` (secrets removed).
pub async fn record_sent(
    db: impl PgExecutor<'_>,
    outbox_message_ids: &[Uuid],
    payloads: &[Value],
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"WITH done AS (
               SELECT * FROM unnest($1::uuid[], $2::jsonb[]) WITH ORDINALITY
                   AS d (outbox_message_id, payload, place)
           ), attempt AS (
               INSERT INTO outbox_attempt (outbox_message_id, error)
               SELECT outbox_message_id, NULL FROM done ORDER BY place
           )
           UPDATE outbox_message AS m
           SET sent_at = now(), last_error = NULL, payload = done.payload
           FROM done
           -- `= ANY`: the rows through the primary key, not a scan of every message ever sent.
           WHERE m.outbox_message_id = ANY($1) AND m.outbox_message_id = done.outbox_message_id"#,
        outbox_message_ids,
        payloads,
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
/// Per kind: messages due and unsent, and how many seconds the oldest of them has waited.
pub async fn due_by_kind(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, i64, f64)>> {
    let rows = sqlx::query!(
        r#"SELECT kind, count(*) AS "due!",
                  EXTRACT(EPOCH FROM now() - min(due_at))::float8 AS "oldest_seconds!"
           FROM outbox_message
           WHERE sent_at IS NULL AND failed_at IS NULL AND due_at <= now()
           GROUP BY kind ORDER BY kind"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.kind, row.due, row.oldest_seconds))
        .collect())
}
