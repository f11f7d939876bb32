//! Certificate-bound access tokens (RFC 8705 §3): the thumbprint of the client certificate a
//! connection presented, and the check of a token's `cnf["x5t#S256"]` against it. Owns that
//! comparison alone; not the TLS handshake that verified the certificate (`tls.rs`), nor DPoP
//! (`dpop.rs`), nor reading `cnf` (`dpop::check_binding` reads both bindings in one pass).
//!
//! The thumbprint is taken once per connection, when the handshake ends, in the form a token
//! carries it (base64url without padding of the SHA-256 of the certificate's DER), so a request
//! costs a 43-byte comparison and nothing is hashed or decoded per request.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::AuthError;
use super::introspect::sha256;

/// Length of a SHA-256 digest in unpadded base64url.
const ENCODED_LEN: usize = 43;

/// The `x5t#S256` of a client certificate: base64url (no padding) of the SHA-256 of its DER.
/// `Copy`, so it rides along with the connection's other facts into every request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CertThumbprint([u8; ENCODED_LEN]);

impl CertThumbprint {
    /// The thumbprint of the end-entity certificate `der` (the first of the chain the client
    /// sent; the handshake has verified it against `listen.tls.client_ca`).
    pub fn of_der(der: &[u8]) -> CertThumbprint {
        let mut encoded = [0u8; ENCODED_LEN];
        let written = URL_SAFE_NO_PAD
            .encode_slice(sha256(der), &mut encoded)
            .expect("a SHA-256 digest is 43 base64url characters");
        debug_assert_eq!(written, ENCODED_LEN);
        CertThumbprint(encoded)
    }

    pub fn as_str(&self) -> &str {
        // Only base64url characters were written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for CertThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertThumbprint({})", self.as_str())
    }
}

/// A token bound to the certificate `bound` (its `cnf["x5t#S256"]`) came over a connection that
/// presented `presented`. Without one (no `client_ca`, a plaintext listener) the token is refused:
/// a binding that cannot be checked never passes.
pub(super) fn check(bound: &str, presented: Option<&CertThumbprint>) -> Result<(), AuthError> {
    let presented = presented.ok_or(AuthError::NoClientCertificate)?;
    // The thumbprint is not a secret (any peer that saw the certificate can compute it), so a
    // plain comparison is enough.
    if bound.as_bytes() == presented.0 {
        Ok(())
    } else {
        Err(AuthError::CertificateMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_is_the_unpadded_base64url_sha256_of_the_der() {
        // SHA-256("abc") (FIPS 180-2, appendix B.1), base64url without padding.
        assert_eq!(
            CertThumbprint::of_der(b"abc").as_str(),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn only_the_presented_certificates_thumbprint_passes() {
        let presented = CertThumbprint::of_der(b"client certificate");
        assert_eq!(check(presented.as_str(), Some(&presented)), Ok(()));
        let other = CertThumbprint::of_der(b"another certificate");
        assert_eq!(
            check(other.as_str(), Some(&presented)),
            Err(AuthError::CertificateMismatch)
        );
        assert_eq!(
            check(presented.as_str(), None),
            Err(AuthError::NoClientCertificate)
        );
        // Padded, or in standard base64: not the thumbprint as RFC 8705 writes it.
        let padded = format!("{}=", presented.as_str());
        assert_eq!(
            check(&padded, Some(&presented)),
            Err(AuthError::CertificateMismatch)
        );
    }
}
