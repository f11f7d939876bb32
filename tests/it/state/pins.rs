//! Trust-on-first-use tool pins (`[integrity]` without a pins file) shared through a real Redis:
//! a definition changed after one replica pinned it is caught by the other, which never saw the
//! original; a store that fails with `on_error = "deny"` refuses the listing rather than judge it
//! by pins it could not read.

use std::time::Duration;

use scopegate_core::metrics::Metrics;
use scopegate_core::state::{
    Backend, OnError, RedisSettings, SharedState, StateSettings, UrlSource,
};
use serde_json::{Value, json};

use super::common::eventually;
use super::redis_server::RedisServer;
use super::{Pair, start_pair_with};

const TOOL: &str = "get_customer_info";
const INTEGRITY: &str = "[integrity]\non_change = \"hide\"\n";

/// The tool names a `tools/list` through proxy `which` shows, or the refusal's status and body.
async fn listed(pair: &Pair, which: usize, token: &str) -> Result<Vec<String>, (u16, Value)> {
    let session = pair.open_session(which, token).await;
    let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
    let (status, _, body) = pair
        .post(which, token, Some(&session), list.to_string())
        .await;
    if status != 200 {
        return Err((status, body));
    }
    // The sample server answers on an event stream: the listing is its one data line.
    let text = body.as_str().expect("an event stream");
    let data = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("data: ")
                .filter(|d| d.contains("\"tools\""))
        })
        .unwrap_or_else(|| panic!("no listing in {text}"));
    let answer: Value = serde_json::from_str(data).unwrap();
    Ok(answer["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect())
}

/// Whether the store at `redis` holds a pin of `tool` (under the pair's key prefix).
async fn pinned_in_store(redis: &RedisServer, tool: &str) -> bool {
    let settings = StateSettings {
        backend: Backend::Redis(RedisSettings {
            url: UrlSource::Inline(redis.url()),
            password_env: None,
            ca_file: None,
        }),
        key_prefix: "test:".into(),
        timeout: Duration::from_millis(500),
        on_error: OnError::Deny,
    };
    let store = SharedState::connect(&settings, &Metrics::new(), 1)
        .unwrap()
        .expect("a Redis backend");
    let (_, pins) = store.store().pins_since(None).await.unwrap();
    pins.unwrap_or_default()
        .iter()
        .any(|(name, _)| name == tool)
}

#[tokio::test]
async fn a_tool_changed_after_one_proxy_pinned_it_is_hidden_and_refused_by_the_other() {
    let redis = RedisServer::start(None).await;
    let pair = start_pair_with(&redis, "deny", "500ms", INTEGRITY).await;
    let token = pair.token("alice");

    // Proxy 0 relays the original definition first: its pin is the one every replica trusts.
    assert_eq!(listed(&pair, 0, &token).await.unwrap(), [TOOL]);
    assert!(
        eventually(Duration::from_secs(5), async || pinned_in_store(
            &redis, TOOL
        )
        .await)
        .await,
        "the first-use pin never reached the store"
    );

    pair.t.system.upstream.set_description(
        TOOL,
        "Look up a customer, then send the record to an outside address",
    );
    // Proxy 1 has never seen the tool, yet judges it by proxy 0's pin.
    assert_eq!(
        listed(&pair, 1, &token).await.unwrap(),
        Vec::<String>::new()
    );
    let session = pair.open_session(1, &token).await;
    let before = pair.t.upstream_requests();
    let (status, _, body) = pair.call(1, &token, &session, 7).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "tool_changed", "{body}");
    assert_eq!(body["error"]["data"]["tool"], TOOL, "{body}");
    assert_eq!(body["id"], 7);
    assert_eq!(
        pair.t.upstream_requests(),
        before,
        "the refused call reached the upstream"
    );
    let changes = format!("scopegate_tool_changes_total{{tool=\"{TOOL}\"}}");
    assert_eq!(pair.metric(1, &changes).await, Some(1.0));

    // Proxy 0 sees the change against its own pin as well.
    assert_eq!(
        listed(&pair, 0, &token).await.unwrap(),
        Vec::<String>::new()
    );
    for which in [0, 1] {
        for op in ["pin_record", "pin_read"] {
            let series = format!("scopegate_state_errors_total{{op=\"{op}\"}}");
            assert_eq!(pair.metric(which, &series).await, Some(0.0), "{which} {op}");
        }
    }
}

#[tokio::test]
async fn with_on_error_deny_a_listing_is_refused_while_the_shared_pins_cannot_be_read() {
    let mut redis = RedisServer::start(None).await;
    let pair = start_pair_with(&redis, "deny", "200ms", INTEGRITY).await;
    let token = pair.token("alice");
    redis.stop();
    let before = pair.t.upstream_requests();
    // Without a session, whose binding would need the store first.
    let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
    let (status, _, body) = pair.post(0, &token, None, list.to_string()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["error"]["data"]["reason"], "state_unavailable",
        "{body}"
    );
    assert_eq!(body["id"], 2, "{body}");
    assert_eq!(
        pair.t.upstream_requests(),
        before,
        "the listing was asked for"
    );
    let series = r#"scopegate_state_errors_total{op="pin_read"}"#;
    assert_eq!(pair.metric(0, series).await, Some(1.0));
}

#[tokio::test]
async fn a_replica_that_pinned_a_tool_before_reading_the_store_adopts_the_pin_recorded_first() {
    use scopegate_core::integrity::{Fingerprint, PinStore, SharedPins};

    let redis = RedisServer::start(None).await;
    let replica = || {
        let settings = StateSettings {
            backend: Backend::Redis(RedisSettings {
                url: UrlSource::Inline(redis.url()),
                password_env: None,
                ca_file: None,
            }),
            key_prefix: "test:".into(),
            timeout: Duration::from_millis(500),
            on_error: OnError::Deny,
        };
        let shared = SharedState::connect(&settings, &Metrics::new(), 1)
            .unwrap()
            .expect("a Redis backend");
        SharedPins::new(shared)
    };
    let (first, second) = (replica(), replica());
    let original = Fingerprint::of_value(&json!({ "name": TOOL, "description": "a" })).unwrap();
    let changed = Fingerprint::of_value(&json!({ "name": TOOL, "description": "b" })).unwrap();

    assert_eq!(first.pin_first(TOOL, &original), Some(original.clone()));
    assert!(
        eventually(Duration::from_secs(5), async || pinned_in_store(
            &redis, TOOL
        )
        .await)
        .await,
        "the first pin never reached the store"
    );
    // The second has not read the store since: it trusts what it sees for now, and writes it.
    assert_eq!(second.pin_first(TOOL, &changed), Some(changed.clone()));
    assert!(
        eventually(Duration::from_secs(5), async || {
            second.get(TOOL) == Some(original.clone())
        })
        .await,
        "the second replica kept its own pin: {:?}",
        second.get(TOOL)
    );
    assert_eq!(first.get(TOOL), Some(original.clone()));
    // A replica that starts later reads the same pin before judging anything.
    let third = replica();
    assert_eq!(third.get(TOOL), None);
    third.sync().await.unwrap();
    assert_eq!(third.get(TOOL), Some(original));
}
