//! DPoP proofs used once across replicas: two proxies on one Redis record each proof's `jti`
//! there, so a proof replayed to the other replica is refused; a Redis that fails is handled as
//! `on_error` says, counted under `op="set_if_absent"`.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use scopegate_testkit::dpop_key::DpopKey;
use serde_json::{Value, json};

use super::common::{header, read};
use super::redis_server::RedisServer;
use super::{Pair, start_pair};

const JTI_ERRORS: &str = r#"scopegate_state_errors_total{op="set_if_absent"}"#;

/// A token of the pair's issuer bound to `key`.
fn bound_token(pair: &Pair, key: &DpopKey) -> String {
    let issuer = &pair.t.system.issuer;
    let mut claims = issuer.claims_for("dpop-client", &[]);
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    issuer.mint(claims)
}

/// A proof for a POST to the resource both replicas serve (`mcp.resource`, which `htu` may
/// name wherever the request arrives).
fn proof(pair: &Pair, key: &DpopKey, token: &str) -> String {
    key.proof("POST", &pair.t.system.resource, token)
}

/// `initialize` through proxy `which` with the `DPoP` scheme and `proof`: status, headers,
/// body; asserts that a refusal reached nothing upstream.
async fn initialize(
    pair: &Pair,
    which: usize,
    token: &str,
    proof: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }
    });
    let before = pair.t.upstream_requests();
    let response = pair
        .t
        .http
        .post(pair.url(which))
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .header(AUTHORIZATION, format!("DPoP {token}"))
        .header("dpop", proof)
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    if status != 200 {
        assert_eq!(
            pair.t.upstream_requests(),
            before,
            "a refused request reached the upstream"
        );
    }
    (status, headers, body)
}

/// Sends `proof` to replica `first`, which accepts it, then again to replica `then`, which
/// refuses it as used: the refusal's headers.
async fn accepted_then_refused_as_replay(
    pair: &Pair,
    token: &str,
    proof: &str,
    first: usize,
    then: usize,
) -> reqwest::header::HeaderMap {
    let (status, _, body) = initialize(pair, first, token, proof).await;
    assert_eq!(status, 200, "at replica {first}: {body}");
    let (status, headers, body) = initialize(pair, then, token, proof).await;
    assert_eq!(status, 401, "replayed at replica {then}: {body}");
    assert_eq!(body["error"]["data"]["reason"], "invalid_dpop_proof");
    headers
}

/// A pair on a Redis stopped once both replicas run, `on_error` saying what that means, with a
/// key and a token bound to it. The server is handed back so that it outlives the test.
async fn pair_on_a_stopped_redis(on_error: &str) -> (RedisServer, Pair, DpopKey, String) {
    let mut redis = RedisServer::start(None).await;
    let pair = start_pair(&redis, on_error, "200ms").await;
    let key = DpopKey::generate();
    let token = bound_token(&pair, &key);
    redis.stop();
    (redis, pair, key, token)
}

#[tokio::test]
async fn a_proof_used_at_one_replica_is_refused_at_the_other() {
    let redis = RedisServer::start(None).await;
    let pair = start_pair(&redis, "deny", "500ms").await;
    let key = DpopKey::generate();
    let token = bound_token(&pair, &key);
    let proof = proof(&pair, &key, &token);

    let headers = accepted_then_refused_as_replay(&pair, &token, &proof, 0, 1).await;
    assert!(
        header(&headers, "www-authenticate")
            .ends_with("error=\"invalid_dpop_proof\", error_description=\"proof already used\""),
        "{headers:?}"
    );

    // A fresh proof passes at the second replica, and only once there too.
    let fresh = self::proof(&pair, &key, &token);
    assert_eq!(initialize(&pair, 1, &token, &fresh).await.0, 200);
    assert_eq!(initialize(&pair, 0, &token, &fresh).await.0, 401);
    for which in [0, 1] {
        assert_eq!(pair.metric(which, JTI_ERRORS).await, Some(0.0));
    }
}

#[tokio::test]
async fn with_on_error_deny_a_stopped_redis_refuses_a_dpop_request_with_503() {
    let (_redis, pair, key, token) = pair_on_a_stopped_redis("deny").await;
    let (status, headers, body) = initialize(&pair, 1, &token, &proof(&pair, &key, &token)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(header(&headers, "retry-after"), "1");
    assert_eq!(body["error"]["data"]["reason"], "state_unavailable");
    assert_eq!(pair.metric(1, JTI_ERRORS).await, Some(1.0));
    // Not a verdict on the token: no authentication failure is counted.
    assert_eq!(
        pair.metric(
            1,
            r#"scopegate_auth_failures_total{reason="invalid_dpop_proof"}"#
        )
        .await,
        Some(0.0)
    );
}

#[tokio::test]
async fn with_on_error_local_a_stopped_redis_leaves_each_replica_its_own_record() {
    let (_redis, pair, key, token) = pair_on_a_stopped_redis("local").await;
    let proof = proof(&pair, &key, &token);
    // This replica still refuses the replay from its own record.
    accepted_then_refused_as_replay(&pair, &token, &proof, 0, 0).await;
    assert_eq!(pair.metric(0, JTI_ERRORS).await, Some(2.0));
}
