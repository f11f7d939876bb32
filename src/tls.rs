//! TLS: the rustls server configuration from PEM files, and the one crypto provider the process
//! uses (aws-lc-rs), for the listener and every outbound connection alike.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider for every TLS config built here. Passed explicitly rather than installed as
/// the process default, so a library user's own default is never overwritten.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
