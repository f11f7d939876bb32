//! The background refresher against a real JWKS server: refetches on the set's lifetime without
//! a lookup, retries failures at the refetch interval, never holds up a lookup, stops when aborted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;

use super::tests::{fast_settings, source, wait_until};
use super::{JwksSettings, KeySource, MIN_REFRESH_PAUSE};
use scopegate_testkit::jwks_server::JwksServer;
use scopegate_testkit::keys::SigningKey;

/// Starts the refresher as the proxy does, on its own task.
fn keep_fresh(src: &Arc<KeySource>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(Arc::clone(src).keep_fresh())
}

#[tokio::test]
async fn idle_source_refetches_when_the_sets_lifetime_ends() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    // max-age=0 is raised to min_ttl: the lifetime comes from the response, within the bounds.
    server.set_cache_control(Some("max-age=0"));
    let ttl = Duration::from_millis(200);
    let src = source(
        &server,
        JwksSettings {
            min_ttl: ttl,
            ..fast_settings()
        },
    );
    src.refresh().await.unwrap();
    let started = Instant::now();
    let refresher = keep_fresh(&src);
    wait_until("two background refetches", || server.jwks_hits() >= 3).await;
    // Each refetch waited for the lifetime to end, not merely for the refetch interval.
    assert!(started.elapsed() >= 2 * ttl, "{:?}", started.elapsed());
    let status = src.status();
    assert!(status.fetch_successes >= 3);
    assert_eq!(status.consecutive_failures, 0);
    assert!(status.fresh);
    refresher.abort();
}

#[tokio::test]
async fn failed_refresh_is_counted_and_retried_at_the_interval_while_the_last_set_serves() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    let interval = Duration::from_millis(150);
    let src = source(
        &server,
        JwksSettings {
            default_ttl: Duration::from_millis(100),
            refetch_interval: interval,
            ..fast_settings()
        },
    );
    src.refresh().await.unwrap();
    server.set_status(503);
    let started = Instant::now();
    let refresher = keep_fresh(&src);
    wait_until("three failed refreshes", || {
        src.status().consecutive_failures >= 3
    })
    .await;
    // Paced by the refetch interval, not spinning.
    assert!(started.elapsed() >= 2 * interval, "{:?}", started.elapsed());
    let status = src.status();
    assert_eq!((status.keys, status.fresh), (1, false));
    assert!(status.fetch_failures >= 3);
    // Stale, within max_stale: the last good key still verifies, at once.
    assert!(src.key_for(Some("k1"), Algorithm::ES256).await.is_ok());

    server.set_status(200);
    wait_until("recovery", || src.status().consecutive_failures == 0).await;
    assert!(src.status().fresh);
    refresher.abort();
}

#[tokio::test]
async fn zero_refetch_interval_does_not_make_the_refresher_spin() {
    let server = JwksServer::start(vec![]).await;
    server.set_status(503);
    let src = source(
        &server,
        JwksSettings {
            refetch_interval: Duration::ZERO,
            ..fast_settings()
        },
    );
    let started = Instant::now();
    let refresher = keep_fresh(&src);
    wait_until("three failed fetches", || src.status().fetch_failures >= 3).await;
    assert!(started.elapsed() >= 2 * MIN_REFRESH_PAUSE);
    assert!(server.jwks_hits() <= 4, "{} fetches", server.jwks_hits());
    refresher.abort();
}

#[tokio::test]
async fn lookups_do_not_wait_for_a_background_refresh_in_flight() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    let src = source(
        &server,
        JwksSettings {
            default_ttl: Duration::from_millis(100),
            ..fast_settings()
        },
    );
    src.refresh().await.unwrap();
    server.set_delay(Duration::from_secs(1));
    let refresher = keep_fresh(&src);
    wait_until("the refresh to reach the IdP", || server.jwks_hits() == 2).await;
    let started = Instant::now();
    assert!(src.key_for(Some("k1"), Algorithm::ES256).await.is_ok());
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "a lookup waited for the refresh"
    );
    refresher.abort();
}

#[tokio::test]
async fn aborted_refresher_fetches_no_more_and_lets_the_source_go() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    let ttl = Duration::from_millis(100);
    let src = source(
        &server,
        JwksSettings {
            default_ttl: ttl,
            ..fast_settings()
        },
    );
    src.refresh().await.unwrap();
    let refresher = keep_fresh(&src);
    wait_until("a background refetch", || server.jwks_hits() >= 2).await;
    refresher.abort();
    assert!(refresher.await.unwrap_err().is_cancelled());
    // Nothing holds the source any more (a fetch in flight at the abort finishes first).
    wait_until("the refresher to let go", || Arc::strong_count(&src) == 1).await;
    let hits = server.jwks_hits();
    let deadline = Instant::now() + 5 * ttl;
    while Instant::now() < deadline {
        assert_eq!(server.jwks_hits(), hits, "fetched after the abort");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
