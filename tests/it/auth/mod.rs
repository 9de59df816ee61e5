//! Signing in: `/signup`, `/signin`, `/signout` with a password, and `/auth/oidc/…` single sign-on.

mod password;
pub(crate) mod reset;
mod sso;
