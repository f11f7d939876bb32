//! Session binding: the `Mcp-Session-Id` an upstream hands out on `initialize` belongs to the
//! principal who initialized it. Another principal presenting it gets `404` (the spec's answer
//! for an unknown session), so a leaked or guessed session id is worth nothing without the token
//! that made it. Bounded in size and idle time.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::auth::Principal;

/// Who owns a session: the verified subject and client.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    subject: Option<Box<str>>,
    client_id: Option<Box<str>>,
}

impl Owner {
    fn of(principal: &Principal) -> Owner {
        Owner {
            subject: principal.subject.as_deref().map(Box::from),
            client_id: principal.client_id.as_deref().map(Box::from),
        }
    }

    fn is(&self, principal: &Principal) -> bool {
        self.subject.as_deref() == principal.subject.as_deref()
            && self.client_id.as_deref() == principal.client_id.as_deref()
    }
}

pub struct Sessions {
    owners: Cache<Box<str>, Arc<Owner>>,
}

/// What a request's session id says about it.
#[derive(Debug, PartialEq, Eq)]
pub enum Binding {
    /// The request names no session (initialize, or a stateless server).
    None,
    /// The session belongs to this principal.
    Owned,
    /// Unknown to the proxy, or another principal's.
    Foreign,
}

impl Sessions {
    pub fn new(max_sessions: u64, idle: Duration) -> Sessions {
        Sessions {
            owners: Cache::builder()
                .max_capacity(max_sessions)
                .time_to_idle(idle)
                .build(),
        }
    }

    pub async fn check(&self, session: Option<&str>, principal: &Principal) -> Binding {
        let Some(session) = session else {
            return Binding::None;
        };
        match self.owners.get(session).await {
            Some(owner) if owner.is(principal) => Binding::Owned,
            _ => Binding::Foreign,
        }
    }

    /// Binds a session the upstream just created. A session id already bound keeps its owner.
    pub async fn bind(&self, session: &str, principal: &Principal) {
        let owner = Arc::new(Owner::of(principal));
        let entry = self.owners.entry(Box::from(session)).or_insert(owner).await;
        if !entry.is_fresh() && !entry.value().is(principal) {
            tracing::warn!(
                "upstream reissued a session id bound to another principal; binding kept"
            );
        }
    }

    pub async fn release(&self, session: &str) {
        self.owners.invalidate(session).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(subject: &str, client: &str) -> Principal {
        Principal {
            subject: Some(subject.into()),
            client_id: Some(client.into()),
            scopes: Vec::new(),
            granted: Default::default(),
            expires_at: 0,
            claims: serde_json::Map::new(),
            claims_cache: Default::default(),
            granted_cache: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_session_belongs_to_its_creator_only() {
        let sessions = Sessions::new(10, Duration::from_secs(60));
        let alice = principal("alice", "app");
        sessions.bind("s1", &alice).await;
        assert_eq!(sessions.check(Some("s1"), &alice).await, Binding::Owned);
        assert_eq!(
            sessions.check(Some("s1"), &principal("bob", "app")).await,
            Binding::Foreign
        );
        assert_eq!(
            sessions
                .check(Some("s1"), &principal("alice", "other"))
                .await,
            Binding::Foreign
        );
        assert_eq!(sessions.check(Some("s2"), &alice).await, Binding::Foreign);
        assert_eq!(sessions.check(None, &alice).await, Binding::None);
    }

    #[tokio::test]
    async fn a_rebind_keeps_the_first_owner_and_release_frees_it() {
        let sessions = Sessions::new(10, Duration::from_secs(60));
        let (alice, bob) = (principal("alice", "app"), principal("bob", "app"));
        sessions.bind("s1", &alice).await;
        sessions.bind("s1", &bob).await;
        assert_eq!(sessions.check(Some("s1"), &bob).await, Binding::Foreign);
        sessions.release("s1").await;
        assert_eq!(sessions.check(Some("s1"), &alice).await, Binding::Foreign);
    }
}
