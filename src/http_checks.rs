//! HTTP-level checks of a request on the MCP endpoint, before and around its JSON-RPC: headers
//! that may appear once, the media type, the body read under its limit, header–body agreement,
//! and the drain of a refused body. Not the decision (see `proxy` and `policy`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};

use crate::error::ProxyError;
use crate::mcp::Inspection;

pub static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub static MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
pub static MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub static MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Headers the proxy decides on (or the upstream reads as one value) that may appear only once
/// (RFC 9110 §5.3): with two copies the proxy could check one while the upstream acts on the
/// other. `Authorization` and `Origin` are checked where they are read; `Mcp-Method` and
/// `Mcp-Name` with the body.
static SINGLETONS: [&HeaderName; 6] = [
    &header::HOST,
    &MCP_SESSION_ID,
    &MCP_PROTOCOL_VERSION,
    &LAST_EVENT_ID,
    &header::CONTENT_LENGTH,
    &crate::audit::X_REQUEST_ID,
];

/// Refuses a request that repeats a singleton header, or carries a copy of a header the proxy
/// decides on spelled with `_` for `-`: CGI/WSGI-style servers read `mcp_session_id` as
/// `Mcp-Session-Id` (both become `HTTP_MCP_SESSION_ID`), so it is a second copy too.
pub fn check_singletons(headers: &HeaderMap) -> Result<(), ProxyError> {
    for name in SINGLETONS.iter().copied().chain([&MCP_METHOD, &MCP_NAME]) {
        single(headers, name)?;
    }
    for name in headers.keys() {
        if name.as_str().contains('_')
            && let Some(twin) = decided_twin(name.as_str())
        {
            return Err(ProxyError::RepeatedHeader(twin.clone()));
        }
    }
    Ok(())
}

/// The header the proxy decides on that `name` (which holds `_`) would read as upstream.
fn decided_twin(name: &str) -> Option<&'static HeaderName> {
    SINGLETONS
        .iter()
        .copied()
        .chain([
            &MCP_METHOD,
            &MCP_NAME,
            &header::AUTHORIZATION,
            &header::ORIGIN,
            &header::CONTENT_TYPE,
            &header::CONTENT_ENCODING,
            &header::TRANSFER_ENCODING,
        ])
        .find(|decided| same_when_underscored(name, decided.as_str()))
}

/// Whether `a` and `b` name one header once `_` is read as `-` (header names are lower case here).
pub fn same_when_underscored(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (x == b'_' && y == b'-') || (x == b'-' && y == b'_'))
}

/// Reads and throws away what is left of the body of a request the proxy answers itself, up to
/// the body limit and for a short while, so that a client still sending gets the answer after
/// its last frame, as it expects. Over HTTP/2 a stream whose body is cut short is reset after
/// the answer, and some clients (curl 7.x among them) then drop the answer, even though the
/// reset says NO_ERROR.
pub async fn discard_rest(body: &mut Incoming, limit: usize, window: Duration) {
    if body.is_end_stream() {
        return;
    }
    let mut left = limit;
    let drain = async {
        while let Some(Ok(frame)) = body.frame().await {
            let Some(len) = frame.data_ref().map(Bytes::len) else {
                continue;
            };
            let Some(rest) = left.checked_sub(len) else {
                return;
            };
            left = rest;
        }
    };
    let _ = tokio::time::timeout(window, drain).await;
}

/// `application/json`, optionally with `charset=utf-8`: the only form the MCP servers parse the
/// way the inspector does. One header only, and no content coding (the JavaScript server
/// inflates gzip, which would let a compressed body differ from the one inspected).
pub fn check_media_type(headers: &HeaderMap) -> Result<(), ProxyError> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(content_type), None) = (types.next(), types.next()) else {
        return Err(ProxyError::UnsupportedMediaType(
            "exactly one Content-Type: application/json is required",
        ));
    };
    let content_type = content_type.to_str().unwrap_or("");
    let mut params = content_type.split(';');
    let essence = params.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ProxyError::UnsupportedMediaType(
            "Content-Type must be application/json",
        ));
    }
    for param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let value = value.trim().trim_matches('"');
        if !name.trim().eq_ignore_ascii_case("charset") || !value.eq_ignore_ascii_case("utf-8") {
            return Err(ProxyError::UnsupportedMediaType(
                "only charset=utf-8 is accepted with application/json",
            ));
        }
    }
    for encoding in headers.get_all(header::CONTENT_ENCODING) {
        if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err(ProxyError::UnsupportedMediaType(
                "Content-Encoding is not accepted: send the body uncompressed",
            ));
        }
    }
    Ok(())
}

pub async fn read_body(
    body: &mut Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, ProxyError> {
    // A declared length past the limit is refused before a byte is read.
    if declared_length(headers).is_some_and(|len| len > limit as u64) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ProxyError::BodyTooLarge { limit })
        }
        Err(_) => Err(ProxyError::BodyRead),
    }
}

pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

pub fn refuse_body(headers: &HeaderMap) -> Result<(), ProxyError> {
    let has_length = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    if has_length || headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(ProxyError::UnsupportedMediaType(
            "GET and DELETE on the MCP endpoint carry no body",
        ));
    }
    Ok(())
}

/// `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28) let intermediaries route without the body; where a
/// client sends them they must say what the body says, or a router and the upstream would act
/// on different calls.
pub fn check_mcp_headers(
    headers: &HeaderMap,
    inspection: &Inspection<'_>,
) -> Result<(), ProxyError> {
    let method = single(headers, &MCP_METHOD)?;
    let name = single(headers, &MCP_NAME)?;
    if method.is_none() && name.is_none() {
        return Ok(());
    }
    let [message] = inspection.messages.as_slice() else {
        return Err(ProxyError::HeaderMismatch(
            "Mcp-Method/Mcp-Name headers require a single JSON-RPC message",
        ));
    };
    if let Some(method) = method
        && Some(method.as_bytes()) != message.method.as_deref().map(str::as_bytes)
    {
        return Err(ProxyError::HeaderMismatch(
            "Mcp-Method header does not match the body's method",
        ));
    }
    if let Some(name) = name
        && Some(name.as_bytes()) != message.target.as_deref().map(str::as_bytes)
    {
        return Err(ProxyError::HeaderMismatch(
            "Mcp-Name header does not match the body's tool or resource",
        ));
    }
    Ok(())
}

pub fn single<'h>(
    headers: &'h HeaderMap,
    name: &header::HeaderName,
) -> Result<Option<&'h HeaderValue>, ProxyError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (first, None) => Ok(first),
        _ => Err(ProxyError::RepeatedHeader(name.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                header::HeaderName::try_from(*k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn json_with_utf8_charset_is_accepted_in_any_case() {
        assert!(
            check_media_type(&headers(&[(
                "content-type",
                "Application/JSON; Charset=\"UTF-8\""
            )]))
            .is_ok()
        );
        assert!(check_media_type(&headers(&[("content-type", "application/json")])).is_ok());
    }

    #[test]
    fn other_media_types_and_charsets_are_refused() {
        for value in [
            "text/plain",
            "application/json; charset=utf-16",
            "application/jsonx",
            "",
        ] {
            assert!(
                check_media_type(&headers(&[("content-type", value)])).is_err(),
                "{value}"
            );
        }
        assert!(check_media_type(&headers(&[])).is_err());
        assert!(
            check_media_type(&headers(&[
                ("content-type", "application/json"),
                ("content-type", "application/json")
            ]))
            .is_err()
        );
    }

    #[test]
    fn any_content_coding_but_identity_is_refused() {
        let gzip = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]);
        assert!(check_media_type(&gzip).is_err());
        let identity = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
        ]);
        assert!(check_media_type(&identity).is_ok());
    }

    #[test]
    fn a_repeated_singleton_or_its_underscored_twin_is_refused() {
        for pairs in [
            &[("mcp-session-id", "a"), ("mcp-session-id", "b")][..],
            &[("mcp-session-id", "a"), ("mcp_session_id", "b")],
            &[
                ("mcp-protocol-version", "2025-06-18"),
                ("mcp-protocol-version", "2025-03-26"),
            ],
            &[("last-event-id", "1"), ("last-event-id", "2")],
            &[("x-request-id", "1"), ("x-request-id", "2")],
            &[("host", "a"), ("host", "b")],
            &[("mcp-method", "a"), ("mcp-method", "a")],
            &[("mcp_name", "x")],
            &[("content_type", "text/plain")],
            &[
                ("authorization", "Bearer x"),
                ("authori_ation", "x"),
                ("origin", "o"),
                ("orig_n", "x"),
            ],
        ] {
            let refused = check_singletons(&headers(pairs));
            let ok = pairs.iter().any(|(name, _)| name.starts_with("authori_"));
            assert_eq!(refused.is_ok(), ok, "{pairs:?}");
        }
        let accepted = headers(&[
            ("mcp-session-id", "a"),
            ("accept", "application/json"),
            ("accept", "text/event-stream"),
            ("x_other", "1"),
        ]);
        assert!(check_singletons(&accepted).is_ok());
        match check_singletons(&headers(&[
            ("mcp-session-id", "a"),
            ("mcp_session_id", "b"),
        ])) {
            Err(ProxyError::RepeatedHeader(name)) => assert_eq!(name, MCP_SESSION_ID),
            other => panic!("{other:?}"),
        }
    }
}
