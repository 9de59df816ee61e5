//! The `webhook_endpoint`, `webhook_event` and `webhook_attempt` tables, and the fan-out of an
//! event into the outbox (one `webhook` message per endpoint that wants it).

use serde_json::Value;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::vocabulary::Environment;

/// An endpoint as the pages and the courier read it; secrets stay sealed.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub webhook_endpoint_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub url: String,
    pub environment: Environment,
    pub event_types: Option<Vec<String>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub seed_signature: bool,
    pub auth_kind: String,
    pub auth_sealed: Option<Vec<u8>>,
    pub secret_sealed: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub previous_secret_until: Option<OffsetDateTime>,
    pub failing_since: Option<OffsetDateTime>,
    pub failures_in_row: i32,
    pub last_delivery_at: Option<OffsetDateTime>,
    pub last_status: Option<i32>,
    pub created_at: OffsetDateTime,
}

/// What an endpoint's settings form sets.
pub struct EndpointSettings<'a> {
    pub name: &'a str,
    pub url: &'a str,
    pub environment: Environment,
    pub event_types: Option<&'a [String]>,
    pub seed_signature: bool,
    pub auth_kind: &'a str,
    pub auth_sealed: Option<&'a [u8]>,
}

pub async fn any_endpoint(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM webhook_endpoint) AS "any!""#)
        .fetch_one(db)
        .await
}

pub async fn list(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Vec<Endpoint>> {
    select(db, Some(tenant_id), None, None, None).await
}

/// One endpoint of the tenant; another tenant's id finds nothing.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    webhook_endpoint_id: Uuid,
) -> sqlx::Result<Option<Endpoint>> {
    Ok(
        select(db, Some(tenant_id), Some(webhook_endpoint_id), None, None)
            .await?
            .pop(),
    )
}

/// Endpoints of a tenant and/or with an id, oldest first; after a (created_at, id) position and at
/// most `limit` of them when given.
async fn select(
    db: impl PgExecutor<'_>,
    tenant_id: Option<Uuid>,
    webhook_endpoint_id: Option<Uuid>,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: Option<i64>,
) -> sqlx::Result<Vec<Endpoint>> {
    let (after_at, after_id) = after.unzip();
    sqlx::query_as!(
        Endpoint,
        r#"SELECT webhook_endpoint_id, tenant_id, name, url, environment AS "environment: Environment",
                  event_types, enabled, disabled_reason, seed_signature, auth_kind, auth_sealed,
                  secret_sealed, previous_secret_sealed, previous_secret_until, failing_since,
                  failures_in_row, last_delivery_at, last_status, created_at
           FROM webhook_endpoint
           WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::uuid IS NULL OR webhook_endpoint_id = $2)
             AND ($3::timestamptz IS NULL OR (created_at, webhook_endpoint_id) > ($3, $4))
           ORDER BY created_at, webhook_endpoint_id
           LIMIT $5"#,
        tenant_id,
        webhook_endpoint_id,
        after_at,
        after_id,
        limit,
    )
    .fetch_all(db)
    .await
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    webhook_endpoint_id: Uuid,
    tenant_id: Uuid,
    settings: &EndpointSettings<'_>,
    secret_sealed: &[u8],
    created_by: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO webhook_endpoint (webhook_endpoint_id, tenant_id, name, url, environment,
             event_types, seed_signature, auth_kind, auth_sealed, secret_sealed, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        webhook_endpoint_id,
        tenant_id,
        settings.name,
        settings.url,
        settings.environment as Environment,
        settings.event_types,
        settings.seed_signature,
        settings.auth_kind,
        settings.auth_sealed,
        secret_sealed,
        created_by,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Changes the settings; `auth_sealed` is `None` to keep the stored credentials.
pub async fn update(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    webhook_endpoint_id: Uuid,
    settings: &EndpointSettings<'_>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE webhook_endpoint
         SET name = $3, url = $4, environment = $5, event_types = $6, seed_signature = $7,
             auth_kind = $8, auth_sealed = CASE WHEN $8 = 'none' THEN NULL ELSE coalesce($9, auth_sealed) END
         WHERE tenant_id = $1 AND webhook_endpoint_id = $2",
        tenant_id,
        webhook_endpoint_id,
        settings.name,
        settings.url,
        settings.environment as Environment,
        settings.event_types,
        settings.seed_signature,
        settings.auth_kind,
        settings.auth_sealed,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A new signing secret; the current one keeps signing too until `overlap_until`.
pub async fn roll_secret(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    webhook_endpoint_id: Uuid,
    secret_sealed: &[u8],
    previous_sealed: &[u8],
    overlap_until: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE webhook_endpoint
         SET secret_sealed = $3, previous_secret_sealed = $4, previous_secret_until = $5
         WHERE tenant_id = $1 AND webhook_endpoint_id = $2",
        tenant_id,
        webhook_endpoint_id,
        secret_sealed,
        previous_sealed,
        overlap_until,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the tenant's endpoint (its delivery log goes with it); false when it is not the tenant's.
pub async fn delete(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    webhook_endpoint_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM webhook_endpoint WHERE tenant_id = $1 AND webhook_endpoint_id = $2",
        tenant_id,
        webhook_endpoint_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up the deliveries to an endpoint that have not been sent yet.
pub async fn cancel_deliveries(
    db: impl PgExecutor<'_>,
    webhook_endpoint_id: Uuid,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE outbox_message
         SET failed_at = now(), last_error = 'the endpoint was deleted'
         WHERE kind = 'webhook' AND sent_at IS NULL AND failed_at IS NULL
           AND payload->>'endpoint_id' = $1::uuid::text",
        webhook_endpoint_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Endpoints of the tenant in creation order, after a cursor position: a page of the management API.
pub async fn page(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    after: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Endpoint>> {
    select(db, Some(tenant_id), None, after, Some(limit)).await
}

/// Turns an endpoint on (clearing its run of failures) or off, with the reason shown on its page.
pub async fn set_enabled(
    db: impl PgExecutor<'_>,
    webhook_endpoint_id: Uuid,
    enabled: bool,
    reason: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE webhook_endpoint
         SET enabled = $2, disabled_reason = $3,
             failing_since = CASE WHEN $2 THEN NULL ELSE failing_since END,
             failures_in_row = CASE WHEN $2 THEN 0 ELSE failures_in_row END
         WHERE webhook_endpoint_id = $1 AND enabled <> $2",
        webhook_endpoint_id,
        enabled,
        reason,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a delivery's outcome on the endpoint; returns since when it has been failing (`None`
/// after a success).
pub async fn record_outcome(
    db: impl PgExecutor<'_>,
    webhook_endpoint_id: Uuid,
    delivered: bool,
    status: Option<i32>,
) -> sqlx::Result<Option<OffsetDateTime>> {
    let failing_since = sqlx::query_scalar!(
        "UPDATE webhook_endpoint
         SET last_delivery_at = now(), last_status = $3,
             failing_since = CASE WHEN $2 THEN NULL ELSE coalesce(failing_since, now()) END,
             failures_in_row = CASE WHEN $2 THEN 0 ELSE failures_in_row + 1 END
         WHERE webhook_endpoint_id = $1
         RETURNING failing_since",
        webhook_endpoint_id,
        delivered,
        status,
    )
    .fetch_optional(db)
    .await?;
    Ok(failing_since.flatten())
}

/// Writes the event and one outbox message for every enabled endpoint of the tenant that wants
/// it (`environment` `None`: endpoints of both; `only` limits to one endpoint). Nothing is written
/// when no endpoint wants it. Returns how many deliveries were queued.
#[allow(clippy::too_many_arguments)]
pub async fn publish(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    event_id: &str,
    event_type: &str,
    environment: Option<Environment>,
    only: Option<Uuid>,
    created_at: &str,
    data: &Value,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"WITH target AS (
               SELECT webhook_endpoint_id FROM webhook_endpoint
               WHERE tenant_id = $1 AND enabled
                 AND ($3::text IS NULL OR environment = $3)
                 AND (event_types IS NULL OR $2 = ANY(event_types) OR $2 = 'webhook.test')
                 AND ($4::uuid IS NULL OR webhook_endpoint_id = $4)
           ), event AS (
               INSERT INTO webhook_event (webhook_event_id, tenant_id, event_type, payload)
               SELECT $5, t.tenant_id, $2,
                      jsonb_build_object('id', $5::text, 'type', $2::text, 'created_at', $6::text,
                                         'tenant', jsonb_build_object('id', t.tenant_id, 'slug', t.slug),
                                         'data', $7::jsonb)
               FROM tenant t
               WHERE t.tenant_id = $1 AND EXISTS (SELECT 1 FROM target)
               RETURNING webhook_event_id
           ), queued AS (
               INSERT INTO outbox_message (kind, payload, give_up_at)
               SELECT 'webhook', jsonb_build_object('endpoint_id', target.webhook_endpoint_id,
                                                    'event_id', event.webhook_event_id),
                      now() + interval '3 days'
               FROM target CROSS JOIN event
               RETURNING 1
           )
           SELECT count(*) AS "queued!" FROM queued"#,
        tenant_id,
        event_type,
        environment.map(Environment::as_str),
        only,
        event_id,
        created_at,
        data,
    )
    .fetch_one(db)
    .await
}

/// Queues an event again for one endpoint of the tenant; false when the event is not the tenant's.
pub async fn requeue(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    webhook_endpoint_id: Uuid,
    event_id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "INSERT INTO outbox_message (kind, payload, give_up_at)
         SELECT 'webhook', jsonb_build_object('endpoint_id', e.webhook_endpoint_id,
                                              'event_id', v.webhook_event_id),
                now() + interval '3 days'
         FROM webhook_endpoint e JOIN webhook_event v ON v.tenant_id = e.tenant_id
         WHERE e.tenant_id = $1 AND e.webhook_endpoint_id = $2 AND v.webhook_event_id = $3",
        tenant_id,
        webhook_endpoint_id,
        event_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An attempt as the endpoint's page lists it, with the event's body as it was sent.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub webhook_attempt_id: i64,
    pub webhook_event_id: String,
    pub event_type: String,
    pub attempted_at: OffsetDateTime,
    pub status: Option<i32>,
    pub duration_ms: i32,
    pub error: Option<String>,
    pub response: Option<String>,
    pub request_headers: Value,
    pub payload: Value,
}

/// A page of the endpoint's attempts, newest first; `failed_only`: those that did not succeed.
pub async fn attempts(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    webhook_endpoint_id: Uuid,
    failed_only: bool,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as!(
        Attempt,
        "SELECT a.webhook_attempt_id, a.webhook_event_id, v.event_type, a.attempted_at, a.status,
                a.duration_ms, a.error, a.response, a.request_headers, v.payload
         FROM webhook_attempt a
         JOIN webhook_event v USING (webhook_event_id)
         JOIN webhook_endpoint e USING (webhook_endpoint_id)
         WHERE e.tenant_id = $1 AND a.webhook_endpoint_id = $2
           AND (NOT $3 OR a.error IS NOT NULL)
         ORDER BY a.attempted_at DESC, a.webhook_attempt_id DESC
         LIMIT $4 OFFSET $5",
        tenant_id,
        webhook_endpoint_id,
        failed_only,
        limit,
        offset,
    )
    .fetch_all(db)
    .await
}

/// A key whose `key.rate_limited` event is due.
pub struct RateLimitedKey {
    pub api_key_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub environment: Environment,
    pub rate_limit: i32,
}

/// Claims the right to send `key.rate_limited` for these keys: at most once an hour per key.
pub async fn claim_rate_limited_events(
    db: impl PgExecutor<'_>,
    api_key_ids: &[Uuid],
) -> sqlx::Result<Vec<RateLimitedKey>> {
    sqlx::query_as!(
        RateLimitedKey,
        r#"UPDATE api_key SET rate_limited_event_at = now()
           WHERE api_key_id = ANY($1)
             AND (rate_limited_event_at IS NULL OR rate_limited_event_at < now() - interval '1 hour')
           RETURNING api_key_id, tenant_id, name, environment AS "environment: Environment", rate_limit"#,
        api_key_ids,
    )
    .fetch_all(db)
    .await
}

/// The tenant's admins who can be mailed: (email, name).
pub async fn admins(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> sqlx::Result<Vec<(String, String)>> {
    let rows = sqlx::query!(
        "SELECT u.email, u.display_name FROM app_user u
         JOIN membership m ON m.app_user_id = u.app_user_id
         WHERE m.tenant_id = $1 AND m.role = 'admin' AND u.disabled_at IS NULL
         ORDER BY u.email",
        tenant_id,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.email, row.display_name))
        .collect())
}
