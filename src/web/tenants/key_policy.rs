//! `POST /t/{slug}/settings/keys`: the tenant's key policy, a section of the settings page
//! (admins). The rules are `domain::keys::policy`'s.

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::TenantMember;
use crate::app::AppState;
use crate::db::key_policies;
use crate::domain::keys::policy::{self as key_policy, PolicyErrors, PolicyInput};
use crate::error::AppResult;
use crate::vocabulary::LiveKeys;
use crate::web::session;

/// The policy section of the settings page.
#[derive(Default)]
pub struct PolicyForm {
    pub input: PolicyInput,
    pub errors: PolicyErrors,
    pub choices: Vec<LiveKeys>,
}

impl PolicyForm {
    pub async fn load(state: &AppState, member: &TenantMember) -> AppResult<Self> {
        let policy = key_policies::get(&state.pool, member.membership.tenant_id).await?;
        Ok(Self::new(PolicyInput::of(&policy), PolicyErrors::default()))
    }

    fn new(input: PolicyInput, errors: PolicyErrors) -> Self {
        Self {
            input,
            errors,
            choices: LiveKeys::ALL.to_vec(),
        }
    }
}

#[derive(Deserialize)]
pub struct PolicyFields {
    #[serde(default)]
    max_key_lifetime_days: String,
    #[serde(default)]
    default_ip_allowlist: String,
    #[serde(default)]
    live_keys: String,
}

pub async fn save_key_policy(
    State(state): State<AppState>,
    member: TenantMember,
    Form(form): Form<PolicyFields>,
) -> AppResult<Response> {
    let input = PolicyInput {
        max_key_lifetime_days: form.max_key_lifetime_days,
        default_ip_allowlist: form.default_ip_allowlist,
        live_keys: form.live_keys,
    };
    let policy = match key_policy::validate(&input) {
        Ok(policy) => policy,
        Err(errors) => {
            return super::settings::refused_policy(&member, PolicyForm::new(input, errors)).await;
        }
    };
    let changed = key_policy::save_policy(
        &state.pool,
        member.membership.tenant_id,
        &policy,
        &member.actor,
    )
    .await?;
    let message = if changed {
        "Key policy saved. New keys follow it from now on."
    } else {
        "Nothing changed."
    };
    session::flash(&member.session, message).await?;
    Ok(Redirect::to(&format!("/t/{}/settings", member.membership.slug)).into_response())
}
