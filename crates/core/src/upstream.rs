//! The way to the MCP server: which request headers cross the proxy and in what form, the
//! upstream request built from the client's, and which response headers come back. Not the
//! decision whether a request may go (that was made before anything here runs).

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request};
use http_body_util::Full;

use crate::auth::{CertThumbprint, Principal};
use crate::config::UpstreamConfig;
use crate::http_checks::same_when_underscored;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// Forwarding headers the proxy does not set: what a client says in them is not passed on.
static CLIENT_FORWARDING: [HeaderName; 5] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-forwarded-server"),
];

/// Where requests go, resolved once at start-up so a request only clones it.
#[derive(Debug, Clone)]
pub struct Target {
    uri: Uri,
    host: HeaderValue,
    forward_token: bool,
    identity_headers: Vec<(String, HeaderName)>,
}

/// What the client's connection tells about the request: its address and scheme for
/// `X-Forwarded-*`, and the client certificate's thumbprint for certificate-bound tokens.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    pub scheme: &'static str,
    /// Taken once, when the TLS handshake ends; `None` without a client certificate.
    pub client_cert: Option<CertThumbprint>,
}

impl Target {
    pub fn new(config: &UpstreamConfig) -> anyhow::Result<Target> {
        let authority = config
            .url
            .authority()
            .ok_or_else(|| anyhow::anyhow!("upstream.url has no host"))?;
        Ok(Target {
            uri: config.url.clone(),
            host: HeaderValue::from_str(authority.as_str())?,
            forward_token: config.forward_token,
            identity_headers: config.identity_headers.clone(),
        })
    }

    /// Builds the upstream request from the client's head and the body bytes exactly as the
    /// client sent them. The client's query string rides along; its path is the upstream's.
    pub fn request(
        &self,
        method: Method,
        client_uri: &Uri,
        mut headers: HeaderMap,
        body: Bytes,
        principal: &Principal,
        peer: Peer,
    ) -> Request<Full<Bytes>> {
        let uri = match client_uri.query() {
            None => self.uri.clone(),
            Some(query) => with_query(&self.uri, query),
        };
        let client_host = headers.get(header::HOST).cloned().or_else(|| {
            client_uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        self.rewrite_request_headers(&mut headers, principal, peer, client_host);
        if method == Method::POST || !body.is_empty() {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        request
    }

    fn rewrite_request_headers(
        &self,
        headers: &mut HeaderMap,
        principal: &Principal,
        peer: Peer,
        client_host: Option<HeaderValue>,
    ) {
        strip_hop_by_hop(headers);
        remove_named(
            headers,
            &[&header::PROXY_AUTHORIZATION, &header::CONTENT_LENGTH],
        );
        // MCP forbids passing the client's token on: the upstream would accept a token minted for
        // another audience. Identity travels in the claim headers below instead.
        if !self.forward_token {
            headers.remove(header::AUTHORIZATION);
        }
        // The MCP SDK servers refuse a foreign Host (their DNS-rebinding check).
        headers.insert(header::HOST, self.host.clone());

        append_forwarded_for(headers, peer.addr);
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(peer.scheme),
        );
        match client_host {
            Some(host) => headers.insert(X_FORWARDED_HOST.clone(), host),
            None => headers.remove(&X_FORWARDED_HOST),
        };

        // A client-sent copy of a header the proxy sets would let it claim any identity or
        // origin; spelled with `_` it is the same header to a CGI/WSGI-style upstream.
        self.remove_underscored_twins(headers);
        // A client-sent copy of an identity header would let it claim any identity.
        for (claim, name) in &self.identity_headers {
            headers.remove(name);
            if let Some(value) = principal.claims.get(claim).and_then(claim_header_value) {
                headers.insert(name.clone(), value);
            }
        }
    }
}

impl Target {
    /// Removes every header whose name, with `_` read as `-`, is one the proxy sets, and the
    /// client's own forwarding claims that would stand beside the proxy's `X-Forwarded-*` (a
    /// framework that reads `Forwarded` or `X-Real-IP` first would believe the client).
    fn remove_underscored_twins(&self, headers: &mut HeaderMap) {
        remove_named(headers, &CLIENT_FORWARDING.each_ref());
        let set_here = || {
            self.identity_headers
                .iter()
                .map(|(_, name)| name)
                .chain([&X_FORWARDED_FOR, &X_FORWARDED_PROTO, &X_FORWARDED_HOST])
                .chain(CLIENT_FORWARDING.iter())
        };
        let twins: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().contains('_'))
            .filter(|name| set_here().any(|set| same_when_underscored(name.as_str(), set.as_str())))
            .cloned()
            .collect();
        for name in twins {
            headers.remove(name);
        }
    }
}

/// Response headers from the upstream, made fit for the client's connection.
pub fn rewrite_response_headers(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.remove(header::PROXY_AUTHENTICATE);
}

/// Removes the headers a `Connection` header names (RFC 9110 §7.6.1): they end at this hop.
/// Done before the proxy reads a request's headers, so that what it decides on is what it
/// forwards (`Connection: mcp-session-id` would otherwise drop a checked session id on the way).
pub fn strip_connection_options(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// Removes the connection-specific headers of RFC 9110 §7.6.1: `Connection` itself, every header
/// it names, and the fixed list that older peers send without naming.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip_connection_options(headers);
    remove_named(
        headers,
        &[
            &header::CONNECTION,
            &KEEP_ALIVE,
            &PROXY_CONNECTION,
            &header::TE,
            &header::TRAILER,
            &header::TRANSFER_ENCODING,
            &header::UPGRADE,
        ],
    );
}

/// Removes every header named in `names`. One pass over the few headers a message carries
/// finds the (usually none) that are there; a `remove` per name would hash each name and probe
/// the map, at every request, for headers that are almost never sent.
fn remove_named(headers: &mut HeaderMap, names: &[&HeaderName]) {
    while let Some(name) = headers.keys().find(|key| names.contains(key)).cloned() {
        headers.remove(name);
    }
}

/// Appends the peer to the `X-Forwarded-For` chain; a chain the client split over several
/// header lines is one list (RFC 9110 §5.3), so none of it is lost.
fn append_forwarded_for(headers: &mut HeaderMap, addr: SocketAddr) {
    let mut chain: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let ip = addr.ip().to_string();
    chain.push(&ip);
    if let Ok(value) = HeaderValue::try_from(chain.join(", ")) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
}

/// A claim as a header value: strings and numbers as written; other types and values that are
/// not valid header text are left out rather than mangled.
fn claim_header_value(claim: &serde_json::Value) -> Option<HeaderValue> {
    match claim {
        serde_json::Value::String(s) => HeaderValue::from_str(s).ok(),
        serde_json::Value::Number(n) => HeaderValue::try_from(n.to_string()).ok(),
        serde_json::Value::Bool(b) => {
            Some(HeaderValue::from_static(if *b { "true" } else { "false" }))
        }
        _ => None,
    }
}

fn with_query(base: &Uri, query: &str) -> Uri {
    let path = base.path();
    let mut parts = base.clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(format!("{path}?{query}")).ok();
    Uri::from_parts(parts).unwrap_or_else(|_| base.clone())
}

/// An upstream response body that ends cleanly where the upstream broke off: an SSE client then
/// sees a finished stream it can resume with `Last-Event-ID`, rather than a torn connection.
/// The break is logged.
pub struct EndOnError<B> {
    inner: B,
    ended: bool,
}

impl<B> EndOnError<B> {
    pub fn new(inner: B) -> Self {
        EndOnError {
            inner,
            ended: false,
        }
    }
}

impl<B> hyper::body::Body for EndOnError<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(error))) => {
                tracing::warn!(%error, "upstream response ended early; closing the client's stream");
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_are_stripped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut headers);
        assert!(headers.get("x-secret").is_none());
        assert!(headers.get(header::CONNECTION).is_none());
        assert!(headers.get(header::TE).is_none());
        assert!(headers.get("x-kept").is_some());
    }

    #[test]
    fn forwarded_for_appends_to_an_existing_chain() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
        append_forwarded_for(&mut headers, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.2"));
        append_forwarded_for(&mut headers, "127.0.0.2:5000".parse().unwrap());
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(
            headers["x-forwarded-for"],
            "203.0.113.7, 127.0.0.1, 198.51.100.2, 127.0.0.2"
        );
    }

    #[test]
    fn query_is_carried_onto_the_upstream_path() {
        let base: Uri = "http://127.0.0.1:8000/mcp".parse().unwrap();
        assert_eq!(
            with_query(&base, "a=1").to_string(),
            "http://127.0.0.1:8000/mcp?a=1"
        );
    }
}
