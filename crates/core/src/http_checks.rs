//! HTTP-level checks of a request on the MCP endpoint, before and around its JSON-RPC: headers
//! that may appear once, the media type, the body read under its limit, header–body agreement,
//! and the drain of a refused body. Not the decision (see `proxy` and `policy`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};

use crate::error::ProxyError;
use crate::mcp::headers::{
    LAST_EVENT_ID, MCP_METHOD, MCP_NAME, MCP_PROTOCOL_VERSION, MCP_SESSION_ID,
};
use crate::mcp::{Inspection, Message, MessageKind};
use crate::mcp_params::{Disagreement, ParamHeaders};

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
    &crate::ctx::X_REQUEST_ID,
];

/// Refuses a request that repeats a singleton header, or carries a copy of a header the proxy
/// decides on spelled with `_` for `-`: CGI/WSGI-style servers read `mcp_session_id` as
/// `Mcp-Session-Id` (both become `HTTP_MCP_SESSION_ID`), so it is a second copy too.
pub fn check_singletons(headers: &HeaderMap) -> Result<(), ProxyError> {
    // As many values as names: no header is repeated, so none of the lookups below could find
    // a second copy (the common case, one comparison instead of a hash lookup per name).
    let repeats = headers.len() != headers.keys_len();
    if repeats {
        for name in SINGLETONS.iter().copied().chain([&MCP_METHOD, &MCP_NAME]) {
            single(headers, name)?;
        }
    }
    for name in headers.keys() {
        let text = name.as_str();
        if text.contains('_') {
            if let Some(twin) = decided_twin(text) {
                return Err(ProxyError::RepeatedHeader(twin.clone()));
            }
            if text.len() > MCP_PARAM_PREFIX.len()
                && same_when_underscored(&text[..MCP_PARAM_PREFIX.len()], MCP_PARAM_PREFIX)
            {
                return Err(ProxyError::RepeatedHeader(name.clone()));
            }
        } else if repeats && text.starts_with(MCP_PARAM_PREFIX) {
            // A tool argument mirrored for routing: one value, or a router and the upstream
            // could each read another.
            single(headers, name)?;
        }
    }
    Ok(())
}

/// The headers a 2026-07-28 client mirrors tool arguments into (`x-mcp-header`).
const MCP_PARAM_PREFIX: &str = "mcp-param-";

/// The header the proxy decides on that `name` (which holds `_`) would read as upstream.
fn decided_twin(name: &str) -> Option<&'static HeaderName> {
    SINGLETONS
        .iter()
        .copied()
        // Only names with a `-` have a twin (`Authorization`, `Origin`, `Host` have none).
        .chain([
            &MCP_METHOD,
            &MCP_NAME,
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

/// The first protocol revision whose requests carry their version and routing in headers that
/// must agree with the body; `YYYY-MM-DD` versions compare as text.
const STATELESS_REVISION: &str = "2026-07-28";

/// Header–body agreement (MCP 2026-07-28, Streamable HTTP "Server Validation"): the headers let
/// intermediaries route without the body, so where a client sends them they must say what the
/// body says, or a router and the upstream would act on different calls. `MCP-Protocol-Version`
/// must equal `params._meta["io.modelcontextprotocol/protocolVersion"]` where both are present;
/// `Mcp-Method` the method; `Mcp-Name` (plain or `=?base64?…?=`) the tool, prompt or resource.
/// A request of that revision must carry them (`Mcp-Name` for `tools/call`, `prompts/get` and
/// `resources/read`); earlier clients may send them, and are held to them when they do. Such a
/// request's `Mcp-Param-*` headers must also agree with the arguments the tool marks (`known`),
/// read from `body`.
pub fn check_mcp_headers(
    headers: &HeaderMap,
    inspection: &Inspection<'_>,
    body: &[u8],
    known: &ParamHeaders,
) -> Result<(), ProxyError> {
    // The refusal repeats the request's id, as every JSON-RPC error answer must.
    let mismatch = |why| ProxyError::HeaderMismatch {
        why,
        id: crate::error::error_id(inspection.first_id()),
    };
    let method = single(headers, &MCP_METHOD)?;
    let name = single(headers, &MCP_NAME)?;
    let version = single(headers, &MCP_PROTOCOL_VERSION)?;
    let mut stateless = version.is_some_and(|v| is_stateless(v.as_bytes()));
    for message in &inspection.messages {
        let Some(said) = message.protocol_version.as_deref() else {
            continue;
        };
        match version {
            Some(header) if header.as_bytes() != said.as_bytes() => {
                return Err(mismatch(
                    "MCP-Protocol-Version header does not match the body's protocol version",
                ));
            }
            Some(_) => {}
            None if is_stateless(said.as_bytes()) => {
                return Err(mismatch("MCP-Protocol-Version header is required"));
            }
            None => {}
        }
        stateless |= is_stateless(said.as_bytes());
    }
    if method.is_none() && name.is_none() && !stateless {
        return Ok(());
    }
    let [message] = inspection.messages.as_slice() else {
        return Err(mismatch(
            "Mcp-Method/Mcp-Name headers require a single JSON-RPC message",
        ));
    };
    match method {
        Some(method) if Some(method.as_bytes()) != message.method.as_deref().map(str::as_bytes) => {
            return Err(mismatch(
                "Mcp-Method header does not match the body's method",
            ));
        }
        None if stateless && message.kind == MessageKind::Request => {
            return Err(mismatch("Mcp-Method header is required"));
        }
        _ => {}
    }
    match name {
        Some(name) => {
            let name = crate::mcp_params::decoded(name).ok_or_else(|| {
                mismatch("Mcp-Name header is neither visible ASCII nor =?base64?…?=")
            })?;
            if Some(&*name) != named(message).map(str::as_bytes) {
                return Err(mismatch(
                    "Mcp-Name header does not match the body's tool, resource or task",
                ));
            }
        }
        None if stateless
            && matches!(
                message.method.as_deref(),
                Some("tools/call" | "prompts/get" | "resources/read")
            ) =>
        {
            return Err(mismatch("Mcp-Name header is required"));
        }
        None => {}
    }
    // Earlier clients never mirror arguments, so they are not held to the marks.
    if stateless
        && message.method.as_deref() == Some("tools/call")
        && let Some(tool) = message.target.as_deref()
    {
        known.check(headers, tool, body).map_err(|why| {
            mismatch(match why {
                Disagreement::Missing => {
                    "an Mcp-Param header and the argument it mirrors are not both present"
                }
                Disagreement::Differs => "an Mcp-Param header does not match its argument",
                Disagreement::Invalid => {
                    "an Mcp-Param header is neither visible ASCII nor =?base64?…?="
                }
            })
        })?;
    }
    Ok(())
}

/// What `Mcp-Name` repeats: the tool, prompt or resource a request acts on, or for `tasks/get`,
/// `tasks/update` and `tasks/cancel` (tasks extension) the `taskId`.
fn named<'m>(message: &'m Message<'_>) -> Option<&'m str> {
    match message.method.as_deref() {
        Some("tasks/get" | "tasks/update" | "tasks/cancel") => message.task.as_deref(),
        _ => message.target.as_deref(),
    }
}

/// Whether a protocol version is 2026-07-28 or later.
fn is_stateless(version: &[u8]) -> bool {
    version.len() == STATELESS_REVISION.len() && version >= STATELESS_REVISION.as_bytes()
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
            &[("x_request_id", "a")],
        ] {
            assert!(check_singletons(&headers(pairs)).is_err(), "{pairs:?}");
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

#[cfg(test)]
mod agreement_tests {
    use super::*;
    use crate::mcp::{InspectLimits, inspect};

    fn check(body: &str, pairs: &[(&str, &str)]) -> Result<(), &'static str> {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::try_from(*k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let inspection = inspect(body.as_bytes(), &InspectLimits::default()).unwrap();
        match check_mcp_headers(&map, &inspection, body.as_bytes(), &ParamHeaders::default()) {
            Ok(()) => Ok(()),
            Err(ProxyError::HeaderMismatch { why, .. }) => Err(why),
            Err(other) => panic!("{other:?}"),
        }
    }

    const MODERN: &str = r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a b","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    const LEGACY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;

    #[test]
    fn a_2026_request_needs_agreeing_headers_and_a_base64_name_is_decoded() {
        let all = [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "resources/read"),
            ("mcp-name", "=?base64?ZmlsZTovLy9hIGI=?="),
        ];
        assert_eq!(check(MODERN, &all), Ok(()));
        assert_eq!(
            check(
                MODERN,
                &[
                    ("mcp-protocol-version", "2026-07-28"),
                    ("mcp-method", "resources/read"),
                    ("mcp-name", "file:///a b")
                ]
            ),
            Ok(())
        );
        assert!(check(MODERN, &all[1..]).is_err(), "no version header");
        assert!(check(MODERN, &[all[0], all[2]]).is_err(), "no Mcp-Method");
        assert!(check(MODERN, &all[..2]).is_err(), "no Mcp-Name");
        assert!(
            check(
                MODERN,
                &[("mcp-protocol-version", "2026-07-29"), all[1], all[2]]
            )
            .is_err()
        );
        assert!(
            check(
                MODERN,
                &[all[0], all[1], ("mcp-name", "=?base64?ZmlsZTovLy9h?=")]
            )
            .is_err()
        );
        // Raw bytes past ASCII are not a name, even when they spell the body's in UTF-8.
        let body = MODERN.replace("file:///a b", "é");
        let mut map = HeaderMap::new();
        map.insert(
            &MCP_PROTOCOL_VERSION,
            HeaderValue::from_static("2026-07-28"),
        );
        map.insert(&MCP_METHOD, HeaderValue::from_static("resources/read"));
        map.insert(&MCP_NAME, HeaderValue::from_bytes("é".as_bytes()).unwrap());
        let inspection = inspect(body.as_bytes(), &InspectLimits::default()).unwrap();
        let known = ParamHeaders::default();
        assert!(check_mcp_headers(&map, &inspection, body.as_bytes(), &known).is_err());
    }

    #[test]
    fn an_older_request_is_held_only_to_the_headers_it_sends() {
        assert_eq!(check(LEGACY, &[]), Ok(()));
        assert_eq!(
            check(LEGACY, &[("mcp-protocol-version", "2025-06-18")]),
            Ok(())
        );
        assert_eq!(
            check(LEGACY, &[("mcp-method", "tools/call"), ("mcp-name", "x")]),
            Ok(())
        );
        assert!(check(LEGACY, &[("mcp-name", "y")]).is_err());
        // A version header of the stateless revision makes its headers required.
        assert!(check(LEGACY, &[("mcp-protocol-version", "2026-07-28")]).is_err());
    }

    #[test]
    fn a_repeated_or_underscored_mirrored_argument_is_refused() {
        let mut map = HeaderMap::new();
        map.append("mcp-param-region", HeaderValue::from_static("eu"));
        assert!(check_singletons(&map).is_ok());
        map.append("mcp-param-region", HeaderValue::from_static("us"));
        assert!(check_singletons(&map).is_err());
        let mut twin = HeaderMap::new();
        twin.append("mcp_param_region", HeaderValue::from_static("eu"));
        assert!(check_singletons(&twin).is_err());
    }
}
