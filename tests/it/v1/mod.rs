//! The management API, `/v1/tenants…` and `/v1/keys/whoami`: tokens, conventions, resources, the
//! operator's script, and schemathesis against the served document.

mod callers;
mod errors;
mod idempotency;
mod import;
mod keys;
mod members;
mod schemathesis;
mod script;
mod tenants;
mod webhooks;
