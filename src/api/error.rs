//! The one JSON error of every `/v1` route and of the operations endpoints: the body
//! `{"error": {"code", "message", "field"?}}`, `Retry-After` by the one policy
//! ([`crate::error::retry_after`]) and a `WWW-Authenticate` challenge on every 401.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::error::DomainError;
use crate::domain::management::FieldProblem;
use crate::error::ErrorReport;

/// The body of every JSON error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT, INVALID,
    /// TOO_MANY_REQUESTS, UNAVAILABLE, …
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    /// The body of an error without a field.
    pub fn of(code: &str, message: &str) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
                field: None,
            },
        }
    }
}

/// Whose credentials a 401 asks for: the `WWW-Authenticate` challenge it carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Challenge {
    /// An operator token or a tenant management token in `Authorization`.
    #[default]
    Management,
    /// A verifier token in `Authorization` (`POST /v1/keys/verify`).
    Verifier,
    /// A verifier token in `Gatehouse-Verifier` (forward-auth's gateway).
    Gateway,
    /// A contract profile's own challenge (from its realm); `None` when the profile sends none.
    Profile(Option<HeaderValue>),
}

static MANAGEMENT_CHALLENGE: HeaderValue =
    HeaderValue::from_static("Bearer realm=\"gatehouse-management\"");
static VERIFIER_CHALLENGE: HeaderValue =
    HeaderValue::from_static("Bearer realm=\"gatehouse-verifier\"");
static GATEWAY_CHALLENGE: HeaderValue =
    HeaderValue::from_static("Gatehouse-Verifier realm=\"gatehouse-verifier\"");

impl Challenge {
    pub fn header(&self) -> Option<HeaderValue> {
        match self {
            Self::Management => Some(MANAGEMENT_CHALLENGE.clone()),
            Self::Verifier => Some(VERIFIER_CHALLENGE.clone()),
            Self::Gateway => Some(GATEWAY_CHALLENGE.clone()),
            Self::Profile(challenge) => challenge.clone(),
        }
    }
}

/// A refusal or failure of a JSON route, answered as [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<Cow<'static, str>>,
    /// What a rate limiter's 429 asks the client to wait (its window's reset), or a 409 that
    /// passes (a request with the same `Idempotency-Key` still running); `None`: the policy's wait
    /// ([`crate::error::retry_after`]).
    pub retry_after: Option<u32>,
    /// The challenge of a 401.
    pub challenge: Challenge,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            challenge: Challenge::default(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 401 asking for the credentials `challenge` names.
    pub fn unauthorized(challenge: Challenge, message: impl Into<String>) -> Self {
        Self {
            challenge,
            ..Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "There is nothing here.")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// 409 that passes: what it waits for is still running; a retry after `Retry-After` seconds
    /// may get its answer.
    pub fn in_progress(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(crate::error::RETRY_AFTER_SECONDS),
            ..Self::new(StatusCode::CONFLICT, code, message)
        }
    }

    /// 422 about one field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID", message)
        }
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "The request was too large.",
        )
    }

    /// 429 from a rate limiter whose window ends in `reset` seconds.
    pub fn rate_limited(message: impl Into<String>, reset: u32) -> Self {
        Self {
            retry_after: Some(reset),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", message)
        }
    }

    /// 503: what the answer needs cannot be reached now (fail closed).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Something went wrong on our side. It has been logged.",
        )
    }
}

impl From<FieldProblem> for ApiError {
    fn from(problem: FieldProblem) -> Self {
        let error = if problem.conflict {
            Self::conflict(problem.message)
        } else {
            Self::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID", problem.message)
        };
        Self {
            field: Some(problem.field.into()),
            ..error
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::NotFound => Self::not_found(),
            // The pool exhausted or the database out of reach: try again shortly, never a 500.
            DomainError::Database(err) if crate::db::is_unreachable(&err) => {
                tracing::warn!(error = %err, "API request cannot reach the database");
                Self::unavailable("The service cannot answer right now. Please try again shortly.")
            }
            other => {
                tracing::error!(error = %other, "API request failed");
                Self::internal()
            }
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        DomainError::Database(err).into()
    }
}

/// What the shared error renderer (`server.rs`) reports for a JSON path: an [`crate::error::AppError`]
/// or an error of a layer (413, 408, 404, 405).
impl From<&ErrorReport> for ApiError {
    fn from(report: &ErrorReport) -> Self {
        Self::new(report.status, report.code, report.message.clone())
    }
}

/// The one writer of JSON errors.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field.map(Cow::into_owned),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = crate::error::retry_after(self.status, self.retry_after) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED
            && let Some(challenge) = self.challenge.header()
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
