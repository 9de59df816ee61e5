//! Single-use links mailed to people: password reset (30 minutes) and the proof that an address is
//! theirs (24 hours; at sign-up, on request, and before an email change). Tokens are 43 base62
//! characters (about 256 bits) and kept only as SHA-256.

use std::net::IpAddr;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};

use crate::db::OnUnique;
use crate::db::email_tokens::{self, RESET_PASSWORD, VERIFY_EMAIL};
use crate::db::login_failures;
use crate::db::users::{self, User};
use crate::domain::accounts::{Email, NewPassword};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::mail::{self, Mail};
use crate::domain::passwords::Passwords;
use crate::domain::throttle::{self, Subject};
use crate::domain::tokens::{random_token, sha256};
use crate::vocabulary::PublicUrl;

pub const RESET_LIFETIME: Duration = Duration::from_secs(30 * 60);
pub const VERIFY_LIFETIME: Duration = Duration::from_secs(24 * 3600);
const TOKEN_CHARS: usize = 43;

/// Where the links lead.
pub const RESET_PATH: &str = "/password/reset";
pub const VERIFY_PATH: &str = "/account/verify";

/// The answer to "forgot password": `Sent` whether or not the address has an account.
#[derive(Debug)]
pub enum ResetRequest {
    Sent,
    Throttled { retry_after_secs: i64 },
}

/// Mails a reset link if `email` belongs to an account; throttled per address and per client.
pub async fn request_reset(
    pool: &PgPool,
    public_url: &PublicUrl,
    email: &str,
    client: IpAddr,
) -> DomainResult<ResetRequest> {
    let folded =
        Email::parse(email).map_or_else(|_| email.trim().to_lowercase(), |e| e.as_str().to_owned());
    let subjects = [Subject::ResetAccount(&folded), Subject::ResetClient(client)];
    if let Some(retry_after_secs) = throttle::exceeded(pool, &subjects).await? {
        return Ok(ResetRequest::Throttled { retry_after_secs });
    }
    throttle::record(pool, &subjects).await?;
    let user = users::find_by_email(pool, &folded)
        .await?
        .filter(|user| user.disabled_at.is_none());
    if let Some(user) = user {
        let token = random_token(TOKEN_CHARS);
        let mut tx = pool.begin().await?;
        email_tokens::insert(
            &mut *tx,
            &sha256(&token),
            user.app_user_id,
            RESET_PASSWORD,
            &user.email,
            RESET_LIFETIME,
        )
        .await?;
        let link = public_url.link(&format!("{RESET_PATH}?token={token}"));
        mail::send(
            &mut *tx,
            &user.email,
            Mail::PasswordReset {
                name: user.display_name.clone(),
                link,
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(ResetRequest::Sent)
}

/// Whether a reset link can still be used (to show its form or say it cannot).
pub async fn reset_link_is_usable(pool: &PgPool, token: &str) -> DomainResult<bool> {
    Ok(email_tokens::is_usable(pool, &sha256(token), RESET_PASSWORD).await?)
}

/// Why a reset did not happen.
#[derive(Debug)]
pub enum ResetRefused {
    /// Used, expired, or never issued.
    BadLink,
    /// The new password breaks the policy (the link stays usable).
    Rejected(String),
}

/// Sets a new password through a reset link: the link is used up, every session of the user ends,
/// the address counts as verified, and a "password changed" notice is mailed.
pub async fn reset_password(
    pool: &PgPool,
    passwords: &Passwords,
    public_url: &PublicUrl,
    token: &str,
    new_password: &str,
) -> DomainResult<Result<User, ResetRefused>> {
    let mut tx = pool.begin().await?;
    let Some(spent) = email_tokens::spend(&mut *tx, &sha256(token), RESET_PASSWORD).await? else {
        return Ok(Err(ResetRefused::BadLink));
    };
    let user = users::find_by_id(&mut *tx, spent.app_user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if user.email != spent.email || user.disabled_at.is_some() {
        return Ok(Err(ResetRefused::BadLink));
    }
    let new = match NewPassword::parse(new_password, &[&user.email, &user.display_name]) {
        Ok(new) => new,
        // Dropping the transaction gives the link back.
        Err(why) => return Ok(Err(ResetRefused::Rejected(why))),
    };
    let hash = passwords.hash(new.expose()).await?;
    users::change_password(&mut *tx, user.app_user_id, &hash).await?;
    users::mark_verified(&mut *tx, user.app_user_id).await?;
    email_tokens::spend_all(&mut *tx, user.app_user_id, RESET_PASSWORD).await?;
    login_failures::clear(&mut *tx, &Subject::Account(&user.email).key()).await?;
    mail_password_changed(&mut tx, public_url, &user).await?;
    tx.commit().await?;
    Ok(Ok(user))
}

/// The "your password was changed" notice (a security notice: always sent).
pub async fn mail_password_changed(
    db: &mut PgConnection,
    public_url: &PublicUrl,
    user: &User,
) -> DomainResult<()> {
    let notice = Mail::PasswordChanged {
        name: user.display_name.clone(),
        link: public_url.link("/password/forgot"),
    };
    mail::send(db, &user.email, notice).await?;
    Ok(())
}

/// Mails a link proving `email` is the user's (their address, or the one they want instead).
pub async fn send_verification(
    db: &mut PgConnection,
    public_url: &PublicUrl,
    user: &User,
    email: &str,
) -> DomainResult<()> {
    let token = random_token(TOKEN_CHARS);
    email_tokens::insert(
        &mut *db,
        &sha256(&token),
        user.app_user_id,
        VERIFY_EMAIL,
        email,
        VERIFY_LIFETIME,
    )
    .await?;
    let link = public_url.link(&format!("{VERIFY_PATH}?token={token}"));
    mail::send(
        &mut *db,
        email,
        Mail::VerifyEmail {
            name: user.display_name.clone(),
            link,
        },
    )
    .await?;
    Ok(())
}

/// Sends the verification mail again, at most 3 times in 15 minutes: `Err(seconds to wait)`.
pub async fn resend_verification(
    pool: &PgPool,
    public_url: &PublicUrl,
    user: &User,
) -> DomainResult<Result<(), i64>> {
    let subjects = [Subject::VerifyResend(user.app_user_id)];
    if let Some(wait) = throttle::exceeded(pool, &subjects).await? {
        return Ok(Err(wait));
    }
    throttle::record(pool, &subjects).await?;
    let mut tx = pool.begin().await?;
    send_verification(&mut tx, public_url, user, &user.email).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// What following a verification link did.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// The account's address is now verified.
    Address,
    /// The account switched to the new address; the old one was told.
    Changed,
    /// Used, expired or never issued.
    BadLink,
    /// Another account took the new address in the meantime.
    Taken,
}

pub async fn verify_email(pool: &PgPool, token: &str) -> DomainResult<Verified> {
    let mut tx = pool.begin().await?;
    let Some(spent) = email_tokens::spend(&mut *tx, &sha256(token), VERIFY_EMAIL).await? else {
        return Ok(Verified::BadLink);
    };
    let user = users::find_by_id(&mut *tx, spent.app_user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let outcome = if user.email == spent.email {
        users::mark_verified(&mut *tx, user.app_user_id).await?;
        Verified::Address
    } else {
        let switched = users::change_email(&mut *tx, user.app_user_id, &spent.email)
            .await
            .on_unique(&[users::UNIQUE_EMAIL])?;
        if switched.is_err() {
            return Ok(Verified::Taken);
        }
        mail::send(
            &mut *tx,
            &user.email,
            Mail::EmailChanged {
                name: user.display_name.clone(),
                new_email: spent.email.clone(),
            },
        )
        .await?;
        Verified::Changed
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Why an email change was not started.
#[derive(Debug)]
pub enum EmailChangeRefused {
    WrongPassword,
    BadEmail(String),
}

/// Starts an email change: checks the password, then mails the new address a link. The address
/// switches only when that link is followed.
pub async fn request_email_change(
    pool: &PgPool,
    passwords: &Passwords,
    public_url: &PublicUrl,
    user: &User,
    password: &str,
    new_email: &str,
) -> DomainResult<Result<String, EmailChangeRefused>> {
    if !passwords
        .verify(password, user.password_hash.as_deref())
        .await?
    {
        return Ok(Err(EmailChangeRefused::WrongPassword));
    }
    let email = match Email::parse(new_email) {
        Ok(email) if email.as_str() == user.email => {
            return Ok(Err(EmailChangeRefused::BadEmail(
                "That is already your address.".into(),
            )));
        }
        Ok(email) => email,
        Err(why) => return Ok(Err(EmailChangeRefused::BadEmail(why))),
    };
    // Whether another account holds it is not said here (that would tell who has an account);
    // the switch itself refuses a taken address.
    let mut tx = pool.begin().await?;
    send_verification(&mut tx, public_url, user, email.as_str()).await?;
    tx.commit().await?;
    Ok(Ok(email.as_str().to_owned()))
}
