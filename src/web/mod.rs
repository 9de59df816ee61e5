//! The portal: server-rendered pages, sessions, CSRF.

mod account;
mod assets;
mod auth;
mod clock;
mod csrf;
mod docs;
mod home;
mod invitations;
mod meta;
pub mod page;
mod session;
pub mod tenants;

use axum::Router;
use axum::middleware;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::app::AppState;

pub use session::{CurrentUser, Visitor, user_from_cookie};

/// The portal's pages under their sessions and CSRF check, and its assets; `api_document` is
/// the OpenAPI document its API reference page shows.
pub fn router(state: AppState, api_document: &'static str) -> Router<AppState> {
    let config = &state.config;
    let secure = config.public_url.is_https();
    let idle = time::Duration::try_from(config.session_idle).unwrap_or(time::Duration::minutes(30));
    let sessions = SessionManagerLayer::new(state.sessions.clone())
        .with_name(session::cookie_name(secure))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_path("/")
        // Saved on every request so the idle timeout counts from the last one.
        .with_always_save(true)
        .with_expiry(Expiry::OnInactivity(idle));

    Router::new()
        .merge(home::router())
        .merge(docs::router(api_document))
        .merge(auth::router())
        .merge(account::router())
        .merge(tenants::router(&state))
        .merge(invitations::router())
        .layer(middleware::from_fn_with_state(state, csrf::protect))
        .layer(sessions)
        .merge(assets::router())
}
