//! `GET /v1/tenants/{tenant}/usage` (usage:read): verifications per bucket and outcome, for
//! billing.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::app::AppState;
use crate::db::management as db_management;
use crate::domain::management::Scope;
use crate::vocabulary::Environment;

use super::caller::Caller;
use super::{ApiError, ApiResult, ErrorBody, StrictQuery, rfc3339};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start (RFC 3339, inclusive); default: `to` minus 30 days (minus 24 hours for `minute`).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// End (RFC 3339, exclusive); default: now.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// `minute` (windows up to 2 days), `hour` (up to 31 days) or `day` (default; up to 400 days).
    pub grain: Option<String>,
    /// Only this key.
    pub key_id: Option<String>,
    /// Only keys of this environment: `live` or `test`.
    pub environment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub grain: String,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    /// Buckets that saw verifications, oldest first (buckets without any are left out).
    pub buckets: Vec<Bucket>,
    /// Every bucket added up, by outcome.
    pub totals: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// The bucket's start.
    #[schema(format = DateTime)]
    pub start: String,
    /// Verifications by outcome (`VALID`, `RATE_LIMITED`, `REVOKED`, …).
    pub counts: BTreeMap<String, i64>,
    pub total: i64,
}

fn time_param(field: &'static str, value: Option<&str>) -> ApiResult<Option<OffsetDateTime>> {
    value
        .map(|value| {
            OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
                ApiError::invalid(
                    field,
                    format!("{field} must be an RFC 3339 time like 2027-01-31T00:00:00Z."),
                )
            })
        })
        .transpose()
}

#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage", tag = "usage",
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"), UsageQuery),
    security(("operator_token" = []), ("tenant_token" = ["usage:read"])),
    responses(
        (status = 200, description = "Counts by outcome per bucket", body = Usage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing usage:read", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn read_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
    StrictQuery(query): StrictQuery<UsageQuery>,
) -> ApiResult<Json<Usage>> {
    let tenant = caller.tenant_with(&state, &named, Scope::UsageRead).await?;
    let (grain, longest) = match query.grain.as_deref().unwrap_or("day") {
        "minute" => ("minute", Duration::days(2)),
        "hour" => ("hour", Duration::days(31)),
        "day" => ("day", Duration::days(400)),
        _ => {
            return Err(ApiError::invalid(
                "grain",
                "grain must be minute, hour or day.",
            ));
        }
    };
    let to = time_param("to", query.to.as_deref())?.unwrap_or_else(OffsetDateTime::now_utc);
    let default_span = if grain == "minute" {
        Duration::days(1)
    } else {
        Duration::days(30)
    };
    let from = time_param("from", query.from.as_deref())?.unwrap_or(to - default_span);
    if from >= to {
        return Err(ApiError::invalid("from", "from must be before to."));
    }
    if to - from > longest {
        return Err(ApiError::invalid(
            "from",
            format!(
                "A {grain} grain covers at most {} days; narrow from and to or take a coarser grain.",
                longest.whole_days()
            ),
        ));
    }
    let key_id = query
        .key_id
        .as_deref()
        .map(|id| {
            Uuid::parse_str(id)
                .map_err(|_| ApiError::invalid("key_id", "key_id must be a key's id."))
        })
        .transpose()?;
    let environment = query
        .environment
        .as_deref()
        .map(|value| {
            Environment::parse(value).ok_or_else(|| {
                ApiError::invalid("environment", "environment must be \"live\" or \"test\".")
            })
        })
        .transpose()?;
    let rows = db_management::usage(
        &state.pool,
        tenant.tenant_id,
        (from, to),
        grain,
        key_id,
        environment,
    )
    .await?;
    let mut buckets: Vec<Bucket> = Vec::new();
    let mut totals = BTreeMap::new();
    for (start, code, count) in rows {
        let start = rfc3339(start);
        if buckets.last().is_none_or(|bucket| bucket.start != start) {
            buckets.push(Bucket {
                start,
                counts: BTreeMap::new(),
                total: 0,
            });
        }
        if let Some(bucket) = buckets.last_mut() {
            *bucket.counts.entry(code.as_str().to_owned()).or_default() += count;
            bucket.total += count;
        }
        *totals.entry(code.as_str().to_owned()).or_default() += count;
    }
    Ok(Json(Usage {
        grain: grain.to_owned(),
        from: rfc3339(from),
        to: rfc3339(to),
        buckets,
        totals,
    }))
}
