//! One bounded request for a JSON document (GET: key set, authorization server metadata; POST of
//! a form: token introspection): timeout, status and size checked. Owns nothing about what the
//! document means.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
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
    send(client, request, url, timeout).await
}

/// POSTs `form` (already `application/x-www-form-urlencoded`) to `url`, with `authorization`
/// when given; as [`get_json`] otherwise. Errors never include the form, which holds a token.
pub(super) async fn post_form(
    client: &HttpClient,
    url: &str,
    authorization: Option<&http::HeaderValue>,
    form: String,
    timeout: Duration,
) -> Result<(HeaderMap, Bytes), String> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    let request = request
        .body(Full::new(Bytes::from(form)))
        .map_err(|e| format!("{url}: bad request URL: {e}"))?;
    send(client, request, url, timeout).await
}

async fn send(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    url: &str,
    timeout: Duration,
) -> Result<(HeaderMap, Bytes), String> {
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
