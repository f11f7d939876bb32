//! Envoy jwt_authn's fixtures and claims of the wrong JSON type, each on a correctly signed
//! token: the signature proves who wrote the claims, not that they make sense.

use serde_json::{Value, json};

use super::jws::refused_token;
use super::{all_pass, assert_forwarded, now};
use crate::common::{self, TestSystem};

const LEEWAY: i64 = 30;

#[tokio::test]
async fn signed_tokens_with_unacceptable_claims_are_refused() {
    let t = common::start().await;
    let resource = t.system.resource.clone();
    let mint = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        t.token_with(&super::ALL_SCOPES, |c| edit(c.as_object_mut().unwrap()))
    };
    let set = |key: &'static str, value: Value| {
        mint(&move |c: &mut serde_json::Map<String, Value>| {
            c.insert(key.to_string(), value.clone());
        })
    };
    let remove = |key: &'static str| {
        mint(&move |c: &mut serde_json::Map<String, Value>| {
            c.remove(key);
        })
    };
    let wrong_type = |claim: &str, what: &str| format!("claim `{claim}` must be {what}");

    // jsonwebtoken reads a registered claim of the wrong JSON type as absent, so several of these
    // are refused as missing: refused all the same, before our own type checks run.
    let cases: Vec<(&str, String, &str, String)> = vec![
        (
            "expired past the leeway",
            set("exp", json!(now() - LEEWAY - 5)),
            "expired",
            "token expired".into(),
        ),
        (
            "exp zero",
            set("exp", json!(0)),
            "expired",
            "token expired".into(),
        ),
        (
            "not valid until past the leeway",
            set("nbf", json!(now() + LEEWAY + 60)),
            "not_yet_valid",
            "token not yet valid".into(),
        ),
        (
            "non-expiring: exp null",
            set("exp", Value::Null),
            "malformed",
            "claim `exp` must be a number".into(),
        ),
        (
            "exp as a string",
            set("exp", json!((now() + 300).to_string())),
            "malformed",
            "claim `exp` must be a number".into(),
        ),
        (
            "exp negative",
            set("exp", json!(-1)),
            "malformed",
            "claim `exp` must be a number".into(),
        ),
        (
            "nbf as a string",
            set("nbf", json!(now().to_string())),
            "malformed",
            "claim `nbf` must be a number".into(),
        ),
        (
            "iat as a string",
            set("iat", json!("yesterday")),
            "malformed",
            wrong_type("iat", "a number"),
        ),
        (
            "aud array without ours",
            set(
                "aud",
                json!(["https://a.example.com", "https://b.example.com"]),
            ),
            "wrong_audience",
            "audience not accepted".into(),
        ),
        (
            "aud empty array",
            set("aud", json!([])),
            "wrong_audience",
            "audience not accepted".into(),
        ),
        (
            "aud ours with a trailing slash",
            set("aud", json!(format!("{resource}/"))),
            "wrong_audience",
            "audience not accepted".into(),
        ),
        (
            "aud ours in other case",
            set("aud", json!(resource.to_uppercase())),
            "wrong_audience",
            "audience not accepted".into(),
        ),
        (
            "aud as a number",
            set("aud", json!(443)),
            "malformed",
            "claim `aud` must be a string or an array of strings".into(),
        ),
        (
            "aud array holding a number",
            set("aud", json!([resource, 1])),
            "malformed",
            "claim `aud` must be a string or an array of strings".into(),
        ),
        (
            "iss missing",
            remove("iss"),
            "missing_claim",
            "missing required claim `iss`".into(),
        ),
        (
            "iss as an array holding ours",
            set("iss", json!([t.system.issuer.issuer()])),
            "malformed",
            "claim `iss` must be a string".into(),
        ),
        (
            "iss as a number",
            set("iss", json!(1)),
            "malformed",
            "claim `iss` must be a string".into(),
        ),
        (
            "iss with a trailing slash",
            set("iss", json!(format!("{}/", t.system.issuer.issuer()))),
            "wrong_issuer",
            "issuer not accepted".into(),
        ),
        (
            "scope as a number",
            set("scope", json!(1)),
            "malformed",
            wrong_type("scope", "a space-delimited string"),
        ),
        (
            "scope as an array",
            set("scope", json!(["ticket:create"])),
            "malformed",
            wrong_type("scope", "a space-delimited string"),
        ),
        (
            "scp array holding a number",
            mint(&|c| {
                c.remove("scope");
                c.insert("scp".into(), json!(["ticket:create", 5]));
            }),
            "malformed",
            wrong_type("scp", "an array of strings or a space-delimited string"),
        ),
        (
            "sub as a number",
            set("sub", json!(1)),
            "malformed",
            wrong_type("sub", "a string"),
        ),
        (
            "client_id as an object",
            set("client_id", json!({ "id": "x" })),
            "malformed",
            wrong_type("client_id", "a string"),
        ),
    ];
    let mut results = Vec::new();
    for (name, token, reason, description) in &cases {
        results.push(refused_token(&t, name, token, reason, description).await);
    }
    super::all_pass(results);
}

/// The other side of the leeway and type rules: what a strict verifier must still accept.
#[tokio::test]
async fn edge_values_that_are_valid_pass() {
    let t = common::start().await;
    let resource = t.system.resource.clone();
    let accepted = [
        (
            "expired within the leeway",
            t.token_with(&super::ALL_SCOPES, |c| c["exp"] = json!(now() - 5)),
        ),
        (
            "aud array holding ours",
            t.token_with(&super::ALL_SCOPES, |c| {
                c["aud"] = json!(["https://other.example.com", resource])
            }),
        ),
        (
            "fractional exp",
            t.token_with(&super::ALL_SCOPES, |c| {
                c["exp"] = json!(now() as f64 + 300.5)
            }),
        ),
    ];
    for (name, token) in &accepted {
        let request = t.post(Some(token), TestSystem::tool_call("get_customer_info", 1));
        assert_forwarded(&t, name, request).await;
    }
    all_pass(Vec::new());
}
