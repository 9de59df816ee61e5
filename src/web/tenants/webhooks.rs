//! `/t/{slug}/webhooks…`: a tenant's webhook endpoints with their health, an endpoint's page with
//! its delivery log (`webhook_log.rs`), and the admin's changes (register, edit, roll the secret, disable and
//! enable, send a test event, resend a delivery, delete). Signing secrets are shown once, on the page
//! that follows registering or rolling; receivers' credentials never after they are typed.

use askama::Template;
use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::webhooks::{self as db_webhooks, Endpoint};
use crate::domain::webhooks::{
    self, AUTH_KINDS, EndpointErrors, EndpointInput, EventType, SigningSecret, WebhookProblem,
};
use crate::error::{AppError, AppResult};
use crate::vocabulary::{Environment, Role};
use crate::web::page::{Clock, ConfirmPage, Layout, When, html, html_with_status};
use crate::web::session;
use crate::web::session::{first_use, new_form_id};
use crate::web::tenants::{TenantMember, TenantNav};

const NO_KEY: &str = "Webhooks need GATEHOUSE_SECRET_KEY, which seals their secrets: ask the \
    operator of this Gatehouse to set it.";

/// An endpoint as the pages show it: no secret, no credential.
pub(super) struct EndpointView {
    pub(super) id: Uuid,
    pub(super) name: String,
    pub(super) url: String,
    pub(super) environment: Environment,
    pub(super) events: String,
    pub(super) enabled: bool,
    pub(super) disabled_reason: Option<String>,
    pub(super) seed_signature: bool,
    pub(super) auth: &'static str,
    pub(super) health: String,
    pub(super) healthy: bool,
    pub(super) last_delivery: Option<When>,
    pub(super) last_status: String,
    pub(super) overlap_until: Option<String>,
}

impl EndpointView {
    /// The endpoint as `role` sees it: only admins read the URL's query string.
    pub(super) fn of(endpoint: &Endpoint, clock: &Clock, role: Role) -> Self {
        let health = match (
            endpoint.enabled,
            endpoint.failures_in_row,
            endpoint.last_status,
        ) {
            (false, _, _) => "Disabled".to_owned(),
            (true, 0, None) => "No deliveries yet".to_owned(),
            (true, 0, _) => "Delivering".to_owned(),
            (true, 1, _) => "1 failure in a row".to_owned(),
            (true, n, _) => format!("{n} failures in a row"),
        };
        let now = time::OffsetDateTime::now_utc();
        Self {
            id: endpoint.webhook_endpoint_id,
            name: endpoint.name.clone(),
            url: webhooks::url_shown_to(&endpoint.url, role),
            environment: endpoint.environment,
            events: endpoint
                .event_types
                .as_ref()
                .map_or_else(|| "All events".to_owned(), |types| types.join(", ")),
            enabled: endpoint.enabled,
            disabled_reason: endpoint.disabled_reason.clone(),
            seed_signature: endpoint.seed_signature,
            auth: AUTH_KINDS
                .iter()
                .find(|(kind, _)| *kind == endpoint.auth_kind)
                .map_or("None", |(_, label)| label),
            healthy: endpoint.enabled && endpoint.failures_in_row == 0,
            health,
            last_delivery: endpoint.last_delivery_at.map(|at| clock.at(at)),
            last_status: endpoint
                .last_status
                .map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
            overlap_until: endpoint
                .previous_secret_until
                .filter(|until| *until > now)
                .map(|until| clock.exact(until)),
        }
    }
}

#[derive(Template)]
#[template(path = "webhooks/index.html")]
struct WebhooksPage {
    layout: Layout,
    tenant: TenantNav,
    endpoints: Vec<EndpointView>,
    can_manage: bool,
    has_key: bool,
}

pub async fn list_webhooks(
    State(state): State<AppState>,
    member: TenantMember,
) -> AppResult<Response> {
    let endpoints = db_webhooks::list(&state.pool, member.tenant_id()).await?;
    let clock = Clock::of(&member.user);
    let page = WebhooksPage {
        layout: member.layout().await?,
        tenant: member.nav("webhooks"),
        endpoints: endpoints
            .iter()
            .map(|endpoint| EndpointView::of(endpoint, &clock, member.role))
            .collect(),
        can_manage: member.role >= Role::Admin,
        has_key: state.config.secret_key.is_some(),
    };
    html(&page)
}

#[derive(Template)]
#[template(path = "webhooks/form.html")]
struct EndpointFormPage {
    layout: Layout,
    tenant: TenantNav,
    /// The reload guard of a new endpoint's form (unused when editing: saving twice is harmless).
    form_id: String,
    /// `None` for a new endpoint.
    editing: Option<Uuid>,
    stored_auth: Option<String>,
    input: EndpointInput,
    errors: EndpointErrors,
    problem: Option<&'static str>,
    environments: [Environment; 2],
    event_types: [EventType; EventType::ALL.len()],
    auth_kinds: [(&'static str, &'static str); 4],
}

impl EndpointFormPage {
    async fn build(
        member: &TenantMember,
        form_id: String,
        editing: Option<&Endpoint>,
        input: EndpointInput,
        errors: EndpointErrors,
        problem: Option<&'static str>,
    ) -> AppResult<Self> {
        Ok(Self {
            layout: member.layout().await?,
            tenant: member.nav("webhooks"),
            form_id,
            editing: editing.map(|endpoint| endpoint.webhook_endpoint_id),
            stored_auth: editing.map(|endpoint| endpoint.auth_kind.clone()),
            input,
            errors,
            problem,
            environments: [Environment::Live, Environment::Test],
            event_types: EventType::ALL,
            auth_kinds: AUTH_KINDS,
        })
    }

    fn chosen(&self, event_type: &EventType) -> bool {
        self.input
            .event_types
            .iter()
            .any(|t| t == event_type.as_str())
    }
}

pub async fn new_webhook_form(member: TenantMember) -> AppResult<Response> {
    let input = EndpointInput {
        environment: "live".into(),
        events: "all".into(),
        auth_kind: "none".into(),
        ..EndpointInput::default()
    };
    let page = EndpointFormPage::build(
        &member,
        new_form_id(),
        None,
        input,
        EndpointErrors::default(),
        None,
    )
    .await?;
    html(&page)
}

/// The form's fields and its one-time `form_id` (new endpoints only); `event_types` repeats,
/// which typed `Form` cannot read.
fn read_form(body: &[u8]) -> (EndpointInput, String) {
    let mut input = EndpointInput::default();
    let mut form_id = String::new();
    for (name, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        match name.as_ref() {
            "form_id" => form_id = value,
            "name" => input.name = value,
            "url" => input.url = value,
            "environment" => input.environment = value,
            "events" => input.events = value,
            "event_types" => input.event_types.push(value),
            "seed_signature" => input.seed_signature = Some(value),
            "auth_kind" => input.auth_kind = value,
            "auth_headers" => input.auth_headers = value,
            "auth_username" => input.auth_username = value,
            "auth_password" => input.auth_password = value,
            "auth_token" => input.auth_token = value,
            _ => {}
        }
    }
    (input, form_id)
}

/// The form again with what was typed, minus the credentials (never echoed back).
async fn form_again(
    member: &TenantMember,
    form_id: String,
    editing: Option<&Endpoint>,
    mut input: EndpointInput,
    problem: WebhookProblem,
) -> AppResult<Response> {
    input.auth_password.clear();
    input.auth_token.clear();
    input.auth_headers.clear();
    let (errors, problem) = match problem {
        WebhookProblem::Invalid(errors) => (errors, None),
        WebhookProblem::NoSecretKey => (EndpointErrors::default(), Some(NO_KEY)),
    };
    let page = EndpointFormPage::build(member, form_id, editing, input, errors, problem).await?;
    html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Template)]
#[template(path = "webhooks/secret.html")]
struct SecretPage {
    layout: Layout,
    tenant: TenantNav,
    endpoint_id: Uuid,
    name: String,
    secret: String,
    rolled: bool,
}

async fn secret_page(
    member: &TenantMember,
    endpoint_id: Uuid,
    name: String,
    secret: &SigningSecret,
    rolled: bool,
) -> AppResult<Response> {
    let page = SecretPage {
        layout: member.layout().await?,
        tenant: member.nav("webhooks"),
        endpoint_id,
        name,
        secret: secret.reveal(),
        rolled,
    };
    html(&page)
}

pub async fn create_webhook(
    State(state): State<AppState>,
    member: TenantMember,
    body: Bytes,
) -> AppResult<Response> {
    let (input, form_id) = read_form(&body);
    let form = match input.check(None, state.config.webhook_allow_private) {
        Ok(form) => form,
        Err(errors) => {
            let problem = WebhookProblem::Invalid(errors);
            return form_again(&member, form_id, None, input, problem).await;
        }
    };
    // A reloaded or re-sent form must not register the endpoint twice.
    if !first_use(&member.session, &form_id).await? {
        return already_created(&member).await;
    }
    let created = webhooks::create_endpoint(
        &state.pool,
        state.config.secret_key.as_ref(),
        member.tenant_id(),
        &form,
        &member.actor,
    )
    .await?;
    match created {
        Ok((id, secret)) => secret_page(&member, id, form.name, &secret, false).await,
        Err(problem) => form_again(&member, new_form_id(), None, input, problem).await,
    }
}

/// The answer to a create form sent again: the endpoint exists, its secret was shown once.
async fn already_created(member: &TenantMember) -> AppResult<Response> {
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("webhooks"),
        title: "This endpoint was already created".into(),
        message:
            "This form was already sent, so the endpoint exists and its signing secret was shown \
                  then. If you did not copy the secret, roll it on the endpoint's page."
                .into(),
        action: String::new(),
        button: "",
        cancel: format!("/t/{}/webhooks", member.membership.slug),
    };
    html_with_status(StatusCode::CONFLICT, &page)
}

pub(super) async fn load(state: &AppState, member: &TenantMember, id: Uuid) -> AppResult<Endpoint> {
    db_webhooks::get(&state.pool, member.tenant_id(), id)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn edit_webhook_form(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let endpoint = load(&state, &member, id).await?;
    let input = EndpointInput {
        name: endpoint.name.clone(),
        url: endpoint.url.clone(),
        environment: endpoint.environment.as_str().into(),
        events: if endpoint.event_types.is_some() {
            "chosen"
        } else {
            "all"
        }
        .into(),
        event_types: endpoint.event_types.clone().unwrap_or_default(),
        seed_signature: endpoint.seed_signature.then(|| "1".to_owned()),
        auth_kind: endpoint.auth_kind.clone(),
        ..EndpointInput::default()
    };
    let page = EndpointFormPage::build(
        &member,
        String::new(),
        Some(&endpoint),
        input,
        EndpointErrors::default(),
        None,
    )
    .await?;
    html(&page)
}

pub async fn update_webhook(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
    body: Bytes,
) -> AppResult<Response> {
    let endpoint = load(&state, &member, id).await?;
    let (input, _) = read_form(&body);
    let form = match input.check(
        Some(&endpoint.auth_kind),
        state.config.webhook_allow_private,
    ) {
        Ok(form) => form,
        Err(errors) => {
            return form_again(
                &member,
                String::new(),
                Some(&endpoint),
                input,
                WebhookProblem::Invalid(errors),
            )
            .await;
        }
    };
    let updated = webhooks::update_endpoint(
        &state.pool,
        state.config.secret_key.as_ref(),
        member.tenant_id(),
        id,
        &form,
        &member.actor,
    )
    .await?;
    if let Err(problem) = updated {
        return form_again(&member, String::new(), Some(&endpoint), input, problem).await;
    }
    session::flash(&member.session, "Endpoint saved.").await?;
    Ok(Redirect::to(&endpoint_path(&member, id)).into_response())
}

pub(super) fn endpoint_path(member: &TenantMember, id: Uuid) -> String {
    format!("/t/{}/webhooks/{id}", member.membership.slug)
}

pub async fn roll_webhook_secret(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let endpoint = load(&state, &member, id).await?;
    let rolled = webhooks::roll_secret(
        &state.pool,
        state.config.secret_key.as_ref(),
        member.tenant_id(),
        id,
        &member.actor,
    )
    .await?;
    match rolled {
        Ok(secret) => secret_page(&member, id, endpoint.name, &secret, true).await,
        Err(_) => Err(AppError::Validation(NO_KEY.into())),
    }
}

pub async fn enable_webhook(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    switch(&state, &member, id, true).await
}

pub async fn disable_webhook(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    switch(&state, &member, id, false).await
}

async fn switch(
    state: &AppState,
    member: &TenantMember,
    id: Uuid,
    enabled: bool,
) -> AppResult<Response> {
    webhooks::set_enabled(&state.pool, member.tenant_id(), id, enabled, &member.actor).await?;
    let message = if enabled {
        "Endpoint enabled: new events go to it again."
    } else {
        "Endpoint disabled: it gets no events until enabled."
    };
    session::flash(&member.session, message).await?;
    Ok(Redirect::to(&endpoint_path(member, id)).into_response())
}

pub async fn send_test_event(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let queued = webhooks::send_test(&state.pool, member.tenant_id(), id, &member.actor).await?;
    let message = if queued.is_some() {
        "Test event queued: its delivery appears in the log below within seconds."
    } else {
        "The endpoint is disabled: enable it to send a test event."
    };
    session::flash(&member.session, message).await?;
    Ok(Redirect::to(&endpoint_path(&member, id)).into_response())
}

#[derive(Deserialize)]
pub struct ResendForm {
    event_id: String,
}

pub async fn resend_event(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
    Form(form): Form<ResendForm>,
) -> AppResult<Response> {
    webhooks::resend(
        &state.pool,
        member.tenant_id(),
        id,
        &form.event_id,
        &member.actor,
    )
    .await?;
    session::flash(&member.session, "Queued again, with the same webhook-id.").await?;
    Ok(Redirect::to(&endpoint_path(&member, id)).into_response())
}

pub async fn confirm_delete_webhook(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let endpoint = load(&state, &member, id).await?;
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("webhooks"),
        title: format!("Delete {}?", endpoint.name),
        message: format!(
            "Gatehouse stops sending events to {} at once: deliveries not yet sent are cancelled, \
             and the endpoint's delivery log is deleted with it. This cannot be undone; to pause \
             deliveries instead, disable the endpoint.",
            endpoint.url
        ),
        action: format!("{}/delete", endpoint_path(&member, id)),
        button: "Delete endpoint",
        cancel: endpoint_path(&member, id),
    };
    html(&page)
}

pub async fn delete_webhook(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let endpoint = load(&state, &member, id).await?;
    webhooks::delete_endpoint(&state.pool, member.tenant_id(), id, &member.actor).await?;
    session::flash(
        &member.session,
        format!(
            "Endpoint {} deleted: it gets no more events.",
            endpoint.name
        ),
    )
    .await?;
    Ok(Redirect::to(&format!("/t/{}/webhooks", member.membership.slug)).into_response())
}
