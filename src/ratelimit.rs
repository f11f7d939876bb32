//! Per-subject rate limits of the policy's rules: a token bucket per (subject, rule), held in a
//! bounded moka cache. Owns counting and the wait to announce; not which calls are limited (the
//! policy says) nor the response (see `error`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::policy::RateLimit;

/// Buckets kept at most: one per active (subject, rule). Past it the least recently used bucket
/// is dropped, which only ever gives its subject a full bucket back.
const MAX_BUCKETS: u64 = 100_000;

/// (subject, rule name): whose bucket for which rule.
type BucketKey = (Box<str>, Box<str>);

/// The limiter shared by all requests.
pub struct RateLimiter {
    buckets: Cache<BucketKey, Arc<Mutex<Bucket>>>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl RateLimiter {
    pub fn new() -> RateLimiter {
        RateLimiter {
            // An hour idle refills the slowest bucket ("N/h"), so the entry can go.
            buckets: Cache::builder()
                .max_capacity(MAX_BUCKETS)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// Takes one call from the bucket of `subject` for `rule`; on an empty bucket, returns how
    /// long until the next call is allowed.
    pub async fn take(&self, subject: &str, rule: &str, limit: RateLimit) -> Result<(), Duration> {
        let key = (Box::from(subject), Box::from(rule));
        let capacity = f64::from(limit.count);
        let bucket = self
            .buckets
            .get_with(key, async move {
                Arc::new(Mutex::new(Bucket {
                    tokens: capacity,
                    refilled: Instant::now(),
                }))
            })
            .await;
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let per_second = capacity / limit.period().as_secs_f64();
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
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
        let wait = limiter
            .take("alice", "get_customer_info", limit)
            .await
            .unwrap_err();
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
