//! The `audit_event` table.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who changed a row: a person, or the label of an actor that is not one (a management token, the
/// operator), which pages show in place of a person's name.
#[derive(Debug, Clone, Default)]
pub struct By {
    pub user: Option<Uuid>,
    pub label: Option<String>,
}

pub struct NewEvent<'a> {
    pub tenant_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub actor_token: Option<String>,
    pub action: &'a str,
    pub target: String,
    pub request_id: Option<&'a str>,
    pub client_ip: Option<String>,
    pub user_agent: Option<&'a str>,
    pub details: serde_json::Value,
    /// The key the event is about, if it is about one.
    pub api_key_id: Option<Uuid>,
}

pub async fn insert(db: impl PgExecutor<'_>, event: &NewEvent<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO audit_event (tenant_id, actor_id, action, target, request_id, client_ip, user_agent, details, actor_token, api_key_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
        event.tenant_id,
        event.actor_id,
        event.action,
        event.target,
        event.request_id,
        event.client_ip,
        event.user_agent,
        event.details,
        event.actor_token,
        event.api_key_id,
    )
    .execute(db)
    .await
    .map(drop)
}

#[derive(Debug, Clone)]
pub struct Event {
    pub audit_event_id: Uuid,
    pub actor_name: Option<String>,
    pub actor_email: Option<String>,
    /// The management API token that acted, when no person did.
    pub actor_token: Option<String>,
    pub action: String,
    pub target: String,
    pub request_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
    pub at: OffsetDateTime,
}

/// One page of a tenant's events, newest first; `action` filters when given.
pub async fn page(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    action: Option<&str>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Event>> {
    sqlx::query_as!(
        Event,
        r#"SELECT e.audit_event_id, u.display_name AS "actor_name?", u.email AS "actor_email?",
                  e.actor_token, e.action, e.target, e.request_id, e.client_ip, e.user_agent, e.details, e.at
           FROM audit_event e LEFT JOIN app_user u ON u.app_user_id = e.actor_id
           WHERE e.tenant_id = $1 AND ($2::text IS NULL OR e.action = $2)
           ORDER BY e.at DESC, e.audit_event_id
           LIMIT $3 OFFSET $4"#,
        tenant_id,
        action,
        limit,
        offset,
    )
    .fetch_all(db)
    .await
}

/// The actions that occur in a tenant's log, for the filter.
pub async fn actions(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT DISTINCT action FROM audit_event WHERE tenant_id = $1 ORDER BY action",
        tenant_id,
    )
    .fetch_all(db)
    .await
}

/// The changes made to a key after it was made (its settings edited, disabled, enabled), oldest first:
/// what a key's own columns do not remember.
pub async fn key_changes(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    api_key_id: Uuid,
) -> sqlx::Result<Vec<Event>> {
    sqlx::query_as!(
        Event,
        r#"SELECT e.audit_event_id, u.display_name AS "actor_name?", u.email AS "actor_email?",
                  e.actor_token, e.action, e.target, e.request_id, e.client_ip, e.user_agent, e.details, e.at
           FROM audit_event e LEFT JOIN app_user u ON u.app_user_id = e.actor_id
           WHERE e.tenant_id = $1 AND e.api_key_id = $2 AND e.action IN ('key.updated', 'key.disabled', 'key.enabled')
           ORDER BY e.at, e.audit_event_id"#,
        tenant_id,
        api_key_id,
    )
    .fetch_all(db)
    .await
}
