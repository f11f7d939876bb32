//! Several issuers through the real proxy: each IdP's tokens verified with its own keys only,
//! every issuer advertised, counted per issuer. Later sections: opaque tokens (RFC 7662) and
//! sender-constrained tokens (DPoP, certificate-bound).

use crate::common;

mod dpop;
mod introspection;
mod mtls;

use common::{Options, TestSystem, header, read, sample, scrape, session_call};
use serde_json::Value;

fn two_issuers() -> Options {
    Options {
        second_issuer: true,
        ..Options::default()
    }
}

/// A refused tool call: status, challenge, body; and asserts that nothing reached the upstream.
pub(crate) async fn refused(t: &TestSystem, authorization: &str) -> (u16, String, Value) {
    let before = t.upstream_requests();
    let response = t
        .post(None, TestSystem::tool_call("get_customer_info", 7))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(
        t.upstream_requests(),
        before,
        "nothing reaches the upstream"
    );
    (
        status,
        header(&headers, "www-authenticate").to_string(),
        body,
    )
}

#[tokio::test]
async fn each_issuers_tokens_are_accepted_and_counted_under_that_issuer() {
    let t = common::start_with(two_issuers()).await;
    let first = &t.system.issuer;
    let second = t.system.second_issuer.as_ref().unwrap();
    for issuer in [first, second] {
        let token = issuer.mint(issuer.claims_for("tester", &["customer:read"]));
        let (status, body) = session_call(&t, &token, "get_customer_info", 3).await;
        assert_eq!(status, 200, "{}: {body}", issuer.issuer());
        assert!(body.to_string().contains("C001"), "{body}");
    }
    let metrics = scrape(&t).await;
    for issuer in [first, second] {
        // initialize, notifications/initialized and the call: three accepted tokens each.
        let series = format!(
            "scopegate_issuer_auth_total{{issuer=\"{}\",outcome=\"accepted\"}}",
            issuer.issuer()
        );
        assert_eq!(sample(&metrics, &series), Some(3.0), "{series}");
    }
}

#[tokio::test]
async fn a_token_naming_one_issuer_signed_with_the_others_key_is_refused() {
    let t = common::start_with(two_issuers()).await;
    let first = &t.system.issuer;
    let second = t.system.second_issuer.as_ref().unwrap();
    // The two dev issuers give their keys the same `kid`s.
    assert_eq!(first.default_kid(), second.default_kid());
    let forged = first.mint(second.claims_for("tester", &["customer:read"]));

    let (status, challenge, body) = refused(&t, &format!("Bearer {forged}")).await;
    assert_eq!(status, 401, "{body}");
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\", error_description=\"signature does not verify\""
        )
    );
    assert_eq!(body["error"]["data"]["reason"], "bad_signature");
    let metrics = scrape(&t).await;
    let series = format!(
        "scopegate_issuer_auth_total{{issuer=\"{}\",outcome=\"bad_signature\"}}",
        second.issuer()
    );
    assert_eq!(sample(&metrics, &series), Some(1.0), "{series}");
}

#[tokio::test]
async fn a_token_of_an_issuer_not_configured_is_refused_as_such() {
    let t = common::start_with(two_issuers()).await;
    let first = &t.system.issuer;
    let mut claims = first.claims_for("tester", &["customer:read"]);
    claims["iss"] = "https://stranger.example.com".into();
    let (status, challenge, body) = refused(&t, &format!("Bearer {}", first.mint(claims))).await;
    assert_eq!(status, 401);
    assert!(
        challenge.ends_with("error=\"invalid_token\", error_description=\"issuer not accepted\""),
        "{challenge}"
    );
    assert_eq!(body["error"]["data"]["reason"], "wrong_issuer");
}

#[tokio::test]
async fn the_metadata_names_every_issuer() {
    let t = common::start_with(two_issuers()).await;
    let url = scopegate_core::metadata::url_for(&t.system.resource);
    let document: Value = t.http.get(url).send().await.unwrap().json().await.unwrap();
    let second = t.system.second_issuer.as_ref().unwrap();
    assert_eq!(
        document["authorization_servers"],
        serde_json::json!([t.system.issuer.issuer(), second.issuer()])
    );
}
