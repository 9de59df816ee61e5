//! The webhook courier's side of the outbox: claiming deliveries with their endpoint and event in
//! the claiming statement, and recording attempts (`webhook_attempt`, with the outbox's own rows
//! when they were delivered), so a batch costs one round trip each way.

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::outbox::{ClaimTerms, Claimed, interval};
use super::webhooks::Endpoint;
use crate::vocabulary::Environment;

/// A claimed delivery, with its endpoint and its event as they were when it was claimed (`None`:
/// gone, or the payload does not name one).
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub claimed: Claimed,
    pub endpoint: Option<Endpoint>,
    pub event: Option<Value>,
}

/// Claims due webhook deliveries on `terms` (`outbox_claim`, as every kind claims) and reads each
/// one's endpoint and event in the same statement.
pub async fn claim(
    db: impl PgExecutor<'_>,
    terms: ClaimTerms<'_>,
) -> sqlx::Result<Vec<ClaimedDelivery>> {
    let rows = sqlx::query!(
        r#"SELECT c.outbox_message_id AS "outbox_message_id!", c.kind AS "kind!",
                  c.lane AS "lane!", c.payload AS "payload!", c.attempts AS "attempts!",
                  c.give_up_at AS "give_up_at!",
                  e.webhook_endpoint_id AS "webhook_endpoint_id?", e.tenant_id AS "tenant_id?",
                  e.name AS "name?", e.url AS "url?",
                  e.environment AS "environment?: Environment", e.event_types AS "event_types?",
                  e.enabled AS "enabled?", e.disabled_reason AS "disabled_reason?",
                  e.seed_signature AS "seed_signature?", e.auth_kind AS "auth_kind?",
                  e.auth_sealed AS "auth_sealed?", e.secret_sealed AS "secret_sealed?",
                  e.previous_secret_sealed AS "previous_secret_sealed?",
                  e.previous_secret_until AS "previous_secret_until?",
                  e.failing_since AS "failing_since?", e.failures_in_row AS "failures_in_row?",
                  e.last_delivery_at AS "last_delivery_at?", e.last_status AS "last_status?",
                  e.created_at AS "created_at?",
                  v.payload AS "event?"
           FROM outbox_claim('webhook', $1, $2, $3, $4, $5, $6) AS c
           -- A payload whose endpoint id is not a UUID finds no endpoint (and fails alone).
           LEFT JOIN webhook_endpoint e ON e.webhook_endpoint_id =
               CASE WHEN c.payload->>'endpoint_id'
                         ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                    THEN (c.payload->>'endpoint_id')::uuid END
           LEFT JOIN webhook_event v ON v.webhook_event_id = c.payload->>'event_id'"#,
        &terms.busy.closed,
        terms.limit,
        &terms.busy.lanes,
        &terms.busy.in_flight,
        i64::from(terms.per_lane),
        interval(terms.lease),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let endpoint = match (
                row.webhook_endpoint_id,
                row.tenant_id,
                row.name,
                row.url,
                row.environment,
                row.enabled,
                row.seed_signature,
                row.auth_kind,
                row.secret_sealed,
                row.failures_in_row,
                row.created_at,
            ) {
                (
                    Some(webhook_endpoint_id),
                    Some(tenant_id),
                    Some(name),
                    Some(url),
                    Some(environment),
                    Some(enabled),
                    Some(seed_signature),
                    Some(auth_kind),
                    Some(secret_sealed),
                    Some(failures_in_row),
                    Some(created_at),
                ) => Some(Endpoint {
                    webhook_endpoint_id,
                    tenant_id,
                    name,
                    url,
                    environment,
                    event_types: row.event_types,
                    enabled,
                    disabled_reason: row.disabled_reason,
                    seed_signature,
                    auth_kind,
                    auth_sealed: row.auth_sealed,
                    secret_sealed,
                    previous_secret_sealed: row.previous_secret_sealed,
                    previous_secret_until: row.previous_secret_until,
                    failing_since: row.failing_since,
                    failures_in_row,
                    last_delivery_at: row.last_delivery_at,
                    last_status: row.last_status,
                    created_at,
                }),
                _ => None,
            };
            ClaimedDelivery {
                claimed: Claimed {
                    outbox_message_id: row.outbox_message_id,
                    kind: row.kind,
                    lane: row.lane,
                    payload: row.payload,
                    attempts: row.attempts,
                    give_up_at: row.give_up_at,
                },
                endpoint,
                event: row.event,
            }
        })
        .collect())
}

/// One delivery attempt for the log.
pub struct NewAttempt<'a> {
    pub webhook_endpoint_id: Uuid,
    pub webhook_event_id: &'a str,
    pub outbox_message_id: Uuid,
    pub status: Option<i32>,
    pub duration_ms: i32,
    pub error: Option<&'a str>,
    pub response: Option<&'a str>,
    pub request_headers: &'a Value,
}

/// Logs one attempt (a failed one: the outbox records the failure on its own).
pub async fn insert_attempt(db: impl PgExecutor<'_>, attempt: &NewAttempt<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO webhook_attempt (webhook_endpoint_id, webhook_event_id, outbox_message_id,
             status, duration_ms, error, response, request_headers)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        attempt.webhook_endpoint_id,
        attempt.webhook_event_id,
        attempt.outbox_message_id,
        attempt.status,
        attempt.duration_ms,
        attempt.error,
        attempt.response,
        attempt.request_headers,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records delivered attempts, all in one statement, in the order given: each one's delivery log
/// row (`webhook_attempt`) and `outbox_attempt` row, its message sent, and each endpoint's last
/// delivery (its latest status; no longer failing). Attempts with an error go through
/// [`insert_attempt`] and the outbox's `record_failed` instead.
pub async fn record_delivered(
    db: impl PgExecutor<'_>,
    attempts: &[NewAttempt<'_>],
) -> sqlx::Result<()> {
    let mut messages = Vec::with_capacity(attempts.len());
    let mut endpoints = Vec::with_capacity(attempts.len());
    let mut events = Vec::with_capacity(attempts.len());
    let mut statuses = Vec::with_capacity(attempts.len());
    let mut durations = Vec::with_capacity(attempts.len());
    let mut responses = Vec::with_capacity(attempts.len());
    let mut headers = Vec::with_capacity(attempts.len());
    for attempt in attempts {
        messages.push(attempt.outbox_message_id);
        endpoints.push(attempt.webhook_endpoint_id);
        events.push(attempt.webhook_event_id.to_owned());
        statuses.push(attempt.status);
        durations.push(attempt.duration_ms);
        responses.push(attempt.response.map(str::to_owned));
        headers.push(attempt.request_headers.clone());
    }
    sqlx::query!(
        r#"WITH done AS (
               SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::int[],
                                    $6::text[], $7::jsonb[]) WITH ORDINALITY
                   AS d (outbox_message_id, webhook_endpoint_id, webhook_event_id, status,
                         duration_ms, response, request_headers, place)
           ), logged AS (
               INSERT INTO webhook_attempt (webhook_endpoint_id, webhook_event_id,
                   outbox_message_id, status, duration_ms, error, response, request_headers)
               SELECT webhook_endpoint_id, webhook_event_id, outbox_message_id, status,
                      duration_ms, NULL, response, request_headers
               FROM done ORDER BY place
           ), attempted AS (
               INSERT INTO outbox_attempt (outbox_message_id, error)
               SELECT outbox_message_id, NULL FROM done ORDER BY place
           ), outcome AS (
               UPDATE webhook_endpoint AS e
               SET last_delivery_at = now(), last_status = latest.status, failing_since = NULL,
                   failures_in_row = 0
               FROM (SELECT DISTINCT ON (webhook_endpoint_id) webhook_endpoint_id, status
                     FROM done ORDER BY webhook_endpoint_id, place DESC) AS latest
               WHERE e.webhook_endpoint_id = ANY($2)
                 AND e.webhook_endpoint_id = latest.webhook_endpoint_id
           )
           UPDATE outbox_message AS m
           SET sent_at = now(), last_error = NULL
           -- `= ANY`: the rows through the primary key, not a scan of every message ever sent.
           WHERE m.outbox_message_id = ANY($1)"#,
        &messages,
        &endpoints,
        &events,
        &statuses as &[Option<i32>],
        &durations,
        &responses as &[Option<String>],
        &headers,
    )
    .execute(db)
    .await?;
    Ok(())
}
