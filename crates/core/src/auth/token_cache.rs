//! The verified-token cache: a token whose signature and claims were checked once is not checked
//! again until it expires or the key that verified it leaves the key set. Owns the entries and
//! their lifetimes; not the verification itself (`jwt.rs`) nor the key set (`jwks.rs`).
//!
//! The key is a keyed 64-bit hash of the token bytes (SipHash with a per-process random key, so
//! nobody can aim a token at another's slot); the entry keeps the token itself and a hit compares
//! it in full, so a hash collision costs a verification, never an identity.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Principal;
use super::jwks::VerifyingKey;

/// One verified token.
pub(super) struct Entry {
    token: Box<[u8]>,
    pub principal: Arc<Principal>,
    /// The key that verified it: the entry is valid only while this very key is in the current set.
    pub key: Arc<VerifyingKey>,
    /// Which configured issuer's key that is (its index).
    pub issuer: usize,
}

/// Bounded; each entry expires at its token's `exp`.
pub(super) struct TokenCache {
    hasher: RandomState,
    entries: moka::sync::Cache<u64, Arc<Entry>>,
}

/// Lets each entry live until its token's `exp`, measured from when it is inserted.
struct UntilExp;

impl moka::Expiry<u64, Arc<Entry>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &u64,
        entry: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(until(entry.principal.expires_at))
    }
}

/// Time left until `exp` (seconds since the epoch); zero once past.
fn until(exp: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(exp).saturating_sub(now)
}

impl TokenCache {
    /// `None` when `capacity` is 0: caching disabled.
    pub(super) fn new(capacity: u64) -> Option<Self> {
        (capacity > 0).then(|| Self {
            hasher: RandomState::new(),
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build(),
        })
    }

    /// The entry for exactly this token, if one is cached and its token has not expired. The
    /// caller still checks that the entry's key is current.
    pub(super) fn get(&self, token: &[u8], now: u64) -> Option<Arc<Entry>> {
        let hash = self.hasher.hash_one(token);
        let entry = self.entries.get(&hash)?;
        // moka expires lazily at its own tick; `exp` is checked here to the second.
        (*entry.token == *token && now < entry.principal.expires_at).then_some(entry)
    }

    pub(super) fn insert(
        &self,
        token: &[u8],
        principal: Arc<Principal>,
        key: Arc<VerifyingKey>,
        issuer: usize,
    ) {
        let hash = self.hasher.hash_one(token);
        self.entries.insert(
            hash,
            Arc::new(Entry {
                token: token.into(),
                principal,
                key,
                issuer,
            }),
        );
    }

    /// Drops the entry for this token (its key left the set).
    pub(super) fn remove(&self, token: &[u8]) {
        self.entries.invalidate(&self.hasher.hash_one(token));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}
