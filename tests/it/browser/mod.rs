//! Flows a person walks in real headless Chromium, with a screenshot of every page.

mod account;
mod forms;
mod key_controls;
mod legacy;
mod logs;
mod pages;
mod phone;
mod sso;
mod tenants;
mod webhooks;
