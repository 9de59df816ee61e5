//! `/t/{slug}/keys/...`: a tenant's API keys: list, create (shown once), key page, roll, revoke.
//! Routes and their least roles are in `tenants::RULES`; who may roll or revoke which key is
//! `domain::keys::may_manage`.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::OffsetDateTime;
use tower_sessions::Session;
use uuid::Uuid;

use super::{TenantMember, TenantNav, member_name};
use crate::app::AppState;
use crate::db::keys::{self as db_keys, Key, KeyFilter};
use crate::domain::keys::{self, KeyErrors, KeyInput, KeyProblem, NewKey, Status};
use crate::domain::tokens;
use crate::domain::vocabulary::Environment;
use crate::domain::vocabulary::Role;
use crate::error::{AppError, AppResult};
use crate::web::page::{ConfirmPage, Layout, Pager, Paging, date, date_time, render};
use crate::web::session;

const PAGE_SIZE: i64 = 25;
const USED_FORMS: &str = "used_forms";

/// The statuses the list filters by, in the order a key goes through them. The domain's `Status`
/// has no list of its own.
const STATUSES: [Status; 5] = [
    Status::Active,
    Status::Expiring,
    Status::Expired,
    Status::Rolled,
    Status::Revoked,
];

/// The environments a new key can have, test first (the default), with what each is for.
const ENVIRONMENT_CHOICES: [(Environment, &str); 2] = [
    (
        Environment::Test,
        "for development and CI; calls never touch real data",
    ),
    (Environment::Live, "for production traffic"),
];

/// The new-key form's expiry choices, as `keys::Expiry::parse` reads them back.
const EXPIRY_CHOICES: [(&str, &str); 5] = [
    ("never", "Never"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
    ("date", "On a date…"),
];

/// The roll form's grace periods, as `keys::parse_grace` reads them back; the second is preselected.
const GRACE_CHOICES: [(&str, &str); 4] = [
    ("none", "Not at all: it stops now"),
    ("1h", "For 1 hour"),
    ("24h", "For 24 hours"),
    ("7d", "For 7 days"),
];
const DEFAULT_GRACE: &str = "1h";

/// A key as a row or a page shows it.
pub struct KeyView {
    pub id: Uuid,
    pub masked: String,
    pub name: String,
    pub environment: Environment,
    pub scopes: String,
    pub creator: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub status: Status,
    pub rate_limit: i32,
    pub can_manage: bool,
}

impl KeyView {
    fn new(key: &Key, prefix: &str, member: &TenantMember, now: OffsetDateTime) -> Self {
        Self {
            id: key.api_key_id,
            masked: keys::masked(prefix, key.environment, &key.last_four),
            name: key.name.clone(),
            environment: key.environment,
            scopes: key.scopes.join(", "),
            creator: member_name(key.created_by_name.clone()),
            created: date(key.created_at),
            last_used: key.last_used_at.map_or_else(|| "never".into(), date_time),
            expires: key.expires_at.map_or_else(|| "never".into(), date_time),
            status: Status::of(now, key.expires_at, key.revoked_at, key.rolled_at),
            rate_limit: key.rate_limit,
            can_manage: keys::may_manage(member.role, member.user.app_user_id, key.created_by),
        }
    }

    pub fn is_inactive(&self) -> bool {
        !matches!(self.status, Status::Active | Status::Expiring)
    }
}

// ---- list ----

#[derive(Deserialize)]
pub struct ListQuery {
    environment: Option<String>,
    status: Option<String>,
    q: Option<String>,
    page: Option<u32>,
}

#[derive(Template)]
#[template(path = "keys/index.html")]
struct KeysPage {
    layout: Layout,
    tenant: TenantNav,
    keys: Vec<KeyView>,
    can_create: bool,
    environment: String,
    status: String,
    q: String,
    filtered: bool,
    pager: Pager,
    environments: [Environment; 2],
    statuses: [Status; 5],
}

pub async fn list_keys(
    State(state): State<AppState>,
    member: TenantMember,
    Query(query): Query<ListQuery>,
) -> AppResult<Response> {
    let environment = query
        .environment
        .filter(|e| Environment::parse(e).is_some());
    let status = query.status.filter(|s| Status::parse(s).is_some());
    let q = query
        .q
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    let paging = Paging::new(query.page, PAGE_SIZE);
    let filter = KeyFilter {
        environment: environment.as_deref(),
        status: status.as_deref(),
        search: q.as_deref(),
    };
    let mut rows = db_keys::list(
        &state.pool,
        member.membership.tenant_id,
        &filter,
        paging.limit(),
        paging.offset(),
    )
    .await?;
    let pager = paging.pager(
        &mut rows,
        &format!("/t/{}/keys", member.membership.slug),
        &[
            ("environment", environment.as_deref()),
            ("status", status.as_deref()),
            ("q", q.as_deref()),
        ],
    );
    let now = OffsetDateTime::now_utc();
    let prefix = &state.config.key_prefix;
    let view = KeysPage {
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        keys: rows
            .iter()
            .map(|key| KeyView::new(key, prefix, &member, now))
            .collect(),
        can_create: member.role >= Role::Developer,
        filtered: environment.is_some() || status.is_some() || q.is_some(),
        environment: environment.clone().unwrap_or_default(),
        status: status.clone().unwrap_or_default(),
        q: q.clone().unwrap_or_default(),
        pager,
        environments: Environment::ALL,
        statuses: STATUSES,
    };
    Ok(render(&view)?.into_response())
}

// ---- create ----

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
}

fn new_form_id() -> String {
    tokens::random_token(24)
}

/// True the first time a form id is presented in this session: a reloaded or re-sent
/// create/roll form must not make (and show) another key.
async fn first_use(session: &Session, form_id: &str) -> AppResult<bool> {
    let mut used: Vec<String> = session
        .get(USED_FORMS)
        .await
        .map_err(AppError::unexpected)?
        .unwrap_or_default();
    if form_id.is_empty() || used.iter().any(|id| id == form_id) {
        return Ok(false);
    }
    used.push(form_id.to_owned());
    let keep = used.len().saturating_sub(20);
    used.drain(..keep);
    session
        .insert(USED_FORMS, used)
        .await
        .map_err(AppError::unexpected)?;
    Ok(true)
}

fn new_key_page(
    state: &AppState,
    member: &TenantMember,
    layout: Layout,
    input: KeyInput,
    errors: KeyErrors,
) -> NewKeyPage {
    NewKeyPage {
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
    let input = KeyInput {
        environment: "test".into(),
        full_access: true,
        expiry: "never".into(),
        ..KeyInput::default()
    };
    let layout = member.layout().await?;
    let page = new_key_page(&state, &member, layout, input, KeyErrors::default());
    Ok(render(&page)?.into_response())
}

/// The form's fields; `scopes` repeats, which typed `Form` cannot read.
fn read_form(body: &[u8]) -> (KeyInput, String) {
    let mut input = KeyInput::default();
    let mut form_id = String::new();
    for (name, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        match name.as_ref() {
            "name" => input.name = value,
            "environment" => input.environment = value,
            "scopes" => input.scopes.push(value),
            "full_access" => input.full_access = true,
            "expiry" => input.expiry = value,
            "expiry_date" => input.expiry_date = value,
            "rate_limit" => input.rate_limit = value,
            "form_id" => form_id = value,
            _ => {}
        }
    }
    (input, form_id)
}

#[derive(Template)]
#[template(path = "keys/created.html")]
struct KeyCreatedPage {
    layout: Layout,
    tenant: TenantNav,
    secret: String,
    key_id: Uuid,
    name: String,
    environment: String,
    rolled: Option<String>,
}

fn created_page(
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
    }
}

/// Shown when a create or roll form is sent a second time (reload, back button).
fn already_shown(member: &TenantMember, layout: Layout) -> AppResult<Response> {
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
    Ok((StatusCode::CONFLICT, render(&page)?).into_response())
}

pub async fn create_key(
    State(state): State<AppState>,
    member: TenantMember,
    body: Bytes,
) -> AppResult<Response> {
    let (input, form_id) = read_form(&body);
    let config = &state.config;
    let settings = keys::validate(
        &input,
        &config.scopes,
        |env| match env {
            Environment::Live => config.rate_limit_live,
            Environment::Test => config.rate_limit_test,
        },
        member.role >= Role::Admin,
    );
    let settings = match settings {
        Ok(settings) => settings,
        Err(errors) => {
            let layout = member.layout().await?;
            let page = new_key_page(&state, &member, layout, input, errors);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
        }
    };
    if !first_use(&member.session, &form_id).await? {
        return already_shown(&member, member.layout().await?);
    }
    let (key, key_id) = keys::create_key(
        &state.pool,
        &config.key_prefix,
        member.membership.tenant_id,
        &settings,
        &member.actor,
    )
    .await?;
    tracing::info!(key.id = %key_id, tenant.slug = %member.membership.slug, "key created");
    let layout = member.layout().await?;
    let page = created_page(&member, layout, &key, key_id, settings.name, None);
    Ok(render(&page)?.into_response())
}

// ---- one key ----

#[derive(Template)]
#[template(path = "keys/show.html")]
struct KeyPage {
    layout: Layout,
    tenant: TenantNav,
    key: KeyView,
    rolled_from: Option<(Uuid, String)>,
    rolled_to: Option<(Uuid, String)>,
    rolled_at: Option<String>,
    rolled_by: String,
    revoked_at: Option<String>,
    revoked_by: String,
    can_roll: bool,
    can_revoke: bool,
}

async fn load_key(state: &AppState, member: &TenantMember, key_id: Uuid) -> AppResult<Key> {
    db_keys::get(&state.pool, member.membership.tenant_id, key_id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Another key of the tenant (a predecessor or successor), as a link shows it.
async fn masked_key(
    state: &AppState,
    tenant_id: Uuid,
    key_id: Uuid,
) -> AppResult<Option<(Uuid, String)>> {
    let key = db_keys::get(&state.pool, tenant_id, key_id).await?;
    Ok(key.map(|k| {
        let masked = keys::masked(&state.config.key_prefix, k.environment, &k.last_four);
        (k.api_key_id, masked)
    }))
}

pub async fn show_key(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let key = load_key(&state, &member, key_id).await?;
    let tenant_id = member.membership.tenant_id;
    let rolled_from = match key.rolled_from {
        Some(id) => masked_key(&state, tenant_id, id).await?,
        None => None,
    };
    let rolled_to = match db_keys::successor(&state.pool, tenant_id, key.api_key_id).await? {
        Some((id, _)) => masked_key(&state, tenant_id, id).await?,
        None => None,
    };
    let view = KeyView::new(
        &key,
        &state.config.key_prefix,
        &member,
        OffsetDateTime::now_utc(),
    );
    let page = KeyPage {
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        can_roll: view.can_manage && !view.is_inactive(),
        can_revoke: view.can_manage && view.status.works(),
        key: view,
        rolled_from,
        rolled_to,
        rolled_at: key.rolled_at.map(date_time),
        rolled_by: member_name(key.rolled_by_name),
        revoked_at: key.revoked_at.map(date_time),
        revoked_by: member_name(key.revoked_by_name),
    };
    Ok(render(&page)?.into_response())
}

// ---- roll ----

#[derive(Template)]
#[template(path = "keys/roll.html")]
struct RollPage {
    layout: Layout,
    tenant: TenantNav,
    key: KeyView,
    form_id: String,
    graces: [(&'static str, &'static str); 4],
    default_grace: &'static str,
}

fn refuse(problem: &KeyProblem) -> AppError {
    match problem {
        KeyProblem::NotYours => AppError::Forbidden(problem.message()),
        KeyProblem::Finished(_) => AppError::Conflict(problem.message()),
    }
}

/// A key the member may change, unless its status is `finished` for the change at hand.
async fn manageable_key(
    state: &AppState,
    member: &TenantMember,
    key_id: Uuid,
    finished: impl Fn(Status) -> bool,
) -> AppResult<KeyView> {
    let key = load_key(state, member, key_id).await?;
    let view = KeyView::new(
        &key,
        &state.config.key_prefix,
        member,
        OffsetDateTime::now_utc(),
    );
    if !view.can_manage {
        return Err(refuse(&KeyProblem::NotYours));
    }
    if finished(view.status) {
        return Err(refuse(&KeyProblem::Finished(view.status)));
    }
    Ok(view)
}

pub async fn roll_key_form(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let view = manageable_key(&state, &member, key_id, |status| {
        !matches!(status, Status::Active | Status::Expiring)
    })
    .await?;
    let page = RollPage {
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        key: view,
        form_id: new_form_id(),
        graces: GRACE_CHOICES,
        default_grace: DEFAULT_GRACE,
    };
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub struct RollForm {
    grace: String,
    #[serde(default)]
    form_id: String,
}

pub async fn roll_key(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
    axum::Form(form): axum::Form<RollForm>,
) -> AppResult<Response> {
    let grace = keys::parse_grace(&form.grace).map_err(AppError::Validation)?;
    if !first_use(&member.session, &form.form_id).await? {
        return already_shown(&member, member.layout().await?);
    }
    let outcome = keys::roll_key(
        &state.pool,
        &state.config.key_prefix,
        member.membership.tenant_id,
        key_id,
        grace,
        member.role,
        &member.actor,
    )
    .await?;
    let rolled = outcome.map_err(|problem| refuse(&problem))?;
    // Every instance hears of it through NOTIFY; this one need not wait.
    state.key_cache.invalidate(&rolled.old_hash);
    let (key, new_id) = (rolled.key, rolled.new_id);
    let old = load_key(&state, &member, key_id).await?;
    tracing::info!(key.id = %key_id, key.successor = %new_id, "key rolled");
    let note = format!(
        "The old key {} keeps working until {}.",
        keys::masked(&state.config.key_prefix, old.environment, &old.last_four),
        old.expires_at.map_or_else(|| "now".into(), date_time)
    );
    let layout = member.layout().await?;
    let page = created_page(&member, layout, &key, new_id, old.name, Some(note));
    Ok(render(&page)?.into_response())
}

// ---- revoke ----

pub async fn confirm_revoke(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let view = manageable_key(&state, &member, key_id, |status| status == Status::Revoked).await?;
    let slug = &member.membership.slug;
    let page = ConfirmPage {
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        title: format!("Revoke {}?", view.name),
        message: format!(
            "{} stops working at once, on every server that checks it. This cannot be undone; \
             anything still using it will be refused.",
            view.masked
        ),
        action: format!("/t/{slug}/keys/{key_id}/revoke"),
        button: "Revoke key",
        cancel: format!("/t/{slug}/keys/{key_id}"),
    };
    Ok(render(&page)?.into_response())
}

pub async fn revoke_key(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let hash = keys::revoke_key(
        &state.pool,
        &state.config.key_prefix,
        member.membership.tenant_id,
        key_id,
        member.role,
        &member.actor,
    )
    .await?
    .map_err(|problem| refuse(&problem))?;
    state.key_cache.invalidate(&hash);
    tracing::info!(key.id = %key_id, "key revoked");
    session::flash(&member.session, "Key revoked. It no longer works anywhere.").await?;
    Ok(Redirect::to(&format!("/t/{}/keys/{key_id}", member.membership.slug)).into_response())
}
