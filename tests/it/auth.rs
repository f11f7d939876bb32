//! Authentication end to end: every 401 reason, key rotation, a down IdP, discovery.

use crate::common;

use common::{Options, TestSystem, header, read, session_call};
use jsonwebtoken::Algorithm;
use scopegate_testkit::issuer::KeyChoice;
use serde_json::json;

/// Sends an allowed tool call with `token` and returns status, challenge and body.
async fn attempt(t: &TestSystem, token: Option<&str>) -> (u16, String, serde_json::Value) {
    let response = t
        .post(token, TestSystem::tool_call("get_customer_info", 5))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    (
        status,
        header(&headers, "www-authenticate").to_string(),
        body,
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Asserts a 401 `invalid_token` whose description contains `reason_text`, and that nothing
/// reached the upstream.
async fn assert_invalid_token(t: &TestSystem, token: &str, reason_text: &str) {
    let before = t.upstream_requests();
    let (status, challenge, body) = attempt(t, Some(token)).await;
    assert_eq!(status, 401, "{reason_text}: {body}");
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    assert!(
        challenge.starts_with(&format!(
            "Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\", error_description=\""
        )),
        "{challenge}"
    );
    assert!(
        challenge.contains(reason_text),
        "{reason_text} not in {challenge}"
    );
    assert!(
        !challenge.contains(token) && !body.to_string().contains(token),
        "token echoed"
    );
    assert_eq!(
        t.upstream_requests(),
        before,
        "nothing reaches the upstream"
    );
}

#[tokio::test]
async fn missing_token_gets_a_bare_challenge() {
    let t = common::start().await;
    let (status, challenge, body) = attempt(&t, None).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}\"",
            scopegate_core::metadata::url_for(&t.system.resource)
        )
    );
    assert_eq!(body["error"]["data"]["reason"], "missing_token");
}

#[tokio::test]
async fn each_invalid_token_gets_its_reason() {
    let t = common::start().await;
    let issuer = &t.system.issuer;

    let expired = t.token_with(&["customer:read"], |c| {
        c["exp"] = json!(now() - 3600);
        c["iat"] = json!(now() - 7200);
        c["nbf"] = json!(now() - 7200);
    });
    assert_invalid_token(&t, &expired, "expired").await;

    let not_yet = t.token_with(&["customer:read"], |c| c["nbf"] = json!(now() + 3600));
    assert_invalid_token(&t, &not_yet, "not yet valid").await;

    let wrong_audience = t.token_with(&["customer:read"], |c| {
        c["aud"] = json!("https://other.example.com/mcp")
    });
    assert_invalid_token(&t, &wrong_audience, "audience").await;

    let wrong_issuer = t.token_with(&["customer:read"], |c| {
        c["iss"] = json!("https://evil.example.com")
    });
    assert_invalid_token(&t, &wrong_issuer, "issuer").await;

    let no_exp = t.token_with(&["customer:read"], |c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    assert_invalid_token(&t, &no_exp, "exp").await;

    let no_aud = t.token_with(&["customer:read"], |c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    assert_invalid_token(&t, &no_aud, "aud").await;

    let claims = issuer.claims_for("tester", &["customer:read"]);
    let default_kid = issuer.default_kid();
    let bad_signature = issuer.mint_with(
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": default_kid }),
        claims.clone(),
        KeyChoice::Foreign,
    );
    assert_invalid_token(&t, &bad_signature, "signature").await;

    let unknown_kid = issuer.mint_with(
        json!({ "alg": "ES256", "kid": "no-such-key" }),
        claims.clone(),
        KeyChoice::Default,
    );
    assert_invalid_token(&t, &unknown_kid, "kid").await;

    let crit = issuer.mint_with(
        json!({ "alg": "ES256", "kid": default_kid, "crit": ["exp"] }),
        claims.clone(),
        KeyChoice::Default,
    );
    assert_invalid_token(&t, &crit, "crit").await;

    let embedded_jwk = issuer.mint_with(
        json!({ "alg": "ES256", "kid": default_kid, "jku": "https://evil.example.com/jwks" }),
        claims.clone(),
        KeyChoice::Default,
    );
    assert_invalid_token(&t, &embedded_jwk, "").await;

    assert_invalid_token(&t, "not.a-token", "").await;
}

#[tokio::test]
async fn rs256_and_eddsa_tokens_from_the_same_issuer_are_accepted() {
    let t = common::start().await;
    let issuer = &t.system.issuer;
    for alg in [Algorithm::RS256, Algorithm::EdDSA] {
        let choice = KeyChoice::Alg(alg);
        let kid = issuer.key(&choice).expect("issuer has the key").kid;
        let token = issuer.mint_with(
            json!({ "alg": format!("{alg:?}"), "typ": "at+jwt", "kid": kid }),
            issuer.claims_for("tester", &["customer:read"]),
            choice,
        );
        let (status, body) = session_call(&t, &token, "get_customer_info", 5).await;
        assert_eq!(status, 200, "{alg:?}: {body}");
    }
}

#[tokio::test]
async fn algorithm_outside_the_allow_list_is_refused() {
    let t = common::start_with(Options {
        auth_settings: String::new(),
        ..Options::default()
    })
    .await;
    let issuer = &t.system.issuer;
    let claims = issuer.claims_for("tester", &["customer:read"]);
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT" }).to_string()),
        b64(&claims.to_string())
    );
    assert_invalid_token(&t, &none, "").await;
    let hmac = issuer.mint_with(
        json!({ "alg": "HS256", "kid": issuer.default_kid() }),
        claims,
        KeyChoice::Default,
    );
    assert_invalid_token(&t, &hmac, "").await;
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

/// Settings that let a refetch happen at once, for tests that rotate keys right after start-up.
fn quick_refetch() -> Options {
    Options {
        auth_settings: "[auth.jwks]\nrefetch_interval = \"1ms\"".into(),
        ..Options::default()
    }
}

#[tokio::test]
async fn rotated_key_is_fetched_on_first_sight_of_its_kid() {
    let t = common::start_with(quick_refetch()).await;
    let issuer = &t.system.issuer;
    let fetches = issuer.jwks_requests();
    let new_kid = issuer.rotate();
    let token = t.token(&["customer:read"]);
    let (status, body) = session_call(&t, &token, "get_customer_info", 5).await;
    assert_eq!(status, 200, "token signed by the new key {new_kid}: {body}");
    assert_eq!(issuer.jwks_requests(), fetches + 1, "exactly one refetch");
}

#[tokio::test]
async fn retired_key_is_refused_after_the_next_fetch() {
    let t = common::start_with(quick_refetch()).await;
    let issuer = &t.system.issuer;
    let old_kid = issuer.default_kid();
    let old_token = t.token(&["customer:read"]);
    issuer.rotate();
    issuer.retire(&old_kid);
    // The new key's first token makes the proxy fetch the set in which the old key is gone.
    let (status, body) =
        session_call(&t, &t.token(&["customer:read"]), "get_customer_info", 5).await;
    assert_eq!(status, 200, "{body}");
    let (status, challenge, _) = attempt(&t, Some(&old_token)).await;
    assert_eq!(status, 401, "{challenge}");
}

#[tokio::test]
async fn flood_of_unknown_kids_costs_the_idp_one_fetch() {
    let t = common::start().await;
    let issuer = &t.system.issuer;
    let fetches = issuer.jwks_requests();
    let claims = issuer.claims_for("tester", &["customer:read"]);
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..50 {
        let header = json!({ "alg": "ES256", "kid": format!("random-{i}") });
        let token = issuer.mint_with(header, claims.clone(), KeyChoice::Default);
        let request = t.post(Some(&token), TestSystem::tool_call("get_customer_info", i));
        flood.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = flood.join_next().await {
        assert_eq!(status.unwrap(), 401);
    }
    assert!(
        issuer.jwks_requests() <= fetches + 1,
        "{} fetches for 50 unknown kids",
        issuer.jwks_requests() - fetches
    );
}

#[tokio::test]
async fn cached_keys_keep_serving_while_the_idp_is_down() {
    let t = common::start_with(quick_refetch()).await;
    let token = t.token(&["customer:read"]);
    t.system.issuer.set_jwks_down(true);
    let (status, body) = session_call(&t, &token, "get_customer_info", 5).await;
    assert_eq!(status, 200, "{body}");
    // A token with a new kid cannot be checked while the IdP is down.
    t.system.issuer.rotate();
    let token = t.token(&["customer:read"]);
    let (status, _, _) = attempt(&t, Some(&token)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn jwks_uri_is_discovered_from_the_issuer() {
    let t = common::start_with(Options {
        discover_jwks: true,
        ..Options::default()
    })
    .await;
    let client = t.mcp_client(&t.token(&["customer:read"])).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    // Listings are filtered: a customer:read token sees the two lookup tools.
    assert_eq!(tools.len(), 2);
    client.cancel().await.ok();
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 1))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let (status, headers, _) = read(response).await;
    assert_eq!(status, 401);
    assert!(header(&headers, "www-authenticate").contains("invalid_token"));
}

#[tokio::test]
async fn token_in_the_query_string_is_not_a_token() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    let response = t
        .http
        .post(format!("{}?access_token={token}", t.url()))
        .header("content-type", "application/json")
        .body(TestSystem::tool_call("get_customer_info", 1))
        .send()
        .await
        .unwrap();
    let (status, headers, _) = read(response).await;
    assert_eq!(status, 401);
    assert!(!header(&headers, "www-authenticate").contains("invalid_token"));
}

#[tokio::test]
async fn oversized_token_is_refused_before_verification() {
    let t = common::start().await;
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(6000),
        "b".repeat(3000),
        "c".repeat(100)
    );
    assert_invalid_token(&t, &huge, "").await;
}
