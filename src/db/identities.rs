//! The `user_identity` table: identities at OpenID Connect providers, linked to users.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::users::User;

/// The unique constraint on `user_identity (issuer, subject)`.
pub const UNIQUE_IDENTITY: &str = "user_identity_issuer_subject_key";

#[derive(Debug, Clone)]
pub struct Identity {
    pub user_identity_id: Uuid,
    pub app_user_id: Uuid,
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
}

pub struct NewIdentity<'a> {
    pub provider: &'a str,
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
}

/// The user behind (issuer, subject), marking the identity used and remembering its email.
pub async fn sign_in(
    db: impl PgExecutor<'_>,
    issuer: &str,
    subject: &str,
    email: Option<&str>,
) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"WITH used AS (
               UPDATE user_identity
               SET last_used_at = now(), email = coalesce($3, email)
               WHERE issuer = $1 AND subject = $2
               RETURNING app_user_id
           )
           SELECT u.app_user_id, u.email, u.display_name, u.password_hash, u.session_generation,
                  u.created_at, u.password_changed_at, u.disabled_at, u.email_verified_at, u.expiry_reminders, u.time_zone
           FROM app_user u JOIN used USING (app_user_id)"#,
        issuer,
        subject,
        email,
    )
    .fetch_optional(db)
    .await
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
    identity: &NewIdentity<'_>,
) -> sqlx::Result<Identity> {
    sqlx::query_as!(
        Identity,
        r#"INSERT INTO user_identity (app_user_id, provider, issuer, subject, email)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING user_identity_id, app_user_id, provider, issuer, subject, email,
                     created_at, last_used_at"#,
        app_user_id,
        identity.provider,
        identity.issuer,
        identity.subject,
        identity.email,
    )
    .fetch_one(db)
    .await
}

pub async fn list_for_user(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
) -> sqlx::Result<Vec<Identity>> {
    sqlx::query_as!(
        Identity,
        r#"SELECT user_identity_id, app_user_id, provider, issuer, subject, email,
                  created_at, last_used_at
           FROM user_identity WHERE app_user_id = $1
           ORDER BY created_at"#,
        app_user_id,
    )
    .fetch_all(db)
    .await
}

/// Deletes one of this user's identities; false when the user has no such identity.
pub async fn delete_for_user(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
    user_identity_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM user_identity WHERE app_user_id = $1 AND user_identity_id = $2",
        app_user_id,
        user_identity_id,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
