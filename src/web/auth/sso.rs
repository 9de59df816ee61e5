//! `/auth/oidc/{name}` and its callback: signing in (and out) through an OpenID Connect provider.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use super::{link, minutes, sign_in_refused};
use crate::app::AppState;
use crate::db::oidc_flows::{self, Flow, NewFlow};
use crate::domain::identities::{self, ProviderIdentity, SsoSignIn};
use crate::domain::tokens::{random_token, sha256};
use crate::error::{AppError, AppResult};
use crate::oidc_client::{LoginError, Provider};
use crate::web::Visitor;
use crate::web::page::{Layout, html};
use crate::web::session::{self, SSO, safe_next, session_error};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/oidc/{name}", get(start_sign_in))
        .route("/auth/oidc/{name}/callback", get(finish_sign_in))
}

#[derive(Serialize, Deserialize)]
struct SsoSession {
    provider: String,
    id_token: String,
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

/// Why a provider's callback signed no one in. Each is logged and shown on the sign-in page in
/// one place, `finish_sign_in`.
enum Refusal {
    /// Nothing this browser can finish (the reason is for the log): start again.
    StartAgain(&'static str),
    /// The flow outlived its lifetime.
    TookTooLong,
    /// The provider sent an error instead of a code (its error code, cleaned, for the log).
    ProviderError(String),
    /// The code could not be exchanged for a valid ID token.
    Login(LoginError),
    // The identity is good but cannot become or reach an account (`identities::SsoSignIn`).
    EmailNotVerified,
    NoEmail,
    EmailTaken,
    Disabled,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::StartAgain(_) | Self::TookTooLong => StatusCode::BAD_REQUEST,
            Self::Login(LoginError::Unavailable | LoginError::Unreachable(_)) => {
                StatusCode::BAD_GATEWAY
            }
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn message(&self, display: &str, flow_lifetime: std::time::Duration) -> String {
        match self {
            Self::StartAgain(_) => "This sign-in cannot be completed: it was already used, has \
                expired, or was started in another browser. Please start again."
                .to_owned(),
            Self::TookTooLong => format!(
                "This sign-in took too long (more than {}). Please start again.",
                minutes(flow_lifetime)
            ),
            Self::ProviderError(_) => format!("{display} did not sign you in. Please try again."),
            Self::Login(LoginError::Unavailable | LoginError::Unreachable(_)) => format!(
                "{display} could not be reached to finish signing you in. Please try again shortly."
            ),
            Self::Login(LoginError::Refused(_)) => {
                format!("{display} did not confirm this sign-in. Please start again.")
            }
            Self::Login(LoginError::InvalidToken(_)) => format!(
                "{display}'s answer could not be verified, so you have not been signed in. \
                 Please try again; if this keeps happening, tell your administrator."
            ),
            Self::EmailNotVerified => format!(
                "{display} has not verified your email address, so Gatehouse cannot create an \
                 account from it. Verify it with {display}, or sign up with a password."
            ),
            Self::NoEmail => format!(
                "{display} did not share a usable email address, so Gatehouse cannot create an \
                 account. Ask your administrator to allow the email scope."
            ),
            Self::EmailTaken => format!(
                "An account with your {display} email address already exists and signs in another \
                 way. Sign in the way you did before."
            ),
            Self::Disabled => "This account has been disabled.".to_owned(),
        }
    }

    fn log(&self, provider: &str, message: &str) {
        match self {
            Self::StartAgain(reason) => {
                tracing::warn!(oidc.provider = %provider, "SSO callback refused: {reason}");
            }
            Self::TookTooLong => {
                tracing::warn!(oidc.provider = %provider, "SSO callback refused: flow expired");
            }
            Self::ProviderError(error) => {
                tracing::info!(oidc.provider = %provider, oidc.error = %error, "provider did not sign the user in");
            }
            Self::Login(err) => {
                tracing::warn!(oidc.provider = %provider, reason = %err, "SSO sign-in refused");
            }
            Self::EmailNotVerified | Self::NoEmail | Self::EmailTaken | Self::Disabled => {
                tracing::info!(oidc.provider = %provider, reason = %message, "SSO sign-in refused");
            }
        }
    }
}

async fn finish_sign_in(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<CallbackQuery>,
    visitor: Visitor,
    headers: HeaderMap,
) -> AppResult<Response> {
    let provider = state.oidc.get(&name).cloned().ok_or(AppError::NotFound)?;
    let (outcome, next) = match take_flow(&state, &query, &headers).await? {
        Err(refusal) => (Err(refusal), "/".to_owned()),
        Ok(flow) => {
            let next = flow.next_path.clone();
            let outcome = complete_sign_in(&state, &provider, &query, flow, &visitor).await?;
            (outcome, next)
        }
    };
    match outcome {
        Ok(to) => Ok(Redirect::to(&to).into_response()),
        Err(refusal) => {
            let display = &provider.config.display_name;
            let message = refusal.message(display, state.config.oidc_flow_lifetime);
            refusal.log(&name, &message);
            sign_in_refused(&state, &visitor, refusal.status(), message, &next).await
        }
    }
}

/// The flow this browser started and this callback's state names, taken (it works once).
async fn take_flow(
    state: &AppState,
    query: &CallbackQuery,
    headers: &HeaderMap,
) -> AppResult<Result<Flow, Refusal>> {
    // The state must be one this browser was given: openidconnect leaves this check to us.
    let Some(returned_state) = query.state.as_deref() else {
        return Ok(Err(Refusal::StartAgain("no state")));
    };
    let Some(browser) = flow_cookie(headers, flow_cookie_name(state)) else {
        return Ok(Err(Refusal::StartAgain("no flow cookie")));
    };
    let Some(flow) =
        oidc_flows::take(&state.pool, &sha256(returned_state), &sha256(&browser)).await?
    else {
        return Ok(Err(Refusal::StartAgain(
            "unknown, used or other browser's state",
        )));
    };
    Ok(Ok(flow))
}

/// Finishes a taken flow at the provider and signs the user in; the path to go to next, or why not.
async fn complete_sign_in(
    state: &AppState,
    provider: &Provider,
    query: &CallbackQuery,
    flow: Flow,
    visitor: &Visitor,
) -> AppResult<Result<String, Refusal>> {
    let name = &provider.config.name;
    if &flow.provider != name {
        return Ok(Err(Refusal::StartAgain(
            "state belongs to another provider",
        )));
    }
    if !flow.live {
        return Ok(Err(Refusal::TookTooLong));
    }
    // RFC 9207: a provider that names itself must be the one this flow went to (mix-up defence).
    if let Some(iss) = query.iss.as_deref()
        && iss != provider.config.issuer
    {
        return Ok(Err(Refusal::StartAgain("iss parameter is another issuer")));
    }
    if let Some(error) = query.error.as_deref() {
        let error = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Ok(Err(Refusal::ProviderError(error)));
    }
    let Some(code) = query.code.as_deref() else {
        return Ok(Err(Refusal::StartAgain("no code")));
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
        Err(err) => return Ok(Err(Refusal::Login(err))),
    };
    let identity = ProviderIdentity {
        provider: name,
        issuer: &login.issuer,
        subject: &login.subject,
        email: login.email.as_deref(),
        email_verified: login.email_verified,
        name: login.name.as_deref(),
    };
    let next = flow.next_path;
    match identities::sign_in(&state.pool, &identity).await? {
        SsoSignIn::Known(user) => {
            tracing::info!(user.id = %user.app_user_id, oidc.provider = %name, "signed in through SSO");
            start_session(&visitor.session, &user, name, login.id_token).await?;
            Ok(Ok(next))
        }
        SsoSignIn::Created(user) => {
            tracing::info!(user.id = %user.app_user_id, oidc.provider = %name, "account created through SSO");
            start_session(&visitor.session, &user, name, login.id_token).await?;
            session::flash(
                &visitor.session,
                "Welcome to Gatehouse. Your account is ready.",
            )
            .await?;
            Ok(Ok(next))
        }
        SsoSignIn::TookOver(user) => {
            tracing::warn!(user.id = %user.app_user_id, oidc.provider = %name,
                "SSO proved an address held by an unverified password account: its password and sessions ended");
            start_session(&visitor.session, &user, name, login.id_token).await?;
            session::flash(
                &visitor.session,
                "Signed in. An unconfirmed account had signed up with your address; its password no longer works.",
            )
            .await?;
            Ok(Ok(next))
        }
        SsoSignIn::NeedsPassword(user) => {
            tracing::info!(user.id = %user.app_user_id, oidc.provider = %name,
                "SSO email matches a password account: asking for its password to link");
            link::wait_for_password(&visitor.session, state, name, login, &user, next).await?;
            Ok(Ok("/auth/oidc/link".to_owned()))
        }
        SsoSignIn::EmailNotVerified => Ok(Err(Refusal::EmailNotVerified)),
        SsoSignIn::NoEmail => Ok(Err(Refusal::NoEmail)),
        SsoSignIn::EmailTaken => Ok(Err(Refusal::EmailTaken)),
        SsoSignIn::Disabled => Ok(Err(Refusal::Disabled)),
    }
}

/// A signed-in session (new id, new CSRF token) that remembers the provider for sign-out.
pub(super) async fn start_session(
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
        layout: Layout::outside_session(None),
        provider: provider.config.display_name.clone(),
        url,
    };
    Ok(Some(html(&page)?))
}

/// What the account page calls a linked identity's provider: its configured display name, found
/// by issuer (names may be renamed in the configuration), else the name it signed in through.
pub fn provider_display(state: &AppState, issuer: &str, fallback: &str) -> String {
    state.oidc.by_issuer(issuer).map_or_else(
        || fallback.to_owned(),
        |provider| provider.config.display_name.clone(),
    )
}
