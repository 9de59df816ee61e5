//! The `invitation` table.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::audit::By;

use crate::db::tenants::Tenant;
use crate::vocabulary::Role;

/// One pending invitation per tenant and email.
pub const UNIQUE_PENDING_INVITATION: &str = "invitation_pending_key";

#[derive(Debug, Clone)]
pub struct Invitation {
    pub invitation_id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by_name: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub accepted_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    email: &str,
    role: Role,
    token_hash: &[u8],
    invited_by: &By,
    expires_at: OffsetDateTime,
) -> sqlx::Result<Invitation> {
    sqlx::query_as!(
        Invitation,
        r#"INSERT INTO invitation (tenant_id, email, role, token_hash, invited_by, expires_at, invited_by_label)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           RETURNING invitation_id, tenant_id, email, role AS "role: Role",
                     COALESCE((SELECT display_name FROM app_user WHERE app_user_id = $5), $7) AS invited_by_name,
                     created_at, expires_at, accepted_at, revoked_at"#,
        tenant_id,
        email,
        role.as_str(),
        token_hash,
        invited_by.user,
        expires_at,
        invited_by.label,
    )
    .fetch_one(db)
    .await
}

/// Open invitations of a tenant (not accepted, not revoked; expired ones included, marked by the page).
pub async fn pending(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Vec<Invitation>> {
    sqlx::query_as!(
        Invitation,
        r#"SELECT i.invitation_id, i.tenant_id, i.email, i.role AS "role: Role",
                  COALESCE(u.display_name, i.invited_by_label) AS "invited_by_name?", i.created_at, i.expires_at,
                  i.accepted_at, i.revoked_at
           FROM invitation i LEFT JOIN app_user u ON u.app_user_id = i.invited_by
           WHERE i.tenant_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL
           ORDER BY i.created_at DESC"#,
        tenant_id,
    )
    .fetch_all(db)
    .await
}

pub async fn revoke(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    invitation_id: Uuid,
    revoked_by: Option<Uuid>,
) -> sqlx::Result<Option<Invitation>> {
    sqlx::query_as!(
        Invitation,
        r#"UPDATE invitation SET revoked_at = now(), revoked_by = $3
           WHERE tenant_id = $1 AND invitation_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL
           RETURNING invitation_id, tenant_id, email, role AS "role: Role", NULL::text AS "invited_by_name?",
                     created_at, expires_at, accepted_at, revoked_at"#,
        tenant_id,
        invitation_id,
        revoked_by,
    )
    .fetch_optional(db)
    .await
}

/// An invitation row joined with its tenant.
struct InvitationRow {
    invitation_id: Uuid,
    tenant_id: Uuid,
    email: String,
    role: Role,
    invited_by_name: Option<String>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    accepted_at: Option<OffsetDateTime>,
    revoked_at: Option<OffsetDateTime>,
    slug: String,
    name: String,
    tenant_created_at: OffsetDateTime,
}

impl InvitationRow {
    fn split(self) -> (Invitation, Tenant) {
        (
            Invitation {
                invitation_id: self.invitation_id,
                tenant_id: self.tenant_id,
                email: self.email,
                role: self.role,
                invited_by_name: self.invited_by_name,
                created_at: self.created_at,
                expires_at: self.expires_at,
                accepted_at: self.accepted_at,
                revoked_at: self.revoked_at,
            },
            Tenant {
                tenant_id: self.tenant_id,
                slug: self.slug,
                name: self.name,
                created_at: self.tenant_created_at,
            },
        )
    }
}

pub async fn by_token_hash(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<(Invitation, Tenant)>> {
    let row = sqlx::query_as!(
        InvitationRow,
        r#"SELECT i.invitation_id, i.tenant_id, i.email, i.role AS "role: Role", u.display_name AS "invited_by_name?",
                  i.created_at, i.expires_at, i.accepted_at, i.revoked_at,
                  t.slug, t.name, t.created_at AS tenant_created_at
           FROM invitation i JOIN tenant t USING (tenant_id)
           LEFT JOIN app_user u ON u.app_user_id = i.invited_by
           WHERE i.token_hash = $1"#,
        token_hash,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(InvitationRow::split))
}

/// As `invitation_by_token_hash`, locking the invitation until the transaction ends.
pub async fn by_token_hash_for_update(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
) -> sqlx::Result<Option<(Invitation, Tenant)>> {
    let row = sqlx::query_as!(
        InvitationRow,
        r#"SELECT i.invitation_id, i.tenant_id, i.email, i.role AS "role: Role", NULL::text AS "invited_by_name?",
                  i.created_at, i.expires_at, i.accepted_at, i.revoked_at,
                  t.slug, t.name, t.created_at AS tenant_created_at
           FROM invitation i JOIN tenant t USING (tenant_id)
           WHERE i.token_hash = $1
           FOR UPDATE OF i"#,
        token_hash,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(InvitationRow::split))
}

pub async fn mark_accepted(
    db: impl PgExecutor<'_>,
    invitation_id: Uuid,
    accepted_by: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE invitation SET accepted_at = now(), accepted_by = $2 WHERE invitation_id = $1",
        invitation_id,
        accepted_by,
    )
    .execute(db)
    .await
    .map(drop)
}
