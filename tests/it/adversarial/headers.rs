//! The `Authorization` header as an attacker writes it (RFC 6750 §2.1 is strict: one header,
//! scheme, one space, token). Anything a lenient parser upstream might read differently is
//! refused; the scheme alone is case-insensitive (RFC 9110 §11.1).

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::{Refusal, all_pass, assert_forwarded, check, invalid_token};
use crate::common::{self, TestSystem};

fn request(t: &TestSystem, authorization: &[&str]) -> reqwest::RequestBuilder {
    let mut request = t
        .http
        .post(t.url())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .body(TestSystem::tool_call("get_customer_info", 3));
    for value in authorization {
        request = request.header("authorization", *value);
    }
    request
}

#[tokio::test]
async fn authorization_header_smuggling_is_refused() {
    let t = common::start().await;
    let token = t.token(&super::ALL_SCOPES);
    let malformed = |description: &str| Refusal {
        status: 401,
        challenge: invalid_token(&t, description),
        reason: "malformed".into(),
    };
    let bare = Refusal {
        status: 401,
        challenge: format!(
            "Bearer resource_metadata=\"{}\"",
            scopegate_core::metadata::url_for(&t.system.resource)
        ),
        reason: "missing_token".into(),
    };
    let two = Refusal {
        status: 401,
        challenge: invalid_token(&t, "more than one Authorization header"),
        reason: "multiple_authorization".into(),
    };
    let scheme = malformed("authorization scheme must be Bearer or DPoP");
    let charset = malformed("token has characters outside base64url");
    let cases: Vec<(&str, Vec<String>, Refusal)> = vec![
        (
            "two spaces after Bearer",
            vec![format!("Bearer  {token}")],
            charset.clone(),
        ),
        (
            "tab after Bearer",
            vec![format!("Bearer\t{token}")],
            scheme.clone(),
        ),
        (
            "no space after Bearer",
            vec![format!("Bearer{token}")],
            scheme.clone(),
        ),
        (
            "trailing space after the token",
            vec![format!("Bearer {token} ")],
            charset.clone(),
        ),
        (
            "two tokens in one header",
            vec![format!("Bearer {token}, Bearer {token}")],
            charset.clone(),
        ),
        (
            "Basic credentials",
            vec!["Basic dGVzdGVyOnRlc3Rlcg==".into()],
            scheme.clone(),
        ),
        (
            "token without a scheme",
            vec![token.clone()],
            scheme.clone(),
        ),
        (
            // An unbound token cannot be upgraded by naming the DPoP scheme (RFC 9449 §7.1).
            "DPoP scheme with an unbound token",
            vec![format!("DPoP {token}")],
            Refusal {
                status: 401,
                challenge: format!(
                    "DPoP resource_metadata=\"{}\", algs=\"{}\", error=\"invalid_token\", error_description=\"token is not DPoP-bound\"",
                    scopegate_core::metadata::url_for(&t.system.resource),
                    scopegate_core::auth::DPOP_ALGS
                ),
                reason: "not_dpop_bound".into(),
            },
        ),
        (
            "scheme only",
            vec!["Bearer".into()],
            malformed("empty bearer token"),
        ),
        ("empty header", vec![String::new()], scheme.clone()),
        (
            "valid then empty header",
            vec![format!("Bearer {token}"), String::new()],
            two.clone(),
        ),
        (
            "valid then garbage header",
            vec![format!("Bearer {token}"), "Bearer x.y.z".into()],
            two.clone(),
        ),
    ];
    let mut results = Vec::new();
    for (name, values, want) in &cases {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        results.push(check(&t, name, request(&t, &values), want, Some(&token)).await);
    }
    // The token elsewhere is no token at all.
    for (name, header) in [
        ("token in Proxy-Authorization", "proxy-authorization"),
        (
            "token in X-Forwarded-Authorization",
            "x-forwarded-authorization",
        ),
    ] {
        let request = request(&t, &[]).header(header, format!("Bearer {token}"));
        results.push(check(&t, name, request, &bare, Some(&token)).await);
    }
    all_pass(results);

    // Lower- and upper-case schemes are the same scheme.
    for scheme in ["bearer", "BEARER"] {
        let value = format!("{scheme} {token}");
        assert_forwarded(&t, scheme, request(&t, &[&value])).await;
    }
}
