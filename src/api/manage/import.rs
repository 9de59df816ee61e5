//! `POST /v1/tenants/{tenant}/keys/import` (keys:write): keys a platform already handed out, as
//! the secret or its SHA-256. Every entry is checked first; the first problem (in entry order)
//! is the answer, naming its field (`keys[3].secret`), and then nothing is imported. Settings
//! follow the rules of any new key (`domain::keys::admit`).

use std::borrow::Cow;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::db::keys as db_keys;
use crate::domain::keys::format as key_format;
use crate::domain::keys::import::{
    self as key_import, ImportRefusal, ImportedKey, MAX_KEYS, Taken,
};
use crate::domain::keys::{AccessChoice, NewKeyRequest, Requester};
use crate::domain::management::Scope;

use super::caller::Caller;
use super::keys::{Key, environment, invalid, read_time};
use super::{ApiError, ApiResult, ErrorBody, JsonBody, created};

/// The body limit of an import: 1,000 keys with room to spare.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKeys {
    /// 1 to 1,000 keys.
    pub keys: Vec<ImportKey>,
}

/// A key to import: exactly one of `secret` and `secret_sha256`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportKey {
    /// The key itself: Gatehouse's format (its checksum and environment are checked) or the
    /// platform's old format (`GATEHOUSE_LEGACY_KEY_PATTERN`).
    pub secret: Option<String>,
    /// The key's SHA-256 in hex (64 characters), taken as given.
    pub secret_sha256: Option<String>,
    /// With `secret_sha256` only: whether the key is in the platform's old format (default
    /// `true`); `false` says it is a Gatehouse-format key. A `secret`'s format says it itself.
    pub legacy: Option<bool>,
    /// What the key is for, 1-80 characters.
    pub name: String,
    /// `live` or `test`.
    pub environment: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub full_access: bool,
    /// When the key stops working (RFC 3339, in the future); never when absent (refused when the
    /// tenant's policy sets a maximum lifetime).
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Verifications per minute (1-1000000); the environment's default when absent.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub rate_limit: Option<u32>,
    /// A note for the tenant's people.
    pub note: Option<String>,
    /// Metadata: a JSON object of at most 1 KB.
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
    /// IP addresses or CIDR blocks the key works from; the tenant's default when absent.
    pub ip_allowlist: Option<Vec<String>>,
}

/// The imported keys, in the order given (never their secrets).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportedKeys {
    pub keys: Vec<Key>,
}

/// `err` about field `field` of entry `index`: its field becomes `keys[index].field`.
fn at(index: usize, err: ApiError) -> ApiError {
    let field = err.field.as_deref().unwrap_or("secret");
    ApiError {
        field: Some(Cow::Owned(format!("keys[{index}].{field}"))),
        ..err
    }
}

/// 64 hex digits as the 32 bytes they spell.
fn sha256_of_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut hash = [0_u8; 32];
    for (byte, pair) in hash.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(hash)
}

/// What is stored of one entry, or what is wrong with it.
fn entry(state: &AppState, key: &ImportKey) -> ApiResult<ImportedKey> {
    let config = &state.config;
    let environment = environment(&key.environment)?;
    let (secret_hash, last_four, legacy) = match (&key.secret, &key.secret_sha256) {
        (Some(secret), None) => {
            if key.legacy.is_some() {
                return Err(ApiError::invalid(
                    "legacy",
                    "legacy goes with secret_sha256 only: a secret's format says it.",
                ));
            }
            let legacy = match key_format::parse(&config.key_prefix, secret) {
                Ok(parsed) if parsed.environment != environment => {
                    return Err(ApiError::invalid(
                        "environment",
                        format!(
                            "The key is a {} key; environment must say so.",
                            parsed.environment
                        ),
                    ));
                }
                Ok(_) => false,
                Err(_)
                    if config
                        .legacy_key_pattern
                        .as_ref()
                        .is_some_and(|p| p.is_match(secret)) =>
                {
                    true
                }
                Err(_) if secret.starts_with(&format!("{}_", config.key_prefix)) => {
                    return Err(ApiError::invalid(
                        "secret",
                        "This looks like a Gatehouse key but its checksum or shape is wrong.",
                    ));
                }
                Err(_) => {
                    return Err(ApiError::invalid(
                        "secret",
                        if config.legacy_key_pattern.is_some() {
                            "The key is neither in Gatehouse's format nor matches \
                             GATEHOUSE_LEGACY_KEY_PATTERN."
                        } else {
                            "The key is not in Gatehouse's format, and no legacy format is \
                             configured (GATEHOUSE_LEGACY_KEY_PATTERN)."
                        },
                    ));
                }
            };
            (
                key_format::hash(secret),
                key_format::last_four(secret),
                legacy,
            )
        }
        (None, Some(hex_hash)) => {
            let hash = sha256_of_hex(hex_hash).ok_or_else(|| {
                ApiError::invalid(
                    "secret_sha256",
                    "secret_sha256 must be 64 hexadecimal characters.",
                )
            })?;
            (hash, String::new(), key.legacy.unwrap_or(true))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "secret",
                "Give secret or secret_sha256, not both.",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "secret",
                "Give the key as secret or as secret_sha256.",
            ));
        }
    };
    let request = NewKeyRequest {
        name: key.name.clone(),
        environment: Ok(environment),
        access: AccessChoice {
            full: Some(key.full_access),
            scopes: key.scopes.clone(),
        },
        expires_at: key.expires_at.as_deref().map(read_time).transpose(),
        rate_limit: Ok(key.rate_limit),
        note: key.note.clone().unwrap_or_default(),
        meta: Ok(key.meta.clone()),
        ip_allowlist: key.ip_allowlist.clone(),
    };
    Ok(ImportedKey {
        secret_hash,
        last_four,
        legacy,
        request,
    })
}

#[utoipa::path(post, path = "/v1/tenants/{tenant}/keys/import", tag = "keys", request_body = ImportKeys,
    params(("tenant" = String, Path, description = "Tenant id, slug or `ext:<external_id>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key get the first answer")),
    security(("operator_token" = []), ("tenant_token" = ["keys:write"])),
    responses(
        (status = 201, description = "Every key imported, in the order given", body = ImportedKeys),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Missing keys:write", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "A key is already in Gatehouse or given twice (field names the entry), or Idempotency-Key reused; nothing imported", body = ErrorBody),
        (status = 413, description = "Body over 512 KiB", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "An entry is invalid (field names it, e.g. `keys[3].secret`); nothing imported", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn import_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(named): Path<String>,
    JsonBody(body): JsonBody<ImportKeys>,
) -> ApiResult<Response> {
    let tenant = caller.tenant_with(&state, &named, Scope::KeysWrite).await?;
    if body.keys.is_empty() || body.keys.len() > MAX_KEYS {
        return Err(ApiError::invalid(
            "keys",
            format!(
                "Import 1 to {MAX_KEYS} keys at a time ({} given).",
                body.keys.len()
            ),
        ));
    }
    let keys = body
        .keys
        .iter()
        .enumerate()
        .map(|(index, key)| entry(&state, key).map_err(|err| at(index, err)))
        .collect::<ApiResult<Vec<_>>>()?;
    let ids = key_import::import_keys(
        &state.pool,
        &state.config.keys(),
        tenant.tenant_id,
        &keys,
        Requester::machine(&caller.actor),
    )
    .await?
    .map_err(|refusal| match refusal {
        ImportRefusal::Invalid { index, errors } => at(index, invalid(&errors)),
        ImportRefusal::Taken(Taken { index, earlier }) => {
            let field = if body.keys[index].secret.is_some() {
                "secret"
            } else {
                "secret_sha256"
            };
            at(
                index,
                ApiError {
                    field: Some(field.into()),
                    ..ApiError::conflict(match earlier {
                        Some(earlier) => format!("The same key is given at keys[{earlier}]."),
                        None => "This key is already in Gatehouse.".to_owned(),
                    })
                },
            )
        }
    })?;
    let mut rows = db_keys::by_ids(&state.pool, tenant.tenant_id, &ids).await?;
    let order: std::collections::HashMap<_, _> =
        ids.iter().enumerate().map(|(at, id)| (*id, at)).collect();
    rows.sort_by_key(|row| order.get(&row.api_key_id).copied());
    let prefix = &state.config.key_prefix;
    Ok(created(ImportedKeys {
        keys: rows.into_iter().map(|row| Key::view(prefix, row)).collect(),
    }))
}
