//! Leaked-key intake (issue 28): secret scanners' reports and what they do.

mod batch;
pub mod github;
mod owners;
mod policy;
