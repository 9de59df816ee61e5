//! The `app_user` table.

use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// The unique constraint on `app_user.email`.
pub const UNIQUE_EMAIL: &str = "app_user_email_key";

#[derive(Debug, Clone)]
pub struct User {
    pub app_user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub session_generation: i32,
    pub created_at: OffsetDateTime,
    pub password_changed_at: Option<OffsetDateTime>,
    pub disabled_at: Option<OffsetDateTime>,
    /// When the address was proven (a mailed link, a reset, or a provider's verified email).
    pub email_verified_at: Option<OffsetDateTime>,
    /// Whether key-expiry reminders are wanted.
    pub expiry_reminders: bool,
    /// The IANA zone the portal's times are shown in.
    pub time_zone: String,
}

impl User {
    pub fn is_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

/// A new account. One without a password is made only from a provider-verified email, so it
/// starts verified; a password account starts unverified.
pub async fn insert(
    db: impl PgExecutor<'_>,
    email: &str,
    display_name: &str,
    password_hash: Option<&str>,
) -> sqlx::Result<User> {
    sqlx::query_as!(
        User,
        r#"INSERT INTO app_user (email, display_name, password_hash, password_changed_at, email_verified_at)
           VALUES ($1, $2, $3, CASE WHEN $3::text IS NULL THEN NULL ELSE now() END,
                   CASE WHEN $3::text IS NULL THEN now() END)
           RETURNING app_user_id, email, display_name, password_hash, session_generation,
                     created_at, password_changed_at, disabled_at, email_verified_at, expiry_reminders, time_zone"#,
        email,
        display_name,
        password_hash,
    )
    .fetch_one(db)
    .await
}

pub async fn find_by_email(db: impl PgExecutor<'_>, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"SELECT app_user_id, email, display_name, password_hash, session_generation,
                  created_at, password_changed_at, disabled_at, email_verified_at, expiry_reminders, time_zone
           FROM app_user WHERE email = $1"#,
        email,
    )
    .fetch_optional(db)
    .await
}

pub async fn find_by_id(db: impl PgExecutor<'_>, app_user_id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"SELECT app_user_id, email, display_name, password_hash, session_generation,
                  created_at, password_changed_at, disabled_at, email_verified_at, expiry_reminders, time_zone
           FROM app_user WHERE app_user_id = $1"#,
        app_user_id,
    )
    .fetch_optional(db)
    .await
}

/// Sets a new password hash and bumps the session generation, which ends every other session.
/// Returns the new generation.
pub async fn change_password(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
    password_hash: &str,
) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        r#"UPDATE app_user
           SET password_hash = $2, password_changed_at = now(),
               session_generation = session_generation + 1
           WHERE app_user_id = $1
           RETURNING session_generation"#,
        app_user_id,
        password_hash,
    )
    .fetch_one(db)
    .await
}

/// Locks the user's row until the transaction ends, to serialise changes to how they sign in.
pub async fn lock(db: impl PgExecutor<'_>, app_user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT 1 AS one FROM app_user WHERE app_user_id = $1 FOR UPDATE",
        app_user_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(())
}

/// Records that the user proved their address.
pub async fn mark_verified(db: impl PgExecutor<'_>, app_user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE app_user SET email_verified_at = coalesce(email_verified_at, now()) WHERE app_user_id = $1",
        app_user_id,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Switches to a verified new address.
pub async fn change_email(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
    email: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE app_user SET email = $2, email_verified_at = now() WHERE app_user_id = $1",
        app_user_id,
        email,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_profile(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
    display_name: &str,
    time_zone: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE app_user SET display_name = $2, time_zone = $3 WHERE app_user_id = $1",
        app_user_id,
        display_name,
        time_zone,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Turns key-expiry reminders on or off.
pub async fn set_expiry_reminders(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
    wanted: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE app_user SET expiry_reminders = $2 WHERE app_user_id = $1",
        app_user_id,
        wanted,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Takes an unverified password account's address over for someone who proved it elsewhere:
/// the password stops working, every session ends, the name becomes theirs. Returns false when
/// the account was verified meanwhile (nothing changed).
pub async fn drop_unproven_password(
    db: impl PgExecutor<'_>,
    app_user_id: Uuid,
    display_name: &str,
) -> sqlx::Result<bool> {
    let changed = sqlx::query!(
        r#"UPDATE app_user
           SET password_hash = NULL, password_changed_at = NULL, display_name = $2,
               session_generation = session_generation + 1, email_verified_at = now()
           WHERE app_user_id = $1 AND email_verified_at IS NULL"#,
        app_user_id,
        display_name,
    )
    .execute(db)
    .await?;
    Ok(changed.rows_affected() == 1)
}
