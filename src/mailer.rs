//! The mail courier of the outbox: renders a mail (templates/mail, plain text and simple HTML) and
//! sends it through SMTP (lettre), or, without `GATEHOUSE_SMTP_URL`, writes it to the log.

use std::str::FromStr;
use std::time::Duration;

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::outbox as db_outbox;
use crate::domain::error::DomainResult;
use crate::domain::mail::{self, Envelope, Mail};
use crate::domain::outbox::{ClaimTerms, Claimed, Courier, NotSent};

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Template)]
#[template(path = "mail/body.txt")]
struct TextBody<'a> {
    mail: &'a Mail,
}

#[derive(Template)]
#[template(path = "mail/body.html")]
struct HtmlBody<'a> {
    mail: &'a Mail,
    subject: &'a str,
}

enum Transport {
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        /// The URL without credentials, for the start-up log.
        shown: String,
    },
    Log,
}

pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl Mailer {
    /// `smtp_url` in lettre's URL form; `None` writes mail to the log.
    pub fn new(smtp_url: Option<&SecretString>, from: &str) -> Result<Self, String> {
        let from = parse_from(from)?;
        let transport = match smtp_url {
            None => Transport::Log,
            Some(url) => Transport::Smtp {
                transport: Box::new(smtp_transport(url.expose_secret())?),
                shown: without_credentials(url.expose_secret()),
            },
        };
        Ok(Self { transport, from })
    }

    /// Where mail goes, for the start-up log.
    pub fn destination(&self) -> String {
        match &self.transport {
            Transport::Smtp { shown, .. } => format!("SMTP at {shown}"),
            Transport::Log => "the log only (GATEHOUSE_SMTP_URL is not set)".into(),
        }
    }

    pub fn sends(&self) -> bool {
        matches!(self.transport, Transport::Smtp { .. })
    }

    async fn deliver_mail(&self, id: Uuid, payload: &Value) -> Result<Value, String> {
        let envelope: Envelope = serde_json::from_value(payload.clone())
            .map_err(|err| format!("unreadable mail payload: {err}"))?;
        let subject = envelope.mail.subject();
        match &self.transport {
            Transport::Log => {
                tracing::info!(mail.to = %envelope.to, mail.subject = %subject,
                    mail.link = envelope.mail.link().unwrap_or("-"),
                    "mail not sent (no GATEHOUSE_SMTP_URL): written here instead");
            }
            Transport::Smtp { transport, .. } => {
                let message = self.message(id, &envelope, &subject)?;
                transport
                    .send(message)
                    .await
                    .map_err(|err| format!("SMTP: {err}"))?;
            }
        }
        Ok(envelope.kept_after_sending())
    }

    fn message(&self, id: Uuid, envelope: &Envelope, subject: &str) -> Result<Message, String> {
        let to = Mailbox::from_str(&envelope.to)
            .map_err(|err| format!("bad recipient address: {err}"))?;
        let text = TextBody {
            mail: &envelope.mail,
        }
        .render()
        .map_err(|err| err.to_string())?;
        let html = HtmlBody {
            mail: &envelope.mail,
            subject,
        }
        .render()
        .map_err(|err| err.to_string())?;
        let domain = self.from.email.domain().to_owned();
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            // The outbox id: the same on every attempt, so a re-send is recognisably the same mail.
            .message_id(Some(format!("<{id}@{domain}>")))
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|err| err.to_string())
    }
}

impl Courier for Mailer {
    /// The payload: the envelope.
    type Message = Value;
    /// The payload kept once sent (without the link's token).
    type Record = Value;

    fn kind(&self) -> &'static str {
        mail::KIND
    }

    async fn claim(
        &self,
        pool: &PgPool,
        terms: ClaimTerms<'_>,
    ) -> sqlx::Result<Vec<(Claimed, Value)>> {
        let claimed = db_outbox::claim(pool, mail::KIND, terms).await?;
        Ok(claimed
            .into_iter()
            .map(|message| {
                let payload = message.payload.clone();
                (message, payload)
            })
            .collect())
    }

    /// The SMTP conversation's own timeout holds (the sender cuts off one that runs too long).
    async fn deliver(
        &self,
        id: Uuid,
        payload: &Value,
        _: Duration,
    ) -> Result<Value, NotSent<Value>> {
        self.deliver_mail(id, payload).await.map_err(NotSent::from)
    }

    async fn record_sent(&self, pool: &PgPool, sent: &[(Uuid, Value)]) -> DomainResult<()> {
        let (ids, kept): (Vec<Uuid>, Vec<Value>) = sent.iter().cloned().unzip();
        Ok(db_outbox::record_sent(pool, &ids, &kept).await?)
    }
}

/// Checks `GATEHOUSE_MAIL_FROM`.
pub fn parse_from(from: &str) -> Result<Mailbox, String> {
    Mailbox::from_str(from.trim()).map_err(|err| {
        format!("{from:?} is not a mail address like \"Gatehouse <gatehouse@example.com>\": {err}")
    })
}

/// Checks `GATEHOUSE_SMTP_URL` (lettre's form: smtp://host:25, smtp://user:pass@host:587?tls=required,
/// smtps://user:pass@host:465).
pub fn smtp_transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|err| {
            format!(
                "{:?} is not an SMTP URL like smtp://host:25 or smtps://user:password@host:465: {err}",
                without_credentials(url)
            )
        })?
        .timeout(Some(SMTP_TIMEOUT))
        .build())
}

/// The URL with any user and password removed.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_owned(),
        },
        None => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_the_smtp_destination() {
        let url = SecretString::from("smtps://mailer:hunter2-smtp@mail.example.com:465");
        let mailer = Mailer::new(Some(&url), "gatehouse@example.com").unwrap();
        let shown = mailer.destination();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("mail.example.com:465"), "{shown}");
        assert!(Mailer::new(Some(&SecretString::from("http://x")), "a@b.c").is_err());
        assert!(Mailer::new(None, "not an address").is_err());
    }

    #[test]
    fn a_mail_has_plain_text_and_html_with_the_outbox_id() {
        let mailer = Mailer::new(None, "Gatehouse <gatehouse@example.com>").unwrap();
        let envelope = Envelope {
            to: "ada@example.com".into(),
            mail: Mail::PasswordReset {
                name: "Ada <script>".into(),
                link: "https://portal.example/password/reset?token=abc".into(),
            },
        };
        let id = Uuid::new_v4();
        let message = mailer
            .message(id, &envelope, &envelope.mail.subject())
            .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(
            raw.contains(&format!("Message-ID: <{id}@example.com>")),
            "{raw}"
        );
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(
            raw.contains("<p>Hello Ada &#60;script&#62;,</p>"),
            "HTML is escaped: {raw}"
        );
    }
}
