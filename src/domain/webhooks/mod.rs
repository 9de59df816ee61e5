//! Webhooks: Gatehouse tells a tenant's receivers what changed, signed, in the change's transaction.
//!
//! - [`events`]: the catalogue of event types, each type's payload as a struct, and [`publish`].
//! - [`endpoints`]: an endpoint's settings and their rules, the receiver's credentials, and
//!   creating, changing, rolling, enabling and deleting endpoints.
//! - [`signing`]: signing secrets, Standard Webhooks signatures, and the secrets sealed at rest.
//! - [`delivery`]: what a delivery uses and records (disabling an endpoint that keeps failing), the
//!   retry schedule, and the deliveries a person asks for (a test event, a resend).
//! - [`address`]: the SSRF checks: where a webhook may go.
//!
//! The courier that POSTs deliveries is `crate::webhook_courier`; the SQL is `crate::db::webhooks`.
//! Everything callers use is re-exported here, so paths stay `crate::domain::webhooks::X`.

pub mod address;
pub mod delivery;
pub mod endpoints;
pub mod events;
pub mod signing;

pub use address::{check_url, is_internal, literal_address, shown, url_shown_to};
pub use delivery::{
    DISABLE_AFTER, DeliverySecrets, KIND, LONGEST_RETRY_AFTER, open_secrets, record_outcome,
    resend, retry_after, retry_in, send_test,
};
pub use endpoints::{
    AUTH_KINDS, EndpointErrors, EndpointForm, EndpointInput, EndpointSpec, ReceiverAuth,
    WebhookProblem, auth_kind, check_name, create_endpoint, delete_endpoint, roll_secret,
    set_enabled, update_endpoint,
};
pub use events::{
    ActorRef, EndpointRef, Event, EventTime, EventType, InvitationCreated, InvitationId,
    InvitationRef, KeyCreated, KeyDisabled, KeyExpired, KeyExpiring, KeyLeaked, KeyRateLimited,
    KeyRef, KeyRequestDecided, KeyRequestRef, KeyRevoked, KeyRolled, MemberJoined, MemberRef,
    MemberRemoved, MemberRoleChanged, SweptKey, WebhookTest, catalogue, check_event_types,
    keys_rate_limited, publish, rfc3339,
};
pub use signing::{SECRET_OVERLAP, SigningSecret};
