//! Who hears about keys by mail: the `key_expiry_reminder` table (which expiry reminders keys
//! have had, and who gets them), and whom to tell when someone else rolls or revokes a key.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::vocabulary::Environment;

/// A reminder this instance claimed: no other instance sends it.
#[derive(Debug)]
pub struct DueReminder {
    pub api_key_id: Uuid,
    pub days_ahead: i32,
    pub key_name: String,
    pub live: bool,
    pub expires_at: OffsetDateTime,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub created_by: Option<Uuid>,
}

/// Claims the reminders now due: for each active key expiring within 30, 7 or 1 days, the nearest
/// of those not yet recorded. Recorded in the same statement, so each goes out once.
pub async fn claim_due(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<DueReminder>> {
    sqlx::query_as!(
        DueReminder,
        r#"WITH candidate AS (
               SELECT k.api_key_id, min(d.days) AS days
               FROM api_key k CROSS JOIN unnest(ARRAY[30, 7, 1]) AS d(days)
               WHERE k.revoked_at IS NULL AND k.rolled_at IS NULL
                 AND k.expires_at > now() AND k.expires_at <= now() + make_interval(days => d.days)
               GROUP BY k.api_key_id
           ), inserted AS (
               INSERT INTO key_expiry_reminder (api_key_id, days_ahead)
               SELECT api_key_id, days FROM candidate
               ON CONFLICT DO NOTHING
               RETURNING api_key_id, days_ahead
           )
           SELECT i.api_key_id AS "api_key_id!", i.days_ahead AS "days_ahead!", k.name AS key_name,
                  k.environment = 'live' AS "live!", k.expires_at AS "expires_at!",
                  t.tenant_id, t.slug AS tenant_slug, t.name AS tenant_name, k.created_by
           FROM inserted i
           JOIN api_key k ON k.api_key_id = i.api_key_id
           JOIN tenant t ON t.tenant_id = k.tenant_id"#,
    )
    .fetch_all(db)
    .await
}

/// A key that has just passed its expiry, claimed for its `key.expired` event.
#[derive(Debug)]
pub struct ExpiredKey {
    pub api_key_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub environment: Environment,
    pub expires_at: OffsetDateTime,
}

/// Claims up to `limit` keys that passed their expiry and were not announced yet (neither revoked
/// nor rolled: those had their own event), marking them in the same statement; locked rows are
/// skipped, so instances sweeping at once never claim one key twice.
pub async fn claim_expired(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<ExpiredKey>> {
    sqlx::query_as!(
        ExpiredKey,
        r#"WITH due AS (
               SELECT k.api_key_id FROM api_key k
               JOIN tenant t ON t.tenant_id = k.tenant_id AND t.deleted_at IS NULL
               WHERE k.expired_event_at IS NULL AND k.expires_at IS NOT NULL AND k.expires_at <= now()
                 AND k.revoked_at IS NULL AND k.rolled_at IS NULL
               ORDER BY k.expires_at
               LIMIT $1
               FOR UPDATE OF k SKIP LOCKED
           )
           UPDATE api_key k SET expired_event_at = now()
           FROM due WHERE k.api_key_id = due.api_key_id
           RETURNING k.api_key_id, k.tenant_id, k.name, k.environment AS "environment: Environment",
                     k.expires_at AS "expires_at!""#,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Who is reminded: the key's creator (while still a member) and, for live keys, the tenant's
/// admins; only people who still want reminders and are not disabled.
pub async fn recipients(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    created_by: Option<Uuid>,
    live: bool,
) -> sqlx::Result<Vec<(String, String)>> {
    let rows = sqlx::query!(
        r#"SELECT DISTINCT u.email, u.display_name FROM app_user u
           WHERE u.expiry_reminders AND u.disabled_at IS NULL
             AND ((u.app_user_id = $2 AND EXISTS (
                      SELECT 1 FROM membership m WHERE m.tenant_id = $1 AND m.app_user_id = u.app_user_id))
                  OR ($3 AND u.app_user_id IN (
                      SELECT m.app_user_id FROM membership m WHERE m.tenant_id = $1 AND m.role = 'admin')))
           ORDER BY u.email"#,
        tenant_id,
        created_by,
        live,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.email, row.display_name))
        .collect())
}

/// What a "your key was changed" notice needs: the creator (while a member and not disabled),
/// the tenant, and who changed it.
#[derive(Debug)]
pub struct KeyNoticeFacts {
    pub email: String,
    pub name: String,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub actor_name: Option<String>,
}

pub async fn key_notice_facts(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    creator: Uuid,
    actor: Option<Uuid>,
) -> sqlx::Result<Option<KeyNoticeFacts>> {
    sqlx::query_as!(
        KeyNoticeFacts,
        r#"SELECT u.email, u.display_name AS name, t.slug AS tenant_slug, t.name AS tenant_name,
                  a.display_name AS "actor_name?"
           FROM app_user u
           JOIN membership m ON m.app_user_id = u.app_user_id AND m.tenant_id = $1
           JOIN tenant t ON t.tenant_id = $1
           LEFT JOIN app_user a ON a.app_user_id = $3
           WHERE u.app_user_id = $2 AND u.disabled_at IS NULL"#,
        tenant_id,
        creator,
        actor,
    )
    .fetch_optional(db)
    .await
}
