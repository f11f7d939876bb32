//! The outbound HTTP client: one pooled hyper-util client, shared by the upstream forwarder and the
//! JWKS fetcher. Owns connector settings (TLS roots, `TCP_NODELAY`); not what is sent.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The client type every outbound request goes through.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How long a pooled connection may sit idle; shorter than the 60–90 s idle timeouts that common
/// upstream servers use, so the pool drops a connection before the server does.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the client. `extra_ca` adds a PEM bundle to the embedded web PKI roots, for an IdP or
/// upstream behind a private CA.
pub fn build(extra_ca: Option<&Path>, connect_timeout: Duration) -> anyhow::Result<HttpClient> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("{}: cannot read CA bundle", path.display()))?
        {
            let cert = cert.with_context(|| format!("{}: bad PEM certificate", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("{}: unusable CA certificate", path.display()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let mut http = HttpConnector::new();
    // Nagle's algorithm put a 34 ms tail on proxied requests in our measurements; hyper-util leaves
    // it on by default.
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));

    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(connector))
}
