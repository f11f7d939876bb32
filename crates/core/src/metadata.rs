//! RFC 9728 protected-resource metadata: the document, where it is served, and the URL that every
//! `WWW-Authenticate` challenge points to.

use bytes::Bytes;
use serde::Serialize;

/// The well-known path prefix of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

#[derive(Serialize)]
struct Document<'a> {
    resource: &'a str,
    authorization_servers: &'a [String],
    scopes_supported: Vec<&'a str>,
    bearer_methods_supported: [&'static str; 1],
    /// RFC 9449 §5.1 / RFC 9728 §2: the proof algorithms accepted, when DPoP is.
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_signing_alg_values_supported: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dpop_bound_access_tokens_required: Option<bool>,
    /// RFC 8705 §3.4 / RFC 9728 §2: certificate-bound tokens are checked; absent means `false`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls_client_certificate_bound_access_tokens: bool,
}

/// How this resource checks sender-constrained tokens, as the metadata says it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Binding {
    /// `None` when no issuer accepts DPoP, else whether every issuer requires DPoP-bound tokens.
    pub dpop: Option<bool>,
    /// Whether the listener asks for client certificates (`listen.tls.client_ca`), so that
    /// certificate-bound tokens (RFC 8705) can be checked.
    pub certificate_bound: bool,
}

/// Renders the document once per policy, so serving it costs a refcount.
pub fn document(
    resource: &str,
    authorization_servers: &[String],
    scopes: Vec<&str>,
    binding: Binding,
) -> Bytes {
    let dpop = binding.dpop;
    let document = Document {
        resource,
        authorization_servers,
        scopes_supported: scopes,
        // Tokens only in the Authorization header: never a query string (it lands in logs) nor a
        // form body (the body is JSON-RPC).
        bearer_methods_supported: ["header"],
        dpop_signing_alg_values_supported: dpop
            .map(|_| crate::auth::DPOP_ALGS.split(' ').collect()),
        dpop_bound_access_tokens_required: dpop,
        tls_client_certificate_bound_access_tokens: binding.certificate_bound,
    };
    Bytes::from(serde_json::to_vec_pretty(&document).unwrap_or_default())
}

/// The metadata URL for a resource identifier: the well-known prefix inserted between host and
/// path (RFC 9728 §3.1), e.g. `https://h/mcp` → `https://h/.well-known/oauth-protected-resource/mcp`.
pub fn url_for(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("https", resource));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let path = path.trim_end_matches('/');
    format!("{scheme}://{authority}{WELL_KNOWN}{path}")
}

/// The paths on this listener that serve the document: the bare well-known path, and the
/// path-inserted forms for the resource's own path and the MCP path (they differ when the proxy
/// is reached under another prefix than the resource identifier names).
pub fn paths(resource: &str, mcp_path: &str) -> Vec<String> {
    let resource_path = url_for(resource);
    let resource_path = resource_path
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| WELL_KNOWN.to_string());
    let mut paths = vec![
        WELL_KNOWN.to_string(),
        resource_path,
        format!("{WELL_KNOWN}{mcp_path}"),
    ];
    paths.sort();
    paths.dedup();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_the_well_known_prefix() {
        assert_eq!(
            url_for("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            url_for("https://mcp.example.com"),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn document_is_served_at_bare_and_path_inserted_forms() {
        assert_eq!(
            paths("https://mcp.example.com/mcp", "/mcp"),
            vec![
                "/.well-known/oauth-protected-resource".to_string(),
                "/.well-known/oauth-protected-resource/mcp".to_string(),
            ]
        );
    }
}
