//! The `email_token` table: single-use links mailed to people (password reset, address proof).

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::db::outbox::interval;

/// What a token is for, as stored in `email_token.purpose`.
pub const RESET_PASSWORD: &str = "reset_password";
pub const VERIFY_EMAIL: &str = "verify_email";

/// Whom a spent token was for.
#[derive(Debug)]
pub struct Spent {
    pub app_user_id: Uuid,
    pub email: String,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    app_user_id: Uuid,
    purpose: &str,
    email: &str,
    lifetime: std::time::Duration,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO email_token (token_hash, app_user_id, purpose, email, expires_at)
           VALUES ($1, $2, $3, $4, now() + $5::interval)"#,
        token_hash,
        app_user_id,
        purpose,
        email,
        interval(lifetime),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the token would be accepted now (for showing its form).
pub async fn is_usable(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    purpose: &str,
) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT 1 AS "one!" FROM email_token
           WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()"#,
        token_hash,
        purpose,
    )
    .fetch_optional(db)
    .await?
    .is_some())
}

/// Uses the token up: only one caller ever gets it back, and only before it expires.
pub async fn spend(
    db: impl PgExecutor<'_>,
    token_hash: &[u8],
    purpose: &str,
) -> sqlx::Result<Option<Spent>> {
    sqlx::query_as!(
        Spent,
        r#"UPDATE email_token SET used_at = now()
           WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
           RETURNING app_user_id, email"#,
        token_hash,
        purpose,
    )
    .fetch_optional(db)
    .await
}

/// Uses up every other open token of the user for `purpose` (a reset ends older reset links).
pub async fn spend_all(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
    purpose: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE email_token SET used_at = now() WHERE app_user_id = $1 AND purpose = $2 AND used_at IS NULL",
        app_user_id,
        purpose,
    )
    .execute(db)
    .await?;
    Ok(())
}
