//! Who is signed in: the session's record, the extractors that read it, sign-in and sign-out.

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::{Session, SessionStore};
use uuid::Uuid;

use super::page::Layout;
use crate::app::AppState;
use crate::db::users::{self, User};
use crate::domain::tokens;
use crate::error::{AppError, AppResult};

const AUTH: &str = "auth";
pub(super) const CSRF: &str = "csrf";
const FLASH: &str = "flash";
/// The last form ids this session has used (`first_use`).
const USED_FORMS: &str = "used_forms";
/// Which provider signed this session in (for signing out there too).
pub(super) const SSO: &str = "sso";
/// A provider identity waiting for the password of the account it will join.
pub(super) const SSO_PENDING_LINK: &str = "sso_link";

/// What the session remembers about a sign-in.
#[derive(Debug, Serialize, Deserialize)]
struct SessionAuth {
    user_id: Uuid,
    /// The user's `session_generation` at sign-in; a later bump ends this session.
    generation: i32,
    /// Unix seconds; the session ends this long after, however active (absolute lifetime).
    signed_in_at: i64,
}

pub(super) fn session_error(err: tower_sessions::session::Error) -> AppError {
    AppError::unexpected(format!("session store: {err}"))
}

/// The session cookie's name. `__Host-` makes browsers refuse the cookie unless it is Secure,
/// host-only and path `/`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-gatehouse"
    } else {
        "gatehouse"
    }
}

/// The signed-in user of a request answered outside the portal's session layer (the error page of
/// a path no portal route matched, or any error page): read from the session cookie and the
/// store, changing nothing (no idle extension, no flash taken), with the session's form token (so
/// the page's "Sign out" works). None for a visitor, an ended session, or anything unreadable.
pub async fn user_from_cookie(cookies: &[HeaderValue], state: &AppState) -> Option<(User, String)> {
    let name = cookie_name(state.config.public_url.is_https());
    let id = cookies
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)?
        .1;
    let id: tower_sessions::session::Id = id.parse().ok()?;
    let record = state.sessions.load(&id).await.ok()??;
    if record.expiry_date <= OffsetDateTime::now_utc() {
        return None;
    }
    let auth: SessionAuth = serde_json::from_value(record.data.get(AUTH)?.clone()).ok()?;
    let lifetime = i64::try_from(state.config.session_lifetime.as_secs()).unwrap_or(i64::MAX);
    if OffsetDateTime::now_utc().unix_timestamp() - auth.signed_in_at > lifetime {
        return None;
    }
    let user = users::find_by_id(&state.pool, auth.user_id)
        .await
        .ok()?
        .filter(|user| user.disabled_at.is_none() && user.session_generation == auth.generation)?;
    let csrf_token = record
        .data
        .get(CSRF)
        .and_then(|token| token.as_str())
        .unwrap_or_default()
        .to_owned();
    Some((user, csrf_token))
}

/// Anyone: a signed-in user or a visitor.
pub struct Visitor {
    pub session: Session,
    pub user: Option<User>,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, why)| AppError::unexpected(why))?;
        let user = signed_in_user(&session, state).await?;
        Ok(Self { session, user })
    }
}

async fn signed_in_user(session: &Session, state: &AppState) -> AppResult<Option<User>> {
    let Some(auth) = session
        .get::<SessionAuth>(AUTH)
        .await
        .map_err(session_error)?
    else {
        return Ok(None);
    };
    let lifetime = i64::try_from(state.config.session_lifetime.as_secs()).unwrap_or(i64::MAX);
    let expired = OffsetDateTime::now_utc().unix_timestamp() - auth.signed_in_at > lifetime;
    let user = if expired {
        None
    } else {
        users::find_by_id(&state.pool, auth.user_id)
            .await?
            .filter(|user| user.disabled_at.is_none() && user.session_generation == auth.generation)
    };
    if user.is_none() {
        // Over its lifetime, or ended by a password change: remove it from the store too.
        session.flush().await.map_err(session_error)?;
    }
    Ok(user)
}

/// A signed-in user; visitors are sent to the sign-in page and brought back afterwards.
pub struct CurrentUser {
    pub session: Session,
    pub user: User,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let visitor = Visitor::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match visitor.user {
            Some(user) => Ok(Self {
                session: visitor.session,
                user,
            }),
            None => {
                let uri = parts
                    .extensions
                    .get::<OriginalUri>()
                    .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
                let target = if parts.method == axum::http::Method::GET {
                    format!("/signin?next={}", encode(&uri.to_string()))
                } else {
                    "/signin".to_owned()
                };
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

impl CurrentUser {
    pub async fn layout(&self) -> AppResult<Layout> {
        Layout::build(&self.session, Some(&self.user), true).await
    }
}

impl Visitor {
    /// The frame of a page without forms of its own: a visitor gets no session for it.
    pub async fn layout(&self) -> AppResult<Layout> {
        Layout::build(&self.session, self.user.as_ref(), self.user.is_some()).await
    }

    /// The frame of a page with a form: the session and its CSRF token exist from here on.
    pub async fn form_layout(&self) -> AppResult<Layout> {
        Layout::build(&self.session, self.user.as_ref(), true).await
    }
}

/// Starts a signed-in session: a new session id (no fixation), a new CSRF token.
pub async fn sign_in(session: &Session, user: &User) -> AppResult<()> {
    session.cycle_id().await.map_err(session_error)?;
    // Whatever a previous sign-in through a provider left must not carry over to this one.
    for key in [SSO, SSO_PENDING_LINK] {
        session.remove_value(key).await.map_err(session_error)?;
    }
    let auth = SessionAuth {
        user_id: user.app_user_id,
        generation: user.session_generation,
        signed_in_at: OffsetDateTime::now_utc().unix_timestamp(),
    };
    session.insert(AUTH, auth).await.map_err(session_error)?;
    session
        .insert(CSRF, tokens::random_token(43))
        .await
        .map_err(session_error)?;
    Ok(())
}

/// Keeps this session signed in after the user's generation was bumped (password change),
/// under a fresh id, while every other session of the user ends.
pub async fn renew(session: &Session, user: &User, generation: i32) -> AppResult<()> {
    let renewed = User {
        session_generation: generation,
        ..user.clone()
    };
    sign_in(session, &renewed).await
}

/// Ends the session: the record is deleted from the store and the cookie cleared.
pub async fn sign_out(session: &Session) -> AppResult<()> {
    session.flush().await.map_err(session_error)
}

/// A one-time message shown on the next page.
pub async fn flash(session: &Session, message: impl Into<String>) -> AppResult<()> {
    session
        .insert(FLASH, message.into())
        .await
        .map_err(session_error)
}

/// Leaves `value` under `name` for the next page this session loads (Post/Redirect/Get: the
/// answer to a form is shown by the page it redirects to, so a reload re-sends nothing).
pub async fn leave<T: Serialize + Send + Sync>(
    session: &Session,
    name: &str,
    value: T,
) -> AppResult<()> {
    session.insert(name, value).await.map_err(session_error)
}

/// What [`leave`] left under `name`, if any; it is gone once taken.
pub async fn take<T: serde::de::DeserializeOwned>(
    session: &Session,
    name: &str,
) -> AppResult<Option<T>> {
    session.remove::<T>(name).await.map_err(session_error)
}

/// The one-time message left for this page, if any; it is gone once read.
pub async fn take_flash(session: &Session) -> AppResult<Option<String>> {
    session.remove::<String>(FLASH).await.map_err(session_error)
}

/// The per-session CSRF token, made when first needed.
pub async fn csrf_token(session: &Session) -> AppResult<String> {
    if let Some(token) = session.get::<String>(CSRF).await.map_err(session_error)? {
        return Ok(token);
    }
    let token = tokens::random_token(43);
    session
        .insert(CSRF, token.clone())
        .await
        .map_err(session_error)?;
    Ok(token)
}

/// Percent-encodes a value for a query string.
pub fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A `next` target is followed only when it stays on this site.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next
        }
        _ => "/",
    }
}

/// A one-time id for a form that creates something shown once (a hidden `form_id` field).
pub fn new_form_id() -> String {
    tokens::random_token(24)
}

/// True the first time a form id is presented in this session: a reloaded or re-sent
/// create form (a key, a roll, a webhook endpoint) must not make (and show) another one.
pub async fn first_use(session: &Session, form_id: &str) -> AppResult<bool> {
    let mut used: Vec<String> = session
        .get(USED_FORMS)
        .await
        .map_err(AppError::unexpected)?
        .unwrap_or_default();
    if form_id.is_empty() || used.iter().any(|id| id == form_id) {
        return Ok(false);
    }
    used.push(form_id.to_owned());
    let keep = used.len().saturating_sub(20);
    used.drain(..keep);
    session
        .insert(USED_FORMS, used)
        .await
        .map_err(AppError::unexpected)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next(Some("/account")), "/account");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "evil",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
