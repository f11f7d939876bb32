//! TLS: the rustls server configuration from PEM files, and the one crypto provider the process
//! uses (aws-lc-rs), for the listener and every outbound connection alike.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The crypto provider for every TLS config built here. Passed explicitly rather than installed as
/// the process default, so a library user's own default is never overwritten.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The listener's certificate, swappable while connections are served: a renewed pair on disk
/// replaces it for new handshakes, and a broken pair never replaces a good one.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(CertStore {
            current: ArcSwap::new(key),
        })
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Loads a certificate chain and its private key from PEM files and checks that they belong
/// together, so a mismatched pair fails at load rather than at every handshake. Errors name the
/// config key that named the file, so the operator knows which line to fix.
pub fn load_certified_key(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("listen.tls.cert: {}: cannot read", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("listen.tls.cert: {}: bad PEM certificate", cert.display()))?;
    if chain.is_empty() {
        bail!(
            "listen.tls.cert: {}: no certificate in file",
            cert.display()
        );
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("listen.tls.key: {}: no usable private key", key.display()))?;
    let certified =
        CertifiedKey::from_der(chain, key_der, &crypto_provider()).with_context(|| {
            format!(
                "listen.tls.cert, listen.tls.key: {} and {}: unusable pair",
                cert.display(),
                key.display()
            )
        })?;
    Ok(Arc::new(certified))
}

/// The served certificate's notAfter, for the expiry metric.
pub fn not_after(key: &CertifiedKey) -> Option<i64> {
    key.cert
        .first()
        .and_then(|cert| crate::der::certificate_not_after(cert))
}

/// The listener's TLS config: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, and client
/// certificates verified against `client_ca` when one is given (mTLS). `require_client_cert`:
/// whether a client without one is refused at the handshake, or let in (a certificate it does
/// present is still verified).
pub fn server_config(
    certs: Arc<CertStore>,
    client_ca: Option<&Path>,
    require_client_cert: bool,
) -> anyhow::Result<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("listen.tls.client_ca: {}: cannot read", path.display()))?
            {
                roots.add(cert.with_context(|| {
                    format!("listen.tls.client_ca: {}: bad PEM", path.display())
                })?)?;
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider());
            if !require_client_cert {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .with_context(|| format!("listen.tls.client_ca: {}: unusable", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
