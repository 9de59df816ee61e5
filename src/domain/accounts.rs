//! Account inputs (email, display name, new password) as validated newtypes, and the account
//! actions built on them: sign up, sign in (throttled), change password.

use std::net::IpAddr;

use sqlx::PgPool;
use unicode_normalization::UnicodeNormalization;

use crate::db::OnUnique;
use crate::db::login_failures;
use crate::db::users::{self, User};
use crate::domain::email_links;
use crate::domain::error::DomainResult;
use crate::domain::passwords::Passwords;
use crate::domain::throttle::{self, Subject};
use crate::vocabulary::PublicUrl;

/// An email address as Gatehouse stores and compares it: trimmed, NFC-normalised, case-folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, String> {
        let email: String = input.trim().nfc().collect::<String>().to_lowercase();
        if email.is_empty() {
            return Err("Enter your email address.".into());
        }
        if email.chars().count() > 254 {
            return Err("That email address is too long.".into());
        }
        let valid = match email.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                    && !local.contains('@')
            }
            None => false,
        };
        if !valid {
            return Err("That does not look like an email address (name@example.com).".into());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name shown to other members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 80;

    pub fn parse(input: &str) -> Result<Self, String> {
        let name: String = input.trim().nfc().collect();
        if name.is_empty() {
            return Err("Enter a display name.".into());
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(format!(
                "Display names are at most {} characters.",
                Self::MAX_CHARS
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("Display names cannot contain control characters.".into());
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password someone chose, checked against the policy: 15 to 256 characters, not close to the
/// person's email or name, and hard to guess (a zxcvbn score of 3 or more).
/// No composition rules (NIST SP 800-63B).
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_CHARS: usize = 15;
    pub const MAX_CHARS: usize = 256;

    /// `context` holds words the password must not simply be (the email, the display name).
    pub fn parse(input: &str, context: &[&str]) -> Result<Self, String> {
        let length = input.chars().count();
        if length < Self::MIN_CHARS {
            return Err(format!(
                "Passwords need at least {} characters; yours has {length}. A few unrelated words make a good one.",
                Self::MIN_CHARS
            ));
        }
        if length > Self::MAX_CHARS {
            return Err(format!(
                "Passwords are at most {} characters.",
                Self::MAX_CHARS
            ));
        }
        let folded = input.to_lowercase();
        let stripped: String = folded.chars().filter(|c| c.is_alphanumeric()).collect();
        if context.iter().any(|word| {
            let word = word.to_lowercase();
            let local = word.split('@').next().unwrap_or_default();
            let local: String = local.chars().filter(|c| c.is_alphanumeric()).collect();
            local.chars().count() >= 4
                && stripped.starts_with(&local)
                && stripped.len() - local.len() < 6
        }) {
            return Err("That password is too close to your email or name. Choose another.".into());
        }
        match guessable(input, context) {
            Some(why) => Err(why),
            None => Ok(Self(input.to_owned())),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

/// How much of a password the estimator reads: enough for any estimate, and bounded work for the
/// longest passwords (zxcvbn's own advice).
const ESTIMATED_CHARS: usize = 100;

/// Why a password is too easy to guess, in zxcvbn's words, or `None` when it scores at least 3
/// ("safely unguessable": about 10^8 guesses or more). zxcvbn knows leaked-password, name and
/// word frequency lists, keyboard walks, sequences, repeats, dates and l33t spellings, and the
/// person's own email and name (`context`).
fn guessable(input: &str, context: &[&str]) -> Option<String> {
    let sample: String = input.chars().take(ESTIMATED_CHARS).collect();
    let mut personal: Vec<&str> = context.to_vec();
    for item in context {
        personal.extend(
            item.split(|c: char| !c.is_alphanumeric())
                .filter(|word| word.chars().count() >= 3),
        );
    }
    let estimate = zxcvbn::zxcvbn(&sample, &personal);
    if estimate.score() >= zxcvbn::Score::Three {
        return None;
    }
    let mut why = String::from("That password is too easy to guess");
    if let Some(warning) = estimate.feedback().and_then(|feedback| feedback.warning()) {
        why.push_str(&format!(": {warning}"));
    } else {
        why.push('.');
    }
    for suggestion in estimate
        .feedback()
        .map(|feedback| feedback.suggestions())
        .unwrap_or_default()
    {
        why.push_str(&format!(" {suggestion}"));
    }
    Some(why)
}

/// What went wrong with a sign-up, per field, so the form can say it next to the input.
#[derive(Debug, Default)]
pub struct SignUpErrors {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub password: Option<String>,
}

impl SignUpErrors {
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.display_name.is_none() && self.password.is_none()
    }
}

/// Creates a password account and, in the same transaction, mails it a verification link.
pub async fn sign_up(
    pool: &PgPool,
    passwords: &Passwords,
    public_url: &PublicUrl,
    email: &str,
    display_name: &str,
    password: &str,
) -> DomainResult<Result<User, SignUpErrors>> {
    let mut errors = SignUpErrors::default();
    let email = Email::parse(email).map_err(|e| errors.email = Some(e)).ok();
    let name = DisplayName::parse(display_name)
        .map_err(|e| errors.display_name = Some(e))
        .ok();
    let context: Vec<&str> = [
        email.as_ref().map(Email::as_str),
        name.as_ref().map(DisplayName::as_str),
    ]
    .into_iter()
    .flatten()
    .collect();
    let password = NewPassword::parse(password, &context)
        .map_err(|e| errors.password = Some(e))
        .ok();
    let (Some(email), Some(name), Some(password)) = (email, name, password) else {
        return Ok(Err(errors));
    };
    let hash = passwords.hash(password.expose()).await?;
    let mut tx = pool.begin().await?;
    match users::insert(&mut *tx, email.as_str(), name.as_str(), Some(&hash))
        .await
        .on_unique(&[users::UNIQUE_EMAIL])?
    {
        Ok(user) => {
            email_links::send_verification(&mut tx, public_url, &user, &user.email).await?;
            tx.commit().await?;
            Ok(Ok(user))
        }
        Err(_) => {
            errors.email =
                Some("An account with this email already exists. Sign in instead.".into());
            Ok(Err(errors))
        }
    }
}

/// The answer to a sign-in attempt. `Invalid` is the same whether or not the email is known.
#[derive(Debug)]
pub enum SignIn {
    Success(User),
    Invalid,
    Throttled { retry_after_secs: i64 },
}

/// Checks an email and password, throttled per account and per client address.
pub async fn sign_in(
    pool: &PgPool,
    passwords: &Passwords,
    email: &str,
    password: &str,
    client: IpAddr,
) -> DomainResult<SignIn> {
    // An address that cannot be parsed is still throttled, under what was typed.
    let folded = Email::parse(email).map_or_else(|_| email.trim().to_lowercase(), |e| e.0);
    let subjects = [Subject::Account(&folded), Subject::Client(client)];
    for subject in &subjects {
        let (failures, retry_after) =
            login_failures::recent(pool, &subject.key(), throttle::WINDOW).await?;
        if failures >= subject.limit() {
            return Ok(SignIn::Throttled {
                retry_after_secs: retry_after.max(1),
            });
        }
    }
    let user = users::find_by_email(pool, &folded).await?;
    let stored = user
        .as_ref()
        .filter(|user| user.disabled_at.is_none())
        .and_then(|user| user.password_hash.as_deref());
    let matches = passwords.verify(password, stored).await?;
    match user {
        Some(user) if matches => {
            login_failures::clear(pool, &subjects[0].key()).await?;
            Ok(SignIn::Success(user))
        }
        _ => {
            for subject in &subjects {
                login_failures::record(pool, &subject.key(), throttle::WINDOW).await?;
            }
            Ok(SignIn::Invalid)
        }
    }
}

/// Why a password change was refused, per field.
#[derive(Debug)]
pub enum PasswordChangeError {
    WrongCurrent,
    Rejected(String),
}

/// Changes a password after checking the current one and mails a notice; returns the new session
/// generation, which ends every other session of the user.
pub async fn change_password(
    pool: &PgPool,
    passwords: &Passwords,
    public_url: &PublicUrl,
    user: &User,
    current: &str,
    new: &str,
) -> DomainResult<Result<i32, PasswordChangeError>> {
    if !passwords
        .verify(current, user.password_hash.as_deref())
        .await?
    {
        return Ok(Err(PasswordChangeError::WrongCurrent));
    }
    if current == new {
        return Ok(Err(PasswordChangeError::Rejected(
            "The new password must differ from the current one.".into(),
        )));
    }
    let new = match NewPassword::parse(new, &[&user.email, &user.display_name]) {
        Ok(new) => new,
        Err(why) => return Ok(Err(PasswordChangeError::Rejected(why))),
    };
    let hash = passwords.hash(new.expose()).await?;
    let mut tx = pool.begin().await?;
    let generation = users::change_password(&mut *tx, user.app_user_id, &hash).await?;
    email_links::mail_password_changed(&mut tx, public_url, user).await?;
    tx.commit().await?;
    Ok(Ok(generation))
}

/// Turns key-expiry reminders on or off for `user`.
pub async fn set_expiry_reminders(pool: &PgPool, user: &User, wanted: bool) -> DomainResult<()> {
    Ok(users::set_expiry_reminders(pool, user.app_user_id, wanted).await?)
}

/// The time zones a person may choose: common IANA names, UTC first.
pub const TIME_ZONES: [&str; 24] = [
    "UTC",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "America/Mexico_City",
    "America/Toronto",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Warsaw",
    "Europe/Helsinki",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
];

/// What is wrong with a profile form, field by field.
#[derive(Debug, Default)]
pub struct ProfileErrors {
    pub display_name: Option<String>,
    pub time_zone: Option<String>,
}

/// Changes the person's display name and time zone (one of [`TIME_ZONES`]).
pub async fn update_profile(
    pool: &PgPool,
    user: &User,
    display_name: &str,
    time_zone: &str,
) -> DomainResult<Result<(), ProfileErrors>> {
    let name = DisplayName::parse(display_name);
    let zone = TIME_ZONES.iter().find(|zone| **zone == time_zone.trim());
    let (Ok(name), Some(zone)) = (&name, zone) else {
        return Ok(Err(ProfileErrors {
            display_name: name.err(),
            time_zone: zone
                .is_none()
                .then(|| "Choose a time zone from the list.".to_owned()),
        }));
    };
    users::set_profile(pool, user.app_user_id, name.as_str(), zone).await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_folded_and_normalised() {
        let composed = Email::parse("  José@Example.COM ").unwrap();
        let decomposed = Email::parse("Jose\u{301}@example.com").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(composed.as_str(), "josé@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@nodot",
            "a b@example.com",
            "a@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names_are_bounded() {
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(81)).is_err());
        assert!(DisplayName::parse("a\u{7}b").is_err());
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert!(NewPassword::parse("short one here", &[]).is_err());
        assert!(NewPassword::parse("correct horse battery", &[]).is_ok());
        // 15 characters, more than 15 bytes: accepted.
        assert!(NewPassword::parse("ééééé-ñandú-ßæø", &[]).is_ok());
        assert!(NewPassword::parse(&"long-enough-words ".repeat(15), &[]).is_err());
    }

    #[test]
    fn common_and_patterned_passwords_are_refused_with_a_reason() {
        for bad in [
            "passwordpassword",
            "123456789012345",
            "qwertyuiopasdfgh",
            "aaaaaaaaaaaaaaaaaaaa",
            "abcabcabcabcabcabc",
            "zyxwvutsrqponmlk",
            "ILoveYouILoveYou",
            "aaaaaaaaaaaaaab",
            "password1234567",
            "iloveyou1234567",
            "Password123456!",
        ] {
            let err = NewPassword::parse(bad, &[]).unwrap_err();
            assert!(err.contains("too easy to guess"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_passwords_the_tests_and_people_use_pass() {
        for good in [
            "correct horse battery staple 42",
            "a different and longer passphrase",
            "ada likes long walks",
            "ééééé-ñandú-ßæø",
        ] {
            assert!(
                NewPassword::parse(good, &["ada@example.com", "Ada"]).is_ok(),
                "{good}"
            );
        }
        let started = std::time::Instant::now();
        assert!(NewPassword::parse(&"plenty of unrelated words ".repeat(9), &[]).is_ok());
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn passwords_close_to_the_email_are_refused() {
        let err =
            NewPassword::parse("ada.lovelace2024", &["ada.lovelace@example.com"]).unwrap_err();
        assert!(err.contains("too close"));
        assert!(NewPassword::parse("ada likes long walks", &["ada@example.com"]).is_ok());
    }
}
