//! Certificate-bound tokens from `oidc-provider` (RFC 8705): the IdP binds the token to the
//! client certificate it is shown (as a TLS-terminating proxy in front of it would pass it on,
//! in a header), and the proxy, asking for client certificates (`listen.tls.client_ca`), lets the
//! token in only over a connection that presents that certificate.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use scopegate_testkit::certs::ClientCert;
use serde_json::json;

use super::common::{Options, TestSystem, header, read};
use super::{SECRET, SECRET_ENV, auth_table, escape, idp, initialize, jwt_claims, proxy_trusting};

/// The header `tests/node/oidc_provider.mjs` reads the client certificate from (nginx's
/// `$ssl_client_escaped_cert`: the PEM, URL-encoded).
const CLIENT_CERT_HEADER: &str = "x-ssl-client-cert";

/// The proxy trusting the first issuer, asking every client for a certificate of the test CA.
async fn proxy_on_mutual_tls() -> TestSystem {
    super::common::start_with(Options {
        auth_table: Some(auth_table(&[idp().issuers[0].as_str()])),
        env: vec![(SECRET_ENV.into(), SECRET.into())],
        client_ca: true,
        ..Options::default()
    })
    .await
}

/// A token from the first issuer for `mtls-agent`, bound to `cert`.
async fn certificate_bound_token(t: &TestSystem, cert: &ClientCert) -> String {
    let idp = idp();
    let body = idp
        .token_response(
            &idp.issuers[0],
            "mtls-agent",
            &t.system.resource,
            "customer:read",
            &[(CLIENT_CERT_HEADER, escape(&cert.cert_pem))],
        )
        .await;
    let token = body["access_token"].as_str().unwrap().to_string();
    // RFC 8705 §3.1, computed here from the certificate's DER: the IdP bound the token to it.
    let thumbprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &cert.der);
    assert_eq!(
        jwt_claims(&token)["cnf"],
        json!({ "x5t#S256": URL_SAFE_NO_PAD.encode(thumbprint.as_ref()) })
    );
    token
}

/// A client that trusts the test CA and presents `cert`.
fn client_presenting(t: &TestSystem, cert: &ClientCert) -> reqwest::Client {
    let ca = std::fs::read(&t.system.certs.ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .identity(reqwest::Identity::from_pem(cert.identity_pem().as_bytes()).unwrap())
        .no_proxy()
        .build()
        .unwrap()
}

/// POSTs `body` with `token` as Bearer from `client`.
async fn send(
    t: &TestSystem,
    client: &reqwest::Client,
    token: &str,
    body: String,
    session: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut request = client
        .post(t.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .body(body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    read(request.send().await.unwrap()).await
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_certificate_bound_token_over_a_connection_with_that_certificate_reaches_the_tool() {
    let t = proxy_on_mutual_tls().await;
    let cert = t.system.ca.client_cert("agent").unwrap();
    let token = certificate_bound_token(&t, &cert).await;
    let client = client_presenting(&t, &cert);

    let (status, headers, body) = send(&t, &client, &token, initialize(), None).await;
    assert_eq!(status, 200, "{body}");
    let session = header(&headers, "mcp-session-id").to_string();
    let before = t.upstream_requests();
    let call = TestSystem::tool_call("get_customer_info", 2);
    let (status, _, body) = send(&t, &client, &token, call, Some(&session)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("C001"), "{body}");
    assert!(t.upstream_requests() > before);
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_certificate_bound_token_over_a_connection_with_another_certificate_is_refused() {
    let t = proxy_on_mutual_tls().await;
    let cert = t.system.ca.client_cert("agent").unwrap();
    let token = certificate_bound_token(&t, &cert).await;
    // A certificate of the same CA, so the handshake passes: only the binding tells them apart.
    let thief = client_presenting(&t, &t.system.ca.client_cert("agent").unwrap());

    let before = t.upstream_requests();
    let (status, headers, body) = send(&t, &thief, &token, initialize(), None).await;
    assert_eq!(status, 401, "{body}");
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    assert_eq!(
        header(&headers, "www-authenticate"),
        format!(
            "Bearer resource_metadata=\"{metadata}\", error=\"invalid_token\", error_description=\"token is bound to another client certificate\""
        )
    );
    assert_eq!(body["error"]["data"]["reason"], "certificate_mismatch");
    assert_eq!(
        t.upstream_requests(),
        before,
        "nothing reaches the upstream"
    );
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_certificate_bound_token_is_refused_where_no_client_certificate_is_asked_for() {
    // No `client_ca`: the listener asks for no certificate, so the client presents none even
    // though it holds the right one, and the binding cannot be checked.
    let mut t = proxy_trusting(&[idp().issuers[0].as_str()]).await;
    let cert = t.system.ca.client_cert("agent").unwrap();
    let token = certificate_bound_token(&t, &cert).await;
    t.http = client_presenting(&t, &cert);

    let (status, challenge, body) = super::refused(&t, &format!("Bearer {token}")).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        challenge.ends_with(
            "error=\"invalid_token\", error_description=\"token is bound to a client certificate; this connection presented none\""
        ),
        "{challenge}"
    );
    assert_eq!(body["error"]["data"]["reason"], "no_client_certificate");
}
