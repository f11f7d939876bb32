//! Certificate-bound tokens (RFC 8705 §3) through the proxy on mutual TLS: client certificates
//! signed by the test CA, tokens whose `cnf["x5t#S256"]` names one, computed here from the
//! certificate's DER on its own (not by the proxy's code). Every refusal is a 401 with a
//! challenge, and reaches nothing upstream.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use scopegate_testkit::certs::ClientCert;
use scopegate_testkit::dpop_key::DpopKey;
use serde_json::{Value, json};

use super::common::{self, Options, TestSystem, header, read, session_call};
use super::{Refusal, assert_refused, send_refused};

fn mutual_tls() -> Options {
    Options {
        client_ca: true,
        ..Options::default()
    }
}

/// RFC 8705 §3.1: base64url (no padding) of the SHA-256 of the certificate's DER.
pub(crate) fn x5t_s256(cert: &ClientCert) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert.der);
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// A client that trusts the test CA and presents `cert` when asked for one.
pub(crate) fn client_with(t: &TestSystem, cert: &ClientCert) -> reqwest::Client {
    let ca = std::fs::read(&t.system.certs.ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .identity(reqwest::Identity::from_pem(cert.identity_pem().as_bytes()).unwrap())
        .no_proxy()
        .build()
        .unwrap()
}

/// A token for these scopes bound by `cnf`.
fn bound_token(t: &TestSystem, cnf: Value, scopes: &[&str]) -> String {
    t.token_with(scopes, |claims| claims["cnf"] = cnf)
}

/// A `customer:read` token bound to `cert` alone.
fn token_bound_to(t: &TestSystem, cert: &ClientCert) -> String {
    bound_token(t, json!({ "x5t#S256": x5t_s256(cert) }), &["customer:read"])
}

fn initialize() -> String {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }
    })
    .to_string()
}

/// An `initialize` with `authorization`, and a `DPoP` proof when given.
fn initialize_with(
    t: &TestSystem,
    authorization: &str,
    proof: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = t
        .post(None, initialize())
        .header("authorization", authorization);
    match proof {
        Some(proof) => request.header("dpop", proof),
        None => request,
    }
}

/// The refusal of a certificate-bound token over a connection that presented no certificate.
pub(crate) const NO_CLIENT_CERTIFICATE: Refusal<'static> = Refusal {
    status: 401,
    scheme: "Bearer",
    error: "invalid_token",
    description: "token is bound to a client certificate; this connection presented none",
    reason: "no_client_certificate",
};

#[tokio::test]
async fn a_token_bound_to_the_connections_certificate_reaches_the_tool() {
    let mut t = common::start_with(mutual_tls()).await;
    let cert = t.system.ca.client_cert("agent").unwrap();
    t.http = client_with(&t, &cert);
    let token = token_bound_to(&t, &cert);
    let (status, body) = session_call(&t, &token, "get_customer_info", 3).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("C001"), "{body}");

    // An unbound token still passes as a bearer token over the same mutual TLS.
    let (status, body) =
        session_call(&t, &t.token(&["customer:read"]), "get_customer_info", 4).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_token_bound_to_another_certificate_is_refused_with_a_challenge() {
    let mut t = common::start_with(mutual_tls()).await;
    let holder = t.system.ca.client_cert("holder").unwrap();
    let thief = t.system.ca.client_cert("thief").unwrap();
    t.http = client_with(&t, &thief);
    let token = token_bound_to(&t, &holder);

    let request = initialize_with(&t, &format!("Bearer {token}"), None);
    let expected = Refusal::bearer(
        "token is bound to another client certificate",
        "certificate_mismatch",
    );
    assert_refused(&t, "thief", request, &token, expected).await;

    let metrics = common::scrape(&t).await;
    assert_eq!(
        common::sample(
            &metrics,
            "scopegate_auth_failures_total{reason=\"certificate_mismatch\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_certificate_bound_token_is_refused_where_no_client_certificate_is_asked_for() {
    // No `client_ca`: the listener asks for no certificate, so even a client that holds the
    // right one presents none, and the binding cannot be checked.
    let mut t = common::start().await;
    let cert = t.system.ca.client_cert("agent").unwrap();
    t.http = client_with(&t, &cert);
    let token = token_bound_to(&t, &cert);

    let request = initialize_with(&t, &format!("Bearer {token}"), None);
    assert_refused(&t, "no certificate", request, &token, NO_CLIENT_CERTIFICATE).await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_at_the_handshake() {
    let t = common::start_with(mutual_tls()).await;
    let cert = t.system.ca.client_cert("agent").unwrap();
    let token = token_bound_to(&t, &cert);
    let before = t.upstream_requests();
    // `t.http` trusts the CA but has no identity.
    let outcome = t.post(Some(&token), initialize()).send().await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert_eq!(
        t.upstream_requests(),
        before,
        "nothing reaches the upstream"
    );
}

#[tokio::test]
async fn a_token_bound_to_a_certificate_and_a_dpop_key_needs_both() {
    let mut t = common::start_with(mutual_tls()).await;
    let holder = t.system.ca.client_cert("holder").unwrap();
    let thief = t.system.ca.client_cert("thief").unwrap();
    let key = DpopKey::generate();
    let token = bound_token(
        &t,
        json!({ "x5t#S256": x5t_s256(&holder), "jkt": key.thumbprint() }),
        &["customer:read"],
    );
    let url = t.url().to_string();
    let dpop = format!("DPoP {token}");

    // The right proof on the wrong connection: refused for the certificate, and the proof is
    // not used up by the refusal.
    t.http = client_with(&t, &thief);
    let proof = key.proof("POST", &url, &token);
    let expected = Refusal::dpop(
        "invalid_token",
        "token is bound to another client certificate",
        "certificate_mismatch",
    );
    let request = initialize_with(&t, &dpop, Some(&proof));
    assert_refused(
        &t,
        "right proof, wrong certificate",
        request,
        &token,
        expected,
    )
    .await;

    // The right connection without a proof: refused for the proof.
    t.http = client_with(&t, &holder);
    let (status, headers, body) = send_refused(&t, initialize_with(&t, &dpop, None)).await;
    assert_eq!(status, 401, "{body}");
    let challenge = header(&headers, "www-authenticate");
    assert!(
        challenge.contains("error=\"invalid_dpop_proof\""),
        "{challenge}"
    );

    // Both: the same proof as above, now accepted.
    let response = t
        .post(None, initialize())
        .header("authorization", &dpop)
        .header("dpop", &proof)
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(!header(&headers, "mcp-session-id").is_empty());
}

#[tokio::test]
async fn an_introspected_token_is_bound_through_the_cnf_of_its_answer() {
    let mut t = common::start_with(Options {
        client_ca: true,
        ..super::introspection::introspecting("")
    })
    .await;
    let holder = t.system.ca.client_cert("holder").unwrap();
    let thief = t.system.ca.client_cert("thief").unwrap();
    let mut claims = t
        .system
        .issuer
        .claims_for("opaque-caller", &["customer:read"]);
    claims["cnf"] = json!({ "x5t#S256": x5t_s256(&holder) });
    let token = t.system.issuer.mint_opaque(claims);

    t.http = client_with(&t, &thief);
    let request = initialize_with(&t, &format!("Bearer {token}"), None);
    let (status, _, body) = send_refused(&t, request).await;
    assert_eq!(
        (status, body["error"]["data"]["reason"].as_str()),
        (401, Some("certificate_mismatch"))
    );

    t.http = client_with(&t, &holder);
    let response = t.post(Some(&token), initialize()).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_metadata_says_certificate_bound_tokens_are_checked_only_with_a_client_ca() {
    let mut t = common::start_with(mutual_tls()).await;
    t.http = client_with(&t, &t.system.ca.client_cert("agent").unwrap());
    let url = scopegate_core::metadata::url_for(&t.system.resource);
    let document: Value = t.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(document["tls_client_certificate_bound_access_tokens"], true);

    let t = common::start().await;
    let url = scopegate_core::metadata::url_for(&t.system.resource);
    let document: Value = t.http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        document.get("tls_client_certificate_bound_access_tokens"),
        None,
        "{document}"
    );
}

#[tokio::test]
async fn with_optional_client_certificates_a_bound_token_still_needs_its_certificate() {
    let mut t = common::start_with(Options {
        client_ca: true,
        tls_settings: "require_client_cert = false".into(),
        ..Options::default()
    })
    .await;
    let cert = t.system.ca.client_cert("agent").unwrap();
    let token = token_bound_to(&t, &cert);

    // `t.http` presents no certificate: let in, with an unbound token only.
    let (status, body) =
        session_call(&t, &t.token(&["customer:read"]), "get_customer_info", 3).await;
    assert_eq!(status, 200, "{body}");
    let request = initialize_with(&t, &format!("Bearer {token}"), None);
    assert_refused(&t, "no certificate", request, &token, NO_CLIENT_CERTIFICATE).await;

    t.http = client_with(&t, &cert);
    let (status, body) = session_call(&t, &token, "get_customer_info", 4).await;
    assert_eq!(status, 200, "{body}");
}
