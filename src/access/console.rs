//! Dashboard logins: an admin who typed their key into the dashboard's login form gets a random
//! session token (a cookie), mapped here to their tenant, so the key itself never sits in the
//! browser. Tokens are 244 random bits, kept in memory only (a restart logs everyone out),
//! expire after `TTL`, and at most `MAX_SESSIONS` live at once (the oldest goes first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::chat::Tenant;

/// How long a dashboard login lasts.
pub const TTL: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 256;

#[derive(Default)]
pub struct ConsoleSessions {
    sessions: Mutex<HashMap<String, (Tenant, Instant)>>,
}

impl ConsoleSessions {
    /// A new session for `tenant`: its token.
    pub fn open(&self, tenant: Tenant) -> String {
        let token = new_token();
        if let Ok(mut sessions) = self.sessions.lock() {
            let now = Instant::now();
            sessions.retain(|_, (_, at)| now.duration_since(*at) < TTL);
            if sessions.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
            sessions.insert(token.clone(), (tenant, now));
        }
        token
    }

    /// The tenant of a live session.
    pub fn tenant(&self, token: &str) -> Option<Tenant> {
        let sessions = self.sessions.lock().ok()?;
        let (tenant, at) = sessions.get(token)?;
        (at.elapsed() < TTL).then(|| tenant.clone())
    }

    /// Ends a session (logout).
    pub fn close(&self, token: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(token);
        }
    }
}

/// Two v4 UUIDs from the system's generator (`getrandom` underneath): 244 random bits, in hex.
fn new_token() -> String {
    let mut out = String::with_capacity(64);
    for _ in 0..2 {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_tenant_until_closed() {
        let sessions = ConsoleSessions::default();
        let alice = Tenant::new("alice", true).unwrap();
        let token = sessions.open(alice.clone());
        assert_eq!(token.len(), 64);
        assert_ne!(token, sessions.open(alice.clone()));
        assert_eq!(sessions.tenant(&token), Some(alice));
        assert_eq!(sessions.tenant("nope"), None);
        sessions.close(&token);
        assert_eq!(sessions.tenant(&token), None);
    }
}
