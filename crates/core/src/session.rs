//! Handle binding: the `Mcp-Session-Id` an upstream hands out on `initialize`, and the task
//! handle (`taskId`, tasks extension) it hands out for a call, belong to the principal whose
//! request made them. Another principal presenting one gets `404` (the spec's answer for an
//! unknown session or task), so a leaked or guessed handle is worth nothing without the token
//! that made it. One store for both kinds, each bounded in size and idle time; with a shared
//! store (`state`), bindings live there too, so a handle made through one replica works through
//! every other.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::auth::Principal;
use crate::state::{Attempt, Op, SharedState, Unavailable};

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

    /// The owner as the shared store records it: a JSON pair, `["alice","app"]` or
    /// `[null,"app"]`, so that no two owners share a spelling.
    fn stored(principal: &Principal) -> Vec<u8> {
        serde_json::to_vec(&(principal.subject.as_deref(), principal.client_id.as_deref()))
            .unwrap_or_default()
    }
}

pub struct Sessions {
    /// Indexed by [`Kind`]: a session id and a task id that happen to be equal stay apart.
    /// With a shared store these are a local copy: asked when the store has no answer.
    owners: [Cache<Box<str>, Arc<Owner>>; 2],
    idle: Duration,
    shared: Option<Arc<SharedState>>,
}

/// What a handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Mcp-Session-Id` (MCP 2025-03-26 to 2025-11-25).
    Session = 0,
    /// A task's `taskId`.
    Task = 1,
}

impl Kind {
    /// The kind's part of a key in the shared store.
    fn key_part(self) -> &'static str {
        match self {
            Kind::Session => "session",
            Kind::Task => "task",
        }
    }
}

/// What a request's session id says about it.
#[derive(Debug, PartialEq, Eq)]
pub enum Binding {
    /// The request names no handle (initialize, or a stateless server).
    None,
    /// The handle belongs to this principal.
    Owned,
    /// Unknown to the proxy, or another principal's.
    Foreign,
}

impl Sessions {
    pub fn new(max_sessions: u64, idle: Duration) -> Sessions {
        let cache = || {
            Cache::builder()
                .max_capacity(max_sessions)
                .time_to_idle(idle)
                .build()
        };
        Sessions {
            owners: [cache(), cache()],
            idle,
            shared: None,
        }
    }

    /// Keeps bindings in `shared` as well, when given.
    pub fn with_shared(mut self, shared: Option<Arc<SharedState>>) -> Sessions {
        self.shared = shared;
        self
    }

    /// Whose the handle is. The shared store's answer decides; a handle it does not know (bound
    /// here while it failed, or `on_error = "local"` now) is looked up here.
    pub async fn check(
        &self,
        kind: Kind,
        handle: Option<&str>,
        principal: &Principal,
    ) -> Result<Binding, Unavailable> {
        let Some(handle) = handle else {
            return Ok(Binding::None);
        };
        if let Some(shared) = &self.shared {
            let owner = shared.store().owner(kind.key_part(), handle, self.idle);
            match shared.attempt(Op::HandleCheck, owner).await {
                Attempt::Done(Some(owner)) if owner == Owner::stored(principal) => {
                    return Ok(Binding::Owned);
                }
                Attempt::Done(Some(_)) => return Ok(Binding::Foreign),
                Attempt::Done(None) | Attempt::Local => {}
                Attempt::Unavailable => return Err(Unavailable),
            }
        }
        Ok(match self.owners[kind as usize].get(handle).await {
            Some(owner) if owner.is(principal) => Binding::Owned,
            _ => Binding::Foreign,
        })
    }

    /// Binds a handle the upstream just created. A handle already bound keeps its owner. With
    /// a shared store, the binding is kept here as well, for when the store fails.
    pub async fn bind(
        &self,
        kind: Kind,
        handle: &str,
        principal: &Principal,
    ) -> Result<(), Unavailable> {
        if let Some(shared) = &self.shared {
            let owner = Owner::stored(principal);
            let bind = shared
                .store()
                .bind(kind.key_part(), handle, &owner, self.idle);
            match shared.attempt(Op::HandleBind, bind).await {
                Attempt::Done(Some(previous)) if previous != owner => {
                    reissued(kind);
                    return Ok(());
                }
                Attempt::Done(_) | Attempt::Local => {}
                Attempt::Unavailable => return Err(Unavailable),
            }
        }
        let owner = Arc::new(Owner::of(principal));
        let entry = self.owners[kind as usize]
            .entry(Box::from(handle))
            .or_insert(owner)
            .await;
        if !entry.is_fresh() && !entry.value().is(principal) {
            reissued(kind);
        }
        Ok(())
    }

    /// Forgets a handle the upstream ended. A store that fails only delays the forgetting: the
    /// binding idles out there, and the upstream no longer knows the handle anyway.
    pub async fn release(&self, kind: Kind, handle: &str) {
        if let Some(shared) = &self.shared {
            let release = shared.store().release(kind.key_part(), handle);
            let _ = shared.attempt(Op::HandleRelease, release).await;
        }
        self.owners[kind as usize].invalidate(handle).await;
    }
}

/// An upstream handed out a handle that another principal already holds: the first keeps it.
fn reissued(kind: Kind) {
    tracing::warn!(
        kind = ?kind,
        "upstream reissued a handle bound to another principal; binding kept"
    );
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
        sessions.bind(Kind::Session, "s1", &alice).await.unwrap();
        assert_eq!(
            sessions.check(Kind::Session, Some("s1"), &alice).await,
            Ok(Binding::Owned)
        );
        assert_eq!(
            sessions
                .check(Kind::Session, Some("s1"), &principal("bob", "app"))
                .await,
            Ok(Binding::Foreign)
        );
        assert_eq!(
            sessions
                .check(Kind::Session, Some("s1"), &principal("alice", "other"))
                .await,
            Ok(Binding::Foreign)
        );
        assert_eq!(
            sessions.check(Kind::Session, Some("s2"), &alice).await,
            Ok(Binding::Foreign)
        );
        assert_eq!(
            sessions.check(Kind::Session, None, &alice).await,
            Ok(Binding::None)
        );
    }

    #[tokio::test]
    async fn a_rebind_keeps_the_first_owner_and_release_frees_it() {
        let sessions = Sessions::new(10, Duration::from_secs(60));
        let (alice, bob) = (principal("alice", "app"), principal("bob", "app"));
        sessions.bind(Kind::Session, "s1", &alice).await.unwrap();
        sessions.bind(Kind::Session, "s1", &bob).await.unwrap();
        assert_eq!(
            sessions.check(Kind::Session, Some("s1"), &bob).await,
            Ok(Binding::Foreign)
        );
        sessions.release(Kind::Session, "s1").await;
        assert_eq!(
            sessions.check(Kind::Session, Some("s1"), &alice).await,
            Ok(Binding::Foreign)
        );
    }

    #[tokio::test]
    async fn a_task_handle_is_bound_apart_from_a_session_of_the_same_id() {
        let sessions = Sessions::new(10, Duration::from_secs(60));
        let (alice, bob) = (principal("alice", "app"), principal("bob", "app"));
        sessions.bind(Kind::Task, "h1", &alice).await.unwrap();
        sessions.bind(Kind::Session, "h1", &bob).await.unwrap();
        assert_eq!(
            sessions.check(Kind::Task, Some("h1"), &alice).await,
            Ok(Binding::Owned)
        );
        assert_eq!(
            sessions.check(Kind::Task, Some("h1"), &bob).await,
            Ok(Binding::Foreign)
        );
        assert_eq!(
            sessions.check(Kind::Session, Some("h1"), &bob).await,
            Ok(Binding::Owned)
        );
    }
}
