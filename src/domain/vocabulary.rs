//! Moved to [`crate::vocabulary`] (a leaf that `db` and `domain` both import); this re-export
//! stays until the last `crate::domain::vocabulary` path is switched.

pub use crate::vocabulary::*;
