//! The audit trail: who did something, from where, written in the same transaction as the change.

use std::net::IpAddr;

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::db::audit::{self, NewEvent};
use crate::domain::error::DomainResult;

/// Who did something, from where: what every audit event records. A person (`user_id`), or a
/// management API token (`token`, what the audit page calls it) when the platform's backend acted.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub token: Option<String>,
    pub request_id: String,
    pub client_ip: IpAddr,
    pub user_agent: Option<String>,
}

impl Actor {
    pub fn event<'a>(
        &'a self,
        tenant_id: Uuid,
        action: &'a str,
        target: String,
        details: serde_json::Value,
    ) -> NewEvent<'a> {
        NewEvent {
            tenant_id,
            actor_id: self.user_id,
            actor_token: self.token.as_deref(),
            action,
            target,
            request_id: Some(&self.request_id),
            client_ip: Some(self.client_ip.to_string()),
            user_agent: self.user_agent.as_deref(),
            details,
        }
    }

    /// Records the change in the audit log inside its transaction and commits both: an audited
    /// change never lands without its event, nor an event without its change.
    pub async fn commit_with_event(
        &self,
        mut tx: Transaction<'_, Postgres>,
        tenant_id: Uuid,
        action: &str,
        target: String,
        details: serde_json::Value,
    ) -> DomainResult<()> {
        audit::insert(&mut *tx, &self.event(tenant_id, action, target, details)).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Actor {
    /// The actor as webhook payloads describe it: `{"id"}` for a person, `{"id": null, "token"}`
    /// for a management API token.
    pub fn describe(&self) -> serde_json::Value {
        match &self.user_id {
            Some(id) => serde_json::json!({ "id": id }),
            None => serde_json::json!({ "id": null, "token": self.token }),
        }
    }
}
