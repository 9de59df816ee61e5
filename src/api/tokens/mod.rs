//! The OAuth2 side of the key API (issue 25): the authorization server's metadata (RFC 8414) and
//! the keys that verify its tokens (the JWKS, RFC 7517).

pub mod metadata;
pub mod token;

use axum::Router;
use axum::routing::{get, post};

use crate::app::AppState;

/// The public documents, behind the portal's shared layers (JSON errors: `server::is_api_path`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(metadata::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata::authorization_server),
        )
        .route("/oauth/token", post(token::token))
}
