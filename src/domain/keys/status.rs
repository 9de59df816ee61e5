//! A key's status as lists and pages show it. The rule itself is written once, in SQL
//! (`api_key_status`, migration `20261207100001`), and every query reads it from there.

pub use crate::db::keys::KeyStatus as Status;

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::Disabled => "disabled",
            Self::Rolled => "rolled",
            Self::Revoked => "revoked",
        }
    }

    /// Every status, in the order the list's filter offers them.
    pub const ALL: [Status; 6] = [
        Self::Active,
        Self::Expiring,
        Self::Expired,
        Self::Disabled,
        Self::Rolled,
        Self::Revoked,
    ];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    /// Still accepted by the key API (a rolled key works until its grace ends; a disabled key
    /// does not, until it is enabled again).
    pub fn works(self) -> bool {
        matches!(self, Self::Active | Self::Expiring | Self::Rolled)
    }
}
