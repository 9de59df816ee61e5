//! The `tenant` and `membership` tables.

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::vocabulary::Role;

/// The unique constraint on `tenant.slug`.
pub const UNIQUE_SLUG: &str = "tenant_slug_key";

#[derive(Debug, Clone)]
pub struct Tenant {
    pub tenant_id: Uuid,
    pub slug: String,
    pub name: String,
    pub created_at: OffsetDateTime,
}

/// A tenant as one of its members sees it.
#[derive(Debug, Clone)]
pub struct Membership {
    pub membership_id: Uuid,
    pub tenant_id: Uuid,
    pub slug: String,
    pub name: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
    /// The platform's id for the tenant (set through the management API).
    pub external_id: Option<String>,
    /// Suspended by the operator: its keys answer TENANT_SUSPENDED.
    pub suspended: bool,
}

/// A member as the members page lists them.
#[derive(Debug, Clone)]
pub struct Member {
    pub membership_id: Uuid,
    pub app_user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
}

pub async fn insert(db: impl PgExecutor<'_>, slug: &str, name: &str) -> sqlx::Result<Tenant> {
    sqlx::query_as!(
        Tenant,
        "INSERT INTO tenant (slug, name) VALUES ($1, $2) RETURNING tenant_id, slug, name, created_at",
        slug,
        name,
    )
    .fetch_one(db)
    .await
}

/// Serialises membership changes of one tenant (the last-admin rule).
pub async fn lock_tenant(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT tenant_id FROM tenant WHERE tenant_id = $1 FOR UPDATE",
        tenant_id
    )
    .fetch_one(db)
    .await
    .map(drop)
}

pub async fn rename(db: impl PgExecutor<'_>, tenant_id: Uuid, name: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tenant SET name = $2 WHERE tenant_id = $1",
        tenant_id,
        name
    )
    .execute(db)
    .await
    .map(drop)
}

/// Marks the tenant deleted and revokes its pending invitations; its keys are revoked apart.
pub async fn mark_deleted(db: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tenant SET deleted_at = now() WHERE tenant_id = $1 AND deleted_at IS NULL",
        tenant_id
    )
    .execute(&mut *db)
    .await?;
    sqlx::query!(
        r#"UPDATE invitation SET revoked_at = now()
           WHERE tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL"#,
        tenant_id
    )
    .execute(&mut *db)
    .await
    .map(drop)
}

pub async fn insert_membership(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    app_user_id: Uuid,
    role: Role,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO membership (tenant_id, app_user_id, role) VALUES ($1, $2, $3)",
        tenant_id,
        app_user_id,
        role.as_str(),
    )
    .execute(db)
    .await
    .map(drop)
}

/// The user's membership in the tenant with this slug: the one query every tenant page starts with.
pub async fn membership(
    db: impl PgExecutor<'_>,
    slug: &str,
    app_user_id: Uuid,
) -> sqlx::Result<Option<Membership>> {
    sqlx::query_as!(
        Membership,
        r#"SELECT m.membership_id, t.tenant_id, t.slug, t.name, m.role AS "role: Role", m.created_at,
                  t.external_id, t.suspended_at IS NOT NULL AS "suspended!"
           FROM membership m JOIN tenant t USING (tenant_id)
           WHERE t.slug = $1 AND m.app_user_id = $2 AND t.deleted_at IS NULL"#,
        slug,
        app_user_id,
    )
    .fetch_optional(db)
    .await
}

/// Every tenant the user belongs to, by name.
pub async fn memberships_of(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
) -> sqlx::Result<Vec<Membership>> {
    sqlx::query_as!(
        Membership,
        r#"SELECT m.membership_id, t.tenant_id, t.slug, t.name, m.role AS "role: Role", m.created_at,
                  t.external_id, t.suspended_at IS NOT NULL AS "suspended!"
           FROM membership m JOIN tenant t USING (tenant_id)
           WHERE m.app_user_id = $1 AND t.deleted_at IS NULL
           ORDER BY lower(t.name), t.slug"#,
        app_user_id,
    )
    .fetch_all(db)
    .await
}

pub async fn members(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as!(
        Member,
        r#"SELECT m.membership_id, u.app_user_id, u.email, u.display_name, m.role AS "role: Role", m.created_at
           FROM membership m JOIN app_user u USING (app_user_id)
           WHERE m.tenant_id = $1
           ORDER BY CASE m.role WHEN 'admin' THEN 0 WHEN 'developer' THEN 1 ELSE 2 END,
                    lower(u.display_name), u.email"#,
        tenant_id,
    )
    .fetch_all(db)
    .await
}

pub async fn member(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    membership_id: Uuid,
) -> sqlx::Result<Option<Member>> {
    sqlx::query_as!(
        Member,
        r#"SELECT m.membership_id, u.app_user_id, u.email, u.display_name, m.role AS "role: Role", m.created_at
           FROM membership m JOIN app_user u USING (app_user_id)
           WHERE m.tenant_id = $1 AND m.membership_id = $2"#,
        tenant_id,
        membership_id,
    )
    .fetch_optional(db)
    .await
}

pub async fn member_by_email(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    email: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"SELECT m.membership_id FROM membership m JOIN app_user u USING (app_user_id)
           WHERE m.tenant_id = $1 AND u.email = $2"#,
        tenant_id,
        email,
    )
    .fetch_optional(db)
    .await
}

pub async fn count_admins(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM membership WHERE tenant_id = $1 AND role = 'admin'"#,
        tenant_id,
    )
    .fetch_one(db)
    .await
}

pub async fn set_role(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    membership_id: Uuid,
    role: Role,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE membership SET role = $3 WHERE tenant_id = $1 AND membership_id = $2",
        tenant_id,
        membership_id,
        role.as_str(),
    )
    .execute(db)
    .await
    .map(drop)
}

pub async fn delete_membership(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    membership_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM membership WHERE tenant_id = $1 AND membership_id = $2",
        tenant_id,
        membership_id,
    )
    .execute(db)
    .await
    .map(drop)
}

pub async fn by_id(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Tenant> {
    sqlx::query_as!(
        Tenant,
        "SELECT tenant_id, slug, name, created_at FROM tenant WHERE tenant_id = $1",
        tenant_id
    )
    .fetch_one(db)
    .await
}
