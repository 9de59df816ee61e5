//! `/t/{slug}/members`, `/invitations`, `/leave`: members, invitations, roles, removing and leaving.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::{TenantMember, TenantNav, member_name};
use crate::app::AppState;
use crate::db::invitations as db_invitations;
use crate::db::tenants as db_tenants;
use crate::domain::invitations::{self, InvitationMail};
use crate::domain::tenants::{self, MemberProblem};
use crate::error::{AppError, AppResult};
use crate::vocabulary::Role;
use crate::web::page::{Clock, ConfirmPage, Layout, When, html, html_with_status};
use crate::web::session;

struct MemberRow {
    membership_id: Uuid,
    display_name: String,
    email: String,
    role: Role,
    joined: When,
    is_you: bool,
    /// The tenant's only admin: no role change or leaving is offered (both would be refused).
    last_admin: bool,
}

struct InvitationRow {
    invitation_id: Uuid,
    email: String,
    role: Role,
    invited_by: String,
    expires: When,
    expired: bool,
}

#[derive(Template)]
#[template(path = "tenants/members.html")]
struct MembersPage {
    layout: Layout,
    tenant: TenantNav,
    members: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    roles: [Role; 3],
    invite_email: String,
    invite_role: Role,
    invite_error: Option<String>,
    error: Option<String>,
}

async fn members_page(
    state: &AppState,
    member: &TenantMember,
    invite: Option<(String, Role, String)>,
    error: Option<String>,
) -> AppResult<MembersPage> {
    let now = time::OffsetDateTime::now_utc();
    let clock = Clock::of(&member.user);
    let rows = db_tenants::members(&state.pool, member.tenant_id()).await?;
    let admins = rows.iter().filter(|row| row.role == Role::Admin).count();
    let admins = i64::try_from(admins).unwrap_or(i64::MAX);
    let members = rows
        .into_iter()
        .map(|row| MemberRow {
            last_admin: tenants::is_last_admin(row.role, admins),
            membership_id: row.membership_id,
            is_you: row.app_user_id == member.user.app_user_id,
            display_name: row.display_name,
            email: row.email,
            role: row.role,
            joined: clock.day(row.created_at),
        })
        .collect();
    let invitations = if member.role >= Role::Admin {
        db_invitations::pending(&state.pool, member.tenant_id())
            .await?
            .into_iter()
            .map(|row| InvitationRow {
                invitation_id: row.invitation_id,
                email: row.email,
                role: row.role,
                invited_by: member_name(row.invited_by_name),
                expires: clock.at(row.expires_at),
                expired: row.expires_at <= now,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (invite_email, invite_role, invite_error) = match invite {
        Some((email, role, why)) => (email, role, Some(why)),
        None => (String::new(), Role::Developer, None),
    };
    Ok(MembersPage {
        layout: member.layout().await?,
        tenant: member.nav("members"),
        members,
        invitations,
        roles: Role::ALL,
        invite_email,
        invite_role,
        invite_error,
        error,
    })
}

pub(super) async fn list_members(
    State(state): State<AppState>,
    member: TenantMember,
) -> AppResult<Response> {
    html(&members_page(&state, &member, None, None).await?)
}

#[derive(Deserialize)]
pub(super) struct InviteForm {
    email: String,
    role: String,
}

#[derive(Template)]
#[template(path = "tenants/invitation_created.html")]
struct InvitationCreatedPage {
    layout: Layout,
    tenant: TenantNav,
    email: String,
    role: Role,
    link: String,
    expires: String,
}

pub(super) async fn create_invitation(
    State(state): State<AppState>,
    member: TenantMember,
    Form(form): Form<InviteForm>,
) -> AppResult<Response> {
    match invitations::invite(
        &state.pool,
        member.tenant_id(),
        &form.email,
        &form.role,
        &member.actor,
        &InvitationMail {
            public_url: &state.config.public_url,
            tenant_name: &member.membership.name,
        },
    )
    .await?
    {
        Ok(issued) => {
            let page = InvitationCreatedPage {
                layout: member.layout().await?,
                tenant: member.nav("members"),
                email: issued.invitation.email.clone(),
                role: issued.invitation.role,
                link: state
                    .config
                    .public_url
                    .link(&invitations::invitation_path(&issued.token)),
                expires: Clock::of(&member.user).exact(issued.invitation.expires_at),
            };
            // The link is in this response and in the mail (until it is sent): never stored otherwise.
            html(&page)
        }
        Err(why) => {
            // The form is shown again with its default choice when the submitted role was not one.
            let role = Role::parse(&form.role).unwrap_or(Role::Developer);
            let page = members_page(&state, &member, Some((form.email, role, why)), None).await?;
            html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

pub(super) async fn revoke_invitation(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, invitation_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    invitations::revoke_invitation(
        &state.pool,
        member.tenant_id(),
        invitation_id,
        &member.actor,
    )
    .await?;
    session::flash(
        &member.session,
        "Invitation revoked. Its link no longer works.",
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{}/members", member.membership.slug)).into_response())
}

#[derive(Deserialize)]
pub(super) struct RoleForm {
    role: String,
}

pub(super) async fn change_role(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, membership_id)): Path<(String, Uuid)>,
    Form(form): Form<RoleForm>,
) -> AppResult<Response> {
    let role = Role::parse(&form.role).map_err(AppError::Validation)?;
    match tenants::change_role(
        &state.pool,
        member.tenant_id(),
        membership_id,
        role,
        &member.actor,
    )
    .await?
    {
        Ok(()) => {
            session::flash(
                &member.session,
                format!("Role changed to {}.", role.label()),
            )
            .await?;
            // An admin who demoted themselves can no longer see the members page as admin,
            // but can still see it: members is a viewer page.
            Ok(Redirect::to(&format!("/t/{}/members", member.membership.slug)).into_response())
        }
        Err(problem) => refused(&state, &member, &problem).await,
    }
}

pub(super) async fn confirm_remove_member(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, membership_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let target = db_tenants::member(&state.pool, member.tenant_id(), membership_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let slug = &member.membership.slug;
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("members"),
        title: format!("Remove {}?", target.display_name),
        message: format!(
            "{} ({}) loses access to {} at once, in every session. Their keys are not revoked by this; revoke them separately if needed.",
            target.display_name, target.email, member.membership.name
        ),
        action: format!("/t/{slug}/members/{membership_id}/remove"),
        button: "Remove member",
        cancel: format!("/t/{slug}/members"),
    };
    html(&page)
}

pub(super) async fn remove_member(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, membership_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    remove(&state, &member, membership_id).await
}

/// Removes a membership; the member's own is leaving (audited as such, and they go home).
async fn remove(
    state: &AppState,
    member: &TenantMember,
    membership_id: Uuid,
) -> AppResult<Response> {
    let leaving = membership_id == member.membership.membership_id;
    let action = if leaving {
        "member.left"
    } else {
        "member.removed"
    };
    match tenants::remove_member(
        &state.pool,
        member.tenant_id(),
        membership_id,
        action,
        &member.actor,
    )
    .await?
    {
        Ok(()) if leaving => {
            session::flash(
                &member.session,
                format!("You left {}.", member.membership.name),
            )
            .await?;
            Ok(Redirect::to("/").into_response())
        }
        Ok(()) => {
            session::flash(&member.session, "Member removed.").await?;
            Ok(Redirect::to(&format!("/t/{}/members", member.membership.slug)).into_response())
        }
        Err(problem) => refused(state, member, &problem).await,
    }
}

/// The members page again, saying why a change was refused.
async fn refused(
    state: &AppState,
    member: &TenantMember,
    problem: &MemberProblem,
) -> AppResult<Response> {
    let page = members_page(state, member, None, Some(problem.message().into())).await?;
    html_with_status(StatusCode::CONFLICT, &page)
}

pub(super) async fn confirm_leave(
    State(state): State<AppState>,
    member: TenantMember,
) -> AppResult<Response> {
    let slug = &member.membership.slug;
    let admins = db_tenants::count_admins(&state.pool, member.tenant_id()).await?;
    if tenants::is_last_admin(member.role, admins) {
        // Leaving would be refused: say why instead of offering it.
        let page = ConfirmPage {
            layout: member.layout().await?,
            tenant: member.nav("members"),
            title: format!("You cannot leave {} yet", member.membership.name),
            message: MemberProblem::LastAdmin.message().into(),
            action: String::new(),
            button: "",
            cancel: format!("/t/{slug}/members"),
        };
        return html(&page);
    }
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("members"),
        title: format!("Leave {}?", member.membership.name),
        message: "You lose access to this tenant and its keys at once. To come back, an admin has to invite you again."
            .into(),
        action: format!("/t/{slug}/leave"),
        button: "Leave tenant",
        cancel: format!("/t/{slug}"),
    };
    html(&page)
}

pub(super) async fn leave_tenant(
    State(state): State<AppState>,
    member: TenantMember,
) -> AppResult<Response> {
    remove(&state, &member, member.membership.membership_id).await
}
