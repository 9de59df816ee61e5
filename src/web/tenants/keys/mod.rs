//! `/t/{slug}/keys` and `/t/{slug}/keys/{id}`: a tenant's keys, listed and one by one.

pub(super) mod change;
pub(super) mod check;
pub(super) mod create;
pub(super) mod edit;
mod form;
pub(super) mod requests;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::audit::{actor_name, detail_lines};
use super::logs::{CallRow, RECENT_CALLS};
use super::usage::{self, DeadKeyCalls};
use super::{TenantMember, TenantNav, member_name};
use crate::app::AppState;
use crate::db::audit as db_audit;
use crate::db::key_policies;
use crate::db::keys::{self as db_keys, Key, KeyFilter};
use crate::db::request_log::{self as db_log, LogFilter};
use crate::domain::keys::allowlist::IpAllowlist;
use crate::domain::keys::format::shown;
use crate::domain::keys::policy as key_policy;
use crate::domain::keys::{self, Access, KeyProblem, Refusal, Status};
use crate::domain::usage::{Counts, Window};
use crate::error::{AppError, AppResult};
use crate::vocabulary::Role;
use crate::vocabulary::{Code, Environment};
use crate::web::page::{Clock, Layout, Pager, Paging, When, html};

const PAGE_SIZE: i64 = 25;

/// A key as a row or a page shows it.
pub struct KeyView {
    pub id: Uuid,
    pub masked: String,
    pub name: String,
    pub environment: Environment,
    pub scopes: String,
    pub creator: String,
    pub created: When,
    pub last_used: Option<When>,
    pub expires: Option<When>,
    pub status: Status,
    pub rate_limit: i32,
    pub can_manage: bool,
    pub note: String,
    /// The metadata as pretty JSON; empty when there is none.
    pub meta: String,
    /// "any address", or the canonical CIDR blocks.
    pub ip_allowlist: String,
    /// Lives longer than the tenant's maximum key lifetime (set by the list).
    pub over_policy: bool,
    /// Imported in the platform's old format: marked, and offered a roll into a checksummed key.
    pub legacy: bool,
    /// Its id as an OAuth2 client.
    pub client_id: String,
}

impl KeyView {
    fn new(key: &Key, prefix: &str, member: &TenantMember) -> Self {
        let clock = Clock::of(&member.user);
        Self {
            id: key.api_key_id,
            masked: shown(prefix, key.environment, &key.last_four, key.legacy),
            name: key.name.clone(),
            environment: key.environment,
            scopes: Access::stored(key.full_access, key.scopes.clone()).label(),
            creator: if key.legacy && key.created_by.is_none() {
                "an import".to_owned()
            } else {
                member_name(key.created_by_name.clone())
            },
            created: clock.day(key.created_at),
            last_used: key.last_used_at.map(|at| clock.at(at)),
            expires: key.expires_at.map(|at| clock.at(at)),
            status: key.status,
            rate_limit: key.rate_limit,
            can_manage: keys::may_manage(
                member.role,
                Some(member.user.app_user_id),
                key.created_by,
            ),
            note: key.note.clone(),
            meta: pretty_meta(&key.meta),
            ip_allowlist: IpAllowlist::stored(&key.ip_allowlist).label(),
            over_policy: false,
            legacy: key.legacy,
            client_id: key.client_id.clone(),
        }
    }

    /// Editable, disable-able: not revoked and not expired.
    pub fn is_open(&self) -> bool {
        !matches!(self.status, Status::Revoked | Status::Expired)
    }

    /// Greyed in the list: only keys that no longer work (a rolled key works until its grace ends).
    pub fn is_inactive(&self) -> bool {
        !self.status.works()
    }
}

/// Metadata as the key page and the edit form show it: pretty JSON, nothing for `{}`.
fn pretty_meta(meta: &serde_json::Value) -> String {
    match meta.as_object() {
        Some(fields) if fields.is_empty() => String::new(),
        _ => serde_json::to_string_pretty(meta).unwrap_or_default(),
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
    statuses: [Status; 6],
    requests: Vec<requests::RequestView>,
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
    let prefix = &state.config.key_prefix;
    let policy = key_policies::get(&state.pool, member.membership.tenant_id).await?;
    let view = KeysPage {
        requests: requests::pending(&state, &member).await?,
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        keys: rows
            .iter()
            .map(|key| {
                let mut view = KeyView::new(key, prefix, &member);
                view.over_policy = view.status.works()
                    && key_policy::over_policy(&policy, key.created_at, key.expires_at);
                view
            })
            .collect(),
        can_create: member.role >= Role::Developer,
        filtered: environment.is_some() || status.is_some() || q.is_some(),
        environment: environment.clone().unwrap_or_default(),
        status: status.clone().unwrap_or_default(),
        q: q.clone().unwrap_or_default(),
        pager,
        environments: Environment::ALL,
        statuses: Status::ALL,
    };
    html(&view)
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
    rolled_at: Option<When>,
    rolled_by: String,
    revoked_at: Option<When>,
    revoked_by: String,
    disabled_at: Option<When>,
    disabled_by: String,
    /// Changes made after it was made, oldest first (from the audit log).
    changes: Vec<ChangeRow>,
    can_roll: bool,
    can_revoke: bool,
    dead_keys: Option<DeadKeyCalls>,
    /// The key's last calls in the request log, newest first.
    calls: Vec<CallRow>,
    /// The calls table's key column: not on the key's own page.
    show_key: bool,
    quick: check::QuickStart,
    tested: Option<check::TestVerdict>,
    /// A key that can no longer work offers no test.
    testable: bool,
    // The quick start's names, shared with the reveal page.
    key_id: Uuid,
    key_masked: String,
    test_secret: Option<String>,
}

/// One change in a key's history.
struct ChangeRow {
    at: When,
    by: String,
    /// "Changed", "Disabled" or "Enabled".
    what: &'static str,
    lines: Vec<String>,
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
        let masked = shown(
            &state.config.key_prefix,
            k.environment,
            &k.last_four,
            k.legacy,
        );
        (k.api_key_id, masked)
    }))
}

pub async fn show_key(
    State(state): State<AppState>,
    member: TenantMember,
    Path((_, key_id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let key = load_key(&state, &member, key_id).await?;
    let tested = check::take_verdict(&member, key_id).await?;
    let page = key_page(&state, &member, key, tested).await?;
    html(&page)
}

/// A key's page, with what a test of it found when it was just tested.
async fn key_page(
    state: &AppState,
    member: &TenantMember,
    key: Key,
    tested: Option<check::TestVerdict>,
) -> AppResult<KeyPage> {
    let key_id = key.api_key_id;
    let tenant_id = member.membership.tenant_id;
    let rolled_from = match key.rolled_from {
        Some(id) => masked_key(state, tenant_id, id).await?,
        None => None,
    };
    let rolled_to = match db_keys::successor(&state.pool, tenant_id, key.api_key_id).await? {
        Some((id, _)) => masked_key(state, tenant_id, id).await?,
        None => None,
    };
    let view = KeyView::new(&key, &state.config.key_prefix, member);
    let clock = Clock::of(&member.user);
    let day = usage::load(state, tenant_id, Some(key_id), Window::Day).await?;
    let key_masked = view.masked.clone();
    let recent = db_log::page(
        &state.pool,
        tenant_id,
        &LogFilter {
            api_key_id: Some(key_id),
            ..LogFilter::default()
        },
        None,
        RECENT_CALLS,
    )
    .await?;
    let changes: Vec<ChangeRow> = db_audit::key_changes(&state.pool, tenant_id, key_id)
        .await?
        .iter()
        .map(|event| ChangeRow {
            at: clock.at(event.at),
            by: actor_name(event),
            what: match event.action.as_str() {
                "key.enabled" => "Enabled",
                "key.disabled" => "Disabled",
                _ => "Changed",
            },
            lines: detail_lines(&event.details),
        })
        .collect();
    // The audit log remembers every disabling; the key's column only the last, for keys changed
    // before it did.
    let disabled_logged = changes.iter().any(|change| change.what == "Disabled");
    Ok(KeyPage {
        calls: recent
            .iter()
            .map(|entry| CallRow::new(entry, &state.config.key_prefix, &clock))
            .collect(),
        show_key: false,
        dead_keys: {
            let totals = Counts::sum(day.iter().map(|(_, counts)| counts));
            // The request log names each refused caller's address and user agent.
            let code = if totals.get(Code::Revoked) > 0 {
                Code::Revoked
            } else {
                Code::Expired
            };
            let link = format!(
                "/t/{}/logs?key={key_id}&code={}",
                member.membership.slug,
                code.as_str()
            );
            usage::dead_key_calls(&totals, Window::Day, Some(link))
        },
        changes,
        testable: view.status.works() || view.status == Status::Disabled,
        layout: member.layout().await?,
        tenant: member.nav("keys"),
        can_roll: view.can_manage && matches!(view.status, Status::Active | Status::Expiring),
        can_revoke: view.can_manage && (view.status.works() || view.status == Status::Disabled),
        key: view,
        rolled_from,
        rolled_to,
        rolled_at: key.rolled_at.map(|at| clock.at(at)),
        rolled_by: member_name(key.rolled_by_name),
        revoked_at: key.revoked_at.map(|at| clock.at(at)),
        revoked_by: member_name(key.revoked_by_name),
        disabled_at: key
            .disabled_at
            .filter(|_| !disabled_logged)
            .map(|at| clock.at(at)),
        disabled_by: member_name(key.disabled_by_name),
        quick: check::QuickStart::new(&state.config),
        tested,
        key_id,
        key_masked,
        test_secret: None,
    })
}

fn refuse(problem: &KeyProblem) -> AppError {
    match problem {
        KeyProblem::NotYours => AppError::Forbidden(problem.message()),
        KeyProblem::Finished(_) => AppError::Conflict(problem.message()),
    }
}

/// A refusal of a change to a key: a setting (the form's field errors, or a page saying what is
/// wrong where the page has no form) or the key itself.
fn refuse_change(refusal: &Refusal) -> AppError {
    match refusal {
        Refusal::Problem(problem) => refuse(problem),
        Refusal::Invalid(errors) => AppError::Validation(errors.first().map_or_else(
            || "This change was refused.".to_owned(),
            |(_, why)| why.to_owned(),
        )),
    }
}

/// A key the member may change (`domain::keys::may_manage` says who may), unless its status is
/// `finished` for the change at hand.
async fn manageable_key(
    state: &AppState,
    member: &TenantMember,
    key_id: Uuid,
    finished: impl Fn(Status) -> bool,
) -> AppResult<KeyView> {
    let key = load_key(state, member, key_id).await?;
    let view = KeyView::new(&key, &state.config.key_prefix, member);
    if !view.can_manage {
        return Err(refuse(&KeyProblem::NotYours));
    }
    if finished(view.status) {
        return Err(refuse(&KeyProblem::Finished(view.status)));
    }
    Ok(view)
}
