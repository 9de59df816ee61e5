//! Signing in by password (`password`) or SSO (`sso`, `link`), and the answers they share.

mod link;
mod password;
mod reset;
mod sso;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::Visitor;
use super::page::html_with_status;
use crate::app::AppState;
use crate::error::AppResult;

pub use sso::provider_display;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(password::router())
        .merge(reset::router())
        .merge(sso::router())
        .merge(link::router())
}

/// The sign-in page with a message saying why a sign-in (through a provider) did not happen.
async fn sign_in_refused(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    message: String,
    next: &str,
) -> AppResult<Response> {
    let page = password::sign_in_page(state, visitor, String::new(), next, Some(message)).await?;
    html_with_status(status, &page)
}

/// Why a password form (sign-in, or linking a provider) is shown again.
struct PasswordRefusal {
    status: StatusCode,
    message: String,
    retry_after_secs: Option<i64>,
}

impl PasswordRefusal {
    fn new(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            message: message.to_owned(),
            retry_after_secs: None,
        }
    }

    /// Too many failed `attempts` ("sign-in attempts"): 429, how long to wait, and `Retry-After`.
    fn too_many(attempts: &str, retry_after_secs: i64) -> Self {
        let wait = minutes(Duration::from_secs(
            u64::try_from(retry_after_secs).unwrap_or_default(),
        ));
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("Too many failed {attempts}. Please wait {wait} and try again."),
            retry_after_secs: Some(retry_after_secs),
        }
    }

    /// The form, rendered with `self.message`, as the answer.
    fn respond(self, form: Html<String>) -> Response {
        let mut response = (self.status, form).into_response();
        if let Some(seconds) = self.retry_after_secs
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// "1 minute", "3 minutes": a wait or a lifetime, rounded up to whole minutes.
fn minutes(duration: Duration) -> String {
    let minutes = duration.as_secs().div_ceil(60);
    format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{PasswordRefusal, minutes};

    #[test]
    fn waits_read_in_whole_minutes_rounded_up() {
        assert_eq!(minutes(Duration::from_secs(1)), "1 minute");
        assert_eq!(minutes(Duration::from_secs(60)), "1 minute");
        assert_eq!(minutes(Duration::from_secs(61)), "2 minutes");
    }

    #[test]
    fn too_many_attempts_says_how_long_to_wait() {
        let refusal = PasswordRefusal::too_many("sign-in attempts", 125);
        assert_eq!(
            refusal.message,
            "Too many failed sign-in attempts. Please wait 3 minutes and try again."
        );
        assert_eq!(refusal.retry_after_secs, Some(125));
    }
}
