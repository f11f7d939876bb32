//! Sender-constrained tokens from `oidc-provider`: DPoP-bound (RFC 9449), asked for with a proof
//! of the client's key at the token endpoint and presented to the proxy with a proof per
//! request; and certificate-bound (RFC 8705).

use scopegate_core::auth::DPOP_ALGS;
use scopegate_testkit::dpop_key::DpopKey;
use serde_json::json;

use super::common::{TestSystem, header, read};
use super::{idp, initialize, jwt_claims, proxy_trusting};

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

/// POSTs `body` with `Authorization: DPoP <token>` and a fresh proof of `key` for this request.
async fn send_with_proof(
    t: &TestSystem,
    key: &DpopKey,
    token: &str,
    body: String,
    session: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut request = t
        .post(None, body)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", key.proof("POST", t.url(), token));
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    read(request.send().await.unwrap()).await
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_dpop_bound_token_with_a_proof_per_request_reaches_the_tool() {
    let t = proxy_trusting(&[idp().issuers[0].as_str()]).await;
    let key = DpopKey::generate();
    let token = dpop_bound_token(&t, &key).await;

    let (status, headers, body) = send_with_proof(&t, &key, &token, initialize(), None).await;
    assert_eq!(status, 200, "{body}");
    let session = header(&headers, "mcp-session-id").to_string();
    let before = t.upstream_requests();
    let call = TestSystem::tool_call("get_customer_info", 2);
    let (status, _, body) = send_with_proof(&t, &key, &token, call, Some(&session)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("C001"), "{body}");
    assert!(t.upstream_requests() > before);
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn the_same_dpop_bound_token_sent_as_bearer_is_refused() {
    let t = proxy_trusting(&[idp().issuers[0].as_str()]).await;
    let key = DpopKey::generate();
    let token = dpop_bound_token(&t, &key).await;

    let before = t.upstream_requests();
    // Even with a valid proof beside it: the Bearer scheme is what a thief of the token uses.
    let response = t
        .post(Some(&token), initialize())
        .header("dpop", key.proof("POST", t.url(), &token))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, 401, "{body}");
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    assert_eq!(
        header(&headers, "www-authenticate"),
        format!(
            "DPoP resource_metadata=\"{metadata}\", algs=\"{DPOP_ALGS}\", error=\"invalid_token\", error_description=\"a DPoP-bound token must be sent with the DPoP scheme and a proof\""
        )
    );
    assert_eq!(body["error"]["data"]["reason"], "bound_token_as_bearer");
    assert_eq!(
        t.upstream_requests(),
        before,
        "nothing reaches the upstream"
    );
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_dpop_bound_token_with_a_proof_of_another_key_is_refused() {
    let t = proxy_trusting(&[idp().issuers[0].as_str()]).await;
    let key = DpopKey::generate();
    let token = dpop_bound_token(&t, &key).await;

    let thief = DpopKey::generate();
    let before = t.upstream_requests();
    let (status, headers, body) = send_with_proof(&t, &thief, &token, initialize(), None).await;
    assert_eq!(status, 401, "{body}");
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    assert_eq!(
        header(&headers, "www-authenticate"),
        format!(
            "DPoP resource_metadata=\"{metadata}\", algs=\"{DPOP_ALGS}\", error=\"invalid_dpop_proof\", error_description=\"proof key is not the key the token is bound to\""
        )
    );
    assert_eq!(body["error"]["data"]["reason"], "invalid_dpop_proof");
    assert_eq!(
        t.upstream_requests(),
        before,
        "nothing reaches the upstream"
    );
}
