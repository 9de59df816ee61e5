//! How a domain function fails. Two kinds of "no", told apart by the type:
//! - a **refusal** the person can act on (a taken slug, a wrong password, the last admin leaving)
//!   is a value: the inner `Result<T, Why>` (or an outcome enum) of `DomainResult<Result<T, Why>>`,
//!   with a message written for the page or the JSON error;
//! - a **failure** is a `DomainError`: the database or another part failed, or the thing asked for
//!   does not exist. The web and API edges turn it into their `AppError` (logged, never shown).

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("unexpected error: {0}")]
    Unexpected(String),
}

pub type DomainResult<T> = Result<T, DomainError>;

impl DomainError {
    pub fn unexpected(cause: impl std::fmt::Display) -> Self {
        Self::Unexpected(cause.to_string())
    }
}
