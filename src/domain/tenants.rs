//! Tenants, roles, memberships and invitations: the rules, including "every tenant keeps an admin".

use std::net::IpAddr;

use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use super::tokens::{random_token, sha256};
use crate::db::OnUnique;
use crate::db::audit::{self, NewEvent};
use crate::db::tenants::{self as db_tenants, Invitation, Tenant};
use crate::db::users::User;
use crate::domain::accounts::Email;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::vocabulary::Role;

/// How long an invitation link works.
pub const INVITATION_LIFETIME: Duration = Duration::days(7);

/// A tenant's display name.
#[derive(Debug, Clone)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(input: &str) -> Result<Self, String> {
        let name: String = input.trim().nfc().collect();
        if name.is_empty() {
            return Err("Enter a name for the tenant.".into());
        }
        if name.chars().count() > 80 {
            return Err("Tenant names are at most 80 characters.".into());
        }
        if name.chars().any(char::is_control) {
            return Err("Tenant names cannot contain control characters.".into());
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The tenant's name in URLs: 3-40 lowercase letters, digits and inner hyphens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

/// Slugs that would read as something else in a URL.
const RESERVED_SLUGS: [&str; 8] = [
    "new", "admin", "api", "static", "settings", "account", "signin", "signup",
];

impl Slug {
    pub fn parse(input: &str) -> Result<Self, String> {
        let slug = input.trim().to_ascii_lowercase();
        let valid_chars = slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !(3..=40).contains(&slug.len())
            || !valid_chars
            || slug.starts_with('-')
            || slug.ends_with('-')
        {
            return Err(
                "Use 3 to 40 lowercase letters, digits and hyphens, not starting or ending with a hyphen."
                    .into(),
            );
        }
        if RESERVED_SLUGS.contains(&slug.as_str()) {
            return Err(format!("\"{slug}\" is reserved. Choose another."));
        }
        Ok(Self(slug))
    }

    /// A slug made from a name: "Acme Rockets, Inc." -> "acme-rockets-inc".
    pub fn from_name(name: &str) -> String {
        let mut slug = String::new();
        for c in name.nfkd().filter(char::is_ascii) {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        let mut slug: String = slug.trim_matches('-').chars().take(40).collect();
        while slug.ends_with('-') {
            slug.pop();
        }
        slug
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who did something, from where: what every audit event records.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Uuid,
    pub request_id: String,
    pub client_ip: IpAddr,
    pub user_agent: Option<String>,
}

impl Actor {
    pub fn event<'a>(
        &'a self,
        tenant_id: Uuid,
        action: &'a str,
        target: String,
        details: serde_json::Value,
    ) -> NewEvent<'a> {
        NewEvent {
            tenant_id,
            actor_id: Some(self.user_id),
            action,
            target,
            request_id: Some(&self.request_id),
            client_ip: Some(self.client_ip.to_string()),
            user_agent: self.user_agent.as_deref(),
            details,
        }
    }
}

/// What went wrong with a new tenant, per field.
#[derive(Debug, Default)]
pub struct TenantErrors {
    pub name: Option<String>,
    pub slug: Option<String>,
}

/// Creates a tenant with `creator` as its first admin.
pub async fn create_tenant(
    pool: &PgPool,
    creator: &User,
    name: &str,
    slug: &str,
    actor: &Actor,
) -> DomainResult<Result<Tenant, TenantErrors>> {
    let mut errors = TenantErrors::default();
    let name = TenantName::parse(name)
        .map_err(|e| errors.name = Some(e))
        .ok();
    let slug_input = if slug.trim().is_empty() {
        name.as_ref()
            .map(|n| Slug::from_name(n.as_str()))
            .unwrap_or_default()
    } else {
        slug.to_owned()
    };
    let slug = Slug::parse(&slug_input)
        .map_err(|e| errors.slug = Some(e))
        .ok();
    let (Some(name), Some(slug)) = (name, slug) else {
        return Ok(Err(errors));
    };
    let mut tx = pool.begin().await?;
    let Ok(tenant) = db_tenants::insert(&mut *tx, slug.as_str(), name.as_str())
        .await
        .on_unique(&[db_tenants::UNIQUE_SLUG])?
    else {
        errors.slug = Some(format!("\"{}\" is taken. Choose another.", slug.as_str()));
        return Ok(Err(errors));
    };
    db_tenants::insert_membership(&mut *tx, tenant.tenant_id, creator.app_user_id, Role::Admin)
        .await?;
    audit::insert(
        &mut *tx,
        &actor.event(
            tenant.tenant_id,
            "tenant.created",
            format!("tenant:{}", tenant.slug),
            json!({ "name": tenant.name }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(tenant))
}

/// A new invitation and the link token, which exists only in this value.
pub struct IssuedInvitation {
    pub invitation: Invitation,
    pub token: String,
}

/// Invites `email` to join `tenant_id` as `role`.
pub async fn invite(
    pool: &PgPool,
    tenant_id: Uuid,
    email: &str,
    role: &str,
    actor: &Actor,
) -> DomainResult<Result<IssuedInvitation, String>> {
    let email = match Email::parse(email) {
        Ok(email) => email,
        Err(why) => return Ok(Err(why)),
    };
    let role = match Role::parse(role) {
        Ok(role) => role,
        Err(why) => return Ok(Err(why)),
    };
    let mut tx = pool.begin().await?;
    if db_tenants::member_by_email(&mut *tx, tenant_id, email.as_str())
        .await?
        .is_some()
    {
        return Ok(Err(format!(
            "{} is already a member of this tenant.",
            email.as_str()
        )));
    }
    let token = random_token(40);
    let expires_at = OffsetDateTime::now_utc() + INVITATION_LIFETIME;
    let invitation = match db_tenants::insert_invitation(
        &mut *tx,
        tenant_id,
        email.as_str(),
        role,
        &sha256(&token),
        actor.user_id,
        expires_at,
    )
    .await
    .on_unique(&[db_tenants::UNIQUE_PENDING_INVITATION])?
    {
        Ok(invitation) => invitation,
        Err(_) => {
            return Ok(Err(format!(
                "{} already has a pending invitation. Revoke it first to send a new one.",
                email.as_str()
            )));
        }
    };
    audit::insert(
        &mut *tx,
        &actor.event(
            tenant_id,
            "invitation.created",
            format!("email:{}", email.as_str()),
            json!({ "role": role.as_str(), "expires": expires_at.date().to_string() }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(IssuedInvitation { invitation, token }))
}

/// Revokes a pending invitation of this tenant.
pub async fn revoke_invitation(
    pool: &PgPool,
    tenant_id: Uuid,
    invitation_id: Uuid,
    actor: &Actor,
) -> DomainResult<()> {
    let mut tx = pool.begin().await?;
    let invitation =
        db_tenants::revoke_invitation(&mut *tx, tenant_id, invitation_id, actor.user_id)
            .await?
            .ok_or(DomainError::NotFound)?;
    audit::insert(
        &mut *tx,
        &actor.event(
            tenant_id,
            "invitation.revoked",
            format!("email:{}", invitation.email),
            json!({ "role": invitation.role }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Why an invitation cannot be used. Each says what to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum InvitationProblem {
    Unknown,
    Used,
    Revoked,
    Expired,
    OtherEmail { invited: String },
    AlreadyMember,
}

impl InvitationProblem {
    pub fn message(&self) -> String {
        match self {
            Self::Unknown => {
                "This invitation link is not valid. Check that you copied all of it.".into()
            }
            Self::Used => "This invitation has already been used. Each link works once.".into(),
            Self::Revoked => "This invitation was withdrawn by a tenant admin.".into(),
            Self::Expired => {
                "This invitation has expired. Ask a tenant admin for a new one.".into()
            }
            Self::OtherEmail { invited } => format!(
                "This invitation is for {invited}, but you are signed in with another email. Sign out and sign in as {invited}."
            ),
            Self::AlreadyMember => "You are already a member of this tenant.".into(),
        }
    }
}

/// Why an invitation can no longer be accepted by anyone, if it cannot.
fn unusable(invitation: &Invitation) -> Option<InvitationProblem> {
    if invitation.accepted_at.is_some() {
        Some(InvitationProblem::Used)
    } else if invitation.revoked_at.is_some() {
        Some(InvitationProblem::Revoked)
    } else if invitation.expires_at <= OffsetDateTime::now_utc() {
        Some(InvitationProblem::Expired)
    } else {
        None
    }
}

/// The invitation behind a link, if it can still be accepted (ignoring who is signed in).
pub async fn find_invitation(
    pool: &PgPool,
    token: &str,
) -> DomainResult<Result<(Invitation, Tenant), InvitationProblem>> {
    let Some((invitation, tenant)) =
        db_tenants::invitation_by_token_hash(pool, &sha256(token)).await?
    else {
        return Ok(Err(InvitationProblem::Unknown));
    };
    match unusable(&invitation) {
        Some(problem) => Ok(Err(problem)),
        None => Ok(Ok((invitation, tenant))),
    }
}

/// Accepts an invitation for `user`: single use, matching email, within its lifetime.
pub async fn accept_invitation(
    pool: &PgPool,
    token: &str,
    user: &User,
    actor: &Actor,
) -> DomainResult<Result<Tenant, InvitationProblem>> {
    let mut tx = pool.begin().await?;
    // Locks the invitation row so two acceptances cannot both succeed.
    let Some((invitation, tenant)) =
        db_tenants::invitation_by_token_hash_for_update(&mut *tx, &sha256(token)).await?
    else {
        return Ok(Err(InvitationProblem::Unknown));
    };
    let problem = if let Some(problem) = unusable(&invitation) {
        Some(problem)
    } else if user.email != invitation.email {
        Some(InvitationProblem::OtherEmail {
            invited: invitation.email.clone(),
        })
    } else if db_tenants::member_by_email(&mut *tx, tenant.tenant_id, &user.email)
        .await?
        .is_some()
    {
        Some(InvitationProblem::AlreadyMember)
    } else {
        None
    };
    if let Some(problem) = problem {
        return Ok(Err(problem));
    }
    db_tenants::mark_invitation_accepted(&mut *tx, invitation.invitation_id, user.app_user_id)
        .await?;
    db_tenants::insert_membership(
        &mut *tx,
        tenant.tenant_id,
        user.app_user_id,
        invitation.role,
    )
    .await?;
    audit::insert(
        &mut *tx,
        &actor.event(
            tenant.tenant_id,
            "invitation.accepted",
            format!("user:{}", user.email),
            json!({ "role": invitation.role }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(tenant))
}

/// A member change refused by a rule.
#[derive(Debug, PartialEq, Eq)]
pub enum MemberProblem {
    LastAdmin,
}

impl MemberProblem {
    pub fn message(&self) -> &'static str {
        match self {
            Self::LastAdmin => {
                "Every tenant needs at least one admin. Make someone else an admin first."
            }
        }
    }
}

/// Changes a member's role; the last admin cannot be demoted.
pub async fn change_role(
    pool: &PgPool,
    tenant_id: Uuid,
    membership_id: Uuid,
    role: Role,
    actor: &Actor,
) -> DomainResult<Result<(), MemberProblem>> {
    let mut tx = pool.begin().await?;
    db_tenants::lock_tenant(&mut *tx, tenant_id).await?;
    let member = db_tenants::member(&mut *tx, tenant_id, membership_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let old = member.role;
    if old == role {
        return Ok(Ok(()));
    }
    if old == Role::Admin && db_tenants::count_admins(&mut *tx, tenant_id).await? <= 1 {
        return Ok(Err(MemberProblem::LastAdmin));
    }
    db_tenants::set_role(&mut *tx, tenant_id, membership_id, role).await?;
    audit::insert(
        &mut *tx,
        &actor.event(
            tenant_id,
            "member.role_changed",
            format!("user:{}", member.email),
            json!({ "from": old.as_str(), "to": role.as_str() }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// Removes a member (or lets one leave: `action` says which); the last admin cannot go.
pub async fn remove_member(
    pool: &PgPool,
    tenant_id: Uuid,
    membership_id: Uuid,
    action: &str,
    actor: &Actor,
) -> DomainResult<Result<(), MemberProblem>> {
    let mut tx = pool.begin().await?;
    db_tenants::lock_tenant(&mut *tx, tenant_id).await?;
    let member = db_tenants::member(&mut *tx, tenant_id, membership_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if member.role == Role::Admin && db_tenants::count_admins(&mut *tx, tenant_id).await? <= 1 {
        return Ok(Err(MemberProblem::LastAdmin));
    }
    db_tenants::delete_membership(&mut *tx, tenant_id, membership_id).await?;
    audit::insert(
        &mut *tx,
        &actor.event(
            tenant_id,
            action,
            format!("user:{}", member.email),
            json!({ "role": member.role }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_made_from_names() {
        assert_eq!(Slug::from_name("Acme Rockets, Inc."), "acme-rockets-inc");
        assert_eq!(Slug::from_name("  Café Zürich  "), "cafe-zurich");
        assert_eq!(Slug::from_name("<b>"), "b");
    }

    #[test]
    fn slugs_are_validated() {
        assert!(Slug::parse("acme").is_ok());
        assert_eq!(Slug::parse("Acme-2").unwrap().as_str(), "acme-2");
        for bad in [
            "ab",
            "-acme",
            "acme-",
            "ac me",
            "acmé",
            "new",
            &"a".repeat(41),
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_names_are_bounded() {
        assert!(TenantName::parse("  ").is_err());
        assert!(TenantName::parse(&"n".repeat(81)).is_err());
        assert_eq!(TenantName::parse(" Acme ").unwrap().as_str(), "Acme");
    }
}
