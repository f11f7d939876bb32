//! Where a request goes: a caller's `model` resolved to ordered targets (an alias from config, or
//! `provider/model`), and the walk along them: bounded retries with jittered exponential backoff
//! on one target, honouring `Retry-After`, then the next target. Owns no HTTP (the attempt is a
//! closure), so the policy is tested without a network.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use super::config::{RoutingConfig, Target};
use super::provider::{NextStep, ProviderError};

/// The targets for a caller's `model`, or `None` when it names nothing configured. An alias wins
/// over `provider/model`; a `provider/model` must name a configured provider.
pub fn resolve(
    model: &str,
    aliases: &BTreeMap<String, Vec<Target>>,
    providers: &[&str],
) -> Option<Vec<Target>> {
    if let Some(targets) = aliases.get(model) {
        return Some(targets.clone());
    }
    Target::parse(model)
        .filter(|t| providers.contains(&t.provider.as_str()))
        .map(|t| vec![t])
}

/// What happened on the way to an answer, for headers, metrics and logs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Walk {
    /// Index in the target list of the target that answered.
    pub answered: Option<usize>,
    /// Targets given up on, with the last error's reason.
    pub fallbacks: Vec<(Target, &'static str)>,
    /// Retries on the same target, with their reason.
    pub retries: Vec<(Target, &'static str)>,
    /// When no target answered: the target whose error is returned, so the caller is told
    /// which provider failed.
    pub failed: Option<Target>,
}

/// Tries `targets` in order with `attempt`. Returns the first answer, or the last error.
pub async fn walk<T, F, Fut>(
    targets: &[Target],
    policy: &RoutingConfig,
    mut attempt: F,
) -> (Result<T, ProviderError>, Walk)
where
    F: FnMut(&Target) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let mut walk = Walk::default();
    let mut last = ProviderError::Connect("no target".into());
    for (index, target) in targets.iter().enumerate() {
        let mut retry = 0;
        walk.failed = Some(target.clone());
        loop {
            match attempt(target).await {
                Ok(answer) => {
                    walk.answered = Some(index);
                    walk.failed = None;
                    return (Ok(answer), walk);
                }
                Err(error) if error.next_step() == NextStep::GiveUp => return (Err(error), walk),
                Err(error) if error.next_step() == NextStep::NextTarget => {
                    walk.fallbacks.push((target.clone(), error.reason()));
                    last = error;
                    break;
                }
                Err(error) => {
                    let pause = pause_before_retry(&error, retry, policy);
                    let reason = error.reason();
                    last = error;
                    match pause {
                        Some(pause) if retry < policy.max_retries => {
                            walk.retries.push((target.clone(), reason));
                            retry += 1;
                            tokio::time::sleep(pause).await;
                        }
                        _ => {
                            walk.fallbacks.push((target.clone(), reason));
                            break;
                        }
                    }
                }
            }
        }
    }
    (Err(last), walk)
}

/// The pause before retry number `retry + 1` on the same target: the provider's `Retry-After`
/// when it gave one (`None` when that is longer than the adapter waits: fall back instead),
/// otherwise full jitter over `backoff * 2^retry`, capped at `max_backoff`.
pub fn pause_before_retry(
    error: &ProviderError,
    retry: u32,
    policy: &RoutingConfig,
) -> Option<Duration> {
    if let Some(after) = error.retry_after() {
        return (after <= policy.max_backoff).then_some(after);
    }
    let ceiling = policy
        .backoff
        .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .min(policy.max_backoff);
    Some(ceiling.mul_f64(jitter()))
}

/// A number in [0.5, 1): half the ceiling at least, so retries from many callers still spread
/// without collapsing to zero.
fn jitter() -> f64 {
    let bits = RandomState::new().hash_one(std::time::Instant::now());
    0.5 + (bits >> 11) as f64 / (1u64 << 53) as f64 / 2.0
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use http::StatusCode;

    use super::*;

    fn target(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    fn fast() -> RoutingConfig {
        RoutingConfig {
            max_retries: 1,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(20),
        }
    }

    fn unavailable(retry_after: Option<Duration>) -> ProviderError {
        ProviderError::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after,
            message: "down".into(),
        }
    }

    #[test]
    fn alias_wins_and_provider_slash_model_needs_a_known_provider() {
        let aliases =
            BTreeMap::from([("support".to_owned(), vec![target("a/m1"), target("b/m2")])]);
        let providers = ["a", "b"];
        assert_eq!(resolve("support", &aliases, &providers).unwrap().len(), 2);
        assert_eq!(
            resolve("b/org/model", &aliases, &providers).unwrap(),
            vec![Target {
                provider: "b".into(),
                model: "org/model".into()
            }]
        );
        assert!(resolve("c/m", &aliases, &providers).is_none());
        assert!(resolve("gpt-4o", &aliases, &providers).is_none());
    }

    #[tokio::test]
    async fn a_503_is_retried_once_then_the_next_target_answers() {
        let calls = RefCell::new(Vec::new());
        let (result, walk) = walk(&[target("a/m"), target("b/m")], &fast(), |t| {
            calls.borrow_mut().push(t.to_string());
            let answer = if t.provider == "a" {
                Err(unavailable(None))
            } else {
                Ok("hello")
            };
            async move { answer }
        })
        .await;
        assert_eq!(result.unwrap(), "hello");
        assert_eq!(*calls.borrow(), ["a/m", "a/m", "b/m"]);
        assert_eq!(walk.answered, Some(1));
        assert_eq!(walk.retries, vec![(target("a/m"), "server_error")]);
        assert_eq!(walk.fallbacks, vec![(target("a/m"), "server_error")]);
    }

    #[tokio::test]
    async fn a_rejected_request_is_not_sent_to_the_next_target() {
        let calls = RefCell::new(0);
        let (result, walk) = walk(&[target("a/m"), target("b/m")], &fast(), |_| {
            *calls.borrow_mut() += 1;
            async {
                Err::<(), _>(ProviderError::Rejected {
                    status: StatusCode::BAD_REQUEST,
                    message: "bad".into(),
                })
            }
        })
        .await;
        assert!(matches!(result, Err(ProviderError::Rejected { .. })));
        assert_eq!(*calls.borrow(), 1);
        assert!(walk.fallbacks.is_empty());
    }

    #[tokio::test]
    async fn a_provider_refusing_the_adapters_key_is_not_retried_and_the_next_target_answers() {
        let calls = RefCell::new(Vec::new());
        let (result, walk) = walk(&[target("a/m"), target("b/m")], &fast(), |t| {
            calls.borrow_mut().push(t.to_string());
            let answer = if t.provider == "a" {
                Err(ProviderError::Auth {
                    status: StatusCode::UNAUTHORIZED,
                    message: "Incorrect API key provided.".into(),
                })
            } else {
                Ok("hello")
            };
            async move { answer }
        })
        .await;
        assert_eq!(result.unwrap(), "hello");
        assert_eq!(*calls.borrow(), ["a/m", "b/m"]);
        assert_eq!(walk.fallbacks, vec![(target("a/m"), "auth_failed")]);
        assert!(walk.retries.is_empty());
    }

    #[tokio::test]
    async fn when_every_target_fails_the_walk_names_the_last_one() {
        let (result, walk) = walk(&[target("a/m"), target("b/m")], &fast(), |_| async {
            Err::<(), _>(ProviderError::Auth {
                status: StatusCode::FORBIDDEN,
                message: "no".into(),
            })
        })
        .await;
        assert!(matches!(result, Err(ProviderError::Auth { .. })));
        assert_eq!(walk.failed, Some(target("b/m")));
    }

    #[tokio::test]
    async fn a_long_retry_after_falls_back_at_once() {
        let calls = RefCell::new(0);
        let (result, walk) = walk(&[target("a/m"), target("b/m")], &fast(), |t| {
            *calls.borrow_mut() += 1;
            let answer = if t.provider == "a" {
                Err(unavailable(Some(Duration::from_secs(60))))
            } else {
                Ok(())
            };
            async move { answer }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(*calls.borrow(), 2, "no retry on a");
        assert!(walk.retries.is_empty());
    }

    #[tokio::test]
    async fn every_target_failing_returns_the_last_error() {
        let (result, walk) = walk(&[target("a/m"), target("b/m")], &fast(), |_| async {
            Err::<(), _>(ProviderError::Timeout)
        })
        .await;
        assert_eq!(result.unwrap_err(), ProviderError::Timeout);
        assert_eq!(walk.fallbacks.len(), 2);
        assert_eq!(walk.answered, None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RoutingConfig {
            max_retries: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
        };
        let error = unavailable(None);
        for _ in 0..50 {
            let first = pause_before_retry(&error, 0, &policy).unwrap();
            assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(100));
            let third = pause_before_retry(&error, 2, &policy).unwrap();
            assert!(third >= Duration::from_millis(150) && third < Duration::from_millis(300));
        }
        let honoured =
            pause_before_retry(&unavailable(Some(Duration::from_millis(200))), 0, &policy);
        assert_eq!(honoured, Some(Duration::from_millis(200)));
    }
}
