//! Opaque tokens, introspected (RFC 7662) at the dev issuer's endpoint found through its
//! metadata: the answer's checks, the cache, single flight, and an IdP that fails.

use std::time::Duration;

use scopegate_testkit::issuer::{DEMO_CLIENT_SECRET, INTROSPECTION_CLIENT};
use serde_json::json;

use super::common::{self, Options, TestSystem, header, read, sample, scrape};
use super::refused;

const SECRET_ENV: &str = "SCOPEGATE_INTROSPECTION_SECRET";

pub(super) fn introspecting(extra: &str) -> Options {
    Options {
        auth_settings: format!(
            "[auth.introspection]\nclient_id = \"{INTROSPECTION_CLIENT}\"\nclient_secret_env = \"{SECRET_ENV}\"\n{extra}\n"
        ),
        env: vec![(SECRET_ENV.into(), DEMO_CLIENT_SECRET.into())],
        ..Options::default()
    }
}

fn opaque(t: &TestSystem, scopes: &[&str], edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let issuer = &t.system.issuer;
    let mut claims = issuer.claims_for("opaque-caller", scopes);
    edit(&mut claims);
    issuer.mint_opaque(claims)
}

fn initialize() -> String {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }
    })
    .to_string()
}

#[tokio::test]
async fn an_opaque_token_is_introspected_once_then_answered_from_the_cache() {
    let t = common::start_with(introspecting("")).await;
    let token = opaque(&t, &["customer:read"], |_| {});
    let (status, body) = common::session_call(&t, &token, "get_customer_info", 4).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("C001"), "{body}");
    for _ in 0..3 {
        let response = t.post(Some(&token), initialize()).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(t.system.issuer.introspection_calls(), 1);
    let series = format!(
        "scopegate_issuer_auth_total{{issuer=\"{}\",outcome=\"accepted\"}}",
        t.system.issuer.issuer()
    );
    assert_eq!(sample(&scrape(&t).await, &series), Some(6.0), "{series}");
}

#[tokio::test]
async fn a_burst_of_one_new_token_makes_one_introspection_call() {
    let t = common::start_with(introspecting("")).await;
    let token = opaque(&t, &[], |_| {});
    // The answer takes a while, so every request of the burst arrives while it is awaited.
    t.system
        .issuer
        .set_introspection_delay(Duration::from_millis(300));
    let burst = (0..8).map(|_| t.post(Some(&token), initialize()).send());
    for response in futures_util::future::join_all(burst).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_eq!(t.system.issuer.introspection_calls(), 1);
}

#[tokio::test]
async fn an_inactive_or_unknown_opaque_token_is_refused_and_reaches_nothing() {
    let t = common::start_with(introspecting("")).await;
    let revoked = opaque(&t, &["customer:read"], |_| {});
    t.system.issuer.revoke_opaque(&revoked);
    for token in [revoked.as_str(), "never-issued-token"] {
        let (status, challenge, body) = refused(&t, &format!("Bearer {token}")).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            challenge
                .ends_with("error=\"invalid_token\", error_description=\"token is not active\""),
            "{challenge}"
        );
        assert_eq!(body["error"]["data"]["reason"], "inactive");
        assert!(!challenge.contains(token) && !body.to_string().contains(token));
    }
}

#[tokio::test]
async fn an_active_answer_for_another_audience_or_past_its_exp_is_refused() {
    let t = common::start_with(introspecting("")).await;
    let elsewhere = opaque(&t, &["customer:read"], |c| {
        c["aud"] = json!("https://other.example.com/mcp")
    });
    let (status, challenge, body) = refused(&t, &format!("Bearer {elsewhere}")).await;
    assert_eq!(
        (status, body["error"]["data"]["reason"].as_str()),
        (401, Some("wrong_audience"))
    );
    assert!(
        challenge.contains("error_description=\"audience not accepted\""),
        "{challenge}"
    );

    let expired = opaque(&t, &["customer:read"], |c| c["exp"] = json!(1_000_000_000));
    let (status, _, body) = refused(&t, &format!("Bearer {expired}")).await;
    assert_eq!(
        (status, body["error"]["data"]["reason"].as_str()),
        (401, Some("expired"))
    );

    let no_aud = opaque(&t, &[], |c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    let (status, _, body) = refused(&t, &format!("Bearer {no_aud}")).await;
    assert_eq!(
        (status, body["error"]["data"]["reason"].as_str()),
        (401, Some("missing_claim"))
    );
}

#[tokio::test]
async fn an_introspection_endpoint_that_fails_is_a_503_with_retry_after_never_an_allow() {
    let t = common::start_with(introspecting("")).await;
    t.system.issuer.set_introspection_down(true);
    let token = opaque(&t, &["customer:read"], |_| {});
    let (status, _, body) = refused(&t, &format!("Bearer {token}")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({ "error": "temporarily_unavailable", "error_description": "token introspection unavailable" })
    );
    assert!(!body.to_string().contains(&token));
    // The failure was not cached: once the IdP answers, the same token works.
    t.system.issuer.set_introspection_down(false);
    let response = t.post(Some(&token), initialize()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(t.system.issuer.introspection_calls(), 2);
}

#[tokio::test]
async fn the_retry_after_header_comes_with_an_introspection_failure() {
    let t = common::start_with(introspecting("")).await;
    t.system.issuer.set_introspection_down(true);
    let token = opaque(&t, &[], |_| {});
    let response = t.post(Some(&token), initialize()).send().await.unwrap();
    let (status, headers, _) = read(response).await;
    assert_eq!(status, 503);
    assert_eq!(header(&headers, "retry-after"), "5");
}

#[tokio::test]
async fn the_client_secret_can_be_posted_in_the_form_instead_of_basic() {
    let t = common::start_with(introspecting("auth_method = \"client_secret_post\"")).await;
    let token = opaque(&t, &[], |_| {});
    let response = t.post(Some(&token), initialize()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(t.system.issuer.introspection_calls(), 1);
}

#[tokio::test]
async fn a_wrong_client_secret_is_an_idp_failure_not_an_allow() {
    let mut options = introspecting("");
    options.env = vec![(SECRET_ENV.into(), "not-the-secret".into())];
    let t = common::start_with(options).await;
    let token = opaque(&t, &["customer:read"], |_| {});
    let (status, _, body) = refused(&t, &format!("Bearer {token}")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({ "error": "temporarily_unavailable", "error_description": "token introspection unavailable" })
    );
}
