//! Signing in through an identity provider: the person is found by (issuer, subject); a new
//! account is made only from a verified email; an existing password account is linked only with
//! its password; identities are unlinked only while another way in remains.

use std::net::IpAddr;

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::OnUnique;
use crate::db::email_tokens;
use crate::db::identities::{self, Identity, NewIdentity};
use crate::db::users::{self, User};
use crate::domain::accounts::{self, DisplayName, Email, SignIn};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::mail::Mail;
use crate::domain::passwords::Passwords;
use crate::vocabulary::PublicUrl;

/// What a provider vouched for, after the ID token passed every check.
#[derive(Debug, Clone)]
pub struct ProviderIdentity<'a> {
    /// The configured provider name it came through.
    pub provider: &'a str,
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: Option<&'a str>,
    pub email_verified: bool,
    pub name: Option<&'a str>,
}

impl ProviderIdentity<'_> {
    fn row<'b>(&'b self, email: Option<&'b Email>) -> NewIdentity<'b> {
        NewIdentity {
            provider: self.provider,
            issuer: self.issuer,
            subject: self.subject,
            email: email.map(Email::as_str),
        }
    }
}

#[derive(Debug)]
pub enum SsoSignIn {
    /// A known identity: its user.
    Known(User),
    /// A first sign-in with a verified, unused email: a new account without a password.
    Created(User),
    /// A password account has this email: its password must be given once to link.
    NeedsPassword(User),
    /// An unverified password account held this (provider-verified) email: the address is taken
    /// over (pre-hijacking defence): its password stops working, its sessions end, and the
    /// identity is linked to it.
    TookOver(User),
    /// A first sign-in whose email the provider has not verified: no account is made from it.
    EmailNotVerified,
    /// A first sign-in without a usable email address.
    NoEmail,
    /// An account without a password (signing in through another identity) has this email:
    /// never taken over by a new subject.
    EmailTaken,
    Disabled,
}

pub async fn sign_in(pool: &PgPool, identity: &ProviderIdentity<'_>) -> DomainResult<SsoSignIn> {
    // Two first sign-ins can race; the loser finds what the winner made on its second look.
    for _ in 0..2 {
        if let Some(outcome) = try_sign_in(pool, identity).await? {
            return Ok(outcome);
        }
    }
    Err(DomainError::unexpected(
        "SSO sign-in kept conflicting with a concurrent one",
    ))
}

async fn try_sign_in(
    pool: &PgPool,
    identity: &ProviderIdentity<'_>,
) -> DomainResult<Option<SsoSignIn>> {
    let email = identity.email.and_then(|email| Email::parse(email).ok());
    let seen = email.as_ref().map(Email::as_str);
    if let Some(user) = identities::sign_in(pool, identity.issuer, identity.subject, seen).await? {
        return Ok(Some(if user.disabled_at.is_some() {
            SsoSignIn::Disabled
        } else {
            SsoSignIn::Known(user)
        }));
    }
    let Some(email) = email else {
        return Ok(Some(SsoSignIn::NoEmail));
    };
    if !identity.email_verified {
        return Ok(Some(SsoSignIn::EmailNotVerified));
    }
    if let Some(existing) = users::find_by_email(pool, email.as_str()).await? {
        return Ok(Some(if existing.disabled_at.is_some() {
            SsoSignIn::Disabled
        } else if existing.password_hash.is_some() && !existing.is_verified() {
            take_over(pool, identity, &existing, &email).await?
        } else if existing.password_hash.is_some() {
            SsoSignIn::NeedsPassword(existing)
        } else {
            SsoSignIn::EmailTaken
        }));
    }
    let name = display_name(identity.name, &email)
        .ok_or_else(|| DomainError::unexpected("no usable display name for a new SSO user"))?;
    let mut tx = pool.begin().await?;
    let created = async {
        let user = users::insert(&mut *tx, email.as_str(), name.as_str(), None).await?;
        identities::insert(&mut *tx, user.app_user_id, &identity.row(Some(&email))).await?;
        Ok::<_, sqlx::Error>(user)
    }
    .await
    .on_unique(&[users::UNIQUE_EMAIL, identities::UNIQUE_IDENTITY])?;
    match created {
        Ok(user) => {
            tx.commit().await?;
            Ok(Some(SsoSignIn::Created(user)))
        }
        Err(_) => {
            tx.rollback().await?;
            Ok(None)
        }
    }
}

/// Someone proved `email` at their provider while a password account that never proved it holds
/// the address (possibly a squatter's). The proven owner gets it: the unproven password, every
/// session and every pending mailed link of that account end, and the identity is linked.
async fn take_over(
    pool: &PgPool,
    identity: &ProviderIdentity<'_>,
    existing: &User,
    email: &Email,
) -> DomainResult<SsoSignIn> {
    let mut tx = pool.begin().await?;
    users::lock(&mut *tx, existing.app_user_id).await?;
    let name = display_name(identity.name, email)
        .ok_or_else(|| DomainError::unexpected("no usable display name for an SSO user"))?;
    if !users::drop_unproven_password(&mut *tx, existing.app_user_id, name.as_str()).await? {
        // Verified meanwhile (the link was followed): the usual linking with the password.
        return Ok(SsoSignIn::NeedsPassword(existing.clone()));
    }
    email_tokens::spend_all(&mut *tx, existing.app_user_id, email_tokens::VERIFY_EMAIL).await?;
    email_tokens::spend_all(&mut *tx, existing.app_user_id, email_tokens::RESET_PASSWORD).await?;
    identities::insert(&mut *tx, existing.app_user_id, &identity.row(Some(email))).await?;
    let user = users::find_by_id(&mut *tx, existing.app_user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    tx.commit().await?;
    Ok(SsoSignIn::TookOver(user))
}

/// The provider's name for the person if it is usable, else the email's local part.
fn display_name(claimed: Option<&str>, email: &Email) -> Option<DisplayName> {
    let usable = |name: &str| {
        let name: String = name
            .chars()
            .filter(|c| !c.is_control())
            .take(DisplayName::MAX_CHARS)
            .collect();
        DisplayName::parse(&name).ok()
    };
    let local = email.as_str().split('@').next().unwrap_or_default();
    claimed.and_then(usable).or_else(|| usable(local))
}

#[derive(Debug)]
pub enum Link {
    Linked(User),
    WrongPassword,
    Throttled {
        retry_after_secs: i64,
    },
    /// The identity was linked to some account in the meantime.
    AlreadyLinked,
}

/// What the "provider linked" notice names: the provider as people see it, and where to unlink.
pub struct LinkNotice<'a> {
    pub public_url: &'a PublicUrl,
    pub provider_display: &'a str,
}

/// Links a provider identity to the password account `user_id` after checking its password
/// (throttled like any sign-in), and mails the account a notice in the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn link_with_password(
    pool: &PgPool,
    passwords: &Passwords,
    user_id: Uuid,
    email: &str,
    password: &str,
    client: IpAddr,
    identity: &ProviderIdentity<'_>,
    notice: &LinkNotice<'_>,
) -> DomainResult<Link> {
    let user = match accounts::sign_in(pool, passwords, email, password, client).await? {
        SignIn::Success(user) if user.app_user_id == user_id => user,
        SignIn::Success(_) | SignIn::Invalid => return Ok(Link::WrongPassword),
        SignIn::Throttled { retry_after_secs } => return Ok(Link::Throttled { retry_after_secs }),
    };
    let email = identity.email.and_then(|email| Email::parse(email).ok());
    let mut tx = pool.begin().await?;
    if identities::insert(&mut *tx, user.app_user_id, &identity.row(email.as_ref()))
        .await
        .on_unique(&[identities::UNIQUE_IDENTITY])?
        .is_err()
    {
        return Ok(Link::AlreadyLinked);
    }
    // The provider vouched for this very address: it counts as confirmed.
    if identity.email_verified && email.as_ref().is_some_and(|e| e.as_str() == user.email) {
        users::mark_verified(&mut *tx, user.app_user_id).await?;
    }
    let mail = Mail::IdentityLinked {
        name: user.display_name.clone(),
        provider: notice.provider_display.to_owned(),
        link: notice.public_url.link("/account#identities"),
    };
    crate::domain::mail::send(&mut *tx, &user.email, mail).await?;
    tx.commit().await?;
    Ok(Link::Linked(user))
}

#[derive(Debug)]
pub enum Unlink {
    Unlinked(Identity),
    NotFound,
    /// It is the user's only way in (no password, no other identity).
    LastWayIn,
}

pub async fn unlink(pool: &PgPool, user: &User, user_identity_id: Uuid) -> DomainResult<Unlink> {
    let mut tx = pool.begin().await?;
    // Serialises unlinks of one user, so two at once cannot remove the last way in together.
    users::lock(&mut *tx, user.app_user_id).await?;
    let linked = identities::list_for_user(&mut *tx, user.app_user_id).await?;
    let Some(identity) = linked
        .iter()
        .find(|identity| identity.user_identity_id == user_identity_id)
        .cloned()
    else {
        return Ok(Unlink::NotFound);
    };
    if user.password_hash.is_none() && linked.len() < 2 {
        return Ok(Unlink::LastWayIn);
    }
    identities::delete_for_user(&mut *tx, user.app_user_id, user_identity_id).await?;
    tx.commit().await?;
    Ok(Unlink::Unlinked(identity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_users_name_comes_from_the_provider_or_the_email() {
        let email = Email::parse("ada.l@example.com").unwrap();
        let name = |claimed| display_name(claimed, &email).unwrap();
        assert_eq!(name(Some(" Ada ")).as_str(), "Ada");
        assert_eq!(name(None).as_str(), "ada.l");
        assert_eq!(name(Some("   ")).as_str(), "ada.l");
        let long = "x".repeat(200);
        assert_eq!(
            name(Some(&long)).as_str().chars().count(),
            DisplayName::MAX_CHARS
        );
        assert_eq!(name(Some("A\u{7}da")).as_str(), "Ada");
    }
}
