//! `/t/{slug}/keys/new` and `POST /t/{slug}/keys`: creating a key and showing it, once.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::form::{EXPIRY_CHOICES, KeyInput};
use crate::app::AppState;
use crate::db::key_policies::{self, KeyPolicy};
use crate::domain::keys::format::{NewKey, masked};
use crate::domain::keys::requests as key_requests;
use crate::domain::keys::{self, Admission, KeyErrors};
use crate::error::AppResult;
use crate::vocabulary::{Environment, LiveKeys, Role};
use crate::web::page::{ConfirmPage, Layout, html, html_with_status};
use crate::web::session::{self, first_use, new_form_id};
use crate::web::tenants::{TenantMember, TenantNav};

/// The environments a new key can have, test first (the default), with what each is for.
const ENVIRONMENT_CHOICES: [(Environment, &str); 2] = [
    (
        Environment::Test,
        "for development and CI; calls never touch real data",
    ),
    (Environment::Live, "for production traffic"),
];

#[derive(Template)]
#[template(path = "keys/new.html")]
struct NewKeyPage {
    layout: Layout,
    tenant: TenantNav,
    form_id: String,
    input: KeyInput,
    errors: KeyErrors,
    catalogue: Vec<String>,
    is_admin: bool,
    default_live: u32,
    default_test: u32,
    environments: [(Environment, &'static str); 2],
    expiries: [(&'static str, &'static str); 5],
    policy: KeyPolicy,
    /// Developers' live keys wait for an admin: the form asks why.
    asks_reason: bool,
    reason: String,
    reason_error: Option<String>,
    /// An account without a confirmed address is told before it asks that live keys wait for it.
    email_confirmed: bool,
}

fn new_key_page(
    state: &AppState,
    member: &TenantMember,
    layout: Layout,
    input: KeyInput,
    errors: KeyErrors,
    policy: KeyPolicy,
) -> NewKeyPage {
    NewKeyPage {
        asks_reason: policy.live_keys == LiveKeys::Approval && member.role < Role::Admin,
        reason: String::new(),
        reason_error: None,
        email_confirmed: member.user.is_verified(),
        policy,
        layout,
        tenant: member.nav("keys"),
        form_id: new_form_id(),
        input,
        errors,
        catalogue: state.config.scopes.clone(),
        is_admin: member.role >= Role::Admin,
        default_live: state.config.rate_limit_live,
        default_test: state.config.rate_limit_test,
        environments: ENVIRONMENT_CHOICES,
        expiries: EXPIRY_CHOICES,
    }
}

pub async fn new_key_form(
    State(state): State<AppState>,
    member: TenantMember,
) -> AppResult<Response> {
    let policy = key_policies::get(&state.pool, member.membership.tenant_id).await?;
    let input = KeyInput {
        environment: "test".into(),
        // With a maximum lifetime, "never" is not a choice: start at the longest that fits.
        expiry: match policy.max_key_lifetime_days {
            None => "never",
            Some(days) if days >= 365 => "365",
            Some(days) if days >= 90 => "90",
            Some(days) if days >= 30 => "30",
            Some(_) => "date",
        }
        .into(),
        ip_allowlist: policy.default_ip_allowlist.join("\n"),
        ..KeyInput::default()
    };
    let layout = member.layout().await?;
    let page = new_key_page(&state, &member, layout, input, KeyErrors::default(), policy);
    html(&page)
}

/// The form's fields; `scopes` repeats, which typed `Form` cannot read.
fn read_form(body: &[u8]) -> (KeyInput, String, String) {
    let mut input = KeyInput::default();
    let mut form_id = String::new();
    let mut reason = String::new();
    for (name, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        match name.as_ref() {
            "name" => input.name = value,
            "environment" => input.environment = value,
            "scopes" => input.scopes.push(value),
            "access" => input.access = value,
            "expiry" => input.expiry = value,
            "expiry_date" => input.expiry_date = value,
            "rate_limit" => input.rate_limit = value,
            "ip_allowlist" => input.ip_allowlist = value,
            "form_id" => form_id = value,
            "reason" => reason = value,
            _ => {}
        }
    }
    (input, form_id, reason)
}

#[derive(Template)]
#[template(path = "keys/created.html")]
pub(super) struct KeyCreatedPage {
    layout: Layout,
    tenant: TenantNav,
    secret: String,
    key_id: Uuid,
    name: String,
    environment: String,
    rolled: Option<String>,
    quick: super::check::QuickStart,
    tested: Option<super::check::TestVerdict>,
    /// A new key always works: it can be tested.
    testable: bool,
    key_masked: String,
    /// The reveal page's test form carries the key, shown on this page anyway.
    test_secret: Option<String>,
}

pub(super) fn created_page(
    state: &AppState,
    member: &TenantMember,
    layout: Layout,
    key: &NewKey,
    key_id: Uuid,
    name: String,
    rolled: Option<String>,
) -> KeyCreatedPage {
    KeyCreatedPage {
        layout,
        tenant: member.nav("keys"),
        secret: key.expose().to_owned(),
        key_id,
        name,
        environment: key.environment.as_str().to_owned(),
        rolled,
        quick: super::check::QuickStart::new(&state.config),
        tested: None,
        testable: true,
        key_masked: masked(&state.config.key_prefix, key.environment, &key.last_four()),
        test_secret: Some(key.expose().to_owned()),
    }
}

/// Shown when a create or roll form is sent a second time (reload, back button).
pub(super) fn already_shown(member: &TenantMember, layout: Layout) -> AppResult<Response> {
    let slug = &member.membership.slug;
    let page = ConfirmPage {
        layout,
        tenant: member.nav("keys"),
        title: "This key was already shown".into(),
        message:
            "A new key is shown only once, right after it is made, and this form was already used. \
                  If you did not copy the key, revoke it and create another."
                .into(),
        action: String::new(),
        button: "",
        cancel: format!("/t/{slug}/keys"),
    };
    html_with_status(StatusCode::CONFLICT, &page)
}

pub async fn create_key(
    State(state): State<AppState>,
    member: TenantMember,
    body: Bytes,
) -> AppResult<Response> {
    let (input, form_id, reason) = read_form(&body);
    let tenant_id = member.membership.tenant_id;
    let by = member.requester();
    let mut conn = state.pool.acquire().await?;
    let admission = keys::admit(
        &mut conn,
        &state.config.keys(),
        tenant_id,
        &input.request(),
        by,
        false,
    )
    .await?;
    drop(conn);
    let refused = |errors: KeyErrors, reason: String, reason_error: Option<String>| async {
        let layout = member.layout().await?;
        let policy = key_policies::get(&state.pool, tenant_id).await?;
        let mut page = new_key_page(&state, &member, layout, input.clone(), errors, policy);
        page.reason = reason;
        page.reason_error = reason_error;
        html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    let admitted = match admission {
        Ok(Admission::Create(admitted)) => admitted,
        Ok(Admission::NeedsApproval(pending)) => {
            return match key_requests::request_key(&state.pool, &pending, &reason, &member.actor)
                .await?
            {
                Ok(request_id) => {
                    session::flash(
                        &member.session,
                        "Request sent. A tenant admin approves or denies it; we mail you either way.",
                    )
                    .await?;
                    Ok(Redirect::to(&format!(
                        "/t/{}/key-requests/{request_id}",
                        member.membership.slug
                    ))
                    .into_response())
                }
                Err(problem) => {
                    refused(
                        KeyErrors::default(),
                        reason.clone(),
                        Some(problem.message()),
                    )
                    .await
                }
            };
        }
        Err(errors) => return refused(errors, reason.clone(), None).await,
    };
    if !first_use(&member.session, &form_id).await? {
        return already_shown(&member, member.layout().await?);
    }
    let name = admitted.settings().name.as_str().to_owned();
    let (key, key_id) = keys::create_key(
        &state.pool,
        &state.config.key_prefix,
        admitted,
        &member.actor,
    )
    .await?;
    tracing::info!(key.id = %key_id, tenant.slug = %member.membership.slug, "key created");
    let layout = member.layout().await?;
    let page = created_page(&state, &member, layout, &key, key_id, name, None);
    html(&page)
}
