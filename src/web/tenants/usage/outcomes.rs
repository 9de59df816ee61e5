//! What the usage pages show of the counts: each answer's name and colour, the figures worth
//! showing, calls with dead keys, and the busiest keys.

use uuid::Uuid;

use crate::db::usage::BusyKey;
use crate::domain::keys::format::masked;
use crate::domain::usage::Counts;
use crate::vocabulary::{Code, Environment, Window};

/// An answer of the key API as the usage pages name and colour it, in the order the chart
/// stacks them: valid first, then each refusal by its reason.
pub struct Outcome {
    pub code: Code,
    pub name: &'static str,
    /// The CSS class of its bars and legend swatch.
    pub chart: &'static str,
    /// The CSS class of its figures.
    pub tone: &'static str,
}

const fn outcome(
    code: Code,
    name: &'static str,
    chart: &'static str,
    tone: &'static str,
) -> Outcome {
    Outcome {
        code,
        name,
        chart,
        tone,
    }
}

pub const OUTCOMES: [Outcome; Code::ALL.len()] = [
    outcome(Code::Valid, "valid", "o-valid", "ok"),
    outcome(Code::RateLimited, "rate limited", "o-limited", "warn"),
    outcome(Code::Revoked, "revoked key", "o-revoked", "bad"),
    outcome(Code::Expired, "expired key", "o-expired", "bad"),
    outcome(
        Code::EnvironmentMismatch,
        "wrong environment",
        "o-environment",
        "bad",
    ),
    outcome(Code::TenantMismatch, "other tenant", "o-tenant", "bad"),
    outcome(Code::InsufficientScope, "missing scope", "o-scope", "bad"),
    outcome(Code::Disabled, "disabled key", "o-disabled", "bad"),
    outcome(
        Code::IpNotAllowed,
        "address not allowed",
        "o-address",
        "bad",
    ),
    outcome(
        Code::TenantSuspended,
        "tenant suspended",
        "o-suspended",
        "bad",
    ),
    outcome(Code::Malformed, "malformed key", "o-malformed", "bad"),
    outcome(Code::NotFound, "unknown key", "o-unknown", "bad"),
];

/// The outcomes worth a column, a figure and a legend entry in a period: valid always, each
/// refusal only when it happened.
pub fn shown_outcomes(totals: &Counts) -> Vec<&'static Outcome> {
    OUTCOMES
        .iter()
        .filter(|outcome| outcome.code == Code::Valid || totals.get(outcome.code) > 0)
        .collect()
}

/// `counts` of each of `outcomes`.
pub fn figures(outcomes: &[&'static Outcome], counts: &Counts) -> Vec<(&'static Outcome, i64)> {
    outcomes
        .iter()
        .map(|outcome| (*outcome, counts.get(outcome.code)))
        .collect()
}

/// Calls with revoked or expired keys in a period, for the warning on the overview, usage and
/// key pages: the strongest security signal a tenant gets.
pub struct DeadKeyCalls {
    pub revoked: i64,
    pub expired: i64,
    /// "last 24 hours", …
    pub period: String,
    /// Where the figures by reason are, when the page is not that already.
    pub link: Option<String>,
}

pub fn dead_key_calls(
    totals: &Counts,
    window: Window,
    link: Option<String>,
) -> Option<DeadKeyCalls> {
    (totals.dead_key_calls() > 0).then(|| DeadKeyCalls {
        revoked: totals.get(Code::Revoked),
        expired: totals.get(Code::Expired),
        period: window.label().to_lowercase(),
        link,
    })
}

pub struct BusyRow {
    pub id: Uuid,
    pub masked: String,
    pub name: String,
    pub environment: Environment,
    pub valid: i64,
    pub total: i64,
}

pub fn busy_rows(prefix: &str, keys: Vec<BusyKey>) -> Vec<BusyRow> {
    keys.into_iter()
        .map(|key| BusyRow {
            id: key.api_key_id,
            masked: masked(prefix, key.environment, &key.last_four),
            name: key.name,
            environment: key.environment,
            valid: key.valid,
            total: key.total,
        })
        .collect()
}
