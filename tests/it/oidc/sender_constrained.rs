//! Sender-constrained tokens from `oidc-provider`: DPoP-bound (RFC 9449), asked for with a proof
//! of the client's key at the token endpoint and presented to the proxy with a proof per
//! request; and certificate-bound (RFC 8705).

use scopegate_testkit::dpop_key::DpopKey;
use serde_json::json;

use super::common::TestSystem;
use super::{
    assert_reaches_the_tool_via, idp, in_session, initialize, jwt_claims, proxy_trusting_the_first,
};
use crate::issuers::{Refusal, assert_refused};

/// A proof of `key` for the token endpoint at `url`: no access token yet, so no `ath`.
fn token_request_proof(key: &DpopKey, url: &str) -> String {
    let mut claims = key.claims("POST", url, "");
    claims.as_object_mut().unwrap().remove("ath");
    key.sign(key.header(), claims)
}

/// A DPoP-bound access token from the first issuer for `dpop-agent`, bound to `key`.
async fn dpop_bound_token(t: &TestSystem, key: &DpopKey) -> String {
    let idp = idp();
    let issuer = idp.issuers[0].as_str();
    let proof = token_request_proof(key, &idp.endpoint(issuer, "token_endpoint").await);
    let body = idp
        .token_response(
            issuer,
            "dpop-agent",
            &t.system.resource,
            "customer:read",
            &[("dpop", proof)],
        )
        .await;
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        jwt_claims(&token)["cnf"],
        json!({ "jkt": key.thumbprint() }),
        "the IdP bound the token to the key"
    );
    token
}

/// The proxy trusting the first issuer, and a token of it bound to a new key.
async fn proxy_and_dpop_bound_token() -> (TestSystem, DpopKey, String) {
    let (_, t) = proxy_trusting_the_first().await;
    let key = DpopKey::generate();
    let token = dpop_bound_token(&t, &key).await;
    (t, key, token)
}

/// A request with `body`, `Authorization: DPoP <token>` and a fresh proof of `key` for it, in
/// `session` when given.
fn request_with_proof(
    t: &TestSystem,
    key: &DpopKey,
    token: &str,
    body: String,
    session: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = t
        .post(None, body)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.proof("POST", t.url(), token));
    in_session(request, session)
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_dpop_bound_token_with_a_proof_per_request_reaches_the_tool() {
    let (t, key, token) = proxy_and_dpop_bound_token().await;
    assert_reaches_the_tool_via(&t, "a proof per request", |body, session| {
        request_with_proof(&t, &key, &token, body, session)
    })
    .await;
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn the_same_dpop_bound_token_sent_as_bearer_is_refused() {
    let (t, key, token) = proxy_and_dpop_bound_token().await;
    // Even with a valid proof beside it: the Bearer scheme is what a thief of the token uses.
    let request = t
        .post(Some(&token), initialize())
        .header("dpop", key.proof("POST", t.url(), &token));
    let expected = Refusal::dpop(
        "invalid_token",
        "a DPoP-bound token must be sent with the DPoP scheme and a proof",
        "bound_token_as_bearer",
    );
    assert_refused(&t, "as bearer", request, &token, expected).await;
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_dpop_bound_token_with_a_proof_of_another_key_is_refused() {
    let (t, _, token) = proxy_and_dpop_bound_token().await;
    let thief = DpopKey::generate();
    let request = request_with_proof(&t, &thief, &token, initialize(), None);
    let expected = Refusal::dpop(
        "invalid_dpop_proof",
        "proof key is not the key the token is bound to",
        "invalid_dpop_proof",
    );
    assert_refused(&t, "another key's proof", request, &token, expected).await;
}
