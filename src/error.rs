//! The HTTP edge's error type: the portal renders it as a page, the APIs as JSON. The domain
//! reports with its own `DomainError`, converted here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::domain::error::DomainError;

/// What a 503 (and a 429 that no rate limiter timed) asks the client to wait, in seconds.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The one `Retry-After` policy of every surface: a rate limiter's 429 waits until its window
/// ends (`wait`), any other 429 and every 503 wait [`RETRY_AFTER_SECONDS`]; a 409 waits only when
/// it names a wait (a request with the same `Idempotency-Key` is still running, so a retry will
/// get its answer); other statuses carry none.
pub fn retry_after(status: StatusCode, wait: Option<u32>) -> Option<u32> {
    match status {
        StatusCode::TOO_MANY_REQUESTS => Some(wait.unwrap_or(RETRY_AFTER_SECONDS)),
        StatusCode::SERVICE_UNAVAILABLE => Some(RETRY_AFTER_SECONDS),
        StatusCode::CONFLICT => wait,
        _ => None,
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("sign-in required")]
    Unauthorized,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("invalid input: {0}")]
    Validation(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("service unavailable")]
    Unavailable,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("unexpected error: {0}")]
    Unexpected(String),
}

/// What a rendered error says, attached to the response so the surface that owns the request
/// (portal page or JSON) can render it with the request id in hand.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AppError {
    pub fn unexpected(cause: impl std::fmt::Display) -> Self {
        Self::Unexpected(cause.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(err) if crate::db::is_unreachable(err) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Database(_) | Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The report a person or client sees: never internals for a 5xx.
    pub fn report(&self) -> ErrorReport {
        let (code, message) = match self {
            Self::NotFound => ("NOT_FOUND", "There is nothing here.".to_owned()),
            Self::Unauthorized => ("UNAUTHORIZED", "Please sign in first.".to_owned()),
            Self::BadRequest(why) => ("BAD_REQUEST", why.clone()),
            Self::UnsupportedMediaType(why) => ("UNSUPPORTED_MEDIA_TYPE", why.clone()),
            Self::Forbidden(why) => ("FORBIDDEN", why.clone()),
            Self::Validation(why) => ("INVALID", why.clone()),
            Self::Conflict(why) => ("CONFLICT", why.clone()),
            Self::Unavailable => (
                "UNAVAILABLE",
                "The service cannot answer right now. Please try again shortly.".to_owned(),
            ),
            Self::Database(err) if crate::db::is_unreachable(err) => {
                return Self::Unavailable.report();
            }
            Self::Database(_) | Self::Unexpected(_) => (
                "INTERNAL",
                "Something went wrong on our side. It has been logged.".to_owned(),
            ),
        };
        ErrorReport {
            status: self.status(),
            code,
            message,
        }
    }
}

/// The domain's failures, at the web and API edges.
impl From<DomainError> for AppError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::NotFound => Self::NotFound,
            DomainError::Database(err) => Self::Database(err),
            DomainError::Unexpected(why) => Self::Unexpected(why),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let report = self.report();
        if report.status.is_server_error() {
            // Logged once, here, inside the request's span (which carries the request id).
            tracing::error!(error = %self, status = report.status.as_u16(), "request failed");
        }
        let mut response = report.status.into_response();
        if let Some(seconds) = retry_after(report.status, None) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(report);
        response
    }
}
