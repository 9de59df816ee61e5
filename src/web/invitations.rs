//! `/invitations/{token}`: the page an invitation link opens, and accepting it.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::meta::RequestMeta;
use super::page::{Layout, html, html_with_status};
use super::session::{self, encode};
use super::{CurrentUser, Visitor};
use crate::app::AppState;
use crate::domain::invitations::{self, InvitationProblem};
use crate::error::AppResult;
use crate::vocabulary::Role;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/invitations/{token}",
        get(show_invitation).post(accept_invitation),
    )
}

#[derive(Template)]
#[template(path = "invitations/show.html")]
struct InvitationPage {
    layout: Layout,
    tenant_name: String,
    role: Option<Role>,
    invited_email: String,
    invited_by: String,
    problem: Option<String>,
    matches: bool,
    /// The person must confirm their address before accepting.
    verify_first: bool,
    here: String,
    here_encoded: String,
}

fn problem_status(problem: &InvitationProblem) -> StatusCode {
    match problem {
        InvitationProblem::Unknown => StatusCode::NOT_FOUND,
        InvitationProblem::Used | InvitationProblem::Revoked | InvitationProblem::Expired => {
            StatusCode::GONE
        }
        InvitationProblem::OtherEmail { .. } | InvitationProblem::Unverified => {
            StatusCode::FORBIDDEN
        }
        InvitationProblem::AlreadyMember => StatusCode::CONFLICT,
    }
}

async fn problem_page(
    layout: Layout,
    problem: &InvitationProblem,
    here: String,
) -> AppResult<Response> {
    let page = InvitationPage {
        layout,
        tenant_name: String::new(),
        role: None,
        invited_email: String::new(),
        invited_by: String::new(),
        problem: Some(problem.message()),
        matches: false,
        verify_first: *problem == InvitationProblem::Unverified,
        here_encoded: encode(&here),
        here,
    };
    html_with_status(problem_status(problem), &page)
}

async fn show_invitation(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let here = format!("/invitations/{token}");
    let layout = visitor.form_layout().await?;
    let (invitation, tenant) = match invitations::find_invitation(&state.pool, &token).await? {
        Ok(found) => found,
        Err(problem) => return problem_page(layout, &problem, here).await,
    };
    let matches = visitor
        .user
        .as_ref()
        .is_some_and(|user| user.email == invitation.email);
    let problem = match &visitor.user {
        Some(_) if !matches => Some(
            InvitationProblem::OtherEmail {
                invited: invitation.email.clone(),
            }
            .message(),
        ),
        Some(user) if !user.is_verified() => Some(InvitationProblem::Unverified.message()),
        _ => None,
    };
    let verify_first = matches && problem.is_some();
    let page = InvitationPage {
        layout,
        tenant_name: tenant.name,
        role: Some(invitation.role),
        invited_email: invitation.email,
        invited_by: invitation
            .invited_by_name
            .unwrap_or_else(|| "A tenant admin".into()),
        problem,
        matches,
        verify_first,
        here_encoded: encode(&here),
        here,
    };
    html(&page)
}

async fn accept_invitation(
    State(state): State<AppState>,
    current: CurrentUser,
    meta: RequestMeta,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let actor = meta.actor(&current.user);
    match invitations::accept_invitation(&state.pool, &token, &current.user, &actor).await? {
        Ok(tenant) => {
            tracing::info!(tenant.slug = %tenant.slug, user.id = %current.user.app_user_id, "invitation accepted");
            session::flash(&current.session, format!("Welcome to {}.", tenant.name)).await?;
            Ok(Redirect::to(&format!("/t/{}", tenant.slug)).into_response())
        }
        Err(problem) => {
            let layout = current.layout().await?;
            problem_page(layout, &problem, format!("/invitations/{token}")).await
        }
    }
}
