//! The state layer's types on a real Redis, two instances standing for two replicas: what the
//! proxy tests above reach only through HTTP, here with exact waits and idle expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scopegate_core::auth::Principal;
use scopegate_core::metrics::Metrics;
use scopegate_core::policy::{Per, RateLimit};
use scopegate_core::ratelimit::{RateLimiter, Refused};
use scopegate_core::session::{Binding, Kind, Sessions};
use scopegate_core::state::{
    Backend, OnError, OnceKeys, RedisSettings, SharedState, StateSettings, Unavailable, UrlSource,
};

use super::redis_server::RedisServer;

/// A replica's view of the store at `redis`.
fn replica(redis: &RedisServer) -> Arc<SharedState> {
    replica_at(redis.url(), None)
}

/// A replica's view of the store at `url`, trusting `ca_file` for `rediss://`.
fn replica_at(url: String, ca_file: Option<&std::path::Path>) -> Arc<SharedState> {
    let settings = StateSettings {
        backend: Backend::Redis(RedisSettings {
            url: UrlSource::Inline(url),
            password_env: None,
            ca_file: ca_file.map(Into::into),
        }),
        key_prefix: "unit:".into(),
        timeout: Duration::from_millis(500),
        on_error: OnError::Deny,
    };
    SharedState::connect(&settings, &Metrics::new(), 1)
        .unwrap()
        .expect("a Redis backend")
}

fn principal(subject: &str) -> Principal {
    Principal {
        subject: Some(subject.into()),
        client_id: Some("app".into()),
        scopes: Vec::new(),
        granted: Default::default(),
        expires_at: 0,
        claims: serde_json::Map::new(),
        claims_cache: Default::default(),
        granted_cache: Default::default(),
    }
}

#[tokio::test]
async fn task_and_session_bindings_are_shared_kept_apart_and_expire_when_idle() {
    let redis = RedisServer::start(None).await;
    let idle = Duration::from_millis(400);
    let a = Sessions::new(100, idle).with_shared(Some(replica(&redis)));
    let b = Sessions::new(100, idle).with_shared(Some(replica(&redis)));
    let (alice, bob) = (principal("alice"), principal("bob"));

    a.bind(Kind::Task, "t1", &alice).await.unwrap();
    assert_eq!(
        b.check(Kind::Task, Some("t1"), &alice).await,
        Ok(Binding::Owned)
    );
    assert_eq!(
        b.check(Kind::Task, Some("t1"), &bob).await,
        Ok(Binding::Foreign)
    );
    // A session of the same id is another handle.
    assert_eq!(
        b.check(Kind::Session, Some("t1"), &alice).await,
        Ok(Binding::Foreign)
    );
    // The first owner stays, whichever replica binds again.
    b.bind(Kind::Task, "t1", &bob).await.unwrap();
    assert_eq!(
        b.check(Kind::Task, Some("t1"), &bob).await,
        Ok(Binding::Foreign)
    );

    // Used within its idle time, a binding lasts past it.
    let started = Instant::now();
    while started.elapsed() < idle * 2 {
        assert_eq!(
            b.check(Kind::Task, Some("t1"), &alice).await,
            Ok(Binding::Owned)
        );
        tokio::time::sleep(idle / 4).await;
    }
    // Unused for longer than its idle time, it is gone from Redis (and `b` never held a copy
    // of its own). Each look refreshes it, so the looks are further apart than that.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(idle + idle / 2).await;
        if b.check(Kind::Task, Some("t1"), &alice).await == Ok(Binding::Foreign) {
            break;
        }
        assert!(Instant::now() < deadline, "the idle binding never expired");
    }

    // Released through one replica, unknown through the other.
    a.bind(Kind::Session, "s1", &alice).await.unwrap();
    assert_eq!(
        b.check(Kind::Session, Some("s1"), &alice).await,
        Ok(Binding::Owned)
    );
    a.release(Kind::Session, "s1").await;
    assert_eq!(
        b.check(Kind::Session, Some("s1"), &alice).await,
        Ok(Binding::Foreign)
    );
}

#[tokio::test]
async fn shared_buckets_take_all_or_none_and_announce_the_wait() {
    let redis = RedisServer::start(None).await;
    let a = RateLimiter::with_shared(Some(replica(&redis)));
    let b = RateLimiter::with_shared(Some(replica(&redis)));
    let two = RateLimit {
        count: 2,
        per: Per::Hour,
    };
    let one = RateLimit {
        count: 1,
        per: Per::Hour,
    };
    assert_eq!(a.take("alice", "b", one).await, Ok(()));
    // "a" has room, "b" is empty: refused at "b" (index 1), and "a" keeps both calls.
    let refused = b.take_all("alice", &[("a", two, 1), ("b", one, 1)]).await;
    assert!(matches!(refused, Err(Refused::Short(1, _))), "{refused:?}");
    assert_eq!(
        b.take_all("alice", &[("a", two, 1), ("a", two, 1)]).await,
        Ok(())
    );
    let Err(Refused::Short(0, wait)) = a.take("alice", "a", two).await else {
        panic!("a third call of 2/h let through");
    };
    // 2/h: one call every 30 minutes.
    assert!(
        wait > Duration::from_secs(1790) && wait <= Duration::from_secs(1800),
        "{wait:?}"
    );
    // Three calls to a rule that allows two are refused whole.
    assert!(b.take_all("bob", &[("a", two, 3)]).await.is_err());
    assert_eq!(b.take_all("bob", &[("a", two, 2)]).await, Ok(()));
    // No (subject, rule) pair spells another's key.
    assert_eq!(a.take("x}:a", "b", one).await, Ok(()));
    assert_eq!(a.take("x", "a}:b", one).await, Ok(()));
}

#[tokio::test]
async fn a_key_is_new_once_across_replicas_until_its_time_to_live_ends() {
    let redis = RedisServer::start(None).await;
    let a = OnceKeys::new(Some(replica(&redis)));
    let b = OnceKeys::new(Some(replica(&redis)));
    let ttl = Duration::from_millis(300);
    assert_eq!(a.set_if_absent("jti-1", ttl).await, Ok(true));
    assert_eq!(b.set_if_absent("jti-1", ttl).await, Ok(false));
    assert_eq!(a.set_if_absent("jti-1", ttl).await, Ok(false));
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.set_if_absent("jti-1", ttl).await == Ok(false) {
        assert!(Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(ttl / 3).await;
    }
}

#[tokio::test]
async fn rediss_is_trusted_through_its_ca_file_and_refused_without_it() {
    let redis = RedisServer::start_tls().await;
    let idle = Duration::from_secs(60);
    let a =
        Sessions::new(10, idle).with_shared(Some(replica_at(redis.url(), Some(redis.ca_file()))));
    let b =
        Sessions::new(10, idle).with_shared(Some(replica_at(redis.url(), Some(redis.ca_file()))));
    let alice = principal("alice");
    a.bind(Kind::Task, "t1", &alice).await.unwrap();
    assert_eq!(
        b.check(Kind::Task, Some("t1"), &alice).await,
        Ok(Binding::Owned)
    );
    // The public roots do not know the server's CA: no connection, so (on_error = "deny") no answer.
    let untrusting = Sessions::new(10, idle).with_shared(Some(replica_at(redis.url(), None)));
    assert_eq!(
        untrusting.check(Kind::Task, Some("t1"), &alice).await,
        Err(Unavailable)
    );
}
