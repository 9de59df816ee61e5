//! The audit trail: who did something, from where, written in the same transaction as the change.

use std::net::IpAddr;

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::db::audit::{self, NewEvent};
use crate::domain::error::DomainResult;

/// Who acted: a person signed in to the portal, a tenant management token (by its name), an
/// operator token, or Gatehouse itself (reminders, expiry). Every change records one; pages, audit
/// events, webhooks and mails name it through [`Actor::label`] and [`Actor::describe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    Person(Uuid),
    /// A tenant management token; `created_by` is the person who made it (the rules that
    /// depend on a person, such as a confirmed email for live keys, follow that person).
    Token {
        id: Uuid,
        name: String,
        created_by: Option<Uuid>,
    },
    Operator,
    System,
    /// A secret scanner's report that the key leaked; `origin` names the sender as the operator
    /// configured it (`github`, `gitlab`, …).
    LeakReport {
        origin: String,
    },
}

/// Who did something, from where: what every audit event records.
#[derive(Debug, Clone)]
pub struct Actor {
    pub who: Who,
    pub request_id: String,
    pub client_ip: IpAddr,
    pub user_agent: Option<String>,
}

impl Actor {
    /// Gatehouse itself, acting on a schedule (no request, no address).
    pub fn system() -> Self {
        Self {
            who: Who::System,
            request_id: String::new(),
            client_ip: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            user_agent: None,
        }
    }

    /// The person acting, if it is a person.
    pub fn user_id(&self) -> Option<Uuid> {
        match self.who {
            Who::Person(id) => Some(id),
            _ => None,
        }
    }

    /// The person answerable for the change: the person acting, or the one who made the token.
    pub fn answerable(&self) -> Option<Uuid> {
        match &self.who {
            Who::Person(id) => Some(*id),
            Who::Token { created_by, .. } => *created_by,
            Who::Operator | Who::System | Who::LeakReport { .. } => None,
        }
    }

    /// What pages and audit events call an actor that is not a person: `API token “Billing
    /// backend”`, `Operator`, `Gatehouse`. None for a person (pages show the person's name).
    pub fn machine_label(&self) -> Option<String> {
        match &self.who {
            Who::Person(_) => None,
            Who::Token { name, .. } => Some(token_label(name)),
            Who::Operator => Some(OPERATOR_LABEL.into()),
            Who::System => Some(SYSTEM_LABEL.into()),
            Who::LeakReport { origin } => Some(leak_report_label(origin)),
        }
    }

    /// The actor as the columns that say who changed a row store it.
    pub fn by(&self) -> crate::db::audit::By {
        crate::db::audit::By {
            user: self.user_id(),
            label: self.machine_label(),
        }
    }

    pub fn event<'a>(
        &'a self,
        tenant_id: Uuid,
        action: &'a str,
        target: String,
        details: serde_json::Value,
    ) -> NewEvent<'a> {
        NewEvent {
            tenant_id,
            actor_id: self.user_id(),
            actor_token: self.machine_label(),
            action,
            target,
            request_id: Some(&self.request_id),
            client_ip: Some(self.client_ip.to_string()),
            user_agent: self.user_agent.as_deref(),
            details,
            api_key_id: None,
        }
    }

    /// Records a change to the key `api_key_id` and commits, as [`Actor::commit_with_event`] does:
    /// the key's page shows it in the key's history.
    pub async fn commit_with_key_event(
        &self,
        mut tx: Transaction<'_, Postgres>,
        tenant_id: Uuid,
        api_key_id: Uuid,
        action: &str,
        target: String,
        details: serde_json::Value,
    ) -> DomainResult<()> {
        let event = NewEvent {
            api_key_id: Some(api_key_id),
            ..self.event(tenant_id, action, target, details)
        };
        audit::insert(&mut *tx, &event).await?;
        tx.commit().await?;
        Ok(())
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

/// How pages name an operator token's changes.
pub const OPERATOR_LABEL: &str = "Operator";
/// How pages name Gatehouse's own scheduled changes.
pub const SYSTEM_LABEL: &str = "Gatehouse";

/// The label stored for a management token acting: `API token “name”`.
pub fn token_label(name: &str) -> String {
    format!("API token \u{201c}{name}\u{201d}")
}

/// How pages name a change made on a leak report: `Leak report from “github”`.
pub fn leak_report_label(origin: &str) -> String {
    format!("Leak report from \u{201c}{origin}\u{201d}")
}
