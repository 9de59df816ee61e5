//! Reading the whole configuration from the variables (`Config::from_env`), each value checked and
//! every refusal naming its variable.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::env::Env;
use super::{
    Config, ConfigError, ConfigErrors, IpNet, Profiles, PublicUrl, TokenDigests, invalid, oidc,
};
use crate::domain::sealing::SecretKey;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can pass a map instead of the environment.
    /// Every variable is read even after a bad one: the error names each bad variable, so one run
    /// of `gatehouse check-config` shows everything there is to fix.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigErrors> {
        let env = Env(lookup);
        let get = |name: &str| env.get(name);
        let problems = Problems::default();

        let database_url = problems.ok(get("DATABASE_URL")
            .map(SecretString::from)
            .ok_or_else(|| invalid("DATABASE_URL", "is required (postgres://user@host:port/db)")));

        let listen = problems.ok(match get("GATEHOUSE_LISTEN") {
            Some(value) => value.trim().parse().map_err(|_| {
                invalid(
                    "GATEHOUSE_LISTEN",
                    format!("{value:?} is not an address like 127.0.0.1:8080"),
                )
            }),
            None => Ok(SocketAddr::from(([127, 0, 0, 1], 8080))),
        });

        let metrics_listen = problems.ok(get("GATEHOUSE_METRICS_LISTEN")
            .filter(|value| !value.trim().is_empty())
            .map(|value| {
                value.trim().parse().map_err(|_| {
                    invalid(
                        "GATEHOUSE_METRICS_LISTEN",
                        format!("{value:?} is not an address like 127.0.0.1:9100"),
                    )
                })
            })
            .transpose());

        let public_url = problems.ok(PublicUrl::parse(
            get("GATEHOUSE_PUBLIC_URL")
                .as_deref()
                .unwrap_or("http://127.0.0.1:8080"),
        )
        .map_err(|reason| invalid("GATEHOUSE_PUBLIC_URL", reason)));

        let verifier_tokens = problems.ok(tokens(&env, "GATEHOUSE_VERIFIER_TOKENS"));
        let operator_tokens = problems.ok(tokens(&env, "GATEHOUSE_OPERATOR_TOKENS"));
        if let (Some(verifier_tokens), Some(operator_tokens)) = (&verifier_tokens, &operator_tokens)
            && operator_tokens.iter().any(|operator| {
                verifier_tokens
                    .iter()
                    .any(|verifier| verifier.expose_secret() == operator.expose_secret())
            })
        {
            problems.add(invalid(
                "GATEHOUSE_OPERATOR_TOKENS",
                "a token is also a verifier token; give the management API tokens of its own",
            ));
        }
        let management_rate_limit =
            problems.ok(per_minute(&env, "GATEHOUSE_MANAGEMENT_RATE_LIMIT", 600));
        let bad_tokens_per_client = problems.ok(per_minute(&env, "GATEHOUSE_BAD_TOKEN_LIMIT", 20));

        let key_prefix = get("GATEHOUSE_KEY_PREFIX").unwrap_or_else(|| "ak".to_owned());
        if key_prefix.is_empty()
            || key_prefix.len() > 16
            || !key_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            problems.add(invalid(
                "GATEHOUSE_KEY_PREFIX",
                "must be 1 to 16 lowercase letters or digits",
            ));
        }

        let legacy_key_pattern = problems.ok(get("GATEHOUSE_LEGACY_KEY_PATTERN")
            .filter(|pattern| !pattern.trim().is_empty())
            .map(|pattern| {
                regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|err| {
                    invalid(
                        "GATEHOUSE_LEGACY_KEY_PATTERN",
                        format!("is not a regular expression: {err}"),
                    )
                })
            })
            .transpose());

        let scopes = match env.list("GATEHOUSE_SCOPES") {
            scopes if get("GATEHOUSE_SCOPES").is_some() => scopes,
            _ => vec!["read".to_owned(), "write".to_owned()],
        };
        if scopes.is_empty() {
            problems.add(invalid("GATEHOUSE_SCOPES", "needs at least one scope"));
        }
        if let Some(bad) = scopes.iter().find(|scope| !is_scope_name(scope)) {
            problems.add(invalid(
                "GATEHOUSE_SCOPES",
                format!("{bad:?} is not a scope name (letters, digits, ':', '.', '_', '-')"),
            ));
        }

        let key_headers = match env.list("GATEHOUSE_KEY_HEADERS") {
            headers if get("GATEHOUSE_KEY_HEADERS").is_some() => headers,
            _ => vec!["Authorization".into(), "X-Api-Key".into(), "ApiKey".into()],
        };
        let bad_header = key_headers
            .iter()
            .find(|name| axum::http::HeaderName::from_bytes(name.as_bytes()).is_err());
        if let Some(bad) = bad_header {
            problems.add(invalid(
                "GATEHOUSE_KEY_HEADERS",
                format!("{bad:?} is not a header name"),
            ));
        }

        let api_base_url = problems.ok(get("GATEHOUSE_API_BASE_URL")
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
            .map(|url| api_base_url(&url).map(|()| url))
            .transpose()
            .map_err(|reason| invalid("GATEHOUSE_API_BASE_URL", reason)));

        // Profiles name the key headers; with a bad header list they are not judged.
        let profiles = match (get("GATEHOUSE_PROFILES_FILE"), bad_header) {
            (Some(path), None) => problems.ok(Profiles::load(path.trim(), &key_headers)),
            _ => Some(Profiles::plain(&key_headers)),
        };

        let session_idle = problems.ok(minutes(&env, "GATEHOUSE_SESSION_IDLE_MINUTES", 30));
        let session_lifetime =
            problems.ok(minutes(&env, "GATEHOUSE_SESSION_LIFETIME_MINUTES", 12 * 60));
        if let (Some(idle), Some(lifetime)) = (session_idle, session_lifetime)
            && lifetime < idle
        {
            problems.add(invalid(
                "GATEHOUSE_SESSION_LIFETIME_MINUTES",
                "must not be shorter than GATEHOUSE_SESSION_IDLE_MINUTES",
            ));
        }

        let trusted_proxies = problems.ok(env
            .list("GATEHOUSE_TRUSTED_PROXIES")
            .iter()
            .map(|entry| IpNet::parse(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| invalid("GATEHOUSE_TRUSTED_PROXIES", reason)));

        let database_max_connections =
            problems.ok(env.number("GATEHOUSE_DATABASE_MAX_CONNECTIONS", 1..=1000, 16, ""));

        let rate_limit_live = problems.ok(per_minute(&env, "GATEHOUSE_RATE_LIMIT_LIVE", 1000));
        let rate_limit_test = problems.ok(per_minute(&env, "GATEHOUSE_RATE_LIMIT_TEST", 100));
        let oidc_providers = oidc::providers(&env)
            .map_err(|found| found.into_iter().for_each(|problem| problems.add(problem)))
            .ok();
        let key_cache_ttl = problems.ok(seconds(&env, "GATEHOUSE_KEY_CACHE_SECONDS", 0..=10, 10));
        let usage_flush_interval =
            problems.ok(seconds(&env, "GATEHOUSE_USAGE_FLUSH_SECONDS", 1..=60, 2));
        let bad_keys_per_client = problems.ok(per_minute(&env, "GATEHOUSE_BAD_KEY_LIMIT", 100));
        let request_log = problems.ok(env.switch("GATEHOUSE_REQUEST_LOG", true));
        let request_log_days =
            problems.ok(env.number("GATEHOUSE_REQUEST_LOG_DAYS", 1..=365, 14, "days"));

        let smtp_url = get("GATEHOUSE_SMTP_URL")
            .filter(|url| !url.trim().is_empty())
            .map(|url| SecretString::from(url.trim().to_owned()));
        if let Some(url) = &smtp_url
            && let Err(reason) = crate::mailer::smtp_transport(url.expose_secret())
        {
            problems.add(invalid("GATEHOUSE_SMTP_URL", reason));
        }
        let mail_from = get("GATEHOUSE_MAIL_FROM").unwrap_or_else(|| {
            let domain = public_url
                .as_ref()
                .map_or("localhost", PublicUrl::mail_domain);
            format!("Gatehouse <gatehouse@{domain}>")
        });
        if let Err(reason) = crate::mailer::parse_from(&mail_from) {
            problems.add(invalid("GATEHOUSE_MAIL_FROM", reason));
        }

        let secret_key = problems.ok(get("GATEHOUSE_SECRET_KEY")
            .filter(|key| !key.trim().is_empty())
            .map(|key| SecretKey::parse(&key))
            .transpose()
            .map_err(|reason| invalid("GATEHOUSE_SECRET_KEY", reason)));
        let webhook_allow_private = problems.ok(env.flag("GATEHOUSE_WEBHOOK_ALLOW_PRIVATE"));
        let leak_senders = problems.ok(super::leaks::senders(&env));
        let token_key_rotation = problems
            .ok(env.number("GATEHOUSE_TOKEN_KEY_ROTATION_DAYS", 1..=365, 30, "days"))
            .map(time::Duration::days);
        let token_ttl = problems
            .ok(env.number("GATEHOUSE_TOKEN_TTL_SECONDS", 1..=3600, 300, "seconds"))
            .map(time::Duration::seconds);
        let token_audiences = problems.ok(token_audiences(&env, public_url.as_ref()));

        let problems = problems.0.into_inner();
        let (
            Some(database_url),
            Some(listen),
            Some(metrics_listen),
            Some(public_url),
            Some(verifier_tokens),
            Some(operator_tokens),
            Some(management_rate_limit),
            Some(bad_tokens_per_client),
            Some(legacy_key_pattern),
            Some(api_base_url),
            Some(profiles),
            Some(session_idle),
            Some(session_lifetime),
            Some(trusted_proxies),
            Some(database_max_connections),
            Some(rate_limit_live),
            Some(rate_limit_test),
            Some(oidc_providers),
            Some(key_cache_ttl),
            Some(usage_flush_interval),
            Some(bad_keys_per_client),
            Some(request_log),
            Some(request_log_days),
            Some(secret_key),
            Some(webhook_allow_private),
            Some(leak_senders),
            Some(token_key_rotation),
            Some(token_ttl),
            Some(token_audiences),
        ) = (
            database_url,
            listen,
            metrics_listen,
            public_url,
            verifier_tokens,
            operator_tokens,
            management_rate_limit,
            bad_tokens_per_client,
            legacy_key_pattern,
            api_base_url,
            profiles,
            session_idle,
            session_lifetime,
            trusted_proxies,
            database_max_connections,
            rate_limit_live,
            rate_limit_test,
            oidc_providers,
            key_cache_ttl,
            usage_flush_interval,
            bad_keys_per_client,
            request_log,
            request_log_days,
            secret_key,
            webhook_allow_private,
            leak_senders,
            token_key_rotation,
            token_ttl,
            token_audiences,
        )
        else {
            return Err(ConfigErrors(problems));
        };
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }

        Ok(Self {
            database_url,
            listen,
            metrics_listen,
            public_url,
            verifier_token_digests: TokenDigests::of(&verifier_tokens),
            verifier_tokens,
            operator_token_digests: TokenDigests::of(&operator_tokens),
            operator_tokens,
            management_rate_limit,
            bad_tokens_per_client,
            key_prefix,
            legacy_key_pattern,
            scopes,
            key_headers,
            api_base_url,
            profiles,
            session_idle,
            session_lifetime,
            trusted_proxies,
            database_max_connections,
            rate_limit_live,
            rate_limit_test,
            oidc_providers,
            oidc_flow_lifetime: Duration::from_secs(10 * 60),
            key_cache_ttl,
            usage_flush_interval,
            bad_keys_per_client,
            request_log,
            request_log_days,
            request_log_flush_interval: Duration::from_secs(1),
            request_log_buffer: crate::domain::request_log::BUFFER,
            smtp_url,
            mail_from,
            outbox_poll: Duration::from_secs(1),
            outbox_first_retry: Duration::from_secs(60),
            outbox_lease: Duration::from_secs(120),
            expiry_reminder_interval: Duration::from_secs(300),
            secret_key,
            token_key_rotation,
            token_ttl,
            token_audiences,
            webhook_allow_private,
            webhook_first_retry: Duration::from_secs(5),
            webhook_timeout: Duration::from_secs(15),
            leak_senders,
            leak_keys_refetch: Duration::from_secs(60),
        })
    }
}

/// The refusals found so far: reading goes on after each, so all are reported together.
#[derive(Default)]
struct Problems(std::cell::RefCell<Vec<ConfigError>>);

impl Problems {
    /// The value, or `None` with its refusal kept.
    fn ok<T>(&self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|problem| self.add(problem)).ok()
    }

    fn add(&self, problem: ConfigError) {
        self.0.borrow_mut().push(problem);
    }
}

/// The platform's API address: http(s), a host, and a path if any; nothing a shell line would
/// treat specially, since the portal shows it inside a curl command.
fn api_base_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} has no host"));
    }
    if let Some(bad) = rest
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/%[]@+,=".contains(*c)))
    {
        return Err(format!("{url:?} contains {bad:?}; give a plain URL"));
    }
    Ok(())
}

/// A comma-separated list of tokens, each at least 16 characters long.
fn tokens<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    variable: &str,
) -> Result<Vec<SecretString>, ConfigError> {
    env.list(variable)
        .into_iter()
        .map(|token| {
            if token.len() < 16 {
                Err(invalid(
                    variable,
                    "every token must be at least 16 characters long",
                ))
            } else {
                Ok(SecretString::from(token))
            }
        })
        .collect()
}

fn minutes<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    variable: &str,
    default: u64,
) -> Result<Duration, ConfigError> {
    let minutes = env.number(variable, 1..=525_600, default, "minutes")?;
    Ok(Duration::from_secs(minutes * 60))
}

fn seconds<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    variable: &str,
    range: std::ops::RangeInclusive<u64>,
    default: u64,
) -> Result<Duration, ConfigError> {
    env.number(variable, range, default, "seconds")
        .map(Duration::from_secs)
}

fn per_minute<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    variable: &str,
    default: u32,
) -> Result<u32, ConfigError> {
    env.number(variable, 1..=1_000_000, default, "requests per minute")
}

fn is_scope_name(scope: &str) -> bool {
    scope.len() <= 64
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'))
}

/// The audiences tokens may be issued for: `GATEHOUSE_TOKEN_AUDIENCES`, or the public URL's origin.
fn token_audiences(
    env: &Env<impl Fn(&str) -> Option<String>>,
    public_url: Option<&PublicUrl>,
) -> Result<Vec<String>, ConfigError> {
    let audiences = match env.list("GATEHOUSE_TOKEN_AUDIENCES") {
        audiences if audiences.is_empty() => public_url
            .map(|url| vec![url.origin().to_owned()])
            .unwrap_or_default(),
        audiences => audiences,
    };
    if let Some(bad) = audiences
        .iter()
        .find(|audience| audience.is_empty() || audience.contains(char::is_whitespace))
    {
        return Err(invalid(
            "GATEHOUSE_TOKEN_AUDIENCES",
            format!("{bad:?} is not an audience (a URI without spaces)"),
        ));
    }
    Ok(audiences)
}
