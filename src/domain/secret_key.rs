//! Rotating `GATEHOUSE_SECRET_KEY`: every sealed value is opened with the previous key and sealed
//! again under the new one, all in one transaction (a value that opens with neither key rolls
//! everything back), and each tenant whose secrets moved gets an audit event by the operator.

use std::collections::BTreeMap;

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{audit, sealed};
use crate::domain::audit::Actor;
use crate::domain::error::DomainResult;
use crate::domain::sealing::SecretKey;

/// What a rotation re-sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotated {
    /// Webhook endpoints whose secrets (and credentials) are now sealed under the new key.
    pub endpoints: usize,
    /// Kept management API answers now sealed under the new key.
    pub answers: usize,
    /// Private keys that sign access tokens, now sealed under the new key.
    pub signing_keys: usize,
    /// Values already sealed under the new key (a rotation run twice), left as they were.
    pub already_new: usize,
}

/// Why nothing was rotated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} opens with neither the previous nor the new key: nothing was changed (is \
     GATEHOUSE_PREVIOUS_SECRET_KEY the key this database was sealed with?)"
)]
pub struct NotRotated {
    pub what: String,
}

/// One value, from `previous` to `new`: `None` when it already opens with `new`.
fn reseal(
    keys: (&SecretKey, &SecretKey),
    sealed: &[u8],
    context: &str,
    what: impl FnOnce() -> String,
) -> Result<Option<Vec<u8>>, NotRotated> {
    let (previous, new) = keys;
    match previous.open(sealed, context) {
        Ok(plain) => Ok(Some(new.seal(&plain, context))),
        Err(_) if new.open(sealed, context).is_ok() => Ok(None),
        Err(_) => Err(NotRotated { what: what() }),
    }
}

/// Re-seals every sealed value under `new`, in one transaction, audited per tenant as `actor`.
pub async fn rotate(
    pool: &PgPool,
    previous: &SecretKey,
    new: &SecretKey,
    actor: &Actor,
) -> DomainResult<Result<Rotated, NotRotated>> {
    use crate::domain::webhooks::signing::{auth_context, secret_context};

    let keys = (previous, new);
    let mut tx = pool.begin().await?;
    let mut rotated = Rotated::default();
    let mut per_tenant: BTreeMap<Uuid, usize> = BTreeMap::new();

    for mut endpoint in sealed::endpoints_for_update(&mut tx).await? {
        let id = endpoint.webhook_endpoint_id;
        let mut changed = false;
        let mut step = |value: &mut Vec<u8>, context: String, part: &str| {
            match reseal(keys, value, &context, || {
                format!("webhook endpoint {id}'s {part}")
            })? {
                Some(resealed) => {
                    *value = resealed;
                    changed = true;
                }
                None => rotated.already_new += 1,
            }
            Ok::<(), NotRotated>(())
        };
        let outcome = (|| {
            step(
                &mut endpoint.secret_sealed,
                secret_context(id),
                "signing secret",
            )?;
            if let Some(previous_secret) = endpoint.previous_secret_sealed.as_mut() {
                step(
                    previous_secret,
                    secret_context(id),
                    "previous signing secret",
                )?;
            }
            if let Some(auth) = endpoint.auth_sealed.as_mut() {
                step(auth, auth_context(id), "receiver credentials")?;
            }
            Ok(())
        })();
        if let Err(refusal) = outcome {
            return Ok(Err(refusal));
        }
        if changed {
            sealed::update_endpoint(&mut tx, &endpoint).await?;
            rotated.endpoints += 1;
            *per_tenant.entry(endpoint.tenant_id).or_default() += 1;
        }
    }

    for mut answer in sealed::answers_for_update(&mut tx).await? {
        let context = crate::domain::idempotency::context(&answer.caller, &answer.idempotency_key);
        let what = || {
            format!(
                "the kept answer to Idempotency-Key {:?}",
                answer.idempotency_key
            )
        };
        match reseal(keys, &answer.response, &context, what) {
            Ok(Some(resealed)) => {
                answer.response = resealed;
                sealed::update_answer(&mut tx, &answer).await?;
                rotated.answers += 1;
            }
            Ok(None) => rotated.already_new += 1,
            Err(refusal) => return Ok(Err(refusal)),
        }
    }

    for mut key in sealed::signing_keys_for_update(&mut tx).await? {
        let context = crate::domain::access_tokens::signing_keys::seal_context(&key.kid);
        let what = || format!("the access token signing key {:?}", key.kid);
        match reseal(keys, &key.private_key_sealed, &context, what) {
            Ok(Some(resealed)) => {
                key.private_key_sealed = resealed;
                sealed::update_signing_key(&mut tx, &key).await?;
                rotated.signing_keys += 1;
            }
            Ok(None) => rotated.already_new += 1,
            Err(refusal) => return Ok(Err(refusal)),
        }
    }

    for (tenant_id, endpoints) in per_tenant {
        let details = serde_json::json!({ "webhook_endpoints": endpoints });
        let event = actor.event(
            tenant_id,
            "secret_key.rotated",
            "webhook endpoints".into(),
            details,
        );
        audit::insert(&mut *tx, &event).await?;
    }
    tx.commit().await?;
    Ok(Ok(rotated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn key(byte: u8) -> SecretKey {
        SecretKey::parse(&base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap()
    }

    #[test]
    fn a_value_moves_to_the_new_key_once_and_a_stranger_is_refused() {
        let (old, new, other) = (key(1), key(2), key(3));
        let sealed = old.seal(b"whsec_x", "here");
        let resealed = reseal((&old, &new), &sealed, "here", String::new)
            .unwrap()
            .unwrap();
        assert_eq!(new.open(&resealed, "here").unwrap(), b"whsec_x");
        assert!(old.open(&resealed, "here").is_err());
        // Run again: already under the new key, left alone.
        assert_eq!(
            reseal((&old, &new), &resealed, "here", String::new),
            Ok(None)
        );
        let foreign = other.seal(b"whsec_x", "here");
        let refused = reseal((&old, &new), &foreign, "here", || "it".into()).unwrap_err();
        assert!(refused.to_string().starts_with("it opens with neither"));
    }
}
