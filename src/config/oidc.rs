//! OpenID Connect providers from `GATEHOUSE_OIDC_PROVIDERS` and `GATEHOUSE_OIDC_<NAME>_*`.

use secrecy::SecretString;

use super::env::Env;
use super::{ConfigError, invalid};

/// One OpenID Connect provider, from `GATEHOUSE_OIDC_<NAME>_*`.
#[derive(Debug, Clone)]
pub struct OidcProviderConfig {
    /// Lowercase letters and digits; in URLs (`/auth/oidc/<name>`) and variable names.
    pub name: String,
    /// Exactly as the provider states it in its discovery document and tokens.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// What the "Sign in with …" button says.
    pub display_name: String,
    /// Sign-out also ends the session at the provider (RP-initiated logout), when it offers that.
    pub provider_logout: bool,
    /// Treat the provider's `email` as verified even without `email_verified: true`. Only for a
    /// provider whose directory the operator controls (a single-tenant Entra ID, say).
    pub trust_email: bool,
}

/// The providers `GATEHOUSE_OIDC_PROVIDERS` lists, each from its own `GATEHOUSE_OIDC_<NAME>_*`;
/// every bad variable of every provider is named, not only the first.
pub(super) fn providers<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Vec<OidcProviderConfig>, Vec<ConfigError>> {
    let mut providers: Vec<OidcProviderConfig> = Vec::new();
    let mut problems = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for name in env.list(LIST) {
        let name = name.to_ascii_lowercase();
        if name.is_empty()
            || name.len() > 32
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            problems.push(invalid(
                LIST,
                format!("{name:?} is not a provider name (1 to 32 letters or digits, e.g. corp)"),
            ));
            continue;
        }
        if names.contains(&name) {
            problems.push(invalid(LIST, format!("{name:?} is listed twice")));
            continue;
        }
        names.push(name.clone());
        match provider(env, name) {
            Ok(provider) => providers.push(provider),
            Err(more) => problems.extend(more),
        }
    }
    if problems.is_empty() {
        Ok(providers)
    } else {
        Err(problems)
    }
}

const LIST: &str = "GATEHOUSE_OIDC_PROVIDERS";

/// One provider's settings, every bad one named.
fn provider<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: String,
) -> Result<OidcProviderConfig, Vec<ConfigError>> {
    let get = |name: &str| env.get(name);
    let prefix = format!("GATEHOUSE_OIDC_{}_", name.to_ascii_uppercase());
    let var = |suffix: &str| format!("{prefix}{suffix}");
    let mut problems = Vec::new();
    let mut required = |suffix: &str| {
        let variable = var(suffix);
        let value = get(&variable).map(|value| value.trim().to_owned());
        if value.is_none() {
            problems.push(invalid(
                variable,
                format!("is required because {LIST} lists {name:?}"),
            ));
        }
        value
    };
    let issuer = required("ISSUER");
    let client_id = required("CLIENT_ID");
    let client_secret = required("CLIENT_SECRET").map(SecretString::from);
    if let Some(Err(reason)) = issuer.as_deref().map(check_issuer) {
        problems.push(invalid(var("ISSUER"), reason));
    }
    let display_name =
        get(&var("DISPLAY_NAME")).map_or_else(|| name.clone(), |value| value.trim().to_owned());
    if display_name.chars().count() > 60 || display_name.chars().any(char::is_control) {
        problems.push(invalid(
            var("DISPLAY_NAME"),
            "must be at most 60 characters, without control characters",
        ));
    }
    let provider_logout = env
        .flag(&var("PROVIDER_LOGOUT"))
        .map_err(|problem| problems.push(problem));
    let trust_email = env
        .flag(&var("TRUST_EMAIL"))
        .map_err(|problem| problems.push(problem));
    match (
        issuer,
        client_id,
        client_secret,
        provider_logout,
        trust_email,
    ) {
        (
            Some(issuer),
            Some(client_id),
            Some(client_secret),
            Ok(provider_logout),
            Ok(trust_email),
        ) if problems.is_empty() => Ok(OidcProviderConfig {
            name,
            issuer,
            client_id,
            client_secret,
            display_name,
            provider_logout,
            trust_email,
        }),
        _ => Err(problems),
    }
}

/// Issuers are compared exactly, so the value is kept as given. Plain http is accepted only on
/// loopback (development and tests): anywhere else it would let the network forge sign-ins.
fn check_issuer(issuer: &str) -> Result<(), String> {
    let rest = if let Some(rest) = issuer.strip_prefix("https://") {
        rest
    } else if let Some(rest) = issuer.strip_prefix("http://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
            return Err(format!(
                "{issuer:?} must use https:// (plain http only on 127.0.0.1, localhost or [::1])"
            ));
        }
        rest
    } else {
        return Err(format!("{issuer:?} must be an https:// URL"));
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', ' ', '@']) {
        return Err(format!(
            "{issuer:?} must be the provider's issuer URL exactly, without query or fragment"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{CORP, config_of};

    #[test]
    fn plain_http_issuers_are_accepted_only_on_loopback() {
        for issuer in [
            "http://127.0.0.1:9000",
            "http://localhost:9000/realms/x",
            "http://[::1]:9000",
        ] {
            assert!(check_issuer(issuer).is_ok(), "{issuer}");
        }
        for issuer in [
            "http://127.0.0.1.evil.example",
            "http://10.0.0.1",
            "http://localhost.evil",
        ] {
            assert!(check_issuer(issuer).is_err(), "{issuer}");
        }
        // Trailing slashes matter to exact issuer comparison (Auth0 uses one): kept as given.
        let mut pairs = CORP.to_vec();
        pairs.retain(|(k, _)| *k != "GATEHOUSE_OIDC_CORP_ISSUER");
        pairs.push((
            "GATEHOUSE_OIDC_CORP_ISSUER",
            "https://tenant.auth0.example/",
        ));
        assert_eq!(
            config_of(&pairs).oidc_providers[0].issuer,
            "https://tenant.auth0.example/"
        );
    }
}
