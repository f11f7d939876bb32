//! DPoP (RFC 9449) through the proxy: bound tokens from the dev issuer, proofs signed by a
//! client key, and each way a proof or a presentation can be wrong. Every refusal is a 401 with
//! a `DPoP` challenge that reached nothing upstream.

use scopegate_core::auth::DPOP_ALGS;
use scopegate_testkit::dpop_key::DpopKey;
use serde_json::{Value, json};

use super::common::{self, Options, TestSystem, header, read};
use super::{Refusal, assert_refused};

fn initialize() -> String {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }
    })
    .to_string()
}

/// A token bound to `key` with these scopes.
fn bound_token(t: &TestSystem, key: &DpopKey, scopes: &[&str]) -> String {
    let issuer = &t.system.issuer;
    let mut claims = issuer.claims_for("dpop-client", scopes);
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    issuer.mint(claims)
}

/// POSTs `body` with `Authorization: DPoP <token>` and the given proofs.
async fn send(
    t: &TestSystem,
    token: &str,
    proofs: &[&str],
    body: String,
    session: Option<&str>,
) -> (u16, String, Value, reqwest::header::HeaderMap) {
    let mut request = t
        .post(None, body)
        .header("authorization", format!("DPoP {token}"));
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let (status, headers, body) = read(request.send().await.unwrap()).await;
    (
        status,
        header(&headers, "www-authenticate").to_string(),
        body,
        headers,
    )
}

/// Asserts a 401 with a `DPoP` challenge carrying `error` and `description`, the body's
/// `reason`, and that nothing reached the upstream.
async fn assert_dpop_refusal(
    t: &TestSystem,
    token: &str,
    proofs: &[&str],
    error: &str,
    description: &str,
    reason: &str,
) {
    let before = t.upstream_requests();
    let (status, challenge, body, _) = send(t, token, proofs, initialize(), None).await;
    assert_eq!(status, 401, "{description}: {body}");
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    assert_eq!(
        challenge,
        format!(
            "DPoP resource_metadata=\"{metadata}\", algs=\"{DPOP_ALGS}\", error=\"{error}\", error_description=\"{description}\""
        )
    );
    assert_eq!(body["error"]["data"]["reason"], reason, "{description}");
    assert_eq!(
        t.upstream_requests(),
        before,
        "{description}: nothing reaches the upstream"
    );
}

#[tokio::test]
async fn a_bound_token_with_a_fresh_proof_per_request_reaches_the_tool() {
    let t = common::start().await;
    let key = DpopKey::generate();
    let token = bound_token(&t, &key, &["customer:read"]);
    let url = t.url().to_string();
    let (status, _, body, headers) = send(
        &t,
        &token,
        &[&key.proof("POST", &url, &token)],
        initialize(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let session = header(&headers, "mcp-session-id").to_string();
    // The cached token still needs a new proof on its next request.
    let call = TestSystem::tool_call("get_customer_info", 2);
    let (status, _, body, _) = send(
        &t,
        &token,
        &[&key.proof("POST", &url, &token)],
        call,
        Some(&session),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("C001"), "{body}");
}

#[tokio::test]
async fn each_wrong_proof_is_refused_with_a_dpop_challenge() {
    let t = common::start().await;
    let key = DpopKey::generate();
    let other = DpopKey::generate();
    let token = bound_token(&t, &key, &["customer:read"]);
    let url = t.url().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut claims = key.claims("POST", &url, &token);
        edit(&mut claims);
        key.sign(key.header(), claims)
    };
    let with_header = |edit: &dyn Fn(&mut Value)| {
        let mut header = key.header();
        edit(&mut header);
        key.sign(header, key.claims("POST", &url, &token))
    };
    let private = {
        let mut jwk = key.public_jwk();
        jwk["d"] = json!("AAAA");
        jwk
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with(&|c| c["htm"] = json!("GET")),
            "proof htm is not this request's method",
        ),
        (
            with(&|c| c["htu"] = json!("https://elsewhere.example.com/mcp")),
            "proof htu is not this resource",
        ),
        (
            with(&|c| c["htu"] = json!(url.replace("/mcp", "/other"))),
            "proof htu is not this resource",
        ),
        (
            with(&|c| c["iat"] = json!(now - 600)),
            "proof iat is outside the accepted window",
        ),
        (
            with(&|c| c["iat"] = json!(now + 600)),
            "proof iat is outside the accepted window",
        ),
        (
            with(&|c| c["ath"] = json!("not-the-hash")),
            "proof ath is not this token's hash",
        ),
        (
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "proof has no usable jti",
        ),
        (
            other.proof("POST", &url, &token),
            "proof key is not the key the token is bound to",
        ),
        (
            with_header(&|h| h["typ"] = json!("JWT")),
            "proof typ must be dpop+jwt",
        ),
        (
            with_header(&|h| h["alg"] = json!("HS256")),
            "proof alg not accepted",
        ),
        (
            with_header(&|h| h["jwk"] = private.clone()),
            "proof jwk holds a private key",
        ),
        (
            with_header(&|h| {
                h.as_object_mut().unwrap().remove("jwk");
            }),
            "proof has no jwk",
        ),
        (
            // Another key's signature under this key's header.
            {
                let good = key.proof("POST", &url, &token);
                let forged = other.proof("POST", &url, &token);
                let (head, _) = good.rsplit_once('.').unwrap();
                format!("{head}.{}", forged.rsplit_once('.').unwrap().1)
            },
            "proof signature does not verify",
        ),
        ("not-a-jws".to_string(), "proof is not a compact JWS"),
    ];
    for (proof, description) in &cases {
        assert_dpop_refusal(
            &t,
            &token,
            &[proof],
            "invalid_dpop_proof",
            description,
            "invalid_dpop_proof",
        )
        .await;
    }
    assert_dpop_refusal(
        &t,
        &token,
        &[],
        "invalid_dpop_proof",
        "no DPoP proof",
        "invalid_dpop_proof",
    )
    .await;
    let one = key.proof("POST", &url, &token);
    let two = key.proof("POST", &url, &token);
    assert_dpop_refusal(
        &t,
        &token,
        &[&one, &two],
        "invalid_dpop_proof",
        "more than one DPoP proof",
        "invalid_dpop_proof",
    )
    .await;
}

#[tokio::test]
async fn a_proof_is_accepted_once() {
    let t = common::start().await;
    let key = DpopKey::generate();
    let token = bound_token(&t, &key, &[]);
    let proof = key.proof("POST", t.url(), &token);
    let (status, _, body, _) = send(&t, &token, &[&proof], initialize(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_dpop_refusal(
        &t,
        &token,
        &[&proof],
        "invalid_dpop_proof",
        "proof already used",
        "invalid_dpop_proof",
    )
    .await;
}

#[tokio::test]
async fn a_bound_token_sent_as_bearer_is_refused() {
    let t = common::start().await;
    let key = DpopKey::generate();
    let token = bound_token(&t, &key, &["customer:read"]);
    let before = t.upstream_requests();
    let response = t
        .post(Some(&token), initialize())
        .header("dpop", key.proof("POST", t.url(), &token))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, 401);
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    assert_eq!(
        header(&headers, "www-authenticate"),
        format!(
            "DPoP resource_metadata=\"{metadata}\", algs=\"{DPOP_ALGS}\", error=\"invalid_token\", error_description=\"a DPoP-bound token must be sent with the DPoP scheme and a proof\""
        )
    );
    assert_eq!(body["error"]["data"]["reason"], "bound_token_as_bearer");
    assert_eq!(t.upstream_requests(), before);
}

#[tokio::test]
async fn an_unbound_token_sent_with_the_dpop_scheme_is_refused() {
    let t = common::start().await;
    let key = DpopKey::generate();
    let token = t.token(&["customer:read"]);
    let proof = key.proof("POST", t.url(), &token);
    assert_dpop_refusal(
        &t,
        &token,
        &[&proof],
        "invalid_token",
        "token is not DPoP-bound",
        "not_dpop_bound",
    )
    .await;
}

#[tokio::test]
async fn a_refused_bearer_token_is_also_offered_the_dpop_scheme() {
    let t = common::start().await;
    let response = t.post(None, initialize()).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenges: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    assert_eq!(
        challenges,
        vec![
            format!("Bearer resource_metadata=\"{metadata}\""),
            format!("DPoP resource_metadata=\"{metadata}\", algs=\"{DPOP_ALGS}\""),
        ]
    );
}

#[tokio::test]
async fn dpop_required_refuses_bearer_tokens_and_says_so_in_the_metadata() {
    let t = common::start_with(Options {
        auth_settings: "dpop = \"required\"".into(),
        ..Options::default()
    })
    .await;
    let token = t.token(&["customer:read"]);
    let before = t.upstream_requests();
    let (status, headers, body) =
        read(t.post(Some(&token), initialize()).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(
        header(&headers, "www-authenticate").starts_with("DPoP resource_metadata="),
        "{headers:?}"
    );
    assert!(
        header(&headers, "www-authenticate").ends_with(
            "error=\"invalid_token\", error_description=\"this issuer's tokens must be DPoP-bound\""
        ),
        "{headers:?}"
    );
    assert_eq!(body["error"]["data"]["reason"], "dpop_required");
    assert_eq!(t.upstream_requests(), before);

    let metadata: Value = t
        .http
        .get(scopegate_core::metadata::url_for(&t.system.resource))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["dpop_bound_access_tokens_required"], true);
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(DPOP_ALGS.split(' ').collect::<Vec<_>>())
    );

    // A bound token with its proof is what passes.
    let key = DpopKey::generate();
    let token = bound_token(&t, &key, &[]);
    let (status, _, body, _) = send(
        &t,
        &token,
        &[&key.proof("POST", t.url(), &token)],
        initialize(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn dpop_off_refuses_the_dpop_scheme_and_bound_tokens() {
    let t = common::start_with(Options {
        auth_settings: "dpop = \"off\"".into(),
        ..Options::default()
    })
    .await;
    let key = DpopKey::generate();
    let token = bound_token(&t, &key, &[]);
    let proof = key.proof("POST", t.url(), &token);
    assert_dpop_refusal(
        &t,
        &token,
        &[&proof],
        "invalid_token",
        "DPoP is not accepted for this issuer's tokens",
        "dpop_not_accepted",
    )
    .await;
    assert_refused(
        &t,
        "the bound token as Bearer where DPoP is off",
        t.post(Some(&token), initialize()),
        &token,
        Refusal::bearer(
            "DPoP is not accepted for this issuer's tokens",
            "dpop_not_accepted",
        ),
    )
    .await;
}

#[tokio::test]
async fn a_token_bound_by_a_method_not_checked_is_refused_rather_than_taken_as_bearer() {
    let t = common::start().await;
    // RFC 7800 `cnf.kid`: a key the proxy would have to look up somewhere.
    let token = t.token_with(&["customer:read"], |c| {
        c["cnf"] = json!({ "kid": "holder-key-1" })
    });
    assert_refused(
        &t,
        "a token bound by cnf.kid",
        t.post(Some(&token), initialize()),
        &token,
        Refusal::bearer(
            "token is bound to its holder in a way this proxy does not check",
            "unsupported_binding",
        ),
    )
    .await;
}

#[tokio::test]
async fn an_opaque_token_is_bound_through_the_cnf_of_its_introspection_answer() {
    let t = common::start_with(super::introspection::introspecting("")).await;
    let key = DpopKey::generate();
    let mut claims = t.system.issuer.claims_for("dpop-client", &[]);
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    let token = t.system.issuer.mint_opaque(claims);
    let proof = key.proof("POST", t.url(), &token);
    let (status, _, body, _) = send(&t, &token, &[&proof], initialize(), None).await;
    assert_eq!(status, 200, "{body}");

    assert_refused(
        &t,
        "an introspected DPoP-bound token as Bearer",
        t.post(Some(&token), initialize()),
        &token,
        Refusal::dpop(
            "invalid_token",
            "a DPoP-bound token must be sent with the DPoP scheme and a proof",
            "bound_token_as_bearer",
        ),
    )
    .await;
}

#[tokio::test]
async fn with_server_nonces_a_proof_without_one_is_answered_with_a_nonce_to_retry_with() {
    let t = common::start_with(Options {
        auth_settings: "dpop_nonce = true".into(),
        ..Options::default()
    })
    .await;
    let key = DpopKey::generate();
    let token = bound_token(&t, &key, &[]);
    let url = t.url().to_string();
    let before = t.upstream_requests();
    let (status, challenge, body, headers) = send(
        &t,
        &token,
        &[&key.proof("POST", &url, &token)],
        initialize(),
        None,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    assert_eq!(
        challenge,
        format!(
            "DPoP resource_metadata=\"{metadata}\", algs=\"{DPOP_ALGS}\", error=\"use_dpop_nonce\", error_description=\"a fresh DPoP nonce is required\""
        )
    );
    assert_eq!(body["error"]["data"]["reason"], "use_dpop_nonce");
    assert_eq!(t.upstream_requests(), before);
    let nonce = header(&headers, "dpop-nonce").to_string();
    assert!(!nonce.is_empty());

    // A made-up nonce is no better than none.
    let mut claims = key.claims("POST", &url, &token);
    claims["nonce"] = json!("made-up");
    let (status, _, body, _) = send(
        &t,
        &token,
        &[&key.sign(key.header(), claims)],
        initialize(),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["data"]["reason"].as_str()),
        (401, Some("use_dpop_nonce"))
    );
    assert_eq!(t.upstream_requests(), before);

    // The proxy's own nonce is accepted.
    let mut claims = key.claims("POST", &url, &token);
    claims["nonce"] = json!(nonce);
    let (status, _, body, _) = send(
        &t,
        &token,
        &[&key.sign(key.header(), claims)],
        initialize(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn an_idp_failure_is_a_503_for_a_dpop_token_too() {
    let t = common::start_with(super::introspection::introspecting("")).await;
    t.system.issuer.set_introspection_down(true);
    let key = DpopKey::generate();
    let mut claims = t.system.issuer.claims_for("dpop-client", &[]);
    claims["cnf"] = json!({ "jkt": key.thumbprint() });
    let token = t.system.issuer.mint_opaque(claims);
    let before = t.upstream_requests();
    let proof = key.proof("POST", t.url(), &token);
    let (status, _, body, headers) = send(&t, &token, &[&proof], initialize(), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(header(&headers, "retry-after"), "5");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(t.upstream_requests(), before);
}
