//! `/auth/oidc/link`: joining a provider identity to the password account with its email.

use askama::Template;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use uuid::Uuid;

use super::sso::{provider_display, start_session};
use super::{PasswordRefusal, sign_in_refused};
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::db::users::User;
use crate::domain::identities::{self, Link, LinkNotice, ProviderIdentity};
use crate::error::AppResult;
use crate::oidc_client::VerifiedLogin;
use crate::web::Visitor;
use crate::web::page::{Layout, html, render};
use crate::web::session::{self, SSO_PENDING_LINK as PENDING_LINK, session_error};

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/oidc/link", get(link_form).post(link_account))
}

#[derive(Serialize, Deserialize)]
struct PendingLink {
    provider: String,
    issuer: String,
    subject: String,
    email: Option<String>,
    name: Option<String>,
    id_token: String,
    app_user_id: Uuid,
    account_email: String,
    next: String,
    /// Unix seconds.
    expires_at: i64,
}

impl PendingLink {
    fn identity(&self) -> ProviderIdentity<'_> {
        ProviderIdentity {
            provider: &self.provider,
            issuer: &self.issuer,
            subject: &self.subject,
            email: self.email.as_deref(),
            email_verified: true,
            name: self.name.as_deref(),
        }
    }
}

/// Remembers a provider sign-in whose email belongs to a password account, until its password
/// is given on the link page (or the flow's lifetime passes).
pub(super) async fn wait_for_password(
    session: &Session,
    state: &AppState,
    provider: &str,
    login: VerifiedLogin,
    user: &User,
    next: String,
) -> AppResult<()> {
    let pending = pending_link(state, provider, login, user, next);
    session
        .insert(PENDING_LINK, pending)
        .await
        .map_err(session_error)
}

fn pending_link(
    state: &AppState,
    provider: &str,
    login: VerifiedLogin,
    user: &User,
    next: String,
) -> PendingLink {
    let lifetime = i64::try_from(state.config.oidc_flow_lifetime.as_secs()).unwrap_or(600);
    PendingLink {
        provider: provider.to_owned(),
        issuer: login.issuer,
        subject: login.subject,
        email: login.email,
        name: login.name,
        id_token: login.id_token,
        app_user_id: user.app_user_id,
        account_email: user.email.clone(),
        next,
        expires_at: OffsetDateTime::now_utc().unix_timestamp() + lifetime,
    }
}

#[derive(Template)]
#[template(path = "auth/link.html")]
struct LinkPage {
    layout: Layout,
    provider: String,
    email: String,
    error: Option<String>,
}

async fn pending(session: &Session) -> AppResult<Option<PendingLink>> {
    let pending = session
        .get::<PendingLink>(PENDING_LINK)
        .await
        .map_err(session_error)?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    match pending {
        Some(pending) if pending.expires_at > now => Ok(Some(pending)),
        Some(_) => {
            session
                .remove_value(PENDING_LINK)
                .await
                .map_err(session_error)?;
            Ok(None)
        }
        None => Ok(None),
    }
}

fn display_of(state: &AppState, provider: &str) -> String {
    state
        .oidc
        .get(provider)
        .map_or_else(|| provider.to_owned(), |p| p.config.display_name.clone())
}

/// The sign-in page, when no sign-in is waiting for a password (none, or it expired).
async fn nothing_to_link(state: &AppState, visitor: &Visitor) -> AppResult<Response> {
    let message =
        "There is no sign-in waiting to be linked, or it has expired. Please start again.";
    sign_in_refused(state, visitor, StatusCode::BAD_REQUEST, message.into(), "/").await
}

async fn link_form(State(state): State<AppState>, visitor: Visitor) -> AppResult<Response> {
    let Some(pending) = pending(&visitor.session).await? else {
        return nothing_to_link(&state, &visitor).await;
    };
    let page = LinkPage {
        layout: visitor.form_layout().await?,
        provider: display_of(&state, &pending.provider),
        email: pending.account_email,
        error: None,
    };
    html(&page)
}

#[derive(Deserialize)]
struct LinkForm {
    password: String,
}

async fn link_account(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    visitor: Visitor,
    Form(form): Form<LinkForm>,
) -> AppResult<Response> {
    let Some(pending) = pending(&visitor.session).await? else {
        return nothing_to_link(&state, &visitor).await;
    };
    let display = display_of(&state, &pending.provider);
    let outcome = identities::link_with_password(
        &state.pool,
        &state.passwords,
        pending.app_user_id,
        &pending.account_email,
        &form.password,
        client,
        &pending.identity(),
        &LinkNotice {
            public_url: &state.config.public_url,
            provider_display: &provider_display(&state, &pending.issuer, &pending.provider),
        },
    )
    .await?;
    let refusal = match outcome {
        Link::Linked(user) => {
            tracing::info!(user.id = %user.app_user_id, oidc.provider = %pending.provider,
                "SSO identity linked to a password account");
            visitor
                .session
                .remove_value(PENDING_LINK)
                .await
                .map_err(session_error)?;
            start_session(&visitor.session, &user, &pending.provider, pending.id_token).await?;
            session::flash(
                &visitor.session,
                format!(
                    "{display} is now linked to your account: next time it signs you straight in."
                ),
            )
            .await?;
            return Ok(Redirect::to(&pending.next).into_response());
        }
        Link::AlreadyLinked => {
            visitor
                .session
                .remove_value(PENDING_LINK)
                .await
                .map_err(session_error)?;
            return sign_in_refused(
                &state,
                &visitor,
                StatusCode::CONFLICT,
                format!(
                    "This {display} identity is already linked to an account. Please start again."
                ),
                "/",
            )
            .await;
        }
        Link::WrongPassword => PasswordRefusal::new(
            StatusCode::UNAUTHORIZED,
            "That is not the password of this account.",
        ),
        Link::Throttled { retry_after_secs } => {
            PasswordRefusal::too_many("attempts", retry_after_secs)
        }
    };
    let page = LinkPage {
        layout: visitor.form_layout().await?,
        provider: display,
        email: pending.account_email,
        error: Some(refusal.message.clone()),
    };
    Ok(refusal.respond(render(&page)?))
}
