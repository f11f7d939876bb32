//! Per-subject rate limits of the policy's rules: a token bucket per (subject, rule), held in a
//! bounded moka cache, or in the shared store when there is one (`state`). Owns counting and the
//! wait to announce; not which calls are limited (the policy says) nor the response (see `error`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::policy::RateLimit;
use crate::state::{Attempt, Op, SharedState};

/// Buckets kept at most: one per active (subject, rule). Past it the least recently used bucket
/// is dropped, which only ever gives its subject a full bucket back.
const MAX_BUCKETS: u64 = 100_000;

/// (subject, rule name): whose bucket for which rule.
type BucketKey = (Box<str>, Box<str>);

/// The limiter shared by all requests.
pub struct RateLimiter {
    buckets: Cache<BucketKey, Arc<Mutex<Bucket>>>,
    /// Where the buckets live when replicas share them; `buckets` stands in while it fails.
    shared: Option<Arc<SharedState>>,
}

/// Why calls were not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The bucket of the rule at this index is short, for this long.
    Short(usize, Duration),
    /// The shared store did not answer and `on_error = "deny"`.
    Unavailable,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter::with_shared(None)
    }

    /// A limiter whose buckets live in `shared` when given.
    pub fn with_shared(shared: Option<Arc<SharedState>>) -> RateLimiter {
        RateLimiter {
            shared,
            // An hour idle refills the slowest bucket ("N/h"), so the entry can go.
            buckets: Cache::builder()
                .max_capacity(MAX_BUCKETS)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// Takes one call from the bucket of `subject` for `rule`; on an empty bucket, returns how
    /// long until the next call is allowed.
    pub async fn take(&self, subject: &str, rule: &str, limit: RateLimit) -> Result<(), Refused> {
        self.take_all(subject, &[(rule, limit, 1)]).await
    }

    /// Takes `calls` from each (rule, limit, calls) bucket of `subject`, all or none: a batch
    /// refused for one rule costs its caller nothing on the others. On refusal, the index of the
    /// first rule whose bucket is short and how long until it holds enough.
    pub async fn take_all(
        &self,
        subject: &str,
        wants: &[(&str, RateLimit, u32)],
    ) -> Result<(), Refused> {
        // Several calls to one rule share its bucket (and its lock).
        let mut merged: Vec<(usize, &str, RateLimit, u32)> = Vec::with_capacity(wants.len());
        for (index, (rule, limit, calls)) in wants.iter().enumerate() {
            match merged.iter_mut().find(|m| m.1 == *rule) {
                Some(same) => same.3 += calls,
                None => merged.push((index, rule, *limit, *calls)),
            }
        }
        if let Some(shared) = &self.shared {
            let buckets: Vec<(&str, RateLimit, u32)> = merged
                .iter()
                .map(|(_, rule, limit, calls)| (*rule, *limit, *calls))
                .collect();
            match shared
                .attempt(Op::RateLimit, shared.store().take(subject, &buckets))
                .await
            {
                Attempt::Done(taken) => {
                    return taken.map_err(|(short, wait)| Refused::Short(merged[short].0, wait));
                }
                Attempt::Local => {}
                Attempt::Unavailable => return Err(Refused::Unavailable),
            }
        }
        self.take_locally(subject, merged)
            .await
            .map_err(|(index, wait)| Refused::Short(index, wait))
    }

    /// [`take_all`](Self::take_all) on this process's own buckets, for merged wants.
    async fn take_locally(
        &self,
        subject: &str,
        merged: Vec<(usize, &str, RateLimit, u32)>,
    ) -> Result<(), (usize, Duration)> {
        let mut buckets = Vec::with_capacity(merged.len());
        for (index, rule, limit, calls) in merged {
            let capacity = f64::from(limit.count);
            let key = (Box::from(subject), Box::from(rule));
            let bucket = self
                .buckets
                .get_with(key, async move {
                    Arc::new(Mutex::new(Bucket {
                        tokens: capacity,
                        refilled: Instant::now(),
                    }))
                })
                .await;
            buckets.push((
                index,
                rule,
                bucket,
                capacity,
                limit.period(),
                f64::from(calls),
            ));
        }
        // Locked in one order (by rule) so that two batches never wait on each other.
        buckets.sort_by(|a, b| a.1.cmp(b.1));
        let mut locked: Vec<_> = buckets
            .iter()
            .map(|(index, _, bucket, capacity, period, calls)| {
                let guard = bucket.lock().unwrap_or_else(|e| e.into_inner());
                (
                    *index,
                    guard,
                    *capacity,
                    capacity / period.as_secs_f64(),
                    *calls,
                )
            })
            .collect();
        let now = Instant::now();
        let mut short: Option<(usize, Duration)> = None;
        for (index, bucket, capacity, per_second, calls) in &mut locked {
            let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * *per_second).min(*capacity);
            bucket.refilled = now;
            if bucket.tokens < *calls && short.is_none_or(|(first, _)| *index < first) {
                let wait = Duration::from_secs_f64((*calls - bucket.tokens) / *per_second);
                short = Some((*index, wait));
            }
        }
        if let Some(short) = short {
            return Err(short);
        }
        for (_, bucket, _, _, calls) in &mut locked {
            bucket.tokens -= *calls;
        }
        Ok(())
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Per;

    #[tokio::test]
    async fn bucket_allows_its_count_then_names_the_wait() {
        let limiter = RateLimiter::new();
        let limit = RateLimit {
            count: 3,
            per: Per::Minute,
        };
        for _ in 0..3 {
            assert!(
                limiter
                    .take("alice", "get_customer_info", limit)
                    .await
                    .is_ok()
            );
        }
        let Err(Refused::Short(0, wait)) = limiter.take("alice", "get_customer_info", limit).await
        else {
            panic!("the fourth call is let through");
        };
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn subjects_and_rules_have_their_own_buckets() {
        let limiter = RateLimiter::new();
        let limit = RateLimit {
            count: 1,
            per: Per::Hour,
        };
        assert!(limiter.take("alice", "a", limit).await.is_ok());
        assert!(limiter.take("alice", "a", limit).await.is_err());
        assert!(limiter.take("bob", "a", limit).await.is_ok());
        assert!(limiter.take("alice", "b", limit).await.is_ok());
    }

    #[tokio::test]
    async fn a_refused_batch_takes_nothing_from_any_bucket() {
        let limiter = RateLimiter::new();
        let two = RateLimit {
            count: 2,
            per: Per::Hour,
        };
        let one = RateLimit {
            count: 1,
            per: Per::Hour,
        };
        assert!(limiter.take("alice", "b", one).await.is_ok());
        // "a" has room, "b" is empty: refused at "b" (index 1), and "a" keeps both calls.
        let refused = limiter
            .take_all("alice", &[("a", two, 1), ("b", one, 1)])
            .await;
        assert!(matches!(refused, Err(Refused::Short(1, _))), "{refused:?}");
        assert!(limiter.take_all("alice", &[("a", two, 2)]).await.is_ok());
        assert!(limiter.take("alice", "a", two).await.is_err());
        // Three calls to a rule that allows two are refused whole, listed apart or together.
        assert!(limiter.take_all("bob", &[("a", two, 3)]).await.is_err());
        let apart = [("a", two, 1), ("a", two, 1), ("a", two, 1)];
        assert!(limiter.take_all("bob", &apart).await.is_err());
        assert!(limiter.take_all("bob", &[("a", two, 2)]).await.is_ok());
    }

    #[tokio::test]
    async fn bucket_refills_with_time() {
        let limiter = RateLimiter::new();
        let limit = RateLimit {
            count: 100,
            per: Per::Second,
        };
        for _ in 0..100 {
            let _ = limiter.take("alice", "a", limit).await;
        }
        assert!(limiter.take("alice", "a", limit).await.is_err());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(limiter.take("alice", "a", limit).await.is_ok());
    }
}
