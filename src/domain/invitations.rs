//! Invitations: issue (a single-use link, 7 days, stored as SHA-256), revoke, find and accept.

use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::db::OnUnique;
use crate::db::invitations::{self as db_invitations, Invitation};
use crate::db::tenants::{self as db_tenants, Tenant};
use crate::db::users::User;
use crate::domain::accounts::Email;
use crate::domain::audit::Actor;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::mail::Mail;
use crate::domain::tokens::{random_token, sha256};
use crate::domain::webhooks::{
    self, Event, EventTime, InvitationCreated, InvitationId, InvitationRef, MemberJoined, MemberRef,
};
use crate::vocabulary::PublicUrl;
use crate::vocabulary::Role;

/// How long an invitation link works.
pub const INVITATION_LIFETIME: Duration = Duration::days(7);

/// A new invitation and the link token, which exists only in this value.
pub struct IssuedInvitation {
    pub invitation: Invitation,
    pub token: String,
}

/// What the invitation mail names besides who invites: the tenant, and where the link leads.
pub struct InvitationMail<'a> {
    pub public_url: &'a PublicUrl,
    pub tenant_name: &'a str,
}

/// Who the invitation mail says invites: the person by name; a machine (an operator or a tenant
/// token, which the invited person does not know) as the platform.
async fn inviter(tx: &mut sqlx::PgConnection, actor: &Actor) -> DomainResult<String> {
    Ok(match actor.user_id() {
        Some(person) => crate::db::users::find_by_id(&mut *tx, person)
            .await?
            .map_or_else(|| "a member".to_owned(), |user| user.display_name),
        None => "the platform".to_owned(),
    })
}

/// The path an invitation link opens.
pub fn invitation_path(token: &str) -> String {
    format!("/invitations/{token}")
}

/// Invites `email` to join `tenant_id` as `role`, and mails the link in the same transaction.
pub async fn invite(
    pool: &PgPool,
    tenant_id: Uuid,
    email: &str,
    role: &str,
    actor: &Actor,
    mail: &InvitationMail<'_>,
) -> DomainResult<Result<IssuedInvitation, String>> {
    if email.trim().is_empty() {
        return Ok(Err(
            "Enter the email address of the person to invite.".into()
        ));
    }
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
    let invitation = match db_invitations::insert(
        &mut *tx,
        tenant_id,
        email.as_str(),
        role,
        &sha256(&token),
        &actor.by(),
        expires_at,
    )
    .await
    .on_unique(&[db_invitations::UNIQUE_PENDING_INVITATION])?
    {
        Ok(invitation) => invitation,
        Err(_) => {
            return Ok(Err(format!(
                "{} already has a pending invitation. Revoke it first to send a new one.",
                email.as_str()
            )));
        }
    };
    let invitation_mail = Mail::Invitation {
        tenant: mail.tenant_name.to_owned(),
        inviter: inviter(&mut tx, actor).await?,
        role: role.as_str().to_owned(),
        link: mail.public_url.link(&invitation_path(&token)),
    };
    crate::domain::mail::send(&mut *tx, email.as_str(), invitation_mail).await?;
    let event = Event::InvitationCreated(InvitationCreated {
        invitation: InvitationRef {
            id: invitation.invitation_id,
            email: email.as_str().to_owned(),
            role,
            expires_at: EventTime(expires_at),
        },
        actor: actor.into(),
    });
    webhooks::publish(&mut tx, tenant_id, None, &event).await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "invitation.created",
            format!("email:{}", email.as_str()),
            json!({ "role": role.as_str(), "expires": expires_at.date().to_string() }),
        )
        .await?;
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
    let invitation = db_invitations::revoke(&mut *tx, tenant_id, invitation_id, actor.user_id())
        .await?
        .ok_or(DomainError::NotFound)?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "invitation.revoked",
            format!("email:{}", invitation.email),
            json!({ "role": invitation.role }),
        )
        .await?;
    Ok(())
}

/// Why an invitation cannot be used. Each says what to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum InvitationProblem {
    Unknown,
    Used,
    Revoked,
    Expired,
    OtherEmail {
        invited: String,
    },
    AlreadyMember,
    /// The account has not confirmed its address yet.
    Unverified,
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
            Self::Unverified => "Confirm your email address first: follow the link we mailed you \
                (your account page sends it again), then open this invitation again."
                .into(),
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
    let Some((invitation, tenant)) = db_invitations::by_token_hash(pool, &sha256(token)).await?
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
        db_invitations::by_token_hash_for_update(&mut *tx, &sha256(token)).await?
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
    } else if !user.is_verified() {
        Some(InvitationProblem::Unverified)
    } else {
        None
    };
    if let Some(problem) = problem {
        return Ok(Err(problem));
    }
    db_invitations::mark_accepted(&mut *tx, invitation.invitation_id, user.app_user_id).await?;
    db_tenants::insert_membership(
        &mut *tx,
        tenant.tenant_id,
        user.app_user_id,
        invitation.role,
    )
    .await?;
    let event = Event::MemberJoined(MemberJoined {
        member: MemberRef {
            user_id: user.app_user_id,
            email: user.email.clone(),
            name: user.display_name.clone(),
            role: invitation.role,
        },
        invitation: InvitationId {
            id: invitation.invitation_id,
        },
        actor: actor.into(),
    });
    webhooks::publish(&mut tx, tenant.tenant_id, None, &event).await?;
    actor
        .commit_with_event(
            tx,
            tenant.tenant_id,
            "invitation.accepted",
            format!("user:{}", user.email),
            json!({ "role": invitation.role }),
        )
        .await?;
    Ok(Ok(tenant))
}
