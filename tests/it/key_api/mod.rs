//! The key API under `/v1/`, its cache, its usage metering, and the gateway in front of it.

mod authorize;
mod cache;
mod conformance;
mod fail_closed;
mod gateway;
mod logs;
mod metering;
mod request_log;
mod verify;
