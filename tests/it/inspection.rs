//! Body rules through the real proxy: what the proxy cannot read exactly as the upstream will is
//! refused with a specific error, and never forwarded.

use crate::common;

use common::{Options, TestSystem, read};
use serde_json::json;

/// Sends `body` with `headers` and a token holding every customer-service scope. Returns the
/// status and JSON body of a refusal, after checking that the upstream saw nothing; `None` when
/// the proxy let the request through (the upstream answered, whatever it said).
async fn send(
    t: &TestSystem,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> Option<(u16, serde_json::Value)> {
    let before = t.upstream_requests();
    let token = t.token(&["customer:read", "ticket:create", "account:calculate"]);
    let mut request = t
        .http
        .post(t.url())
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if !headers.iter().any(|(name, _)| *name == "content-type") {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (status, _, body) = read(request.send().await.unwrap()).await;
    if t.upstream_requests() > before {
        return None;
    }
    assert!(status >= 400, "the proxy answered {status} itself: {body}");
    Some((status, body))
}

/// Sends and expects the proxy to refuse with `status`; returns the error body.
async fn refused(
    t: &TestSystem,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
    status: u16,
) -> serde_json::Value {
    let (got, body) = send(t, body, headers)
        .await
        .expect("refused by the proxy, not forwarded");
    assert_eq!(got, status, "{body}");
    body
}

/// Sends and expects the request to reach the upstream.
async fn forwarded(t: &TestSystem, body: impl Into<reqwest::Body>, headers: &[(&str, &str)]) {
    if let Some((status, body)) = send(t, body, headers).await {
        panic!("refused with {status}: {body}");
    }
}

#[tokio::test]
async fn duplicate_tool_name_is_refused_before_forwarding() {
    let t = common::start().await;
    // Python and JavaScript servers take the last key: this would run create_support_ticket.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","name":"create_support_ticket","arguments":{}}}"#;
    let body = refused(&t, body, &[], 400).await;
    assert_eq!(body["error"]["data"]["reason"], "duplicate_key");
}

#[tokio::test]
async fn escaped_duplicate_method_is_refused() {
    let t = common::start().await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","m\u0065thod":"tools/call","params":{"name":"x"}}"#;
    let body = refused(&t, body, &[], 400).await;
    assert_eq!(body["error"]["data"]["reason"], "duplicate_key");
}

#[tokio::test]
async fn byte_order_mark_is_refused() {
    let t = common::start().await;
    let mut body = vec![0xEF, 0xBB, 0xBF];
    body.extend_from_slice(TestSystem::tool_call("get_customer_info", 1).as_bytes());
    let body = refused(&t, body, &[], 400).await;
    assert_eq!(body["error"]["code"], -32700);
}

#[tokio::test]
async fn invalid_utf8_and_lone_surrogates_are_refused() {
    let t = common::start().await;
    let mut invalid = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"x":""#.to_vec();
    invalid.extend_from_slice(&[0xC3, 0x28]);
    invalid.extend_from_slice(br#""}}}"#);
    refused(&t, invalid, &[], 400).await;
    let surrogate = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info\ud800","arguments":{}}}"#;
    refused(&t, surrogate, &[], 400).await;
}

#[tokio::test]
async fn non_standard_numbers_and_deep_nesting_are_refused() {
    let t = common::start().await;
    let nan = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"x":NaN}}}"#;
    refused(&t, nan, &[], 400).await;
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_customer_info","arguments":{{"x":{}1{}}}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let body = refused(&t, deep, &[], 400).await;
    assert_eq!(body["error"]["data"]["reason"], "too_deep");
}

#[tokio::test]
async fn tools_call_without_a_string_name_is_refused() {
    let t = common::start().await;
    let body =
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": 7 } });
    refused(&t, body.to_string(), &[], 400).await;
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call" });
    refused(&t, body.to_string(), &[], 400).await;
}

#[tokio::test]
async fn wrong_media_type_is_refused() {
    let t = common::start().await;
    let body = TestSystem::tool_call("get_customer_info", 1);
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonp",
    ] {
        let refusal = refused(&t, body.clone(), &[("content-type", content_type)], 415).await;
        assert_eq!(refusal["error"], "unsupported_media_type", "{content_type}");
        assert_eq!(
            refusal["error_description"], "Content-Type must be application/json",
            "{content_type}"
        );
    }
    let refusal = refused(
        &t,
        body.clone(),
        &[("content-type", "application/json; charset=utf-16")],
        415,
    )
    .await;
    assert_eq!(
        refusal["error_description"],
        "only charset=utf-8 is accepted with application/json"
    );
    forwarded(
        &t,
        body,
        &[("content-type", "Application/JSON; charset=UTF-8")],
    )
    .await;
}

#[tokio::test]
async fn compressed_body_is_refused() {
    let t = common::start().await;
    let body = refused(
        &t,
        TestSystem::tool_call("get_customer_info", 1),
        &[("content-encoding", "gzip")],
        415,
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("Content-Encoding")
    );
}

#[tokio::test]
async fn body_over_the_limit_is_refused() {
    let t = common::start_with(Options {
        mcp_settings: "max_body = \"4KiB\"".into(),
        ..Options::default()
    })
    .await;
    let padding = "x".repeat(8 * 1024);
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "get_customer_info", "arguments": { "pad": padding } }
    });
    let body = refused(&t, body.to_string(), &[], 413).await;
    assert_eq!(body["error"], "body_too_large");
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_refused() {
    let t = common::start_with(Options {
        mcp_settings: "max_body = \"4KiB\"".into(),
        ..Options::default()
    })
    .await;
    // No Content-Length: the limit holds while reading, not just on the declared size.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..16).map(|_| Ok(vec![b' '; 1024])).collect();
    let body = reqwest::Body::wrap_stream(tokio_stream_from(chunks));
    refused(&t, body, &[], 413).await;
}

fn tokio_stream_from(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::iter(chunks)
}

#[tokio::test]
async fn mcp_method_header_must_match_the_body() {
    let t = common::start().await;
    let body = TestSystem::tool_call("get_customer_info", 1);
    let refusal = refused(&t, body.clone(), &[("mcp-method", "tools/list")], 400).await;
    assert_eq!(refusal["error"]["data"]["reason"], "header_mismatch");
    refused(
        &t,
        body.clone(),
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "create_support_ticket"),
        ],
        400,
    )
    .await;
    forwarded(
        &t,
        body,
        &[
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_customer_info"),
        ],
    )
    .await;
}

#[tokio::test]
async fn get_with_a_body_is_refused() {
    let t = common::start().await;
    let response = t
        .http
        .get(t.url())
        .header("authorization", format!("Bearer {}", t.token(&[])))
        .body(TestSystem::tool_call("create_support_ticket", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn forwarded_body_is_byte_for_byte_what_the_client_sent() {
    let t = common::start().await;
    // Odd but valid spacing and key order: a re-serialising proxy would change it.
    let body = "{ \"params\" : {\"arguments\":{\"customer_id\":\"C001\"},\"name\":\"get_customer_info\"},\n\"method\":\"tools/call\", \"id\":  9,\"jsonrpc\":\"2.0\" }";
    forwarded(&t, body, &[]).await;
    assert_eq!(t.system.upstream.last_request_body(), body.as_bytes());
}
