//! Finding the key set's URL from the issuer: OpenID Connect Discovery
//! (`{issuer}/.well-known/openid-configuration`), then RFC 8414 authorization server metadata
//! (`/.well-known/oauth-authorization-server` inserted before the issuer's path). Owns the URLs
//! and the document's checks; the caller (`jwks.rs`) decides when to run it and caches the result.

use std::time::Duration;

use serde::Deserialize;

use super::fetch;
use crate::client::HttpClient;

/// The metadata URLs to try, in order. Errors if the issuer is not an absolute http(s) URL.
pub(super) fn metadata_urls(issuer: &str) -> Result<[String; 2], String> {
    let uri: http::Uri = issuer
        .parse()
        .map_err(|e| format!("issuer is not a URL: {e}"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err("issuer is not an absolute URL".to_owned());
    };
    if scheme != "https" && scheme != "http" {
        return Err("issuer is not an http(s) URL".to_owned());
    }
    if uri.query().is_some() {
        return Err("issuer has a query".to_owned());
    }
    let path = uri.path().trim_end_matches('/');
    let oidc = format!("{scheme}://{authority}{path}/.well-known/openid-configuration");
    let rfc8414 = format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}");
    Ok([oidc, rfc8414])
}

/// Fetches the issuer's metadata and returns its `jwks_uri`. Tries each metadata URL; the error
/// lists why each failed.
pub(super) async fn discover_jwks_uri(
    client: &HttpClient,
    issuer: &str,
    timeout: Duration,
) -> Result<String, String> {
    discover_member(client, issuer, timeout, "jwks_uri").await
}

/// Fetches the issuer's metadata and returns the endpoint URL named by `member` (`jwks_uri`,
/// `introspection_endpoint`). Tries each metadata URL; the error lists why each failed.
pub(super) async fn discover_member(
    client: &HttpClient,
    issuer: &str,
    timeout: Duration,
    member: &'static str,
) -> Result<String, String> {
    let mut errors = Vec::new();
    for url in metadata_urls(issuer)? {
        let result = match fetch::get_json(client, &url, timeout).await {
            Ok((_, body)) => {
                member_from_metadata(&body, issuer, member).map_err(|e| format!("{url}: {e}"))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(found) => {
                tracing::info!(%issuer, member, url = %found, metadata = %url, "discovered endpoint");
                return Ok(found);
            }
            Err(e) => errors.push(e),
        }
    }
    Err(format!("discovery failed: {}", errors.join("; ")))
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    #[serde(flatten)]
    members: serde_json::Map<String, serde_json::Value>,
}

/// Reads `jwks_uri` from a metadata document (see [`member_from_metadata`]).
#[cfg(test)]
pub(super) fn jwks_uri_from_metadata(body: &[u8], issuer: &str) -> Result<String, String> {
    member_from_metadata(body, issuer, "jwks_uri")
}

/// Reads the URL `member` from a metadata document whose `issuer` must equal ours exactly (OIDC
/// Discovery §4.3, RFC 8414 §3.3): otherwise one issuer's document could name another's keys or
/// endpoints.
pub(super) fn member_from_metadata(
    body: &[u8],
    issuer: &str,
    member: &'static str,
) -> Result<String, String> {
    let doc: Metadata =
        serde_json::from_slice(body).map_err(|e| format!("not a metadata document: {e}"))?;
    if doc.issuer != issuer {
        return Err(format!(
            "metadata names issuer {:?}, not {issuer:?}",
            doc.issuer
        ));
    }
    let Some(serde_json::Value::String(found)) = doc.members.get(member) else {
        return Err(format!("not a metadata document: no {member}"));
    };
    let uri: http::Uri = found
        .parse()
        .map_err(|e| format!("{member} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("https") => {}
        // A plain-http endpoint is accepted only from a plain-http issuer (local development).
        Some("http") if issuer.starts_with("http://") => {}
        _ => return Err(format!("{member} must be an https URL")),
    }
    if uri.authority().is_none() {
        return Err(format!("{member} is not an absolute URL"));
    }
    Ok(found.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_for_issuer_without_path() {
        let [oidc, rfc] = metadata_urls("https://idp.example.com").unwrap();
        assert_eq!(
            oidc,
            "https://idp.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc,
            "https://idp.example.com/.well-known/oauth-authorization-server"
        );
        let [oidc, _] = metadata_urls("https://idp.example.com/").unwrap();
        assert_eq!(
            oidc,
            "https://idp.example.com/.well-known/openid-configuration"
        );
    }

    #[test]
    fn metadata_urls_insert_well_known_before_issuer_path() {
        let [oidc, rfc] = metadata_urls("https://h:8443/realms/x").unwrap();
        assert_eq!(
            oidc,
            "https://h:8443/realms/x/.well-known/openid-configuration"
        );
        assert_eq!(
            rfc,
            "https://h:8443/.well-known/oauth-authorization-server/realms/x"
        );
    }

    #[test]
    fn metadata_urls_refuse_non_http_issuers() {
        assert!(metadata_urls("idp.example.com").is_err());
        assert!(metadata_urls("ftp://idp.example.com").is_err());
        assert!(metadata_urls("https://idp.example.com/?tenant=1").is_err());
    }

    #[test]
    fn metadata_must_name_our_issuer() {
        let doc = br#"{"issuer":"https://evil","jwks_uri":"https://evil/keys"}"#;
        assert!(jwks_uri_from_metadata(doc, "https://idp").is_err());
        let doc = br#"{"issuer":"https://idp","jwks_uri":"https://idp/keys"}"#;
        assert_eq!(
            jwks_uri_from_metadata(doc, "https://idp").unwrap(),
            "https://idp/keys"
        );
    }

    #[test]
    fn jwks_uri_must_be_absolute_and_https_for_https_issuers() {
        let doc = br#"{"issuer":"https://idp","jwks_uri":"http://idp/keys"}"#;
        assert!(jwks_uri_from_metadata(doc, "https://idp").is_err());
        let doc = br#"{"issuer":"https://idp","jwks_uri":"/keys"}"#;
        assert!(jwks_uri_from_metadata(doc, "https://idp").is_err());
        let doc = br#"{"issuer":"http://127.0.0.1:1","jwks_uri":"http://127.0.0.1:1/keys"}"#;
        assert!(jwks_uri_from_metadata(doc, "http://127.0.0.1:1").is_ok());
        assert!(jwks_uri_from_metadata(br#"{"issuer":"https://idp"}"#, "https://idp").is_err());
        assert!(jwks_uri_from_metadata(b"<html>", "https://idp").is_err());
    }
}
