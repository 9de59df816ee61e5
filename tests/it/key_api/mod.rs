//! The key API under `/v1/`, its cache, its usage metering, and the gateway in front of it.

mod authorize;
mod batching;
mod cache;
mod conformance;
mod controls;
mod fail_closed;
mod gateway;
mod legacy;
mod logs;
mod metering;
mod metrics;
mod request_log;
mod scale_out;
mod verify;
