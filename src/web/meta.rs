//! Who is asking and from where, for audit events: request id, client address, user agent.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::client_ip::ClientIp;
use crate::db::users::User;
use crate::domain::audit::{Actor, Who};
use crate::error::AppError;

pub struct RequestMeta {
    pub request_id: String,
    pub client_ip: ClientIp,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    pub fn actor(&self, user: &User) -> Actor {
        Actor {
            who: Who::Person(user.app_user_id),
            request_id: self.request_id.clone(),
            client_ip: self.client_ip.0,
            user_agent: self.user_agent.clone(),
        }
    }
}

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Ok(client_ip) = ClientIp::from_request_parts(parts, state).await;
        let header_text = |name| {
            parts
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(|value| value.chars().take(256).collect::<String>())
        };
        Ok(Self {
            request_id: header_text(header::HeaderName::from_static("x-request-id"))
                .unwrap_or_default(),
            client_ip,
            user_agent: header_text(header::USER_AGENT),
        })
    }
}
