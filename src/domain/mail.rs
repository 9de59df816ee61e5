//! The mails Gatehouse sends: what each says (its fields, subject and link), and putting one in
//! the outbox. Rendering (templates/mail) and the SMTP transport live in `crate::mailer`.

use serde::{Deserialize, Serialize};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::error::DomainResult;
use crate::domain::outbox;

/// The outbox kind of mail messages.
pub const KIND: &str = "mail";

/// One mail: its recipient and what it says. Stored as the outbox payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    pub to: String,
    pub mail: Mail,
}

/// What a mail says. Links point only to `GATEHOUSE_PUBLIC_URL`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "template", rename_all = "snake_case")]
pub enum Mail {
    /// Proves the address: sent at sign-up, on request, and to a new address before switching.
    VerifyEmail {
        name: String,
        link: String,
    },
    PasswordReset {
        name: String,
        link: String,
    },
    /// A security notice: cannot be turned off.
    PasswordChanged {
        name: String,
        link: String,
    },
    /// To the old address, once the new one is verified.
    EmailChanged {
        name: String,
        new_email: String,
    },
    Invitation {
        tenant: String,
        inviter: String,
        role: String,
        link: String,
    },
    /// A security notice: a provider identity was joined to the account.
    IdentityLinked {
        name: String,
        provider: String,
        link: String,
    },
    /// A security notice: someone else rolled or revoked a key this person created.
    KeyChanged {
        name: String,
        tenant: String,
        key_name: String,
        /// "revoked" or "rolled".
        action: String,
        by: String,
        link: String,
    },
    /// A security notice to a key's creator and the tenant's admins: a secret scanner found the key
    /// in public; `action` is what the tenant's leak policy did (revoke, disable, notify, none).
    KeyLeaked {
        name: String,
        tenant: String,
        key_name: String,
        environment: String,
        url: String,
        action: String,
        link: String,
    },
    /// A key expires soon (30, 7 or 1 days ahead); can be turned off on the account page.
    KeyExpiring {
        name: String,
        tenant: String,
        key_name: String,
        environment: String,
        days_left: i64,
        expires: String,
        link: String,
    },
    /// An admin approved or denied this person's request for a live key.
    KeyRequestDecided {
        name: String,
        tenant: String,
        key_name: String,
        approved: bool,
        by: String,
        /// The admin's reason; may be empty for an approval.
        reason: String,
        link: String,
    },
    /// A webhook endpoint was disabled (410 Gone, or 3 days of failures): to the tenant's admins.
    WebhookDisabled {
        name: String,
        tenant: String,
        endpoint: String,
        reason: String,
        link: String,
    },
}

impl Mail {
    pub fn subject(&self) -> String {
        match self {
            Self::VerifyEmail { .. } => "Confirm your email address for Gatehouse".into(),
            Self::PasswordReset { .. } => "Reset your Gatehouse password".into(),
            Self::PasswordChanged { .. } => "Your Gatehouse password was changed".into(),
            Self::EmailChanged { .. } => "Your Gatehouse email address was changed".into(),
            Self::Invitation { tenant, .. } => format!("You are invited to {tenant} on Gatehouse"),
            Self::IdentityLinked { provider, .. } => {
                format!("{provider} was linked to your Gatehouse account")
            }
            Self::KeyChanged {
                key_name, action, ..
            } => format!("Your API key {key_name} was {action} by someone else"),
            Self::KeyLeaked { key_name, .. } => {
                format!("Your API key {key_name} was found in public")
            }
            Self::KeyExpiring {
                key_name,
                days_left,
                ..
            } => format!(
                "Your API key {key_name} expires in {days_left} day{}",
                if *days_left == 1 { "" } else { "s" }
            ),
            Self::WebhookDisabled { endpoint, .. } => {
                format!("Webhook endpoint {endpoint} was disabled")
            }
            Self::KeyRequestDecided {
                key_name, approved, ..
            } => format!(
                "Your request for the live key {key_name} was {}",
                if *approved { "approved" } else { "denied" }
            ),
        }
    }

    /// The link the mail is about, if any.
    pub fn link(&self) -> Option<&str> {
        match self {
            Self::VerifyEmail { link, .. }
            | Self::PasswordReset { link, .. }
            | Self::PasswordChanged { link, .. }
            | Self::Invitation { link, .. }
            | Self::IdentityLinked { link, .. }
            | Self::KeyChanged { link, .. }
            | Self::KeyExpiring { link, .. }
            | Self::KeyLeaked { link, .. }
            | Self::WebhookDisabled { link, .. }
            | Self::KeyRequestDecided { link, .. } => Some(link),
            Self::EmailChanged { .. } => None,
        }
    }

    /// Whether the link itself lets someone in (a single-use token), so it is removed once sent.
    pub fn link_is_secret(&self) -> bool {
        matches!(
            self,
            Self::VerifyEmail { .. } | Self::PasswordReset { .. } | Self::Invitation { .. }
        )
    }
}

impl Envelope {
    /// The payload kept after sending: the recipient and subject, no link that lets someone in.
    pub fn kept_after_sending(&self) -> serde_json::Value {
        serde_json::json!({
            "to": self.to,
            "subject": self.mail.subject(),
            "link": if self.mail.link_is_secret() { None } else { self.mail.link() },
        })
    }
}

/// Puts a mail in the outbox, in the caller's transaction.
pub async fn send(db: impl PgExecutor<'_>, to: &str, mail: Mail) -> DomainResult<Uuid> {
    let envelope = Envelope {
        to: to.to_owned(),
        mail,
    };
    let payload =
        serde_json::to_value(&envelope).map_err(crate::domain::error::DomainError::unexpected)?;
    outbox::enqueue(db, KIND, &payload).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_survives_the_outbox_as_json() {
        let envelope = Envelope {
            to: "ada@example.com".into(),
            mail: Mail::PasswordReset {
                name: "Ada".into(),
                link: "https://portal.example/password/reset?token=abc".into(),
            },
        };
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["mail"]["template"], "password_reset");
        assert_eq!(serde_json::from_value::<Envelope>(json).unwrap(), envelope);
    }

    #[test]
    fn secret_links_are_not_kept_after_sending() {
        let envelope = Envelope {
            to: "ada@example.com".into(),
            mail: Mail::PasswordReset {
                name: "Ada".into(),
                link: "https://portal.example/password/reset?token=abc".into(),
            },
        };
        let kept = envelope.kept_after_sending().to_string();
        assert!(!kept.contains("token=abc"), "{kept}");
        assert!(kept.contains("Reset your Gatehouse password"));
    }
}
