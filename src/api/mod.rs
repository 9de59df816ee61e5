//! The key API and operations endpoints: JSON, no sessions, no templates.

pub mod authorize;
pub mod contract;
pub mod edge;
pub mod error;
mod health;
pub mod leaks;
pub mod manage;
pub mod metrics;
pub mod tokens;
pub mod verify;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{any, get, post};

use crate::api::error::ApiError;
use crate::app::AppState;

/// The management API and the operations endpoints, behind the portal's shared layers.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(manage::router(state))
        .merge(tokens::router())
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/v1/leaks/{sender}", post(leaks::report))
}

/// The hot path: verify and forward-auth, under the key API's own minimal stack (`server.rs`).
pub fn key_api_router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/keys/verify",
            post(verify::verify_key).layer(logged("/v1/keys/verify")),
        )
        .route(
            "/v1/authorize",
            any(authorize::authorize).layer(logged("/v1/authorize")),
        )
        .route(
            "/v1/authorize/{*path}",
            any(authorize::authorize).layer(logged("/v1/authorize/{*path}")),
        )
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "That action is not available here.",
            )
        })
}

/// The key API's hot routes, which `server.rs` answers before the router: a `POST` to
/// `/v1/keys/verify`, and any method on `/v1/authorize` and below. Everything else, these paths'
/// other methods too, goes through the router (whose table also holds these routes, under the same
/// headers, for its 405s and for the OpenAPI document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotRoute {
    Verify,
    Authorize,
    /// `/v1/authorize/{*path}`.
    AuthorizeBelow,
}

impl HotRoute {
    pub fn of(method: &axum::http::Method, path: &str) -> Option<Self> {
        if path == "/v1/keys/verify" {
            return (method == axum::http::Method::POST).then_some(Self::Verify);
        }
        if path == "/v1/authorize" {
            return Some(Self::Authorize);
        }
        path.starts_with("/v1/authorize/")
            .then_some(Self::AuthorizeBelow)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Verify => "/v1/keys/verify",
            Self::Authorize => "/v1/authorize",
            Self::AuthorizeBelow => "/v1/authorize/{*path}",
        }
    }

    /// Answers `request` from a client at `peer` with what the router's route would answer: no
    /// route matching, no extensions (connection info, matched path, original URI), no layers.
    /// Takes what it needs by value and cannot fail, so the connection's service boxes this
    /// future as it is (one move of it per call, no wrapper).
    pub async fn answer(
        self,
        state: AppState,
        peer: std::net::IpAddr,
        request: axum::extract::Request,
    ) -> Result<Response, std::convert::Infallible> {
        let client =
            crate::client_ip::resolve(peer, request.headers(), &state.config.trusted_proxies);
        let mut response = match self {
            Self::Verify => verify::answer_verify(&state, client, request).await,
            Self::Authorize | Self::AuthorizeBelow => {
                authorize::answer_authorize(&state, client, request).await
            }
        };
        let headers = response.headers_mut();
        headers.insert(axum::http::header::CACHE_CONTROL, NO_STORE.clone());
        headers.insert(axum::http::header::X_CONTENT_TYPE_OPTIONS, NOSNIFF.clone());
        tracing::debug!(
            route = self.name(),
            status = response.status().as_u16(),
            "key API answer"
        );
        Ok(response)
    }
}

/// The key API's answers are never stored and never sniffed.
pub static NO_STORE: axum::http::HeaderValue = axum::http::HeaderValue::from_static("no-store");
pub static NOSNIFF: axum::http::HeaderValue = axum::http::HeaderValue::from_static("nosniff");

/// One debug line per answer, by route (never the path, which may hold a key): at the usual
/// `info` level the hot path writes no log line of its own; the 503s it gives are warned about
/// where they arise.
fn logged(
    route: &'static str,
) -> tower::util::MapResponseLayer<impl FnMut(Response) -> Response + Clone> {
    tower::util::MapResponseLayer::new(move |response: Response| {
        tracing::debug!(route, status = response.status().as_u16(), "key API answer");
        response
    })
}

#[cfg(test)]
mod tests {
    use super::HotRoute;
    use axum::http::Method;

    #[test]
    fn only_the_key_apis_own_routes_skip_the_router() {
        let route = |method: Method, path: &str| HotRoute::of(&method, path);
        assert_eq!(
            route(Method::POST, "/v1/keys/verify"),
            Some(HotRoute::Verify)
        );
        assert_eq!(
            route(Method::GET, "/v1/keys/verify"),
            None,
            "405 from the router"
        );
        assert_eq!(route(Method::POST, "/v1/keys/verify/"), None);
        assert_eq!(route(Method::POST, "/v1/keys/whoami"), None);
        assert_eq!(
            route(Method::GET, "/v1/authorize"),
            Some(HotRoute::Authorize)
        );
        assert_eq!(
            route(Method::DELETE, "/v1/authorize"),
            Some(HotRoute::Authorize)
        );
        assert_eq!(
            route(Method::GET, "/v1/authorize/orders/7"),
            Some(HotRoute::AuthorizeBelow)
        );
        assert_eq!(route(Method::GET, "/v1/authorizer"), None);
        assert_eq!(route(Method::GET, "/v1/tenants"), None);
    }
}
