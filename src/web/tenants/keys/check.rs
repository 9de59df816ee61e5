//! The quick start on key pages (how to call the platform with a key) and
//! `POST /t/{slug}/keys/{id}/test`: asking the key API about a key, as a call would.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::load_key;
use crate::app::AppState;
use crate::config::Config;
use crate::domain::keys::format as key_format;
use crate::domain::verification::{Code, Requirements, Unavailable};
use crate::error::AppResult;
use crate::web::session;
use crate::web::tenants::TenantMember;

/// Where the quick start's curl line points when `GATEHOUSE_API_BASE_URL` is not set.
pub const PLACEHOLDER_BASE_URL: &str = "https://YOUR-API-HOST";

/// How to call the platform with a key: the header this deployment reads first, and a curl line.
pub struct QuickStart {
    /// `Authorization: Bearer $API_KEY`, or `<Header>: $API_KEY`.
    pub header: String,
    pub curl: String,
    /// False when the curl line holds [`PLACEHOLDER_BASE_URL`].
    pub has_base_url: bool,
}

impl QuickStart {
    pub fn new(config: &Config) -> Self {
        let name = config
            .key_headers
            .first()
            .map_or("Authorization", String::as_str);
        let header = if name.eq_ignore_ascii_case("authorization") {
            format!("{name}: Bearer $API_KEY")
        } else {
            format!("{name}: $API_KEY")
        };
        let base = config.api_base_url.as_deref();
        let curl = format!(
            "curl -H \"{header}\" {}/",
            base.unwrap_or(PLACEHOLDER_BASE_URL)
        );
        Self {
            header,
            curl,
            has_base_url: base.is_some(),
        }
    }
}

/// What the test of a key found, in words.
#[derive(Serialize, Deserialize)]
pub struct TestVerdict {
    pub accepted: bool,
    pub headline: String,
    pub detail: String,
}

impl TestVerdict {
    fn refused(headline: &str, detail: String) -> Self {
        Self {
            accepted: false,
            headline: headline.into(),
            detail,
        }
    }

    fn of(code: Code) -> Self {
        let detail = match code {
            Code::Valid => "The key API answered VALID: calls with this key are let through. \
                 This test counts in the key's usage like any call."
                .into(),
            code => format!(
                "The key API answered {}: {} Calls with this key are refused.",
                code.as_str(),
                code.message()
            ),
        };
        Self {
            accepted: code == Code::Valid,
            headline: if code == Code::Valid {
                "Accepted".into()
            } else {
                "Refused".into()
            },
            detail,
        }
    }
}

#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    key: String,
}

/// Asks the key API's `Verifier` about the key sent in the form, which must be this page's key:
/// the portal never judges (or counts usage for) another tenant's key. The key itself is never
/// shown back.
pub async fn test_key(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
    Form(form): Form<TestForm>,
) -> AppResult<Response> {
    let key = load_key(&state, &member, key_id).await?;
    let presented = form.key.trim();
    let prefix = &state.config.key_prefix;
    let verdict = if presented.is_empty() {
        TestVerdict::refused(
            "Nothing to test",
            "Paste the key in the field, then press Test this key.".into(),
        )
    } else {
        match key_format::is_key(prefix, presented, &key.secret_hash) {
            Err(_) => TestVerdict::refused(
                "Not a key",
                format!(
                    "What you pasted is not an API key of this service (they start with {prefix}_live_ or {prefix}_test_). Copy the whole key and try again."
                ),
            ),
            Ok(false) => TestVerdict::refused(
                "A different key",
                format!(
                    "That is not this key. Paste the key ending in {}; this page tests only its own key.",
                    key.last_four
                ),
            ),
            Ok(true) => {
                let client = member.actor.client_ip;
                match state
                    .verifier
                    .judge(presented, &Requirements::default(), client)
                    .await
                {
                    Ok(verdict) => TestVerdict::of(verdict.code),
                    Err(Unavailable) => TestVerdict::refused(
                        "No answer",
                        "The key API could not reach its database in time, so calls are refused \
                             for now. Try again in a moment."
                            .into(),
                    ),
                }
            }
        }
    };
    // Post/Redirect/Get: the key's page shows the verdict once, and a reload asks nothing again.
    session::leave(&member.session, TESTED, (key.api_key_id, verdict)).await?;
    Ok(Redirect::to(&format!(
        "/t/{}/keys/{}#test-result",
        member.membership.slug, key.api_key_id
    ))
    .into_response())
}

/// The session's slot for the verdict of the test just made, until the key's page shows it.
const TESTED: &str = "key_tested";

/// The verdict of the test just made of `key_id`, if this is the page the test redirected to.
pub(super) async fn take_verdict(
    member: &TenantMember,
    key_id: Uuid,
) -> AppResult<Option<TestVerdict>> {
    Ok(
        session::take::<(Uuid, TestVerdict)>(&member.session, TESTED)
            .await?
            .filter(|(tested, _)| *tested == key_id)
            .map(|(_, verdict)| verdict),
    )
}
