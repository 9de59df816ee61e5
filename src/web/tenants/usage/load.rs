//! Reading a window's counters for the usage pages: a tenant's, one environment's, one key's.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::AppState;
use crate::db::management as db_management;
use crate::db::usage::{self as db_usage, Grain};
use crate::domain::usage::{Counts, series};
use crate::error::AppResult;
use crate::vocabulary::{Environment, Window};

/// A window's figures for a tenant's keys of one environment, or for all of them.
pub(super) async fn load_tenant(
    state: &AppState,
    tenant_id: Uuid,
    environment: Option<Environment>,
    window: Window,
) -> AppResult<Vec<(OffsetDateTime, Counts)>> {
    let Some(environment) = environment else {
        return load(state, tenant_id, None, window).await;
    };
    // The tenant roll-ups have no environment: summed from its keys' counters, as the
    // management API's usage does (this grows with the number of keys; the unfiltered page not).
    let now = OffsetDateTime::now_utc();
    let rows = db_management::usage(
        &state.pool,
        tenant_id,
        (window.start(now), now + time::Duration::DAY),
        grain(window).as_str(),
        None,
        Some(environment),
    )
    .await?;
    Ok(series(window, now, rows))
}

/// A window's figures for a tenant, or one key of it.
pub async fn load(
    state: &AppState,
    tenant_id: Uuid,
    api_key_id: Option<Uuid>,
    window: Window,
) -> AppResult<Vec<(OffsetDateTime, Counts)>> {
    let now = OffsetDateTime::now_utc();
    let since = window.start(now);
    let rows = match api_key_id {
        Some(key) => {
            db_usage::key_counts(&state.pool, tenant_id, key, since, grain(window)).await?
        }
        None => db_usage::tenant_counts(&state.pool, tenant_id, since, grain(window)).await?,
    };
    Ok(series(window, now, rows))
}

/// The coarsest counters that still give the window's buckets.
pub fn grain(window: Window) -> Grain {
    match window {
        Window::Hour => Grain::Minute,
        Window::Day => Grain::Hour,
        Window::Month | Window::Quarter => Grain::Day,
    }
}
