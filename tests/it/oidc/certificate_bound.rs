//! Certificate-bound tokens from `oidc-provider` (RFC 8705): the IdP binds the token to the
//! client certificate it is shown (as a TLS-terminating proxy in front of it would pass it on,
//! in a header), and the proxy, asking for client certificates (`listen.tls.client_ca`), lets the
//! token in only over a connection that presents that certificate.

use scopegate_testkit::certs::ClientCert;
use scopegate_testkit::issuer::form_encode;
use serde_json::json;

use super::common::{Options, TestSystem};
use super::{
    SECRET, SECRET_ENV, assert_reaches_the_tool, auth_table, idp, initialize, jwt_claims,
    proxy_trusting_the_first,
};
use crate::issuers::mtls::{NO_CLIENT_CERTIFICATE, client_with, x5t_s256};
use crate::issuers::{Refusal, assert_refused};

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

/// The proxy on mutual TLS, a client certificate of the test CA, and a token bound to it.
async fn proxy_on_mutual_tls_and_bound_token() -> (TestSystem, ClientCert, String) {
    let t = proxy_on_mutual_tls().await;
    let cert = t.system.ca.client_cert("agent").unwrap();
    let token = certificate_bound_token(&t, &cert).await;
    (t, cert, token)
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
            &[(CLIENT_CERT_HEADER, form_encode(&cert.cert_pem))],
        )
        .await;
    let token = body["access_token"].as_str().unwrap().to_string();
    // RFC 8705 §3.1, computed here from the certificate's DER: the IdP bound the token to it.
    assert_eq!(
        jwt_claims(&token)["cnf"],
        json!({ "x5t#S256": x5t_s256(cert) })
    );
    token
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_certificate_bound_token_over_a_connection_with_that_certificate_reaches_the_tool() {
    let (mut t, cert, token) = proxy_on_mutual_tls_and_bound_token().await;
    t.http = client_with(&t, &cert);
    assert_reaches_the_tool(&t, "the holder's certificate", &token).await;
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_certificate_bound_token_over_a_connection_with_another_certificate_is_refused() {
    let (mut t, _, token) = proxy_on_mutual_tls_and_bound_token().await;
    // A certificate of the same CA, so the handshake passes: only the binding tells them apart.
    t.http = client_with(&t, &t.system.ca.client_cert("agent").unwrap());
    let expected = Refusal::bearer(
        "token is bound to another client certificate",
        "certificate_mismatch",
    );
    let request = t.post(Some(&token), initialize());
    assert_refused(&t, "another certificate", request, &token, expected).await;
}

#[tokio::test]
#[ignore = "needs Node and oidc-provider: .ci/interop-node.sh"]
async fn a_certificate_bound_token_is_refused_where_no_client_certificate_is_asked_for() {
    // No `client_ca`: the listener asks for no certificate, so the client presents none even
    // though it holds the right one, and the binding cannot be checked.
    let (_, mut t) = proxy_trusting_the_first().await;
    let cert = t.system.ca.client_cert("agent").unwrap();
    let token = certificate_bound_token(&t, &cert).await;
    t.http = client_with(&t, &cert);
    let request = t.post(Some(&token), initialize());
    assert_refused(
        &t,
        "no certificate asked for",
        request,
        &token,
        NO_CLIENT_CERTIFICATE,
    )
    .await;
}
