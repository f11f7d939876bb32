//! Parser differentials: bodies that serde_json and the Python or JavaScript MCP SDKs could read
//! differently, so that the call we authorize is not the call the server runs. Each is refused
//! before forwarding, or resolved the way every reader resolves it.

use reqwest::header::{ACCEPT, CONTENT_TYPE};

use super::{Refusal, all_pass, check};
use crate::common::{self, TestSystem};

/// A POST of `body` with `headers`, by a caller holding only `customer:read`.
fn request(
    t: &TestSystem,
    token: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut request = t
        .http
        .post(t.url())
        .bearer_auth(token)
        .header(ACCEPT, "application/json, text/event-stream")
        .body(body);
    if !headers.iter().any(|(name, _)| *name == "content-type") {
        request = request.header(CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

fn malformed(reason: &str) -> Refusal {
    Refusal {
        status: 400,
        challenge: String::new(),
        reason: reason.into(),
    }
}

/// A `tools/call` of `create_support_ticket` with `envelope` spliced in front of `params`.
fn call(prefix: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,{prefix}"method":"tools/call","params":{params}}}"#)
}

const ALLOWED: &str = r#"{"name":"get_customer_info","arguments":{"customer_id":"C001"}}"#;

#[tokio::test]
async fn bodies_two_parsers_could_read_differently_are_refused() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    let utf16 = |text: &str, bom: bool| {
        let mut bytes: Vec<u8> = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        bytes
    };
    let allowed = call("", ALLOWED);
    let nest = |depth: usize| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_customer_info","arguments":{{"x":{}0{}}}}}}}"#,
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        )
    };
    let cases: Vec<(&str, Vec<u8>, Refusal)> = vec![
        // Duplicate keys, where last-key-wins readers (Python, JavaScript) pick the second.
        (
            "duplicate id",
            call(r#""id":2,"#, ALLOWED).into(),
            malformed("duplicate_key"),
        ),
        (
            "duplicate method at the top",
            call(r#""method":"tools/list","#, ALLOWED).into(),
            malformed("duplicate_key"),
        ),
        (
            "duplicate params",
            call(r#""params":{"name":"create_support_ticket"},"#, ALLOWED).into(),
            malformed("duplicate_key"),
        ),
        (
            "duplicate key deep in arguments",
            call(
                "",
                r#"{"name":"get_customer_info","arguments":{"q":{"a":1,"a":2}}}"#,
            )
            .into(),
            malformed("duplicate_key"),
        ),
        (
            "escaped duplicate name",
            call(
                "",
                r#"{"name":"get_customer_info","n\u0061me":"create_support_ticket"}"#,
            )
            .into(),
            malformed("duplicate_key"),
        ),
        (
            "escaped-slash duplicate key",
            call(
                "",
                r#"{"name":"get_customer_info","arguments":{"a/b":1,"a\/b":2}}"#,
            )
            .into(),
            malformed("duplicate_key"),
        ),
        (
            "duplicate name inside a batch element",
            format!(
                "[{allowed},{}]",
                call(
                    "",
                    r#"{"name":"get_customer_info","name":"create_support_ticket"}"#
                )
            )
            .into(),
            malformed("duplicate_key"),
        ),
        // Encodings other than plain UTF-8.
        (
            "UTF-16LE with BOM",
            utf16(&allowed, true),
            malformed("invalid_utf8"),
        ),
        (
            "UTF-16LE without BOM",
            utf16(&allowed, false),
            malformed("syntax"),
        ),
        (
            "UTF-8 BOM in front of a batch",
            [
                b"\xEF\xBB\xBF".as_slice(),
                format!("[{allowed}]").as_bytes(),
            ]
            .concat(),
            malformed("bom"),
        ),
        (
            "overlong UTF-8 slash",
            [
                call("", r#"{"name":"get_customer_info"#).as_bytes(),
                b"\xC0\xAF\"}",
            ]
            .concat(),
            malformed("invalid_utf8"),
        ),
        (
            "NUL byte before the body",
            [b"\0".as_slice(), allowed.as_bytes()].concat(),
            malformed("syntax"),
        ),
        // Numbers JavaScript rounds or Python reads as floats.
        (
            "id above 2^64",
            call("", ALLOWED)
                .replacen("\"id\":1", "\"id\":18446744073709551616", 1)
                .into(),
            malformed("bad_id"),
        ),
        (
            "id above 2^53 as a float",
            call("", ALLOWED)
                .replacen("\"id\":1", "\"id\":9007199254740993.0", 1)
                .into(),
            malformed("bad_id"),
        ),
        (
            "id in exponent form",
            call("", ALLOWED)
                .replacen("\"id\":1", "\"id\":1e2", 1)
                .into(),
            malformed("bad_id"),
        ),
        (
            "id null",
            call("", ALLOWED)
                .replacen("\"id\":1", "\"id\":null", 1)
                .into(),
            malformed("bad_id"),
        ),
        (
            "id as an object",
            call("", ALLOWED)
                .replacen("\"id\":1", "\"id\":{\"x\":1}", 1)
                .into(),
            malformed("bad_id"),
        ),
        (
            "Infinity in arguments",
            call(
                "",
                r#"{"name":"get_customer_info","arguments":{"x":Infinity}}"#,
            )
            .into(),
            malformed("syntax"),
        ),
        (
            "-Infinity in arguments",
            call(
                "",
                r#"{"name":"get_customer_info","arguments":{"x":-Infinity}}"#,
            )
            .into(),
            malformed("syntax"),
        ),
        (
            "number beyond f64",
            call(
                "",
                r#"{"name":"get_customer_info","arguments":{"x":1e400}}"#,
            )
            .into(),
            malformed("syntax"),
        ),
        (
            "leading zero",
            call("", r#"{"name":"get_customer_info","arguments":{"x":01}}"#).into(),
            malformed("syntax"),
        ),
        // Structure.
        ("65 levels deep", nest(63).into(), malformed("too_deep")),
        (
            "second value after the first",
            format!(
                "{allowed}{}",
                call("", r#"{"name":"create_support_ticket"}"#)
            )
            .into(),
            malformed("trailing_data"),
        ),
        (
            "garbage after the value",
            format!("{allowed}//").into(),
            malformed("trailing_data"),
        ),
        (
            "single quotes",
            allowed.replace('"', "'").into(),
            malformed("syntax"),
        ),
        (
            "comment inside",
            call("/*x*/", ALLOWED).into(),
            malformed("syntax"),
        ),
        (
            "trailing comma",
            call("", r#"{"name":"get_customer_info",}"#).into(),
            malformed("syntax"),
        ),
        ("empty batch", b"[]".to_vec(), malformed("empty_batch")),
        (
            "nested batch",
            format!("[[{allowed}]]").into(),
            malformed("not_jsonrpc"),
        ),
        (
            "batch of numbers",
            b"[1,2]".to_vec(),
            malformed("not_jsonrpc"),
        ),
        (
            "bare string",
            br#""tools/call""#.to_vec(),
            malformed("not_jsonrpc"),
        ),
        ("empty body", Vec::new(), malformed("syntax")),
        // JSON-RPC envelope.
        (
            "positional params for tools/call",
            call("", r#"["create_support_ticket",{}]"#).into(),
            malformed("missing_tool_name"),
        ),
        (
            "params as a string",
            call("", r#""create_support_ticket""#).into(),
            malformed("bad_params"),
        ),
        (
            "name as an array",
            call("", r#"{"name":["create_support_ticket"]}"#).into(),
            malformed("missing_tool_name"),
        ),
        (
            "name null",
            call("", r#"{"name":null}"#).into(),
            malformed("missing_tool_name"),
        ),
        (
            "jsonrpc 1.0",
            call("", ALLOWED).replacen("2.0", "1.0", 1).into(),
            malformed("bad_version"),
        ),
        (
            "jsonrpc as a number",
            call("", ALLOWED).replacen("\"2.0\"", "2", 1).into(),
            malformed("bad_version"),
        ),
        (
            "method as an array",
            call("", ALLOWED)
                .replacen("\"tools/call\"", "[\"tools/call\"]", 1)
                .into(),
            malformed("bad_method"),
        ),
        (
            "method with a result",
            call(r#""result":{},"#, ALLOWED).into(),
            malformed("ambiguous_message"),
        ),
        (
            "neither method nor result",
            br#"{"jsonrpc":"2.0","id":1,"params":{}}"#.to_vec(),
            malformed("not_jsonrpc"),
        ),
        (
            "lone surrogate in a key",
            call("", r#"{"name":"get_customer_info","\udc00":1}"#).into(),
            malformed("lone_surrogate"),
        ),
    ];
    let mut results = Vec::new();
    for (name, body, want) in cases {
        let request = request(&t, &token, body, &[]);
        results.push(check(&t, name, request, &want, None).await);
    }
    all_pass(results);
}

/// Escapes and case: what every reader resolves alike is authorized as it resolves, and what
/// only a case-folding reader would take for `tools/call` is no `tools/call` at all.
#[tokio::test]
async fn escapes_are_resolved_before_authorization_and_odd_names_match_no_rule() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    let step_up = |tool: &str| Refusal {
        status: 403,
        challenge: format!(
            "Bearer error=\"insufficient_scope\", scope=\"ticket:create customer:read\", resource_metadata=\"{metadata}\", error_description=\"tools/call ?{tool}? requires scope ticket:create; missing ticket:create\""
        ),
        reason: "insufficient_scope".into(),
    };
    let no_rule = Refusal {
        status: 403,
        challenge: String::new(),
        reason: "no_rule".into(),
    };
    let ticket = r#"{"name":"create_support_ticket","arguments":{}}"#;
    let cases: Vec<(&str, String, Refusal)> = vec![
        (
            "escaped slash in the method",
            call("", ticket).replace("tools/call", "tools\\/call"),
            step_up("create_support_ticket"),
        ),
        (
            "unicode-escaped tool name",
            call("", r#"{"name":"create_support_tick\u0065t"}"#),
            step_up("create_support_ticket"),
        ),
        (
            "unicode-escaped method",
            call("", ticket).replace("tools/call", "tools\\u002fcall"),
            step_up("create_support_ticket"),
        ),
        (
            "upper-case method",
            call("", ticket).replace("tools/call", "TOOLS/CALL"),
            no_rule.clone(),
        ),
        (
            "method with a trailing space",
            call("", ticket).replace("tools/call", "tools/call "),
            no_rule.clone(),
        ),
        (
            "method with a NUL",
            call("", ticket).replace("tools/call", "tools/call\\u0000"),
            no_rule.clone(),
        ),
        (
            "fullwidth solidus in the method",
            call("", ticket).replace("tools/call", "tools\u{FF0F}call"),
            no_rule.clone(),
        ),
        (
            "tool name with a trailing space",
            call("", r#"{"name":"create_support_ticket "}"#),
            no_rule.clone(),
        ),
        (
            "tool name in another case",
            call("", r#"{"name":"Create_Support_Ticket"}"#),
            no_rule.clone(),
        ),
        (
            "tool name with a zero-width space",
            call("", "{\"name\":\"create_support\u{200B}_ticket\"}"),
            no_rule.clone(),
        ),
        (
            "allowed call batched with a denied notification",
            format!(
                r#"[{},{{"jsonrpc":"2.0","method":"tools/call","params":{ticket}}}]"#,
                call("", ALLOWED)
            ),
            step_up("create_support_ticket"),
        ),
        (
            "resources/read notification",
            r#"{"jsonrpc":"2.0","method":"resources/read","params":{"uri":"file:///etc/passwd"}}"#
                .into(),
            no_rule.clone(),
        ),
    ];
    let mut results = Vec::new();
    for (name, body, want) in cases {
        let request = request(&t, &token, body, &[]);
        results.push(check(&t, name, request, &want, None).await);
    }
    all_pass(results);
}

#[tokio::test]
async fn media_types_and_encodings_the_proxy_cannot_read_are_refused() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    let unsupported = Refusal {
        status: 415,
        challenge: String::new(),
        reason: "unsupported_media_type".into(),
    };
    let cases: Vec<(&str, (&str, &str))> = vec![
        ("Content-Encoding deflate", ("content-encoding", "deflate")),
        ("Content-Encoding br", ("content-encoding", "br")),
        ("Content-Encoding zstd", ("content-encoding", "zstd")),
        (
            "Content-Encoding gzip, identity",
            ("content-encoding", "gzip, identity"),
        ),
        ("Content-Type text/json", ("content-type", "text/json")),
        (
            "Content-Type application/json-seq",
            ("content-type", "application/json-seq"),
        ),
        (
            "Content-Type application/jsonrequest",
            ("content-type", "application/jsonrequest"),
        ),
        (
            "Content-Type multipart/form-data",
            ("content-type", "multipart/form-data; boundary=x"),
        ),
        (
            "Content-Type latin-1 charset",
            ("content-type", "application/json; charset=iso-8859-1"),
        ),
        (
            "Content-Type utf-32 charset",
            ("content-type", "application/json; charset=utf-32"),
        ),
    ];
    let mut results = Vec::new();
    for (name, header) in cases {
        let request = request(&t, &token, call("", ALLOWED), &[header]);
        results.push(check(&t, name, request, &unsupported, None).await);
    }
    all_pass(results);
}
