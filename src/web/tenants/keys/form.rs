//! The key forms as typed (new key, edit) and their translation into the domain's typed requests:
//! the portal's door. Choices offered (expiry, grace) and how their values read; no rule lives here.

use time::{Duration, OffsetDateTime};

use crate::domain::keys::allowlist::IpAllowlist;
use crate::domain::keys::{
    AccessChoice, KeyChangeRequest, NewKeyRequest, RATE_LIMIT_MESSAGE, Read, meta_from_text,
};
use crate::vocabulary::Environment;

/// The expiry choices of the key forms: the form's value and what it says.
pub const EXPIRY_CHOICES: [(&str, &str); 5] = [
    ("never", "Never"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
    ("date", "On a date…"),
];

/// The grace periods a roll offers: the form's value and what it says.
pub const GRACE_CHOICES: [(&str, &str); 4] = [
    ("none", "Not at all: it stops now"),
    ("1h", "For 1 hour"),
    ("24h", "For 24 hours"),
    ("7d", "For 7 days"),
];
/// The grace a roll form starts with.
pub const DEFAULT_GRACE: &str = "1h";

/// A grace choice as a duration.
pub fn read_grace(choice: &str) -> Result<Duration, String> {
    match choice {
        "none" => Ok(Duration::ZERO),
        "1h" => Ok(Duration::hours(1)),
        "24h" => Ok(Duration::hours(24)),
        "7d" => Ok(Duration::days(7)),
        _ => Err("Choose how long the old key keeps working.".into()),
    }
}

/// An expiry choice (`never`, `30`, `90`, `365`, or `date` with `date` as YYYY-MM-DD) as the
/// moment it names: a date means its start, in UTC.
pub fn read_expiry(choice: &str, date: &str, now: OffsetDateTime) -> Read<Option<OffsetDateTime>> {
    match choice {
        "never" | "" => Ok(None),
        "30" => Ok(Some(now + Duration::days(30))),
        "90" => Ok(Some(now + Duration::days(90))),
        "365" => Ok(Some(now + Duration::days(365))),
        "date" => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(date.trim(), &format)
                .map(|date| Some(date.midnight().assume_utc()))
                .map_err(|_| "Pick an expiry date (YYYY-MM-DD).".to_owned())
        }
        _ => Err("Choose when the key expires.".into()),
    }
}

/// A typed rate limit; `None` when left empty.
fn read_rate_limit(typed: &str) -> Read<Option<u32>> {
    match typed.trim() {
        "" => Ok(None),
        typed => typed
            .parse::<u32>()
            .map(Some)
            .map_err(|_| RATE_LIMIT_MESSAGE.to_owned()),
    }
}

/// The access radio buttons: `full`, `scopes`, or no choice.
fn read_access(choice: &str, scopes: &[String]) -> AccessChoice {
    AccessChoice {
        full: match choice {
            "full" => Some(true),
            "scopes" => Some(false),
            _ => None,
        },
        scopes: scopes.to_vec(),
    }
}

/// The new-key form as typed.
#[derive(Debug, Default, Clone)]
pub struct KeyInput {
    pub name: String,
    pub environment: String,
    /// `full` or `scopes`: the choice of the form's two access options (empty when none was made).
    pub access: String,
    pub scopes: Vec<String>,
    pub expiry: String,
    pub expiry_date: String,
    pub rate_limit: String,
    pub ip_allowlist: String,
}

impl KeyInput {
    /// The form as the domain's request. The allowlist field starts filled with the tenant's
    /// default, so what it holds when sent is the key's allowlist (empty: any address).
    pub fn request(&self) -> NewKeyRequest {
        NewKeyRequest {
            name: self.name.clone(),
            environment: Environment::parse(&self.environment)
                .ok_or_else(|| "Choose live or test.".to_owned()),
            access: read_access(&self.access, &self.scopes),
            expires_at: read_expiry(&self.expiry, &self.expiry_date, OffsetDateTime::now_utc()),
            rate_limit: read_rate_limit(&self.rate_limit),
            note: String::new(),
            meta: Ok(None),
            ip_allowlist: Some(IpAllowlist::split(&self.ip_allowlist)),
        }
    }
}

/// The edit form as typed.
#[derive(Debug, Default, Clone)]
pub struct EditInput {
    pub name: String,
    pub note: String,
    pub access: String,
    pub scopes: Vec<String>,
    /// `keep`, or one of [`EXPIRY_CHOICES`].
    pub expiry: String,
    pub expiry_date: String,
    /// Empty: unchanged.
    pub rate_limit: String,
    pub meta: String,
    pub ip_allowlist: String,
}

impl EditInput {
    /// The form as the domain's change: every field it shows (an unchanged field changes nothing;
    /// the domain compares).
    pub fn request(&self) -> KeyChangeRequest {
        KeyChangeRequest {
            name: Some(self.name.clone()),
            note: Some(self.note.clone()),
            access: Some(read_access(&self.access, &self.scopes)),
            rate_limit: read_rate_limit(&self.rate_limit).transpose(),
            expires_at: match self.expiry.as_str() {
                "keep" | "" => None,
                choice => Some(read_expiry(
                    choice,
                    &self.expiry_date,
                    OffsetDateTime::now_utc(),
                )),
            },
            meta: Some(meta_from_text(&self.meta)),
            ip_allowlist: Some(IpAllowlist::split(&self.ip_allowlist)),
            disabled: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_grace_choices_read() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(read_expiry("never", "", now), Ok(None));
        assert_eq!(
            read_expiry("30", "", now),
            Ok(Some(now + Duration::days(30)))
        );
        assert!(read_expiry("date", "soon", now).is_err());
        assert_eq!(
            read_expiry("date", "2999-12-31", now)
                .unwrap()
                .unwrap()
                .date()
                .year(),
            2999
        );
        assert!(read_expiry("12", "", now).is_err());
        assert_eq!(read_grace("1h").unwrap(), Duration::hours(1));
        assert!(read_grace("2h").is_err());
    }

    #[test]
    fn the_forms_become_requests_without_deciding_anything() {
        let input = KeyInput {
            name: "ci".into(),
            environment: "live".into(),
            access: "full".into(),
            rate_limit: "abc".into(),
            ip_allowlist: "10.0.0.1, 10.0.0.2\n".into(),
            ..KeyInput::default()
        };
        let request = input.request();
        assert_eq!(request.environment, Ok(Environment::Live));
        assert_eq!(request.access.full, Some(true));
        assert_eq!(request.rate_limit, Err(RATE_LIMIT_MESSAGE.to_owned()));
        assert_eq!(
            request.ip_allowlist,
            Some(vec!["10.0.0.1".to_owned(), "10.0.0.2".to_owned()])
        );
        let edit = EditInput {
            expiry: "keep".into(),
            ..EditInput::default()
        }
        .request();
        assert!(edit.expires_at.is_none() && edit.rate_limit.is_none());
    }
}
