//! The shared vocabulary every layer speaks, and nothing else: the words Gatehouse stores in text
//! columns (roles, environments, live-key policies, the key API's answer codes) as types sqlx
//! decodes straight into, so no caller parses a stored string or guesses a default; the usage
//! windows the pages show and the counters keep; the portal's public URL. A leaf: it names no
//! other module of the crate.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use time::{Duration, OffsetDateTime, Time};

/// A member's role. Ordered: each role can do everything the ones below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, sqlx::Type, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Developer, Role::Viewer];

    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "admin" => Ok(Self::Admin),
            "developer" => Ok(Self::Developer),
            "viewer" => Ok(Self::Viewer),
            other => Err(format!(
                "{other:?} is not a role (admin, developer or viewer)."
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Developer => "developer",
            Self::Viewer => "viewer",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Admin => "Admin",
            Self::Developer => "Developer",
            Self::Viewer => "Viewer",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Admin => "manages members and every key, reads the audit log",
            Self::Developer => "creates and manages their own keys",
            Self::Viewer => "sees keys (masked) and usage, changes nothing",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which kind of key: live keys reach production, test keys the platform's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    pub const ALL: [Environment; 2] = [Environment::Live, Environment::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "live" => Some(Self::Live),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may create a tenant's live keys (its key policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum LiveKeys {
    /// Developers and admins.
    Anyone,
    /// Admins only.
    Admins,
    /// Admins; developers ask, and an admin approves or denies.
    Approval,
}

impl LiveKeys {
    pub const ALL: [LiveKeys; 3] = [Self::Anyone, Self::Admins, Self::Approval];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anyone => "anyone",
            Self::Admins => "admins",
            Self::Approval => "approval",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|choice| choice.as_str() == value)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Anyone => "Developers and admins",
            Self::Admins => "Admins only",
            Self::Approval => "Developers with an admin's approval",
        }
    }
}

/// Every answer the key API gives about a key (stored as its name in the usage counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    Valid,
    Malformed,
    NotFound,
    Expired,
    Revoked,
    RateLimited,
    EnvironmentMismatch,
    TenantMismatch,
    InsufficientScope,
    Disabled,
    IpNotAllowed,
    TenantSuspended,
}

impl Code {
    pub const ALL: [Code; 12] = [
        Code::Valid,
        Code::Malformed,
        Code::NotFound,
        Code::Expired,
        Code::Revoked,
        Code::RateLimited,
        Code::EnvironmentMismatch,
        Code::TenantMismatch,
        Code::InsufficientScope,
        Code::Disabled,
        Code::IpNotAllowed,
        Code::TenantSuspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::Malformed => "MALFORMED",
            Self::NotFound => "NOT_FOUND",
            Self::Expired => "EXPIRED",
            Self::Revoked => "REVOKED",
            Self::RateLimited => "RATE_LIMITED",
            Self::EnvironmentMismatch => "ENVIRONMENT_MISMATCH",
            Self::TenantMismatch => "TENANT_MISMATCH",
            Self::InsufficientScope => "INSUFFICIENT_SCOPE",
            Self::Disabled => "DISABLED",
            Self::IpNotAllowed => "IP_NOT_ALLOWED",
            Self::TenantSuspended => "TENANT_SUSPENDED",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == value)
    }

    pub fn is_valid(self) -> bool {
        self == Self::Valid
    }

    /// A sentence for people reading an error body or a log.
    pub fn message(self) -> &'static str {
        match self {
            Self::Valid => "The key is valid.",
            Self::Malformed => "This is not an API key of this service.",
            Self::NotFound => "No such API key.",
            Self::Expired => "The API key has expired.",
            Self::Revoked => "The API key has been revoked.",
            Self::RateLimited => "Too many requests. Try again after the time in Retry-After.",
            Self::EnvironmentMismatch => "The API key is not for this environment.",
            Self::TenantMismatch => "The API key belongs to another tenant.",
            Self::InsufficientScope => "The API key lacks a scope this request needs.",
            Self::Disabled => "The API key is disabled.",
            Self::IpNotAllowed => "The client's address is not on this API key's allowlist.",
            Self::TenantSuspended => "The API key's account is suspended.",
        }
    }

    /// The message for a refusal of a client at `client`: IP_NOT_ALLOWED names the address, or
    /// why there was none. The API's answers and the request log's explanations both read it.
    pub fn message_for(self, client: ClientAddress) -> Cow<'static, str> {
        match (self, client) {
            (Self::IpNotAllowed, ClientAddress::Known(client)) => Cow::Owned(format!(
                "The address {} is not on this API key's allowlist.",
                unmapped(client)
            )),
            (Self::IpNotAllowed, ClientAddress::NotGiven) => Cow::Borrowed(
                "This API key works only from the addresses on its allowlist, and no client \
                 address was given (send `client_ip`).",
            ),
            (Self::IpNotAllowed, ClientAddress::Unreadable) => Cow::Borrowed(
                "This API key works only from the addresses on its allowlist, and the client's \
                 address the gateway sent (the last X-Forwarded-For entry) is not an address.",
            ),
            (code, _) => Cow::Borrowed(code.message()),
        }
    }
}

/// The client address a key's IP allowlist is checked against, or why there is none (then a key
/// with an allowlist is refused: fail closed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClientAddress {
    Known(IpAddr),
    /// A verify call named no `client_ip`.
    #[default]
    NotGiven,
    /// The gateway's word for it (the rightmost `X-Forwarded-For` entry, or `X-Real-IP`) does
    /// not parse.
    Unreadable,
}

impl ClientAddress {
    pub fn ip(self) -> Option<IpAddr> {
        match self {
            Self::Known(ip) => Some(ip),
            Self::NotGiven | Self::Unreadable => None,
        }
    }

    /// As the request log keeps it (the detail of an IP_NOT_ALLOWED record).
    pub fn recorded(self) -> String {
        match self {
            Self::Known(ip) => ip.to_string(),
            Self::NotGiven => NOT_GIVEN.to_owned(),
            Self::Unreadable => UNREADABLE.to_owned(),
        }
    }

    /// Read back from the request log: the detail kept, else (a record from before details were
    /// kept) the address recorded as the client's.
    pub fn from_record(detail: Option<&str>, client_ip: &str) -> Self {
        match detail.unwrap_or(client_ip) {
            NOT_GIVEN => Self::NotGiven,
            UNREADABLE => Self::Unreadable,
            text => text.parse().map_or(Self::Unreadable, Self::Known),
        }
    }
}

const NOT_GIVEN: &str = "not-given";
const UNREADABLE: &str = "unreadable";

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The periods the usage pages show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last hour, per minute.
    Hour,
    /// The last 24 hours, per hour.
    Day,
    /// The last 30 days, per day.
    Month,
    /// The last 90 days, per day (the longest range the pages offer).
    Quarter,
}

impl Window {
    pub const ALL: [Window; 4] = [Window::Hour, Window::Day, Window::Month, Window::Quarter];

    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("1h") => Self::Hour,
            Some("30d") => Self::Month,
            Some("90d") => Self::Quarter,
            _ => Self::Day,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Month => "30d",
            Self::Quarter => "90d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Hour => "Last hour",
            Self::Day => "Last 24 hours",
            Self::Month => "Last 30 days",
            Self::Quarter => "Last 90 days",
        }
    }

    pub fn step(self) -> Duration {
        match self {
            Self::Hour => Duration::MINUTE,
            Self::Day => Duration::HOUR,
            Self::Month | Self::Quarter => Duration::DAY,
        }
    }

    pub fn buckets(self) -> i32 {
        match self {
            Self::Hour => 60,
            Self::Day => 24,
            Self::Month => 30,
            Self::Quarter => 90,
        }
    }

    /// The bucket `at` falls in.
    pub fn floor(self, at: OffsetDateTime) -> OffsetDateTime {
        let at = at
            .replace_nanosecond(0)
            .unwrap_or(at)
            .replace_second(0)
            .unwrap_or(at);
        match self {
            Self::Hour => at,
            Self::Day => at.replace_minute(0).unwrap_or(at),
            Self::Month | Self::Quarter => at.replace_time(Time::MIDNIGHT),
        }
    }

    /// The first bucket shown when the newest is the one `now` falls in.
    pub fn start(self, now: OffsetDateTime) -> OffsetDateTime {
        self.floor(now) - self.step() * (self.buckets() - 1)
    }
}

/// The URL people reach the portal at: decides cookie `Secure`, HSTS and the allowed `Origin`.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// Scheme, host and port, without a trailing slash: what browsers send as `Origin`.
    origin: String,
    https: bool,
}

impl PublicUrl {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim().trim_end_matches('/');
        let (https, rest) = if let Some(rest) = value.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = value.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("{value:?} must start with http:// or https://"));
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(format!(
                "{value:?} must be a scheme, host and optional port, with no path"
            ));
        }
        Ok(Self {
            origin: format!(
                "{}://{}",
                if https { "https" } else { "http" },
                rest.to_ascii_lowercase()
            ),
            https,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// A link to `path` (which starts with `/`) on the portal: what mails carry, never built from
    /// a request's `Host`.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// The host name for a default `From` address: the public host when it is a name, else `localhost`.
    pub fn mail_domain(&self) -> &str {
        let host = self.origin.split_once("://").map_or("", |(_, rest)| rest);
        let host = host.rsplit_once(':').map_or(host, |(host, _)| host);
        if host.contains(|c: char| c.is_ascii_alphabetic()) && !host.contains(['[', ']']) {
            host
        } else {
            "localhost"
        }
    }
}

impl fmt::Debug for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_address_and_why_there_is_none_round_trip_through_the_log() {
        for client in [
            ClientAddress::Known("203.0.113.9".parse().unwrap()),
            ClientAddress::Known("2001:db8::1".parse().unwrap()),
            ClientAddress::NotGiven,
            ClientAddress::Unreadable,
        ] {
            assert_eq!(
                ClientAddress::from_record(Some(&client.recorded()), "127.0.0.1"),
                client
            );
        }
        assert_eq!(
            ClientAddress::from_record(None, "198.51.100.7"),
            ClientAddress::Known("198.51.100.7".parse().unwrap())
        );
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin > Role::Developer && Role::Developer > Role::Viewer);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        assert!(Role::parse("owner").is_err());
    }

    #[test]
    fn environments_round_trip_through_their_names() {
        for environment in Environment::ALL {
            assert_eq!(Environment::parse(environment.as_str()), Some(environment));
        }
        assert_eq!(Environment::parse("prod"), None);
    }

    #[test]
    fn a_public_url_is_an_origin_without_a_path() {
        let url = PublicUrl::parse("https://Portal.Example.com/").unwrap();
        assert_eq!(url.origin(), "https://portal.example.com");
        assert!(url.is_https());
        assert_eq!(url.link("/signin"), "https://portal.example.com/signin");
        assert_eq!(url.mail_domain(), "portal.example.com");
        assert_eq!(
            PublicUrl::parse("http://127.0.0.1:8080")
                .unwrap()
                .mail_domain(),
            "localhost"
        );
        assert!(PublicUrl::parse("portal.example.com").is_err());
        assert!(PublicUrl::parse("https://portal.example.com/app").is_err());
    }

    #[test]
    fn codes_round_trip_through_their_names() {
        for code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
        }
        assert_eq!(Code::parse("valid"), None);
    }

    #[test]
    fn windows_parse_with_a_default() {
        assert_eq!(Window::parse(Some("1h")), Window::Hour);
        assert_eq!(Window::parse(Some("30d")), Window::Month);
        assert_eq!(Window::parse(Some("90d")), Window::Quarter);
        assert_eq!(
            Window::parse(Some("365d")),
            Window::Day,
            "nothing beyond 90 days"
        );
        assert_eq!(Window::parse(Some("bogus")), Window::Day);
        assert_eq!(Window::parse(None), Window::Day);
    }
}
