//! Leaked keys (issue 28): a secret scanner's report is one more door. Its signature is checked
//! against the sender's published keys ([`public_key_point`], [`signature_holds`]); each candidate
//! that has this deployment's format and checksum is looked up in one batched query (the others are
//! false positives without the database); each key found is handled by the tenant's policy for its
//! environment through the rulebook's own revoke and disable, with a [`Who::LeakReport`] actor.
//! A key and URL reported twice act once.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::leaks::{self as db_leaks, FoundKey, NewKeyLeak};
use crate::domain::audit::{Actor, Who};
use crate::domain::error::{DomainError, DomainResult};
use crate::domain::keys::format::{is_checksummed, masked, parse};
use crate::domain::keys::{self, KeyChangeRequest, KeyConfig, Requester};
use crate::domain::mail::{self, Mail};
use crate::domain::management::token_head;
use crate::domain::tokens::sha256;
use crate::domain::webhooks::{self, Event, KeyLeaked, KeyRef};
use crate::vocabulary::Environment;

/// The DER prefix of a P-256 public key in SubjectPublicKeyInfo: `id-ecPublicKey`, `prime256v1`,
/// then a bit string of the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The uncompressed point of a P-256 public key written as PEM SubjectPublicKeyInfo (`-----BEGIN
/// PUBLIC KEY-----`); none for anything else.
pub fn public_key_point(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .ok()?;
    let point = der.strip_prefix(P256_SPKI_PREFIX.as_slice())?;
    (point.len() == 65 && point[0] == 0x04).then(|| point.to_vec())
}

/// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) is the key `point`'s signature of
/// `body` with SHA-256.
pub fn signature_holds(point: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(body, &signature)
        .is_ok()
}

/// One match in a report: the secret found, the sender's name for its type, where it was found.
#[derive(Debug, Clone, Deserialize)]
pub struct Candidate {
    pub token: String,
    #[serde(rename = "type")]
    pub token_type: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub source: String,
}

/// Whether a candidate is one of this deployment's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    TruePositive,
    FalsePositive,
}

/// The answer for one candidate, in GitHub's feedback format; never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feedback {
    /// Hex SHA-256 of the secret, as Gatehouse stores it.
    pub token_hash: String,
    pub token_type: String,
    pub label: Label,
}

/// What a tenant's policy does to a leaked key of one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakAction {
    Revoke,
    Disable,
    Notify,
}

impl LeakAction {
    pub const ALL: [Self; 3] = [Self::Revoke, Self::Disable, Self::Notify];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoke => "revoke",
            Self::Disable => "disable",
            Self::Notify => "notify",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == value)
    }
}

/// A tenant's leak policy: what happens to a leaked live key and to a leaked test key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakPolicy {
    pub live: LeakAction,
    pub test: LeakAction,
}

impl Default for LeakPolicy {
    /// Live keys are revoked; for test keys the owners are told.
    fn default() -> Self {
        Self {
            live: LeakAction::Revoke,
            test: LeakAction::Notify,
        }
    }
}

impl LeakPolicy {
    pub fn for_environment(self, environment: Environment) -> LeakAction {
        match environment {
            Environment::Live => self.live,
            Environment::Test => self.test,
        }
    }
}

/// A tenant's leak policy (the default when it set none).
pub async fn policy(pool: &PgPool, tenant_id: Uuid) -> DomainResult<LeakPolicy> {
    let default = LeakPolicy::default();
    Ok(match db_leaks::policy(pool, tenant_id).await? {
        Some((live, test)) => LeakPolicy {
            live: LeakAction::parse(&live).unwrap_or(default.live),
            test: LeakAction::parse(&test).unwrap_or(default.test),
        },
        None => default,
    })
}

/// Sets a tenant's leak policy, audited.
pub async fn set_policy(
    pool: &PgPool,
    tenant_id: Uuid,
    policy: LeakPolicy,
    actor: &Actor,
) -> DomainResult<()> {
    let mut tx = pool.begin().await?;
    db_leaks::set_policy(
        &mut *tx,
        tenant_id,
        policy.live.as_str(),
        policy.test.as_str(),
    )
    .await?;
    actor
        .commit_with_event(
            tx,
            tenant_id,
            "leak_policy.updated",
            "leak policy".into(),
            serde_json::json!({ "live": policy.live.as_str(), "test": policy.test.as_str() }),
        )
        .await
}

/// What a candidate is, told without the database.
enum Shape {
    Key([u8; 32]),
    Token([u8; 32]),
    Nothing,
}

fn shape(prefix: &str, token: &str) -> Shape {
    if let Ok(parsed) = parse(prefix, token) {
        Shape::Key(parsed.hash)
    } else if is_checksummed(&token_head(prefix), token) {
        Shape::Token(sha256(token))
    } else {
        Shape::Nothing
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Takes a verified report from `origin`: acts on every key and management token it names (once
/// per key and URL) and answers each candidate's label, in the report's order.
pub async fn take_report(
    pool: &PgPool,
    config: &KeyConfig,
    origin: &str,
    candidates: &[Candidate],
) -> DomainResult<Vec<Feedback>> {
    let prefix = config.key_prefix.as_str();
    let shapes: Vec<Shape> = candidates
        .iter()
        .map(|candidate| shape(prefix, &candidate.token))
        .collect();
    let mut key_hashes = Vec::new();
    let mut token_hashes = Vec::new();
    for shape in &shapes {
        match shape {
            Shape::Key(hash) => key_hashes.push(hash.to_vec()),
            Shape::Token(hash) => token_hashes.push(hash.to_vec()),
            Shape::Nothing => {}
        }
    }
    let keys: HashMap<Vec<u8>, FoundKey> = db_leaks::find_keys(pool, &key_hashes)
        .await?
        .into_iter()
        .map(|key| (key.secret_hash.clone(), key))
        .collect();
    let tokens: HashMap<Vec<u8>, db_leaks::FoundToken> = db_leaks::find_tokens(pool, &token_hashes)
        .await?
        .into_iter()
        .map(|token| (token.secret_hash.clone(), token))
        .collect();

    let actor = Actor {
        who: Who::LeakReport {
            origin: origin.to_owned(),
        },
        ..Actor::system()
    };
    let mut policies: HashMap<Uuid, LeakPolicy> = HashMap::new();
    let mut seen: HashSet<(Vec<u8>, &str)> = HashSet::new();
    let mut feedback = Vec::with_capacity(candidates.len());
    for (candidate, shape) in candidates.iter().zip(&shapes) {
        let (hash, found) = match shape {
            Shape::Key(hash) => (hash.to_vec(), keys.contains_key(hash.as_slice())),
            Shape::Token(hash) => (hash.to_vec(), tokens.contains_key(hash.as_slice())),
            Shape::Nothing => (sha256(&candidate.token).to_vec(), false),
        };
        feedback.push(Feedback {
            token_hash: hex(&hash),
            token_type: candidate.token_type.clone(),
            label: if found {
                Label::TruePositive
            } else {
                Label::FalsePositive
            },
        });
        if !found || !seen.insert((hash.clone(), candidate.url.as_str())) {
            continue;
        }
        if let Some(key) = keys.get(&hash) {
            let policy = match policies.get(&key.tenant_id) {
                Some(policy) => *policy,
                None => {
                    let policy = policy(pool, key.tenant_id).await?;
                    policies.insert(key.tenant_id, policy);
                    policy
                }
            };
            let action = policy.for_environment(key.environment);
            act_on_key(pool, config, &actor, key, candidate, action).await?;
        } else if let Some(token) = tokens.get(&hash) {
            act_on_token(pool, &actor, token, candidate).await?;
        }
    }
    Ok(feedback)
}

/// The policy's action on one key, through the rulebook, then the leak recorded (once per URL).
async fn act_on_key(
    pool: &PgPool,
    config: &KeyConfig,
    actor: &Actor,
    key: &FoundKey,
    candidate: &Candidate,
    action: LeakAction,
) -> DomainResult<()> {
    if db_leaks::key_reported(pool, key.api_key_id, &candidate.url).await? {
        return Ok(());
    }
    let by = Requester::machine(actor);
    let done = match action {
        LeakAction::Revoke => keys::revoke_key(pool, config, key.tenant_id, key.api_key_id, by)
            .await?
            .is_ok(),
        LeakAction::Disable => {
            let request = KeyChangeRequest {
                disabled: Some(true),
                ..KeyChangeRequest::default()
            };
            keys::edit_key(pool, config, key.tenant_id, key.api_key_id, &request, by)
                .await?
                .is_ok_and(|edited| !edited.changed.is_empty())
        }
        LeakAction::Notify => true,
    };
    let action = if done { action.as_str() } else { "none" };
    let mut tx = pool.begin().await?;
    let new = db_leaks::insert_key_leak(
        &mut *tx,
        &NewKeyLeak {
            api_key_id: key.api_key_id,
            tenant_id: key.tenant_id,
            url: &candidate.url,
            origin: origin_of(actor),
            source: &candidate.source,
            action,
        },
    )
    .await?;
    if !new {
        return Ok(());
    }
    let row = crate::db::keys::get(&mut *tx, key.tenant_id, key.api_key_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let shown = masked(&config.key_prefix, row.environment, &row.last_four);
    let event = Event::KeyLeaked(KeyLeaked {
        key: KeyRef::new(key.api_key_id, &row.name, row.environment, &shown),
        url: candidate.url.clone(),
        source: candidate.source.clone(),
        action: action.to_owned(),
        actor: actor.into(),
    });
    webhooks::publish(&mut tx, key.tenant_id, Some(row.environment), &event).await?;
    tell_owners(&mut tx, config, key, &row, candidate, action).await?;
    crate::db::keys::notify_changed(&mut *tx, &key.secret_hash).await?;
    actor
        .commit_with_key_event(
            tx,
            key.tenant_id,
            key.api_key_id,
            "key.leaked",
            format!("key:{} ({shown})", row.name),
            serde_json::json!({ "url": candidate.url, "source": candidate.source, "action": action }),
        )
        .await
}

/// Mails the key's creator and the tenant's admins (each once) where the key was found, what the
/// policy did, and a link to the key's page to roll it.
async fn tell_owners(
    tx: &mut sqlx::PgConnection,
    config: &KeyConfig,
    key: &FoundKey,
    row: &crate::db::keys::Key,
    candidate: &Candidate,
    action: &str,
) -> DomainResult<()> {
    let tenant = crate::db::tenants::by_id(&mut *tx, key.tenant_id).await?;
    let mut people = crate::db::webhooks::admins(&mut *tx, key.tenant_id).await?;
    let creator = match row.created_by {
        Some(creator) => {
            crate::db::reminders::key_notice_facts(&mut *tx, key.tenant_id, creator, None).await?
        }
        None => None,
    };
    if let Some(facts) = creator {
        people.insert(0, (facts.email, facts.name));
    }
    let mut told = HashSet::new();
    let link = config
        .public_url
        .link(&format!("/t/{}/keys/{}", tenant.slug, key.api_key_id));
    for (email, name) in people {
        if !told.insert(email.clone()) {
            continue;
        }
        let notice = Mail::KeyLeaked {
            name,
            tenant: tenant.name.clone(),
            key_name: row.name.clone(),
            environment: row.environment.to_string(),
            url: candidate.url.clone(),
            action: action.to_owned(),
            link: link.clone(),
        };
        mail::send(&mut *tx, &email, notice).await?;
    }
    Ok(())
}

/// A management token found leaked is always revoked.
async fn act_on_token(
    pool: &PgPool,
    actor: &Actor,
    token: &db_leaks::FoundToken,
    candidate: &Candidate,
) -> DomainResult<()> {
    if !token.revoked {
        match crate::domain::management::revoke_token(
            pool,
            token.tenant_id,
            token.management_token_id,
            actor,
        )
        .await
        {
            Ok(()) | Err(DomainError::NotFound) => {}
            Err(err) => return Err(err),
        }
    }
    db_leaks::insert_token_leak(
        pool,
        token.management_token_id,
        &candidate.url,
        origin_of(actor),
        &candidate.source,
    )
    .await?;
    Ok(())
}

fn origin_of(actor: &Actor) -> &str {
    match &actor.who {
        Who::LeakReport { origin } => origin,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_p256_public_key_gives_a_point() {
        // GitHub's documented example key.
        let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsz9ugWDj5jK5ELBK42ynytbo38gP\nHzZFI03Exwz8Lh/tCfL3YxwMdLjB+bMznsanlhK0RwcGP3IDb34kQDIo3Q==\n-----END PUBLIC KEY-----";
        let point = public_key_point(pem).unwrap();
        assert_eq!(point.len(), 65);
        assert_eq!(
            public_key_point("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
            None
        );
        assert!(!signature_holds(&point, b"[]", "MEUCIQ=="));
        assert!(!signature_holds(&point, b"[]", "not base64!"));
    }

    #[test]
    fn policies_read_back_and_default_to_revoking_live_keys() {
        for action in LeakAction::ALL {
            assert_eq!(LeakAction::parse(action.as_str()), Some(action));
        }
        let policy = LeakPolicy::default();
        assert_eq!(
            policy.for_environment(Environment::Live),
            LeakAction::Revoke
        );
        assert_eq!(
            policy.for_environment(Environment::Test),
            LeakAction::Notify
        );
    }
}
