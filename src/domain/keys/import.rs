//! Importing keys a platform already handed out (`POST /v1/tenants/{tenant}/keys/import`): all
//! or nothing, in one transaction, one audit event for the batch. Only their SHA-256 is stored.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::keys as db_keys;
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::keys::{
    self, Admission, KeyConfig, KeyErrors, KeyField, NewKeyRequest, Requester, StoredSecret,
    insert_row,
};

/// The most keys one import takes.
pub const MAX_KEYS: usize = 1_000;

/// One key to import: its secret as the door read it (format, pattern), its settings as asked.
pub struct ImportedKey {
    pub secret_hash: [u8; 32],
    /// Empty when only the hash was given.
    pub last_four: String,
    /// In the platform's old format rather than Gatehouse's.
    pub legacy: bool,
    /// The settings, through the same rules as any new key.
    pub request: NewKeyRequest,
}

/// Why an import was refused: the key at `index` is already in Gatehouse (in some tenant, never
/// said which) or given before in the same import (at `earlier`).
#[derive(Debug, PartialEq, Eq)]
pub struct Taken {
    pub index: usize,
    pub earlier: Option<usize>,
}

/// Why an import stored nothing: a key is taken, or the rules refuse the settings of the key at
/// `index`.
#[derive(Debug, PartialEq, Eq)]
pub enum ImportRefusal {
    Taken(Taken),
    Invalid { index: usize, errors: KeyErrors },
}

impl From<Taken> for ImportRefusal {
    fn from(taken: Taken) -> Self {
        Self::Taken(taken)
    }
}

/// Stores every key of `keys` in `tenant_id`, or none; the new ids in the order given. Each key's
/// settings pass the rules of any new key ([`keys::admit`]), as the requester (a management or
/// operator token acts as an admin: a key that would need approval is refused).
pub async fn import_keys(
    pool: &PgPool,
    config: &KeyConfig,
    tenant_id: Uuid,
    keys: &[ImportedKey],
    by: Requester<'_>,
) -> DomainResult<Result<Vec<Uuid>, ImportRefusal>> {
    let actor = by.actor;
    let mut seen = HashMap::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        if let Some(earlier) = seen.insert(key.secret_hash, index) {
            return Ok(Err(Taken {
                index,
                earlier: Some(earlier),
            }
            .into()));
        }
    }
    let hashes: Vec<Vec<u8>> = keys.iter().map(|key| key.secret_hash.to_vec()).collect();
    let mut tx = pool.begin().await?;
    let rules = keys::Rules::load(&mut tx, config, tenant_id, by, false).await?;
    let mut admitted = Vec::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        match rules.admit(&key.request) {
            Ok(Admission::Create(key)) => admitted.push(key),
            Ok(Admission::NeedsApproval(_)) => {
                let errors = KeyErrors::of(
                    KeyField::Environment,
                    "In this tenant a developer's live keys need an admin's approval.",
                );
                return Ok(Err(ImportRefusal::Invalid { index, errors }));
            }
            Err(errors) => return Ok(Err(ImportRefusal::Invalid { index, errors })),
        }
    }
    let taken = db_keys::taken_hashes(&mut *tx, &hashes).await?;
    if let Some(index) = keys
        .iter()
        .position(|key| taken.iter().any(|hash| hash.as_slice() == key.secret_hash))
    {
        return Ok(Err(Taken {
            index,
            earlier: None,
        }
        .into()));
    }
    let mut ids = Vec::with_capacity(keys.len());
    for (index, (key, admitted)) in keys.iter().zip(&admitted).enumerate() {
        let secret = StoredSecret {
            hash: key.secret_hash,
            last_four: key.last_four.clone(),
            legacy: key.legacy,
        };
        match insert_row(
            &mut tx,
            tenant_id,
            &secret,
            admitted.settings(),
            None,
            actor,
        )
        .await
        {
            Ok(id) => ids.push(id),
            // Stored by someone else since the check above (a concurrent import or key): taken,
            // like any key found by the check.
            Err(DomainError::Database(sqlx::Error::Database(err)))
                if err.constraint() == Some("api_key_secret_hash_key") =>
            {
                return Ok(Err(Taken {
                    index,
                    earlier: None,
                }
                .into()));
            }
            Err(err) => return Err(err),
        }
    }
    let legacy = keys.iter().filter(|key| key.legacy).count();
    crate::db::audit::insert(
        &mut *tx,
        &actor.event(
            tenant_id,
            "keys.imported",
            format!("{} keys", keys.len()),
            serde_json::json!({ "count": keys.len(), "legacy": legacy }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(ids))
}
