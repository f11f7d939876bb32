//! Shared state on a real Redis (`[state] backend = "redis"`): two proxies in front of one
//! upstream, as two replicas of a gateway, share rate limits and session bindings; a Redis that
//! stops, restarts or hangs is handled as `on_error` says, within `timeout`.

use crate::common;
mod dpop_replay;
mod pins;
mod redis_server;
mod store;

use std::time::{Duration, Instant};

use common::{Options, TestSystem, eventually, header, read, sample, scrape};
use redis_server::RedisServer;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use scopegate_core::config::Config;
use scopegate_core::server::{self, Running};
use serde_json::json;

const LIMITED_POLICY: &str =
    "version = 1\n[[tools]]\nname = \"get_customer_info\"\nscopes = []\nrate_limit = \"4/m\"\n";

/// The first proxy (in `TestSystem`) with `[state]` on `redis`, and a second one started from
/// the same config file on ports of its own: the same resource, issuer and upstream.
struct Pair {
    t: TestSystem,
    second: Running,
    second_url: String,
}

async fn start_pair(redis: &RedisServer, on_error: &str, timeout: &str) -> Pair {
    start_pair_with(redis, on_error, timeout, "").await
}

/// As [`start_pair`], with `tables` added to the config.
async fn start_pair_with(redis: &RedisServer, on_error: &str, timeout: &str, tables: &str) -> Pair {
    let t = common::start_with(Options {
        policy: Some(LIMITED_POLICY.into()),
        extra_tables: format!(
            "[state]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"{timeout}\"\non_error = \"{on_error}\"\nkey_prefix = \"test:\"\n{tables}",
            redis.url()
        ),
        ..Options::default()
    })
    .await;
    let text = std::fs::read_to_string(&t.system.config_file).unwrap();
    let first = t.system.proxy.as_ref().unwrap();
    let text = text
        .replace(&format!("\"{}\"", first.addr), "\"127.0.0.1:0\"")
        .replace(&format!("\"{}\"", first.admin_addr), "\"127.0.0.1:0\"");
    let config = Config::parse(&text, &t.system.config_file).unwrap();
    let second = server::start(&config).await.unwrap();
    let second_url = format!("https://localhost:{}/mcp", second.addr.port());
    Pair {
        t,
        second,
        second_url,
    }
}

impl Pair {
    /// The MCP endpoint of proxy 0 or 1.
    fn url(&self, which: usize) -> &str {
        [self.t.url(), self.second_url.as_str()][which]
    }

    fn token(&self, subject: &str) -> String {
        let issuer = &self.t.system.issuer;
        issuer.mint(issuer.claims_for(subject, &[]))
    }

    async fn post(
        &self,
        which: usize,
        token: &str,
        session: Option<&str>,
        body: String,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let mut request = self
            .t
            .http
            .post(self.url(which))
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(body);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        read(request.send().await.unwrap()).await
    }

    /// `initialize` and `notifications/initialized` through proxy `which`: the session id.
    async fn open_session(&self, which: usize, token: &str) -> String {
        let init = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }
        });
        let (status, headers, body) = self.post(which, token, None, init.to_string()).await;
        assert_eq!(status, 200, "{body}");
        let session = header(&headers, "mcp-session-id").to_owned();
        assert!(!session.is_empty());
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let (status, _, _) = self
            .post(which, token, Some(&session), initialized.to_string())
            .await;
        assert_eq!(status, 202);
        session
    }

    async fn call(
        &self,
        which: usize,
        token: &str,
        session: &str,
        id: i64,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        self.post(
            which,
            token,
            Some(session),
            TestSystem::tool_call("get_customer_info", id),
        )
        .await
    }

    /// A metric sample on proxy `which`'s admin listener.
    async fn metric(&self, which: usize, series: &str) -> Option<f64> {
        let text = match which {
            0 => scrape(&self.t).await,
            _ => self
                .t
                .http
                .get(format!("http://{}/metrics", self.second.admin_addr))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        };
        sample(&text, series)
    }

    async fn ready(&self, which: usize) -> u16 {
        let admin = [
            self.t.system.proxy.as_ref().unwrap().admin_addr,
            self.second.admin_addr,
        ][which];
        self.t
            .http
            .get(format!("http://{admin}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// Whether an answer (JSON, or an event of an SSE body) is the result for request `id`.
fn answers(body: &serde_json::Value, id: i64) -> bool {
    let is_result = |m: &serde_json::Value| m["id"] == id && m.get("result").is_some();
    match body {
        serde_json::Value::String(events) => events
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str(data.trim()).ok())
            .any(|m| is_result(&m)),
        json => is_result(json),
    }
}

#[tokio::test]
async fn two_proxies_on_one_redis_allow_exactly_the_limit_in_total() {
    // A password in the URL: the ACL's default user must be authenticated.
    let redis = RedisServer::start(Some("s3cret-pass")).await;
    let pair = start_pair(&redis, "deny", "500ms").await;
    let alice = pair.token("alice");
    let sessions = [
        pair.open_session(0, &alice).await,
        pair.open_session(1, &alice).await,
    ];
    let mut allowed = 0;
    let mut refused = 0;
    for id in 0..12 {
        let which = (id % 2) as usize;
        let before = pair.t.upstream_requests();
        let (status, headers, body) = pair.call(which, &alice, &sessions[which], id).await;
        match status {
            200 if answers(&body, id) => allowed += 1,
            429 => {
                refused += 1;
                assert_eq!(body["error"]["data"]["reason"], "rate_limited");
                assert_eq!(body["id"], id);
                // 4/m: the next call is 15 s away.
                assert_eq!(header(&headers, "retry-after"), "15", "{body}");
                assert_eq!(
                    pair.t.upstream_requests(),
                    before,
                    "a refused call reached the upstream"
                );
            }
            other => panic!("call {id}: {other} {body}"),
        }
    }
    assert_eq!((allowed, refused), (4, 8));
    let series = r#"scopegate_rate_limited_total{tool="get_customer_info"}"#;
    let counted = pair.metric(0, series).await.unwrap() + pair.metric(1, series).await.unwrap();
    assert_eq!(counted, 8.0);
    // Another subject has a bucket of its own, on both.
    let bob = pair.token("bob");
    let bob_session = pair.open_session(1, &bob).await;
    assert_eq!(pair.call(1, &bob, &bob_session, 100).await.0, 200);
    for which in [0, 1] {
        assert_eq!(
            pair.metric(which, r#"scopegate_state_errors_total{op="rate_limit"}"#)
                .await,
            Some(0.0)
        );
    }
}

#[tokio::test]
async fn a_session_opened_through_one_proxy_works_through_the_other_and_only_for_its_owner() {
    let redis = RedisServer::start(None).await;
    let pair = start_pair(&redis, "deny", "500ms").await;
    let alice = pair.token("alice");
    let session = pair.open_session(0, &alice).await;
    let (status, _, body) = pair.call(1, &alice, &session, 7).await;
    assert_eq!(status, 200, "{body}");
    assert!(answers(&body, 7), "{body}");

    // Another principal presenting it, through either proxy: it does not exist.
    let mallory = pair.token("mallory");
    for which in [0, 1] {
        let before = pair.t.upstream_requests();
        let (status, _, body) = pair.call(which, &mallory, &session, 8).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["data"]["reason"], "session_not_found");
        assert_eq!(
            pair.t.upstream_requests(),
            before,
            "the refused call reached the upstream"
        );
    }
    // Ended through the second proxy: gone through the first as well.
    let ended = pair
        .t
        .http
        .delete(pair.url(1))
        .header(AUTHORIZATION, format!("Bearer {alice}"))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    let before = pair.t.upstream_requests();
    let (status, _, body) = pair.call(0, &alice, &session, 9).await;
    assert_eq!(status, 404, "{body}");
    // The first proxy still had its own copy, so the upstream was asked and said it is gone.
    assert_eq!(pair.t.upstream_requests(), before + 1);
}

#[tokio::test]
async fn with_on_error_local_a_stopped_redis_falls_back_is_counted_and_picked_up_again() {
    let mut redis = RedisServer::start(None).await;
    let pair = start_pair(&redis, "local", "200ms").await;
    let alice = pair.token("alice");
    let session = pair.open_session(0, &alice).await;
    assert_eq!(pair.call(1, &alice, &session, 1).await.0, 200);

    redis.stop();
    // The session bound before the outage still works where it was opened (its local copy),
    // and calls are limited by the process's own buckets, which are full: allowed.
    let started = Instant::now();
    let (status, _, body) = pair.call(0, &alice, &session, 2).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    eprintln!("on_error=local, Redis stopped: a call took {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A new session through the second proxy is bound there alone and works there.
    let local_session = pair.open_session(1, &alice).await;
    assert_eq!(pair.call(1, &alice, &local_session, 3).await.0, 200);
    for which in [0, 1] {
        assert_eq!(pair.ready(which).await, 200, "readiness follows Redis");
        let errors = pair
            .metric(which, r#"scopegate_state_errors_total{op="handle_check"}"#)
            .await
            .unwrap();
        assert!(errors >= 1.0, "proxy {which}: {errors}");
    }
    assert!(
        pair.metric(0, r#"scopegate_state_errors_total{op="rate_limit"}"#)
            .await
            .unwrap()
            >= 1.0
    );

    // Back (empty): the proxies reconnect by themselves, and a session opened through one
    // works through the other again.
    redis.restart().await;
    let reconnected = Instant::now();
    assert!(
        eventually(Duration::from_secs(15), async || {
            let session = pair.open_session(0, &alice).await;
            pair.call(1, &alice, &session, 4).await.0 == 200
        })
        .await,
        "the proxies did not pick Redis up again"
    );
    eprintln!(
        "on_error=local: shared again {:?} after the restart",
        reconnected.elapsed()
    );
}

#[tokio::test]
async fn with_on_error_deny_a_stopped_redis_refuses_with_503_before_the_upstream_then_recovers() {
    let mut redis = RedisServer::start(None).await;
    let pair = start_pair(&redis, "deny", "200ms").await;
    let alice = pair.token("alice");
    let session = pair.open_session(0, &alice).await;
    assert_eq!(pair.call(1, &alice, &session, 1).await.0, 200);

    redis.stop();
    for which in [0, 1] {
        let before = pair.t.upstream_requests();
        let started = Instant::now();
        let (status, headers, body) = pair.call(which, &alice, &session, 2).await;
        let took = started.elapsed();
        eprintln!("on_error=deny, Redis stopped: refused in {took:?}");
        assert_eq!(status, 503, "{body}");
        assert_eq!(header(&headers, "retry-after"), "1");
        assert_eq!(body["error"]["data"]["reason"], "state_unavailable");
        assert_eq!(
            pair.t.upstream_requests(),
            before,
            "a refused call reached the upstream"
        );
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(pair.ready(which).await, 200);
    }
    let denied = pair
        .metric(0, r#"scopegate_denials_total{reason="state_unavailable"}"#)
        .await
        .unwrap();
    assert!(denied >= 1.0, "{denied}");

    redis.restart().await;
    assert!(
        eventually(Duration::from_secs(15), async || {
            let init = json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }
            });
            let (status, headers, _) = pair.post(1, &alice, None, init.to_string()).await;
            if status != 200 {
                return false;
            }
            let session = header(&headers, "mcp-session-id").to_owned();
            pair.call(0, &alice, &session, 3).await.0 == 200
        })
        .await,
        "the proxies did not pick Redis up again"
    );
}

#[tokio::test]
async fn a_hung_redis_holds_a_request_no_longer_than_the_timeout() {
    let redis = RedisServer::start(None).await;
    let pair = start_pair(&redis, "deny", "100ms").await;
    let alice = pair.token("alice");
    let session = pair.open_session(0, &alice).await;

    redis.pause();
    let before = pair.t.upstream_requests();
    let started = Instant::now();
    let (status, _, body) = pair.call(1, &alice, &session, 1).await;
    let took = started.elapsed();
    eprintln!("on_error=deny, Redis hung, timeout 100ms: refused in {took:?}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(pair.t.upstream_requests(), before);
    // The timeout, plus the TLS request itself; far from the client's own patience.
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(
        pair.metric(1, r#"scopegate_state_errors_total{op="handle_check"}"#)
            .await,
        Some(1.0)
    );

    redis.resume();
    assert!(
        eventually(Duration::from_secs(15), async || {
            pair.call(1, &alice, &session, 2).await.0 == 200
        })
        .await
    );
}

#[tokio::test]
async fn check_config_checks_the_state_tables_variables_as_run_does() {
    let t = common::start().await;
    let text = std::fs::read_to_string(&t.system.config_file).unwrap();
    let config_file = t.system.config_file.with_file_name("gateway.toml");
    std::fs::write(
        &config_file,
        format!("{text}\n[state]\nbackend = \"redis\"\nurl_env = \"SCOPEGATE_TEST_REDIS_URL\"\n"),
    )
    .unwrap();
    let check = |url: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_scopegate"));
        command
            .args(["run", "--check-config", "--config"])
            .arg(&config_file)
            .env_remove("SCOPEGATE_TEST_REDIS_URL");
        if let Some(url) = url {
            command.env("SCOPEGATE_TEST_REDIS_URL", url);
        }
        let output = command.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };
    let (ok, text) = check(None);
    assert!(!ok, "{text}");
    assert!(
        text.contains("state.url_env: environment variable SCOPEGATE_TEST_REDIS_URL is not set"),
        "{text}"
    );
    let (ok, text) = check(Some("http://:hunter2@redis:6379"));
    assert!(
        !ok && text.contains("state.url: must be a redis://"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let (ok, text) = check(Some("redis://:hunter2@127.0.0.1:6379/0"));
    assert!(ok, "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
