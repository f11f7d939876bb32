//! What authentication reads of a request ([`RequestView`]) and what it returns
//! ([`Attempt`]). Owns the shape of that hand-off; not the checks.

use std::sync::Arc;

use http::request::Parts;

use super::{AuthError, CertThumbprint, Principal};

/// What the authenticator reads of a request: its headers, and for DPoP proofs the method and
/// the URL the client addressed.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub headers: &'a http::HeaderMap,
    pub method: &'a http::Method,
    /// `https` on TLS, `http` on plaintext.
    pub scheme: &'a str,
    /// The request's authority (`:authority`, else `Host`).
    pub authority: Option<&'a str>,
    pub path: &'a str,
    /// This resource's identifier: a proof's `htu` may name it rather than the address the
    /// request arrived at (behind a load balancer the two differ).
    pub resource: &'a str,
    /// The thumbprint of the client certificate the connection presented (taken once at its
    /// handshake), which a certificate-bound token must match (RFC 8705 §3).
    pub client_cert: Option<&'a CertThumbprint>,
}

impl<'a> RequestView<'a> {
    /// The view of a request as it arrived: its authority from `:authority`, else `Host`.
    pub fn of(parts: &'a Parts, scheme: &'a str, resource: &'a str) -> Self {
        let authority = match parts.uri.authority() {
            Some(authority) => Some(authority.as_str()),
            None => parts
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok()),
        };
        RequestView {
            headers: &parts.headers,
            method: &parts.method,
            scheme,
            authority,
            path: parts.uri.path(),
            resource,
            client_cert: None,
        }
    }

    /// Headers alone: enough for bearer tokens; a DPoP proof then matches no URL.
    pub fn headers_only(headers: &'a http::HeaderMap) -> Self {
        RequestView {
            headers,
            method: &http::Method::POST,
            scheme: "https",
            authority: None,
            path: "",
            resource: "",
            client_cert: None,
        }
    }

    /// The same view for a request that arrived on a connection with this client certificate.
    pub fn with_client_cert(self, client_cert: Option<&'a CertThumbprint>) -> Self {
        RequestView {
            client_cert,
            ..self
        }
    }

    pub(super) fn addressed_url(&self) -> Option<String> {
        Some(format!(
            "{}://{}{}",
            self.scheme, self.authority?, self.path
        ))
    }
}

/// One request's authentication: the principal or why not, and the configured issuer the token
/// named, when one was recognised (for the per-issuer metrics and the audit line).
#[derive(Debug)]
pub struct Attempt {
    /// Its index among the configured issuers (`Authenticator::issuer_labels` order).
    pub issuer: Option<usize>,
    pub result: Result<Arc<Principal>, AuthError>,
}
