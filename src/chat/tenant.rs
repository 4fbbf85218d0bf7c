//! Who a request acts for: the `Tenant` the access layer derived from the caller's API key (or
//! the anonymous tenant, when the gateway has no keys). Whatever the gateway stores per caller
//! (sessions today) belongs to one tenant, and only that tenant, or an admin, reaches it.
//!
//! A tenant id is stable across restarts and never reveals a key: the `name=` given in the key
//! file, else `key-` and 16 hex digits of a SHA-256 digest of the key (see `access/keys.rs`).

use std::fmt;

/// The id every request has when the gateway has no keys, and the owner of sessions stored
/// before sessions had owners.
pub const ANONYMOUS: &str = "anonymous";

/// Longest tenant id accepted, from a key file or from a façade's metadata.
pub const MAX_TENANT_ID: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    id: String,
    admin: bool,
}

impl Tenant {
    /// A tenant with a checked id (see `valid_id`); `None` when the id is not one.
    pub fn new(id: &str, admin: bool) -> Option<Self> {
        valid_id(id).then(|| Tenant {
            id: id.to_owned(),
            admin,
        })
    }

    /// The caller of a gateway without keys. Not an admin: it sees what it owns, which without
    /// keys is every session.
    pub fn anonymous() -> Self {
        Tenant {
            id: ANONYMOUS.to_owned(),
            admin: false,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this tenant sees every tenant's data.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether this tenant may reach something `owner` owns.
    pub fn may_access(&self, owner: &str) -> bool {
        self.admin || self.id == owner
    }
}

impl Default for Tenant {
    /// The least privileged tenant.
    fn default() -> Self {
        Tenant::anonymous()
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)?;
        if self.admin {
            f.write_str(" (admin)")?;
        }
        Ok(())
    }
}

/// 1 to `MAX_TENANT_ID` ASCII letters, digits, `_`, `-`, `.` or `@`: safe in a log line, a
/// header and a SQL column alike.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_TENANT_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_admins_reach_everything() {
        assert!(Tenant::new("alice", false).is_some());
        assert!(Tenant::new("ops@example.com", true).is_some());
        for bad in ["", "a b", "a\nb", "é", &"x".repeat(129)] {
            assert!(Tenant::new(bad, false).is_none(), "{bad:?}");
        }
        let alice = Tenant::new("alice", false).unwrap();
        assert!(alice.may_access("alice"));
        assert!(!alice.may_access("bob"));
        assert!(Tenant::new("root", true).unwrap().may_access("bob"));
        assert_eq!(Tenant::default(), Tenant::anonymous());
        assert_eq!(Tenant::anonymous().id(), ANONYMOUS);
        assert!(!Tenant::anonymous().is_admin());
    }
}
