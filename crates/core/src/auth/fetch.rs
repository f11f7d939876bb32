//! One bounded GET of a JSON document (key set, authorization server metadata): timeout, status
//! and size checked. Owns nothing about what the document means.

use std::time::Duration;

use bytes::Bytes;
use http::header::ACCEPT;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full, Limited};

use crate::client::HttpClient;

/// Largest document accepted. Real key sets are a few KiB; this bounds memory if an IdP (or
/// whatever answers in its place) sends something else.
pub(super) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// GETs `url` and returns the response headers and body. Redirects are not followed (the client
/// does not, and a 3xx counts as a failure): key sources are configured or discovered exactly.
/// Errors are descriptions for logs; they name the URL.
pub(super) async fn get_json(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
) -> Result<(HeaderMap, Bytes), String> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header(ACCEPT, "application/json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("{url}: bad request URL: {e}"))?;
    let fetch = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            return Err(format!("{url}: status {}", parts.status));
        }
        let body = Limited::new(body, MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{url}: reading body: {e}"))?
            .to_bytes();
        Ok((parts.headers, body))
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
}
