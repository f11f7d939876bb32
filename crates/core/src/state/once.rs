//! Keys recorded once for a while, across replicas when the state is shared: what a replay
//! check needs (a DPoP proof's `jti` may be presented once). Owns the local record and the
//! choice between it and the shared store; not what the keys mean.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use super::{Attempt, Op, SharedState, Unavailable};

/// Keys remembered at most locally; past it the least recently used go first.
const MAX_LOCAL_KEYS: u64 = 1_000_000;

/// Keys seen, each for its own time to live.
pub struct OnceKeys {
    local: Cache<Box<str>, Duration>,
    shared: Option<Arc<SharedState>>,
}

/// Each entry lives for the duration it was stored with.
struct OwnTtl;

impl Expiry<Box<str>, Duration> for OwnTtl {
    fn expire_after_create(&self, _: &Box<str>, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

impl OnceKeys {
    pub fn new(shared: Option<Arc<SharedState>>) -> OnceKeys {
        OnceKeys::bounded(shared, MAX_LOCAL_KEYS)
    }

    /// As [`Self::new`], remembering at most `capacity` keys locally (the user knows how many
    /// it needs and what each costs).
    pub fn bounded(shared: Option<Arc<SharedState>>, capacity: u64) -> OnceKeys {
        OnceKeys {
            local: Cache::builder()
                .max_capacity(capacity)
                .expire_after(OwnTtl)
                .build(),
            shared,
        }
    }

    /// Records `key` for `ttl` unless it is recorded: `Ok(true)` the first time, `Ok(false)`
    /// while it lasts. With a shared store, the first time across all replicas; while the store
    /// fails, the first time in this process (`on_error = "local"`) or `Err` (`"deny"`).
    pub async fn set_if_absent(&self, key: &str, ttl: Duration) -> Result<bool, Unavailable> {
        if let Some(shared) = &self.shared {
            match shared
                .attempt(Op::SetIfAbsent, shared.store().set_if_absent(key, ttl))
                .await
            {
                Attempt::Done(first) => {
                    // Kept here too, so that a key seen before an outage is still known in one.
                    if first {
                        self.local.insert(Box::from(key), ttl).await;
                    }
                    return Ok(first);
                }
                Attempt::Local => {}
                Attempt::Unavailable => return Err(Unavailable),
            }
        }
        let entry = self.local.entry(Box::from(key)).or_insert(ttl).await;
        Ok(entry.is_fresh())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_new_once_until_its_time_to_live_ends() {
        let keys = OnceKeys::new(None);
        assert_eq!(
            keys.set_if_absent("jti-1", Duration::from_millis(50)).await,
            Ok(true)
        );
        assert_eq!(
            keys.set_if_absent("jti-1", Duration::from_millis(50)).await,
            Ok(false)
        );
        assert_eq!(
            keys.set_if_absent("jti-2", Duration::from_secs(60)).await,
            Ok(true)
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while keys.set_if_absent("jti-1", Duration::from_millis(50)).await == Ok(false) {
            assert!(Instant::now() < deadline, "the key never expired");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            keys.set_if_absent("jti-2", Duration::from_secs(60)).await,
            Ok(false)
        );
    }
}
