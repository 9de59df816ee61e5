//! Leaked-key intake (issue 28): secret scanners' reports and what they do.

mod batch;
mod github;
mod owners;
