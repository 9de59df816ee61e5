//! `/auth/oidc/...`: signing in through an OpenID Connect provider, linking a provider to an
//! existing password account, and signing out at the provider.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use uuid::Uuid;

use super::password::sign_in_refused;
use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::db::oidc_flows::{self, NewFlow};
use crate::domain::identities::{self, Link, ProviderIdentity, SsoSignIn};
use crate::domain::tokens::{random_token, sha256};
use crate::error::{AppError, AppResult};
use crate::oidc_client::{LoginError, VerifiedLogin};
use crate::web::Visitor;
use crate::web::page::{Layout, render};
use crate::web::session::{self, SSO, SSO_PENDING_LINK as PENDING_LINK, safe_next, session_error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/oidc/link", get(link_form).post(link_account))
        .route("/auth/oidc/{name}", get(start_sign_in))
        .route("/auth/oidc/{name}/callback", get(finish_sign_in))
}

#[derive(Serialize, Deserialize)]
struct SsoSession {
    provider: String,
    id_token: String,
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

/// A "Sign in with …" button on the sign-in and sign-up pages.
pub struct ProviderButton {
    pub display_name: String,
    pub href: String,
    pub available: bool,
}

pub fn provider_buttons(state: &AppState, next: &str) -> Vec<ProviderButton> {
    state
        .oidc
        .iter()
        .map(|provider| {
            let mut href = format!("/auth/oidc/{}", provider.config.name);
            if next != "/" {
                href.push_str("?next=");
                href.push_str(&session::encode(next));
            }
            ProviderButton {
                display_name: provider.config.display_name.clone(),
                href,
                available: provider.is_available(),
            }
        })
        .collect()
}

// The flow cookie binds a sign-in in progress to the browser that started it. Its name differs
// from every cookie a provider on the same host might set; SameSite=Lax because the provider's
// redirect back is a cross-site top-level navigation.
fn flow_cookie_name(state: &AppState) -> &'static str {
    if state.config.public_url.is_https() {
        "__Host-gatehouse-sso"
    } else {
        "gatehouse-sso"
    }
}

fn flow_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && value.len() == 43)
        .map(|(_, value)| value.to_owned())
}

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
}

async fn start_sign_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<StartQuery>,
    visitor: Visitor,
    headers: HeaderMap,
) -> AppResult<Response> {
    let provider = state.oidc.get(&name).cloned().ok_or(AppError::NotFound)?;
    let next = safe_next(query.next.as_deref()).to_owned();
    if visitor.user.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let Some(request) = provider.authorization_request() else {
        tracing::warn!(oidc.provider = %name, "SSO sign-in asked of a provider not discovered yet");
        let message = format!(
            "{} cannot be reached right now. Please try again shortly, or sign in with your \
             email and password.",
            provider.config.display_name
        );
        return sign_in_refused(
            &state,
            &visitor,
            StatusCode::SERVICE_UNAVAILABLE,
            message,
            &next,
        )
        .await;
    };
    // One value per browser, reused by flows started in other tabs so none cancels another.
    let cookie_name = flow_cookie_name(&state);
    let browser = flow_cookie(&headers, cookie_name).unwrap_or_else(|| random_token(43));
    let lifetime = state.config.oidc_flow_lifetime;
    oidc_flows::delete_expired(&state.pool).await?;
    oidc_flows::insert(
        &state.pool,
        &NewFlow {
            state_hash: &sha256(&request.state),
            browser_hash: &sha256(&browser),
            provider: &name,
            nonce: &request.nonce,
            pkce_verifier: &request.pkce_verifier,
            next_path: &next,
            lifetime,
        },
    )
    .await?;
    let secure = if state.config.public_url.is_https() {
        "; Secure"
    } else {
        ""
    };
    // Outlives the flow, so a late return hears "took too long", not "another browser".
    let cookie = format!(
        "{cookie_name}={browser}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        lifetime.as_secs() + 600
    );
    let cookie = HeaderValue::from_str(&cookie).map_err(AppError::unexpected)?;
    tracing::info!(oidc.provider = %name, "SSO sign-in started");
    let mut response = Redirect::to(&request.url).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

const START_AGAIN: &str = "This sign-in cannot be completed: it was already used, has expired, \
     or was started in another browser. Please start again.";

async fn finish_sign_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
    visitor: Visitor,
    headers: HeaderMap,
) -> AppResult<Response> {
    let provider = state.oidc.get(&name).cloned().ok_or(AppError::NotFound)?;
    // The state must be one this browser was given: openidconnect leaves this check to us.
    let browser = flow_cookie(&headers, flow_cookie_name(&state));
    let (Some(returned_state), Some(browser)) = (query.state.as_deref(), browser) else {
        tracing::warn!(oidc.provider = %name, had_state = query.state.is_some(),
            "SSO callback refused: no state or no flow cookie");
        return sign_in_refused(
            &state,
            &visitor,
            StatusCode::BAD_REQUEST,
            START_AGAIN.into(),
            "/",
        )
        .await;
    };
    let Some(flow) =
        oidc_flows::take(&state.pool, &sha256(returned_state), &sha256(&browser)).await?
    else {
        tracing::warn!(oidc.provider = %name,
            "SSO callback refused: unknown, used or other browser's state");
        return sign_in_refused(
            &state,
            &visitor,
            StatusCode::BAD_REQUEST,
            START_AGAIN.into(),
            "/",
        )
        .await;
    };
    let next = flow.next_path.clone();
    if flow.provider != name {
        tracing::warn!(oidc.provider = %name, flow.provider = %flow.provider,
            "SSO callback refused: state belongs to another provider");
        return sign_in_refused(
            &state,
            &visitor,
            StatusCode::BAD_REQUEST,
            START_AGAIN.into(),
            &next,
        )
        .await;
    }
    if !flow.live {
        tracing::warn!(oidc.provider = %name, "SSO callback refused: flow expired");
        let message = format!(
            "This sign-in took too long (more than {}). Please start again.",
            minutes(state.config.oidc_flow_lifetime)
        );
        return sign_in_refused(&state, &visitor, StatusCode::BAD_REQUEST, message, &next).await;
    }
    let display = provider.config.display_name.clone();
    // RFC 9207: a provider that names itself must be the one this flow went to (mix-up defence).
    if let Some(iss) = query.iss.as_deref()
        && iss != provider.config.issuer
    {
        tracing::warn!(oidc.provider = %name, "SSO callback refused: iss parameter is another issuer");
        return sign_in_refused(
            &state,
            &visitor,
            StatusCode::BAD_REQUEST,
            START_AGAIN.into(),
            &next,
        )
        .await;
    }
    if let Some(error) = query.error.as_deref() {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        tracing::info!(oidc.provider = %name, oidc.error = %error, "provider did not sign the user in");
        let message = format!("{display} did not sign you in. Please try again.");
        return sign_in_refused(&state, &visitor, StatusCode::FORBIDDEN, message, &next).await;
    }
    let Some(code) = query.code.as_deref() else {
        tracing::warn!(oidc.provider = %name, "SSO callback refused: no code");
        return sign_in_refused(
            &state,
            &visitor,
            StatusCode::BAD_REQUEST,
            START_AGAIN.into(),
            &next,
        )
        .await;
    };

    let login = match provider
        .finish(
            code,
            &flow.pkce_verifier,
            &flow.nonce,
            state.config.oidc_flow_lifetime,
        )
        .await
    {
        Ok(login) => login,
        Err(err) => {
            tracing::warn!(oidc.provider = %name, reason = %err, "SSO sign-in refused");
            let (status, message) = match err {
                LoginError::Unavailable | LoginError::Unreachable(_) => (
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "{display} could not be reached to finish signing you in. Please try again shortly."
                    ),
                ),
                LoginError::Refused(_) => (
                    StatusCode::FORBIDDEN,
                    format!("{display} did not confirm this sign-in. Please start again."),
                ),
                LoginError::InvalidToken(_) => (
                    StatusCode::FORBIDDEN,
                    format!(
                        "{display}'s answer could not be verified, so you have not been signed in. \
                             Please try again; if this keeps happening, tell your administrator."
                    ),
                ),
            };
            return sign_in_refused(&state, &visitor, status, message, &next).await;
        }
    };

    let identity = ProviderIdentity {
        provider: &name,
        issuer: &login.issuer,
        subject: &login.subject,
        email: login.email.as_deref(),
        email_verified: login.email_verified,
        name: login.name.as_deref(),
    };
    let outcome = identities::sign_in(&state.pool, &identity).await?;
    let refusal = match outcome {
        SsoSignIn::Known(user) => {
            tracing::info!(user.id = %user.app_user_id, oidc.provider = %name, "signed in through SSO");
            start_session(&visitor.session, &user, &name, login.id_token).await?;
            return Ok(Redirect::to(&next).into_response());
        }
        SsoSignIn::Created(user) => {
            tracing::info!(user.id = %user.app_user_id, oidc.provider = %name, "account created through SSO");
            start_session(&visitor.session, &user, &name, login.id_token).await?;
            session::flash(
                &visitor.session,
                "Welcome to Gatehouse. Your account is ready.",
            )
            .await?;
            return Ok(Redirect::to(&next).into_response());
        }
        SsoSignIn::NeedsPassword(user) => {
            tracing::info!(user.id = %user.app_user_id, oidc.provider = %name,
                "SSO email matches a password account: asking for its password to link");
            let pending = pending_link(&state, &name, login, &user, next);
            visitor
                .session
                .insert(PENDING_LINK, pending)
                .await
                .map_err(session_error)?;
            return Ok(Redirect::to("/auth/oidc/link").into_response());
        }
        SsoSignIn::EmailNotVerified => format!(
            "{display} has not verified your email address, so Gatehouse cannot create an \
             account from it. Verify it with {display}, or sign up with a password."
        ),
        SsoSignIn::NoEmail => format!(
            "{display} did not share a usable email address, so Gatehouse cannot create an \
             account. Ask your administrator to allow the email scope."
        ),
        SsoSignIn::EmailTaken => format!(
            "An account with your {display} email address already exists and signs in another \
             way. Sign in the way you did before."
        ),
        SsoSignIn::Disabled => "This account has been disabled.".to_owned(),
    };
    tracing::info!(oidc.provider = %name, reason = %refusal, "SSO sign-in refused");
    sign_in_refused(&state, &visitor, StatusCode::FORBIDDEN, refusal, &next).await
}

fn minutes(duration: std::time::Duration) -> String {
    let minutes = duration.as_secs().div_ceil(60);
    format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
}

fn pending_link(
    state: &AppState,
    provider: &str,
    login: VerifiedLogin,
    user: &crate::db::users::User,
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

/// A signed-in session (new id, new CSRF token) that remembers the provider for sign-out.
async fn start_session(
    session: &Session,
    user: &crate::db::users::User,
    provider: &str,
    id_token: String,
) -> AppResult<()> {
    session::sign_in(session, user).await?;
    session
        .insert(
            SSO,
            SsoSession {
                provider: provider.to_owned(),
                id_token,
            },
        )
        .await
        .map_err(session_error)
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

const LINK_EXPIRED: &str =
    "There is no sign-in waiting to be linked, or it has expired. Please start again.";

async fn link_form(State(state): State<AppState>, visitor: Visitor) -> AppResult<Response> {
    let Some(pending) = pending(&visitor.session).await? else {
        return sign_in_refused(
            &state,
            &visitor,
            StatusCode::BAD_REQUEST,
            LINK_EXPIRED.into(),
            "/",
        )
        .await;
    };
    let page = LinkPage {
        layout: visitor.form_layout().await?,
        provider: display_of(&state, &pending.provider),
        email: pending.account_email,
        error: None,
    };
    Ok(render(&page)?.into_response())
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
        return sign_in_refused(
            &state,
            &visitor,
            StatusCode::BAD_REQUEST,
            LINK_EXPIRED.into(),
            "/",
        )
        .await;
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
    )
    .await?;
    let (status, error, retry_after) = match outcome {
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
        Link::WrongPassword => (
            StatusCode::UNAUTHORIZED,
            "That is not the password of this account.".to_owned(),
            None,
        ),
        Link::Throttled { retry_after_secs } => {
            let minutes = (retry_after_secs + 59) / 60;
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed attempts. Please wait {minutes} minute{} and try again.",
                    if minutes == 1 { "" } else { "s" }
                ),
                Some(retry_after_secs),
            )
        }
    };
    let page = LinkPage {
        layout: visitor.form_layout().await?,
        provider: display,
        email: pending.account_email,
        error: Some(error),
    };
    let mut response = (status, render(&page)?).into_response();
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "auth/signing_out.html")]
struct SigningOutPage {
    layout: Layout,
    provider: String,
    url: String,
}

/// When this session was signed in through a provider that should end its own session too, the
/// page that sends the browser there. Read before the session is deleted. A page rather than a
/// redirect: the sign-out form's `form-action 'self'` policy would block a redirect elsewhere.
pub async fn provider_sign_out(state: &AppState, session: &Session) -> AppResult<Option<Response>> {
    let Some(sso) = session
        .get::<SsoSession>(SSO)
        .await
        .map_err(session_error)?
    else {
        return Ok(None);
    };
    let Some(provider) = state.oidc.get(&sso.provider) else {
        return Ok(None);
    };
    let Some(url) = provider.logout_url(&sso.id_token) else {
        return Ok(None);
    };
    tracing::info!(oidc.provider = %sso.provider, "signing out at the provider too");
    let page = SigningOutPage {
        layout: Layout::bare(),
        provider: provider.config.display_name.clone(),
        url,
    };
    Ok(Some(render(&page)?.into_response()))
}

/// What the account page calls a linked identity's provider: its configured display name, found
/// by issuer (names may be renamed in the configuration), else the name it signed in through.
pub fn provider_display(state: &AppState, issuer: &str, fallback: &str) -> String {
    state.oidc.by_issuer(issuer).map_or_else(
        || fallback.to_owned(),
        |provider| provider.config.display_name.clone(),
    )
}
