//! Signing in: password accounts and single sign-on through OpenID Connect providers.

mod password;
mod sso;

pub use password::router;
pub use sso::{provider_display, router as sso_router};
