//! The words Gatehouse stores in text columns (roles, environments), as types: sqlx decodes the
//! columns straight into them, so no caller parses a stored string or guesses a default.

use std::fmt;

/// A member's role. Ordered: each role can do everything the ones below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, sqlx::Type, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Developer, Role::Viewer];

    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "admin" => Ok(Self::Admin),
            "developer" => Ok(Self::Developer),
            "viewer" => Ok(Self::Viewer),
            other => Err(format!(
                "{other:?} is not a role (admin, developer or viewer)."
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Developer => "developer",
            Self::Viewer => "viewer",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Admin => "Admin",
            Self::Developer => "Developer",
            Self::Viewer => "Viewer",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Admin => "manages members and every key, reads the audit log",
            Self::Developer => "creates and manages their own keys",
            Self::Viewer => "sees keys (masked) and usage, changes nothing",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which kind of key: live keys reach production, test keys the platform's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Environment {
    Live,
    Test,
}

impl Environment {
    pub const ALL: [Environment; 2] = [Environment::Live, Environment::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "live" => Some(Self::Live),
            "test" => Some(Self::Test),
            _ => None,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin > Role::Developer && Role::Developer > Role::Viewer);
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        assert!(Role::parse("owner").is_err());
    }

    #[test]
    fn environments_round_trip_through_their_names() {
        for environment in Environment::ALL {
            assert_eq!(Environment::parse(environment.as_str()), Some(environment));
        }
        assert_eq!(Environment::parse("prod"), None);
    }
}

/// Who may create a tenant's live keys (its key policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum LiveKeys {
    /// Developers and admins.
    Anyone,
    /// Admins only.
    Admins,
    /// Admins; developers ask, and an admin approves or denies.
    Approval,
}

impl LiveKeys {
    pub const ALL: [LiveKeys; 3] = [Self::Anyone, Self::Admins, Self::Approval];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anyone => "anyone",
            Self::Admins => "admins",
            Self::Approval => "approval",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|choice| choice.as_str() == value)
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Anyone => "Developers and admins",
            Self::Admins => "Admins only",
            Self::Approval => "Developers with an admin's approval",
        }
    }
}
