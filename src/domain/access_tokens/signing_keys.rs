//! The keys that sign access tokens: ES256 (ECDSA over P-256 with SHA-256, RFC 7518 §3.4), which
//! every common verifier accepts (jose, PyJWT, Envoy's `jwt_authn`, nginx-plus, Kong), with small
//! keys and 64-byte signatures. Private keys live in PostgreSQL sealed under
//! `GATEHOUSE_SECRET_KEY`; every instance holds the keys in memory and reads them again after a
//! rotation (a notification) and once a minute.
//!
//! Rotation: a successor is published [`PUBLISH_LEAD`] before it signs, so a verifier that cached
//! the JWKS has seen it before any token it signed arrives; the key it replaces stops signing at
//! that moment and stays published until every token it signed has expired ([`LONGEST_TOKEN`]
//! and the verifiers' [`SKEW`] later). Rotation happens on a schedule (a key signs for the
//! configured period) and on demand; "immediately" (a key that leaked) retires and unpublishes
//! every key at once, so the tokens they signed stop verifying.

use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use crate::db::signing_keys::{self as db, SigningKeyRow};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::sealing::SecretKey;

/// The JWS algorithm of every token Gatehouse signs with its own keys.
pub const ALG: &str = "ES256";
/// How long a new key is published before it signs.
pub const PUBLISH_LEAD: Duration = Duration::minutes(15);
/// The longest lifetime a token may have (`GATEHOUSE_TOKEN_TTL_SECONDS` at most).
pub const LONGEST_TOKEN: Duration = Duration::hours(1);
/// The clock skew verifiers allow on `exp` and `nbf`.
pub const SKEW: Duration = Duration::seconds(60);
/// How long a key that left the JWKS is kept in the table (for the operator's list).
const KEPT_AFTER_UNPUBLISHED: Duration = Duration::days(30);
/// How often each instance looks at the schedule and reads the keys again.
const TICK: StdDuration = StdDuration::from_secs(60);

/// When a key is published and signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    pub publish_at: OffsetDateTime,
    pub sign_from: OffsetDateTime,
    /// When it stops signing (`None`: it is the newest key).
    pub retire_at: Option<OffsetDateTime>,
    /// When it leaves the JWKS (`None`: not yet decided).
    pub unpublish_at: Option<OffsetDateTime>,
}

impl KeyTimes {
    pub fn published(&self, now: OffsetDateTime) -> bool {
        self.publish_at <= now && self.unpublish_at.is_none_or(|at| now < at)
    }

    pub fn signs(&self, now: OffsetDateTime) -> bool {
        self.sign_from <= now && self.retire_at.is_none_or(|at| now < at)
    }

    /// What the operator's list says of it.
    pub fn state(&self, now: OffsetDateTime) -> KeyState {
        if self.signs(now) {
            KeyState::Signing
        } else if !self.published(now) {
            if now < self.publish_at {
                KeyState::Next
            } else {
                KeyState::Unpublished
            }
        } else if now < self.sign_from && self.retire_at.is_none() {
            KeyState::Next
        } else {
            KeyState::Retired
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    Signing,
    /// Published for the tokens it signed, signing no more.
    Retired,
    /// Out of the JWKS.
    Unpublished,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Signing => "signing",
            Self::Retired => "retired",
            Self::Unpublished => "unpublished",
        }
    }
}

/// Why keys are rotated now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The schedule: a successor once the newest key has signed for `period` less the lead.
    Scheduled { period: Duration },
    /// An operator asked: a successor published now, signing after the lead (unless one is on
    /// its way already).
    OnDemand,
    /// An operator asked at once (a key leaked): a new key signs now; every other key stops
    /// signing and leaves the JWKS now, and the tokens they signed no longer verify.
    Immediately,
}

/// One change a rotation makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create {
        publish_at: OffsetDateTime,
        sign_from: OffsetDateTime,
    },
    Retire {
        kid: String,
        retire_at: OffsetDateTime,
        unpublish_at: OffsetDateTime,
    },
}

/// What `rotation` changes in `keys` (kid and times) at `now`.
pub fn plan(keys: &[(String, KeyTimes)], now: OffsetDateTime, rotation: Rotation) -> Vec<Step> {
    let head = keys
        .iter()
        .filter(|(_, times)| times.retire_at.is_none())
        .max_by_key(|(_, times)| times.sign_from);
    let successor = |sign_from: OffsetDateTime| {
        let mut steps = vec![Step::Create {
            publish_at: now,
            sign_from,
        }];
        steps.extend(
            keys.iter()
                .filter(|(_, times)| times.retire_at.is_none())
                .map(|(kid, _)| Step::Retire {
                    kid: kid.clone(),
                    retire_at: sign_from,
                    unpublish_at: sign_from + LONGEST_TOKEN + SKEW,
                }),
        );
        steps
    };
    match (rotation, head) {
        (Rotation::Immediately, _) => {
            let mut steps = vec![Step::Create {
                publish_at: now,
                sign_from: now,
            }];
            steps.extend(
                keys.iter()
                    .filter(|(_, times)| times.unpublish_at.is_none_or(|at| now < at))
                    .map(|(kid, times)| Step::Retire {
                        kid: kid.clone(),
                        retire_at: times.retire_at.map_or(now, |at| at.min(now)),
                        unpublish_at: now,
                    }),
            );
            steps
        }
        // The first key signs at once: no verifier can hold a token of another.
        (_, None) => vec![Step::Create {
            publish_at: now,
            sign_from: now,
        }],
        (Rotation::OnDemand, Some((_, times))) if times.sign_from > now => Vec::new(),
        (Rotation::OnDemand, Some(_)) => successor(now + PUBLISH_LEAD),
        (Rotation::Scheduled { period }, Some((_, times))) => {
            if now < times.sign_from + period - PUBLISH_LEAD {
                Vec::new()
            } else {
                successor((now + PUBLISH_LEAD).max(times.sign_from + period))
            }
        }
    }
}

/// A fresh ES256 key: its kid (the RFC 7638 thumbprint), public point, PKCS#8 document.
fn generate() -> DomainResult<(String, Vec<u8>, Vec<u8>)> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| DomainError::unexpected("cannot generate a P-256 key"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| DomainError::unexpected("a generated P-256 key does not load"))?;
    let public = pair.public_key().as_ref().to_vec();
    Ok((thumbprint(&public), public, pkcs8.as_ref().to_vec()))
}

/// Where a key's private half is sealed: its row, by kid.
pub(crate) fn seal_context(kid: &str) -> String {
    format!("token_signing_key.private_key:{kid}")
}

/// The JWK of a P-256 public point (`0x04 ‖ X ‖ Y`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub y: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub alg: &'static str,
}

fn coordinates(public: &[u8]) -> (String, String) {
    let x = public.get(1..33).unwrap_or_default();
    let y = public.get(33..65).unwrap_or_default();
    (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))
}

/// RFC 7638: the SHA-256 of the required members in lexicographic order, base64url.
pub fn thumbprint(public: &[u8]) -> String {
    let (x, y) = coordinates(public);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// One key in memory.
struct Held {
    kid: String,
    public: Vec<u8>,
    /// `None` when it no longer signs, or its sealed value does not open.
    pair: Option<Arc<EcdsaKeyPair>>,
    times: KeyTimes,
}

/// A key that signs: its kid and the key pair.
#[derive(Clone)]
pub struct Signer {
    pub kid: String,
    pair: Arc<EcdsaKeyPair>,
}

impl Signer {
    /// The JWS signature (`r ‖ s`, 64 bytes) of `message`.
    pub fn sign(&self, message: &[u8]) -> DomainResult<Vec<u8>> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| DomainError::unexpected("ECDSA signing failed"))
    }
}

/// A signing key as the operator's list shows it.
#[derive(Debug, Clone)]
pub struct KeySummary {
    pub kid: String,
    pub state: KeyState,
    pub created_at: OffsetDateTime,
    pub times: KeyTimes,
}

/// Every instance's copy of the signing keys.
pub struct SigningKeys {
    secret: SecretKey,
    held: RwLock<Arc<Vec<Held>>>,
}

impl SigningKeys {
    pub fn new(secret: SecretKey) -> Self {
        Self {
            secret,
            held: RwLock::new(Arc::new(Vec::new())),
        }
    }

    fn held(&self) -> Arc<Vec<Held>> {
        self.held.read().map_or_else(
            |poisoned| Arc::clone(&poisoned.into_inner()),
            |held| Arc::clone(&held),
        )
    }

    /// Reads the keys again from the database.
    pub async fn reload(&self, pool: &PgPool) -> DomainResult<()> {
        let rows = db::all(pool).await?;
        let now = OffsetDateTime::now_utc();
        let held: Vec<Held> = rows
            .into_iter()
            .map(|row| {
                let times = times_of(&row);
                let may_sign = times.retire_at.is_none_or(|at| now < at);
                let pair = may_sign.then(|| self.open(&row)).flatten();
                Held {
                    kid: row.kid,
                    public: row.public_key,
                    pair,
                    times,
                }
            })
            .collect();
        *self
            .held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(held);
        Ok(())
    }

    fn open(&self, row: &SigningKeyRow) -> Option<Arc<EcdsaKeyPair>> {
        let Ok(pkcs8) = self
            .secret
            .open(&row.private_key_sealed, &seal_context(&row.kid))
        else {
            tracing::error!(kid = %row.kid, "a token signing key does not open with GATEHOUSE_SECRET_KEY; it cannot sign");
            return None;
        };
        EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .inspect_err(|_| tracing::error!(kid = %row.kid, "a token signing key does not load"))
        .ok()
        .map(Arc::new)
    }

    /// The keys the JWKS publishes at `now`.
    pub fn published(&self, now: OffsetDateTime) -> Vec<Jwk> {
        self.held()
            .iter()
            .filter(|key| key.times.published(now))
            .map(|key| {
                let (x, y) = coordinates(&key.public);
                Jwk {
                    kty: "EC",
                    crv: "P-256",
                    x,
                    y,
                    kid: key.kid.clone(),
                    use_: "sig",
                    alg: ALG,
                }
            })
            .collect()
    }

    /// The public point of the published key `kid` at `now`.
    pub fn public_key(&self, kid: &str, now: OffsetDateTime) -> Option<Vec<u8>> {
        self.held()
            .iter()
            .find(|key| key.kid == kid && key.times.published(now))
            .map(|key| key.public.clone())
    }

    /// The key that signs at `now` (the newest of those that may), if it opened.
    pub fn signer(&self, now: OffsetDateTime) -> Option<Signer> {
        self.held()
            .iter()
            .filter(|key| key.times.signs(now))
            .max_by_key(|key| key.times.sign_from)
            .and_then(|key| {
                key.pair.as_ref().map(|pair| Signer {
                    kid: key.kid.clone(),
                    pair: Arc::clone(pair),
                })
            })
    }

    /// Every key still in the table, newest first.
    pub async fn list(pool: &PgPool, now: OffsetDateTime) -> DomainResult<Vec<KeySummary>> {
        let mut rows = db::all(pool).await?;
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|row| {
                let times = times_of(&row);
                KeySummary {
                    kid: row.kid,
                    state: times.state(now),
                    created_at: row.created_at,
                    times,
                }
            })
            .collect())
    }

    /// Rotates as `rotation` says (one instance at a time), tells every instance, and reads the
    /// keys again here. Returns whether anything changed.
    pub async fn rotate(
        &self,
        pool: &PgPool,
        now: OffsetDateTime,
        rotation: Rotation,
    ) -> DomainResult<bool> {
        let mut tx = pool.begin().await?;
        db::lock(&mut tx).await?;
        let rows = db::all(&mut *tx).await?;
        let keys: Vec<(String, KeyTimes)> = rows
            .iter()
            .map(|row| (row.kid.clone(), times_of(row)))
            .collect();
        let steps = plan(&keys, now, rotation);
        for step in &steps {
            match step {
                Step::Create {
                    publish_at,
                    sign_from,
                } => {
                    let (kid, public_key, pkcs8) = generate()?;
                    let private_key_sealed = self.secret.seal(&pkcs8, &seal_context(&kid));
                    db::insert(
                        &mut *tx,
                        &SigningKeyRow {
                            kid,
                            public_key,
                            private_key_sealed,
                            created_at: now,
                            publish_at: *publish_at,
                            sign_from: *sign_from,
                            retire_at: None,
                            unpublish_at: None,
                        },
                    )
                    .await?;
                }
                Step::Retire {
                    kid,
                    retire_at,
                    unpublish_at,
                } => db::retire(&mut *tx, kid, *retire_at, *unpublish_at).await?,
            }
        }
        db::delete_unpublished(&mut *tx, now - KEPT_AFTER_UNPUBLISHED).await?;
        if !steps.is_empty() {
            crate::db::keys::notify_signing_keys_changed(&mut *tx).await?;
        }
        tx.commit().await?;
        self.reload(pool).await?;
        Ok(!steps.is_empty())
    }
}

fn times_of(row: &SigningKeyRow) -> KeyTimes {
    KeyTimes {
        publish_at: row.publish_at,
        sign_from: row.sign_from,
        retire_at: row.retire_at,
        unpublish_at: row.unpublish_at,
    }
}

/// Keeps the schedule: every minute, rotates when due (one instance at a time) and reads the
/// keys again. A rotation elsewhere is heard sooner, by `key_cache::listen_for_changes`. Runs
/// until dropped.
pub async fn keep_schedule(pool: PgPool, keys: Arc<SigningKeys>, period: Duration) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let rotated = keys
            .rotate(
                &pool,
                OffsetDateTime::now_utc(),
                Rotation::Scheduled { period },
            )
            .await;
        if let Err(err) = rotated {
            tracing::warn!(error = %err, "cannot rotate the token signing keys");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    fn key(kid: &str, publish: i64, sign: i64) -> (String, KeyTimes) {
        (
            kid.to_owned(),
            KeyTimes {
                publish_at: at(publish),
                sign_from: at(sign),
                retire_at: None,
                unpublish_at: None,
            },
        )
    }

    const MONTH: Duration = Duration::days(30);

    #[test]
    fn the_first_key_signs_at_once() {
        for rotation in [Rotation::Scheduled { period: MONTH }, Rotation::OnDemand] {
            assert_eq!(
                plan(&[], at(0), rotation),
                [Step::Create {
                    publish_at: at(0),
                    sign_from: at(0)
                }]
            );
        }
    }

    #[test]
    fn the_schedule_publishes_the_successor_15_minutes_before_the_period_ends() {
        let keys = [key("a", 0, 0)];
        let period_end = at(0) + MONTH;
        let scheduled = Rotation::Scheduled { period: MONTH };
        assert!(plan(&keys, period_end - Duration::minutes(16), scheduled).is_empty());
        let now = period_end - Duration::minutes(15);
        assert_eq!(
            plan(&keys, now, scheduled),
            [
                Step::Create {
                    publish_at: now,
                    sign_from: period_end
                },
                Step::Retire {
                    kid: "a".into(),
                    retire_at: period_end,
                    unpublish_at: period_end + Duration::minutes(61)
                }
            ]
        );
        // An instance that was down past the period still gives the successor its 15 minutes.
        let late = period_end + Duration::days(2);
        let steps = plan(&keys, late, scheduled);
        assert_eq!(
            steps[0],
            Step::Create {
                publish_at: late,
                sign_from: late + PUBLISH_LEAD
            }
        );
    }

    #[test]
    fn a_successor_on_its_way_is_not_replaced() {
        let retired = (
            "a".to_owned(),
            KeyTimes {
                retire_at: Some(at(15)),
                unpublish_at: Some(at(76)),
                ..key("a", 0, 0).1
            },
        );
        let keys = [retired, key("b", 0, 15)];
        assert!(plan(&keys, at(1), Rotation::OnDemand).is_empty());
        assert!(plan(&keys, at(1), Rotation::Scheduled { period: MONTH }).is_empty());
        // Once it signs, an operator may rotate again.
        assert_eq!(plan(&keys, at(16), Rotation::OnDemand).len(), 2);
    }

    #[test]
    fn on_demand_the_successor_signs_after_the_lead_and_immediately_at_once() {
        let keys = [key("a", 0, 0)];
        let steps = plan(&keys, at(100), Rotation::OnDemand);
        assert_eq!(
            steps,
            [
                Step::Create {
                    publish_at: at(100),
                    sign_from: at(115)
                },
                Step::Retire {
                    kid: "a".into(),
                    retire_at: at(115),
                    unpublish_at: at(176)
                }
            ]
        );
        let pending = [key("a", 0, 0), key("b", 100, 115)];
        assert_eq!(
            plan(&pending, at(101), Rotation::Immediately),
            [
                Step::Create {
                    publish_at: at(101),
                    sign_from: at(101)
                },
                Step::Retire {
                    kid: "a".into(),
                    retire_at: at(101),
                    unpublish_at: at(101)
                },
                Step::Retire {
                    kid: "b".into(),
                    retire_at: at(101),
                    unpublish_at: at(101)
                }
            ]
        );
    }

    #[test]
    fn a_key_s_state_follows_its_times() {
        let (_, times) = key("a", 0, 15);
        assert_eq!(times.state(at(1)), KeyState::Next);
        assert!(times.published(at(1)) && !times.signs(at(1)));
        assert_eq!(times.state(at(15)), KeyState::Signing);
        let retired = KeyTimes {
            retire_at: Some(at(30)),
            unpublish_at: Some(at(91)),
            ..times
        };
        assert_eq!(retired.state(at(30)), KeyState::Retired);
        assert!(retired.published(at(90)) && !retired.signs(at(30)));
        assert_eq!(retired.state(at(91)), KeyState::Unpublished);
    }

    #[test]
    fn a_generated_key_signs_what_its_public_point_verifies_and_its_kid_is_its_thumbprint() {
        let (kid, public, pkcs8) = generate().unwrap();
        assert_eq!(public.len(), 65);
        assert_eq!(public[0], 4);
        assert_eq!(kid, thumbprint(&public));
        assert_eq!(kid.len(), 43, "base64url of a SHA-256");
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .unwrap();
        let signer = Signer {
            kid,
            pair: Arc::new(pair),
        };
        let signature = signer.sign(b"a.b").unwrap();
        assert_eq!(signature.len(), 64);
        let verifier = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            &public,
        );
        assert!(verifier.verify(b"a.b", &signature).is_ok());
        assert!(verifier.verify(b"a.c", &signature).is_err());
    }
}
