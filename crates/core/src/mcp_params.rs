//! `Mcp-Param-*` headers (MCP 2026-07-28): a tool may mark arguments with `x-mcp-header` in its
//! `inputSchema`, and a client then mirrors those arguments into `Mcp-Param-{name}` headers. The
//! proxy learns the marks from the `tools/list` answers it relays (the listing filter reads each
//! tool anyway) and holds a `tools/call` to them: a marked argument and its header must agree.
//!
//! What the proxy has not seen listed it cannot check: a header no known mark names is forwarded
//! untouched, as the spec asks of an intermediary that does not recognise it, and the upstream,
//! which processes the body, checks it too. Not the other header checks (`http_checks`).

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use moka::sync::Cache;
use serde_json::Value;

/// Tools whose marks are remembered, at most; a listing larger than this is rare, and a tool
/// forgotten is only a tool not checked here.
const MAX_TOOLS: u64 = 10_000;

/// One marked argument: the header that mirrors it and where it sits in `arguments`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mark {
    header: HeaderName,
    /// The chain of `properties` keys from the schema's root (only such chains may be marked).
    path: Box<[Box<str>]>,
}

/// The marks of every tool seen listed, by tool name; the latest listing wins.
pub struct ParamHeaders {
    tools: Cache<Box<str>, Arc<[Mark]>>,
}

impl Default for ParamHeaders {
    fn default() -> Self {
        ParamHeaders {
            tools: Cache::new(MAX_TOOLS),
        }
    }
}

/// Why a call's headers were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disagreement {
    /// A marked argument has a value and its header is missing, or the other way round.
    Missing,
    /// The header does not say what the argument says.
    Differs,
    /// The header is neither visible ASCII nor a `=?base64?…?=` value that decodes.
    Invalid,
}

impl ParamHeaders {
    /// Remembers the marks of one listed tool, from its raw `inputSchema`.
    pub fn learn(&self, tool: &str, input_schema: Option<&str>) {
        let mut marks = Vec::new();
        if let Some(schema) = input_schema.and_then(|raw| serde_json::from_str(raw).ok()) {
            collect(&schema, &mut Vec::new(), &mut marks);
        }
        if marks.is_empty() {
            self.tools.invalidate(tool);
        } else {
            self.tools.insert(Box::from(tool), Arc::from(marks));
        }
    }

    /// Checks the `Mcp-Param-*` headers of a call to `tool` against `body`, a single
    /// `tools/call` message. Only a tool seen listed with marks costs a read of its arguments.
    pub fn check(&self, headers: &HeaderMap, tool: &str, body: &[u8]) -> Result<(), Disagreement> {
        let Some(marks) = self.tools.get(tool) else {
            return Ok(());
        };
        let message: Value = serde_json::from_slice(body).map_err(|_| Disagreement::Differs)?;
        let arguments = &message["params"]["arguments"];
        for mark in marks.iter() {
            let value = mark
                .path
                .iter()
                .try_fold(arguments, |at, key| at.get(&**key))
                .filter(|value| !value.is_null());
            match (value, headers.get(&mark.header)) {
                (None, None) => {}
                (Some(value), Some(header)) => {
                    let said = decoded(header).ok_or(Disagreement::Invalid)?;
                    if !agrees(value, &said) {
                        return Err(Disagreement::Differs);
                    }
                }
                _ => return Err(Disagreement::Missing),
            }
        }
        Ok(())
    }
}

/// Whether a header's (decoded) text says what an argument holds: strings as they are, integers
/// compared as numbers (`42.0` is `42`), booleans as `true` / `false`.
fn agrees(value: &Value, said: &[u8]) -> bool {
    match value {
        Value::String(text) => text.as_bytes() == said,
        Value::Bool(flag) => said == if *flag { &b"true"[..] } else { &b"false"[..] },
        Value::Number(number) => std::str::from_utf8(said)
            .ok()
            .and_then(|text| text.trim().parse::<f64>().ok())
            .is_some_and(|n| Some(n) == number.as_f64()),
        _ => false,
    }
}

/// The marks under `schema`, following `properties` only: a mark anywhere else (under `items`,
/// `oneOf`, `$ref`…) makes the definition invalid, and such a mark is not honoured here either.
fn collect(schema: &Value, path: &mut Vec<Box<str>>, marks: &mut Vec<Mark>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, property) in properties {
        path.push(Box::from(key.as_str()));
        let primitive = matches!(
            property.get("type").and_then(Value::as_str),
            Some("string" | "integer" | "boolean")
        );
        if let Some(name) = property.get("x-mcp-header").and_then(Value::as_str)
            && primitive
            && let Ok(header) = HeaderName::try_from(format!("mcp-param-{name}"))
        {
            marks.push(Mark {
                header,
                path: path.clone().into_boxed_slice(),
            });
        }
        collect(property, path, marks);
        path.pop();
    }
}

/// A header value as the client meant it: `=?base64?…?=` decoded (standard alphabet, padded),
/// anything else as sent. `None` for a sentinel that does not decode, or for a plain value that
/// is not visible ASCII, space and tab (RFC 9110 field values without obs-text): a client must
/// encode anything else, so raw bytes are not what it meant.
pub fn decoded(value: &HeaderValue) -> Option<Cow<'_, [u8]>> {
    use base64::Engine as _;
    let bytes = value.as_bytes();
    if !bytes
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return None;
    }
    match bytes
        .strip_prefix(b"=?base64?")
        .and_then(|rest| rest.strip_suffix(b"?="))
    {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .map(Cow::Owned),
        None => Some(Cow::Borrowed(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SCHEMA: &str = r#"{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"org":{"type":"object","properties":{"id":{"type":"integer","x-mcp-header":"Org"}}},"tags":{"type":"array","items":{"type":"string","x-mcp-header":"Tag"}},"ratio":{"type":"number","x-mcp-header":"Ratio"}}}"#;

    fn known() -> ParamHeaders {
        let known = ParamHeaders::default();
        known.learn("sql", Some(SCHEMA));
        known
    }

    fn call(arguments: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"sql","arguments":{arguments}}}}}"#
        )
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn marked_arguments_and_their_headers_must_agree() {
        let known = known();
        let body = call(r#"{"region":"us-west1","org":{"id":42}}"#);
        let check = |pairs| known.check(&headers(pairs), "sql", body.as_bytes());
        assert_eq!(
            check(&[("mcp-param-region", "us-west1"), ("mcp-param-org", "42.0")]),
            Ok(())
        );
        assert_eq!(
            check(&[
                ("mcp-param-region", "=?base64?dXMtd2VzdDE=?="),
                ("mcp-param-org", "42")
            ]),
            Ok(())
        );
        assert_eq!(
            check(&[("mcp-param-region", "eu"), ("mcp-param-org", "42")]),
            Err(Disagreement::Differs)
        );
        assert_eq!(
            check(&[("mcp-param-region", "us-west1")]),
            Err(Disagreement::Missing)
        );
        assert_eq!(
            check(&[
                ("mcp-param-region", "=?base64?!!?="),
                ("mcp-param-org", "42")
            ]),
            Err(Disagreement::Invalid)
        );
        // Marks under `items` or on a number are not marks; other headers are not ours.
        assert_eq!(
            check(&[
                ("mcp-param-region", "us-west1"),
                ("mcp-param-org", "42"),
                ("mcp-param-tag", "x"),
                ("mcp-param-ratio", "1")
            ]),
            Ok(())
        );
    }

    #[test]
    fn an_absent_or_null_argument_takes_no_header_and_an_unlisted_tool_is_not_checked() {
        let known = known();
        let body = call(r#"{"region":null}"#);
        assert_eq!(known.check(&headers(&[]), "sql", body.as_bytes()), Ok(()));
        assert_eq!(
            known.check(
                &headers(&[("mcp-param-region", "x")]),
                "sql",
                body.as_bytes()
            ),
            Err(Disagreement::Missing)
        );
        assert_eq!(
            known.check(&headers(&[("mcp-param-region", "x")]), "other", b"{}"),
            Ok(())
        );
        // A new listing without marks forgets the old ones.
        known.learn("sql", Some(r#"{"type":"object"}"#));
        assert_eq!(
            known.check(
                &headers(&[("mcp-param-region", "x")]),
                "sql",
                body.as_bytes()
            ),
            Ok(())
        );
    }
}
