//! The `key_request` table: developers' requests for live keys, waiting for an admin.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Approved,
    Denied,
    Revealed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Revealed => "revealed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub key_request_id: Uuid,
    pub tenant_id: Uuid,
    pub requested_by: Option<Uuid>,
    pub requested_by_name: Option<String>,
    pub name: String,
    pub full_access: bool,
    pub scopes: Vec<String>,
    pub expires_at: Option<OffsetDateTime>,
    pub ip_allowlist: Vec<String>,
    pub reason: String,
    pub status: RequestStatus,
    pub decided_by_name: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub decision_reason: String,
    pub api_key_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
}

pub struct NewRequest<'a> {
    pub tenant_id: Uuid,
    pub requested_by: Option<Uuid>,
    pub name: &'a str,
    pub full_access: bool,
    pub scopes: &'a [String],
    pub expires_at: Option<OffsetDateTime>,
    pub ip_allowlist: &'a [String],
    pub reason: &'a str,
}

pub async fn insert(db: impl PgExecutor<'_>, request: &NewRequest<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        r#"INSERT INTO key_request (tenant_id, requested_by, name, full_access, scopes, expires_at,
                                    ip_allowlist, reason)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING key_request_id"#,
        request.tenant_id,
        request.requested_by,
        request.name,
        request.full_access,
        request.scopes,
        request.expires_at,
        request.ip_allowlist,
        request.reason,
    )
    .fetch_one(db)
    .await
}

/// Locks one request of a tenant for a change; false when there is no such request.
pub async fn lock(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    key_request_id: Uuid,
) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!(
        "SELECT key_request_id FROM key_request WHERE tenant_id = $1 AND key_request_id = $2 FOR UPDATE",
        tenant_id,
        key_request_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(found.is_some())
}

/// One request of a tenant, with the names of its requester and decider.
pub async fn get(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    key_request_id: Uuid,
) -> sqlx::Result<Option<KeyRequest>> {
    sqlx::query_as!(
        KeyRequest,
        r#"SELECT q.key_request_id, q.tenant_id, q.requested_by, r.display_name AS "requested_by_name?",
                  q.name, q.full_access, q.scopes, q.expires_at, q.ip_allowlist, q.reason,
                  q.status AS "status: RequestStatus", d.display_name AS "decided_by_name?",
                  q.decided_at, q.decision_reason, q.api_key_id, q.created_at
           FROM key_request q
           LEFT JOIN app_user r ON r.app_user_id = q.requested_by
           LEFT JOIN app_user d ON d.app_user_id = q.decided_by
           WHERE q.tenant_id = $1 AND q.key_request_id = $2"#,
        tenant_id,
        key_request_id,
    )
    .fetch_optional(db)
    .await
}

/// A tenant's requests in `status`, oldest first (pending ones wait longest at the top).
pub async fn list(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    status: RequestStatus,
) -> sqlx::Result<Vec<KeyRequest>> {
    sqlx::query_as!(
        KeyRequest,
        r#"SELECT q.key_request_id, q.tenant_id, q.requested_by, r.display_name AS "requested_by_name?",
                  q.name, q.full_access, q.scopes, q.expires_at, q.ip_allowlist, q.reason,
                  q.status AS "status: RequestStatus", NULL::text AS "decided_by_name?",
                  q.decided_at, q.decision_reason, q.api_key_id, q.created_at
           FROM key_request q
           LEFT JOIN app_user r ON r.app_user_id = q.requested_by
           WHERE q.tenant_id = $1 AND q.status = $2
           ORDER BY q.created_at
           LIMIT 100"#,
        tenant_id,
        status.as_str(),
    )
    .fetch_all(db)
    .await
}

pub async fn decide(
    db: impl PgExecutor<'_>,
    key_request_id: Uuid,
    status: RequestStatus,
    decided_by: Option<Uuid>,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE key_request SET status = $2, decided_by = $3, decided_at = now(), decision_reason = $4
           WHERE key_request_id = $1"#,
        key_request_id,
        status.as_str(),
        decided_by,
        reason,
    )
    .execute(db)
    .await
    .map(drop)
}

pub async fn mark_revealed(
    db: impl PgExecutor<'_>,
    key_request_id: Uuid,
    api_key_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE key_request SET status = 'revealed', api_key_id = $2 WHERE key_request_id = $1",
        key_request_id,
        api_key_id,
    )
    .execute(db)
    .await
    .map(drop)
}
