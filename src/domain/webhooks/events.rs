//! The event catalogue: every type a receiver can get, each type's payload (`data`) as a struct,
//! and publishing an event in the transaction of the change that causes it.
//!
//! [`Event`] pairs each payload with its type, so the `type` a receiver reads can never disagree with
//! the `data` beside it; [`publish`] takes only an `Event`. Every payload names who acted
//! (`actor`: [`ActorRef`]). Receivers depend on these shapes; the tests below pin each one.

use serde::{Serialize, Serializer};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::db::outbox as db_outbox;
use crate::db::webhooks as db_webhooks;
use crate::domain::audit::{Actor, Who};
use crate::domain::error::{DomainError, DomainResult};
use crate::vocabulary::{Environment, Role};

/// What happened, as receivers see it in `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    KeyCreated,
    KeyRolled,
    KeyRevoked,
    KeyDisabled,
    KeyLeaked,
    KeyRequestApproved,
    KeyRequestDenied,
    KeyExpiring,
    KeyExpired,
    KeyRateLimited,
    MemberJoined,
    MemberRemoved,
    MemberRoleChanged,
    InvitationCreated,
    WebhookTest,
}

impl EventType {
    pub const ALL: [EventType; 15] = [
        Self::KeyCreated,
        Self::KeyRolled,
        Self::KeyRevoked,
        Self::KeyDisabled,
        Self::KeyLeaked,
        Self::KeyRequestApproved,
        Self::KeyRequestDenied,
        Self::KeyExpiring,
        Self::KeyExpired,
        Self::KeyRateLimited,
        Self::MemberJoined,
        Self::MemberRemoved,
        Self::MemberRoleChanged,
        Self::InvitationCreated,
        Self::WebhookTest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreated => "key.created",
            Self::KeyRolled => "key.rolled",
            Self::KeyRevoked => "key.revoked",
            Self::KeyDisabled => "key.disabled",
            Self::KeyLeaked => "key.leaked",
            Self::KeyRequestApproved => "key_request.approved",
            Self::KeyRequestDenied => "key_request.denied",
            Self::KeyExpiring => "key.expiring",
            Self::KeyExpired => "key.expired",
            Self::KeyRateLimited => "key.rate_limited",
            Self::MemberJoined => "member.joined",
            Self::MemberRemoved => "member.removed",
            Self::MemberRoleChanged => "member.role_changed",
            Self::InvitationCreated => "invitation.created",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::KeyCreated => "a key was created",
            Self::KeyRolled => "a key was rolled (its successor created)",
            Self::KeyRevoked => "a key was revoked",
            Self::KeyDisabled => "a key was disabled (it can be enabled again)",
            Self::KeyLeaked => {
                "a secret scanner found a key in public (the tenant's leak policy acted)"
            }
            Self::KeyRequestApproved => "an admin approved a developer's request for a live key",
            Self::KeyRequestDenied => "an admin denied a developer's request for a live key",
            Self::KeyExpiring => "a key expires in 30, 7 or 1 days",
            Self::KeyExpired => "a key passed its expiry",
            Self::KeyRateLimited => "a key hit its rate limit (at most hourly)",
            Self::MemberJoined => "someone joined the tenant",
            Self::MemberRemoved => "a member was removed or left",
            Self::MemberRoleChanged => "a member's role changed",
            Self::InvitationCreated => "someone was invited",
            Self::WebhookTest => "\"Send test event\" (always delivered)",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

/// The catalogue as the documentation lists it: each type with what it means.
pub fn catalogue() -> Vec<(&'static str, &'static str)> {
    EventType::ALL
        .into_iter()
        .map(|event_type| (event_type.as_str(), event_type.description()))
        .collect()
}

/// Who acted, as every event's `actor` says: `{"type": "person", "id"}`, `{"type": "token", "id",
/// "name"}`, `{"type": "operator"}`, `{"type": "system"}` (Gatehouse itself: reminders, expiry,
/// rate limits) or `{"type": "leak_report", "origin"}` (a secret scanner's report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ActorRef {
    Person {
        id: Uuid,
    },
    Token {
        id: Uuid,
        name: String,
    },
    Operator,
    System,
    /// A secret scanner's leak report, by the sender's configured name.
    #[serde(rename = "leak_report")]
    LeakReport {
        origin: String,
    },
}

impl From<&Actor> for ActorRef {
    fn from(actor: &Actor) -> Self {
        match &actor.who {
            Who::Person(id) => Self::Person { id: *id },
            Who::Token { id, name, .. } => Self::Token {
                id: *id,
                name: name.clone(),
            },
            Who::Operator => Self::Operator,
            Who::System => Self::System,
            Who::LeakReport { origin } => Self::LeakReport {
                origin: origin.clone(),
            },
        }
    }
}

/// A time as events carry it: RFC 3339 in UTC, whole seconds ([`rfc3339`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTime(pub OffsetDateTime);

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&rfc3339(self.0))
    }
}

/// A time as events carry it: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// A key as a change to it names it: `{"id", "name", "environment", "masked"}` (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRef {
    pub id: Uuid,
    pub name: String,
    pub environment: Environment,
    /// The prefix, environment and last four characters (`gh_live_••••abcd`).
    pub masked: String,
}

impl KeyRef {
    pub fn new(id: Uuid, name: &str, environment: Environment, masked: &str) -> Self {
        Self {
            id,
            name: name.to_owned(),
            environment,
            masked: masked.to_owned(),
        }
    }
}

/// A key as Gatehouse's own sweeps name it (expiry, rate limits): `{"id", "name", "environment"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweptKey {
    pub id: Uuid,
    pub name: String,
    pub environment: Environment,
}

/// `key.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyCreated {
    pub key: KeyRef,
    pub full_access: bool,
    /// The chosen scopes; empty for full access.
    pub scopes: Vec<String>,
    /// Requests a minute; 0 for none.
    pub rate_limit: u32,
    pub expires_at: Option<EventTime>,
    pub actor: ActorRef,
}

/// `key.rolled`: the key and its successor, and until when the old one still works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRolled {
    pub key: KeyRef,
    pub successor: KeyRef,
    pub old_key_works_until: EventTime,
    pub actor: ActorRef,
}

/// `key.revoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRevoked {
    pub key: KeyRef,
    pub actor: ActorRef,
}

/// `key.disabled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyDisabled {
    pub key: KeyRef,
    pub actor: ActorRef,
}

/// `key.leaked`: where a secret scanner found the key and what the tenant's policy did (`revoke`,
/// `disable`, `notify`, or `none` for a key already finished).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyLeaked {
    pub key: KeyRef,
    pub url: String,
    pub source: String,
    pub action: String,
    pub actor: ActorRef,
}

/// A developer's request for a live key, as a decision on it names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRequestRef {
    pub id: Uuid,
    pub name: String,
    /// The requester's user id; `null` once that account is gone.
    pub requested_by: Option<Uuid>,
    pub reason: String,
}

/// `key_request.approved` and `key_request.denied`: one shape, the type says which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRequestDecided {
    pub request: KeyRequestRef,
    pub decision_reason: String,
    pub actor: ActorRef,
}

/// `key.expiring`: 30, 7 or 1 days ahead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyExpiring {
    pub key: SweptKey,
    pub expires_at: EventTime,
    pub days_ahead: i32,
    pub actor: ActorRef,
}

/// `key.expired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyExpired {
    pub key: SweptKey,
    pub expired_at: EventTime,
    pub actor: ActorRef,
}

/// `key.rate_limited`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRateLimited {
    pub key: SweptKey,
    pub rate_limit: i32,
    pub actor: ActorRef,
}

/// A member as member events name them: `{"user_id", "email", "name", "role"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRef {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
}

/// The invitation a member joined by: `{"id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitationId {
    pub id: Uuid,
}

/// `member.joined`: the actor is the person who accepted the invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberJoined {
    pub member: MemberRef,
    pub invitation: InvitationId,
    pub actor: ActorRef,
}

/// `member.removed`; `left` when the member removed themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRemoved {
    pub member: MemberRef,
    pub left: bool,
    pub actor: ActorRef,
}

/// `member.role_changed`; `member.role` is the old role, as `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRoleChanged {
    pub member: MemberRef,
    pub from: Role,
    pub to: Role,
    pub actor: ActorRef,
}

/// An invitation as `invitation.created` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitationRef {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub expires_at: EventTime,
}

/// `invitation.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvitationCreated {
    pub invitation: InvitationRef,
    pub actor: ActorRef,
}

/// An endpoint as `webhook.test` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointRef {
    pub id: Uuid,
    pub name: String,
}

/// `webhook.test`: sent to one endpoint when someone asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookTest {
    pub endpoint: EndpointRef,
    pub message: &'static str,
    pub actor: ActorRef,
}

impl WebhookTest {
    pub fn new(endpoint_id: Uuid, name: &str, actor: &Actor) -> Self {
        Self {
            endpoint: EndpointRef {
                id: endpoint_id,
                name: name.to_owned(),
            },
            message: "A test event from Gatehouse.",
            actor: actor.into(),
        }
    }
}

/// An event: its type and its payload, which serialises as the event's `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Event {
    KeyCreated(KeyCreated),
    KeyRolled(KeyRolled),
    KeyRevoked(KeyRevoked),
    KeyDisabled(KeyDisabled),
    KeyLeaked(KeyLeaked),
    KeyRequestApproved(KeyRequestDecided),
    KeyRequestDenied(KeyRequestDecided),
    KeyExpiring(KeyExpiring),
    KeyExpired(KeyExpired),
    KeyRateLimited(KeyRateLimited),
    MemberJoined(MemberJoined),
    MemberRemoved(MemberRemoved),
    MemberRoleChanged(MemberRoleChanged),
    InvitationCreated(InvitationCreated),
    WebhookTest(WebhookTest),
}

impl Event {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::KeyCreated(_) => EventType::KeyCreated,
            Self::KeyRolled(_) => EventType::KeyRolled,
            Self::KeyRevoked(_) => EventType::KeyRevoked,
            Self::KeyDisabled(_) => EventType::KeyDisabled,
            Self::KeyLeaked(_) => EventType::KeyLeaked,
            Self::KeyRequestApproved(_) => EventType::KeyRequestApproved,
            Self::KeyRequestDenied(_) => EventType::KeyRequestDenied,
            Self::KeyExpiring(_) => EventType::KeyExpiring,
            Self::KeyExpired(_) => EventType::KeyExpired,
            Self::KeyRateLimited(_) => EventType::KeyRateLimited,
            Self::MemberJoined(_) => EventType::MemberJoined,
            Self::MemberRemoved(_) => EventType::MemberRemoved,
            Self::MemberRoleChanged(_) => EventType::MemberRoleChanged,
            Self::InvitationCreated(_) => EventType::InvitationCreated,
            Self::WebhookTest(_) => EventType::WebhookTest,
        }
    }

    /// The event's `data`, as receivers get it.
    pub fn data(&self) -> DomainResult<serde_json::Value> {
        serde_json::to_value(self).map_err(DomainError::unexpected)
    }
}

/// Publishes an event in the transaction of the change that causes it: one delivery for every
/// enabled endpoint of the tenant that wants the type (key events only to endpoints of the key's
/// environment). No payload holds a secret.
pub async fn publish(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    environment: Option<Environment>,
    event: &Event,
) -> DomainResult<()> {
    publish_to(tx, tenant_id, environment, None, event).await?;
    Ok(())
}

/// Publishes an event to every endpoint that wants it, or to `only` that one; returns the event's
/// id and how many deliveries were queued.
pub(super) async fn publish_to(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    environment: Option<Environment>,
    only: Option<Uuid>,
    event: &Event,
) -> DomainResult<(String, i64)> {
    let id = format!("evt_{}", Uuid::new_v4().simple());
    let created_at = rfc3339(OffsetDateTime::now_utc());
    let queued = db_webhooks::publish(
        &mut *tx,
        tenant_id,
        &id,
        event.event_type().as_str(),
        environment,
        only,
        &created_at,
        &event.data()?,
    )
    .await?;
    if queued > 0 {
        db_outbox::notify_due(tx).await?;
    }
    Ok((id, queued))
}

/// Keys that hit their rate limit (as the usage flusher saw them, off the key API's hot path):
/// `key.rate_limited`, at most once per key per hour, whichever instance sees it first.
pub async fn keys_rate_limited(pool: &PgPool, api_key_ids: &[Uuid]) -> DomainResult<()> {
    if api_key_ids.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for key in db_webhooks::claim_rate_limited_events(&mut *tx, api_key_ids).await? {
        let event = Event::KeyRateLimited(KeyRateLimited {
            key: SweptKey {
                id: key.api_key_id,
                name: key.name,
                environment: key.environment,
            },
            rate_limit: key.rate_limit,
            actor: ActorRef::System,
        });
        publish(&mut tx, key.tenant_id, Some(key.environment), &event).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Chosen event types: known ones, at least one, each once.
pub fn check_event_types(values: &[String]) -> Result<Vec<String>, String> {
    let mut chosen: Vec<String> = Vec::new();
    for value in values {
        let Some(event_type) = EventType::parse(value) else {
            return Err(format!("{value:?} is not an event type."));
        };
        if !chosen.iter().any(|t| t == event_type.as_str()) {
            chosen.push(event_type.as_str().to_owned());
        }
    }
    if chosen.is_empty() {
        return Err("Choose at least one event type, or all events.".into());
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;

    const ID: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    const OTHER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
    const AT: OffsetDateTime = datetime!(2026-03-01 12:00:00.75 +01:00);
    const AT_SHOWN: &str = "2026-03-01T11:00:00Z";

    fn person() -> ActorRef {
        ActorRef::Person { id: OTHER }
    }

    fn key() -> KeyRef {
        KeyRef::new(ID, "Billing", Environment::Live, "gh_live_••••abcd")
    }

    fn key_json() -> Value {
        json!({ "id": ID, "name": "Billing", "environment": "live", "masked": "gh_live_••••abcd" })
    }

    fn swept() -> SweptKey {
        SweptKey {
            id: ID,
            name: "Billing".into(),
            environment: Environment::Test,
        }
    }

    fn member() -> MemberRef {
        MemberRef {
            user_id: OTHER,
            email: "bob@example.com".into(),
            name: "Bob".into(),
            role: Role::Developer,
        }
    }

    fn member_json() -> Value {
        json!({ "user_id": OTHER, "email": "bob@example.com", "name": "Bob", "role": "developer" })
    }

    /// An event of each type with the `data` receivers get for it, byte for byte the shape they
    /// had before payloads were typed (plus `actor`). The match has no wildcard: a new type
    /// cannot be added without its payload.
    fn sample(event_type: EventType) -> (Event, Value) {
        let person_json = json!({ "type": "person", "id": OTHER });
        let system_json = json!({ "type": "system" });
        let decided = KeyRequestDecided {
            request: KeyRequestRef {
                id: ID,
                name: "Prod".into(),
                requested_by: None,
                reason: "launch".into(),
            },
            decision_reason: "ok".into(),
            actor: person(),
        };
        let decided_json = json!({
            "request": { "id": ID, "name": "Prod", "requested_by": null, "reason": "launch" },
            "decision_reason": "ok",
            "actor": person_json,
        });
        let swept_json = json!({ "id": ID, "name": "Billing", "environment": "test" });
        match event_type {
            EventType::KeyCreated => (
                Event::KeyCreated(KeyCreated {
                    key: key(),
                    full_access: false,
                    scopes: vec!["read".into()],
                    rate_limit: 100,
                    expires_at: None,
                    actor: person(),
                }),
                json!({ "key": key_json(), "full_access": false, "scopes": ["read"],
                        "rate_limit": 100, "expires_at": null, "actor": person_json }),
            ),
            EventType::KeyRolled => (
                Event::KeyRolled(KeyRolled {
                    key: key(),
                    successor: key(),
                    old_key_works_until: EventTime(AT),
                    actor: person(),
                }),
                json!({ "key": key_json(), "successor": key_json(),
                        "old_key_works_until": AT_SHOWN, "actor": person_json }),
            ),
            EventType::KeyRevoked => (
                Event::KeyRevoked(KeyRevoked {
                    key: key(),
                    actor: person(),
                }),
                json!({ "key": key_json(), "actor": person_json }),
            ),
            EventType::KeyDisabled => (
                Event::KeyDisabled(KeyDisabled {
                    key: key(),
                    actor: person(),
                }),
                json!({ "key": key_json(), "actor": person_json }),
            ),
            EventType::KeyLeaked => (
                Event::KeyLeaked(KeyLeaked {
                    key: key(),
                    url: "https://github.com/octo/app/blob/1/.env".into(),
                    source: "content".into(),
                    action: "revoke".into(),
                    actor: ActorRef::LeakReport {
                        origin: "github".into(),
                    },
                }),
                json!({ "key": key_json(), "url": "https://github.com/octo/app/blob/1/.env",
                        "source": "content", "action": "revoke",
                        "actor": { "type": "leak_report", "origin": "github" } }),
            ),
            EventType::KeyRequestApproved => (Event::KeyRequestApproved(decided), decided_json),
            EventType::KeyRequestDenied => (Event::KeyRequestDenied(decided), decided_json),
            EventType::KeyExpiring => (
                Event::KeyExpiring(KeyExpiring {
                    key: swept(),
                    expires_at: EventTime(AT),
                    days_ahead: 7,
                    actor: ActorRef::System,
                }),
                json!({ "key": swept_json, "expires_at": AT_SHOWN, "days_ahead": 7,
                        "actor": system_json }),
            ),
            EventType::KeyExpired => (
                Event::KeyExpired(KeyExpired {
                    key: swept(),
                    expired_at: EventTime(AT),
                    actor: ActorRef::System,
                }),
                json!({ "key": swept_json, "expired_at": AT_SHOWN, "actor": system_json }),
            ),
            EventType::KeyRateLimited => (
                Event::KeyRateLimited(KeyRateLimited {
                    key: swept(),
                    rate_limit: 1,
                    actor: ActorRef::System,
                }),
                json!({ "key": swept_json, "rate_limit": 1, "actor": system_json }),
            ),
            EventType::MemberJoined => (
                Event::MemberJoined(MemberJoined {
                    member: member(),
                    invitation: InvitationId { id: ID },
                    actor: person(),
                }),
                json!({ "member": member_json(), "invitation": { "id": ID },
                        "actor": person_json }),
            ),
            EventType::MemberRemoved => (
                Event::MemberRemoved(MemberRemoved {
                    member: member(),
                    left: true,
                    actor: person(),
                }),
                json!({ "member": member_json(), "left": true, "actor": person_json }),
            ),
            EventType::MemberRoleChanged => (
                Event::MemberRoleChanged(MemberRoleChanged {
                    member: member(),
                    from: Role::Developer,
                    to: Role::Admin,
                    actor: person(),
                }),
                json!({ "member": member_json(), "from": "developer", "to": "admin",
                        "actor": person_json }),
            ),
            EventType::InvitationCreated => (
                Event::InvitationCreated(InvitationCreated {
                    invitation: InvitationRef {
                        id: ID,
                        email: "bob@example.com".into(),
                        role: Role::Viewer,
                        expires_at: EventTime(AT),
                    },
                    actor: person(),
                }),
                json!({ "invitation": { "id": ID, "email": "bob@example.com", "role": "viewer",
                                        "expires_at": AT_SHOWN },
                        "actor": person_json }),
            ),
            EventType::WebhookTest => {
                let actor = Actor {
                    who: Who::Person(OTHER),
                    ..Actor::system()
                };
                (
                    Event::WebhookTest(WebhookTest::new(ID, "Receiver", &actor)),
                    json!({ "endpoint": { "id": ID, "name": "Receiver" },
                            "message": "A test event from Gatehouse.", "actor": person_json }),
                )
            }
        }
    }

    #[test]
    fn every_event_type_has_a_payload_of_its_own_type_and_a_description() {
        for event_type in EventType::ALL {
            let (event, expected) = sample(event_type);
            assert_eq!(event.event_type(), event_type);
            assert_eq!(event.data().unwrap(), expected, "{}", event_type.as_str());
            assert!(
                expected["actor"]["type"].is_string(),
                "{} names who acted",
                event_type.as_str()
            );
            assert!(!event_type.description().is_empty());
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
        }
    }

    #[test]
    fn the_catalogue_lists_every_type_once_in_order() {
        let catalogue = catalogue();
        let types: Vec<&str> = catalogue.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            types,
            [
                "key.created",
                "key.rolled",
                "key.revoked",
                "key.disabled",
                "key.leaked",
                "key_request.approved",
                "key_request.denied",
                "key.expiring",
                "key.expired",
                "key.rate_limited",
                "member.joined",
                "member.removed",
                "member.role_changed",
                "invitation.created",
                "webhook.test",
            ]
        );
        assert_eq!(catalogue[0].1, "a key was created");
    }

    #[test]
    fn an_actor_reads_as_the_audit_trail_describes_it() {
        for (who, expected) in [
            (Who::Person(ID), json!({ "type": "person", "id": ID })),
            (
                Who::Token {
                    id: ID,
                    name: "Billing backend".into(),
                    created_by: Some(OTHER),
                },
                json!({ "type": "token", "id": ID, "name": "Billing backend" }),
            ),
            (Who::Operator, json!({ "type": "operator" })),
            (Who::System, json!({ "type": "system" })),
        ] {
            let actor = Actor {
                who,
                ..Actor::system()
            };
            let typed = serde_json::to_value(ActorRef::from(&actor)).unwrap();
            assert_eq!(typed, expected);
        }
        assert_eq!(
            serde_json::to_value(ActorRef::Token {
                id: ID,
                name: "ci".into()
            })
            .unwrap(),
            json!({ "type": "token", "id": ID, "name": "ci" })
        );
    }

    #[test]
    fn event_times_are_utc_whole_seconds() {
        assert_eq!(serde_json::to_value(EventTime(AT)).unwrap(), AT_SHOWN);
        assert_eq!(rfc3339(AT), AT_SHOWN);
    }
}
