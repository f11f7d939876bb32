//! What an outside review found getting past the proxy: a second `Mcp-Session-Id`, identity
//! headers spelled with `_`, listings that came back by a path the filter did not watch (a
//! resumed stream, an id written `1.0`, SSE line ends other than LF), a batch that spent rate
//! limit tokens it was refused, and HTTP/1.1 refusals that closed the connection unannounced.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ALL_SCOPES, Refusal, all_pass, check};
use crate::common::{self, Options, TestSystem, header, open_session, read};

/// A token for another principal than `tester`.
fn token_of(t: &TestSystem, subject: &str, scopes: &[&str]) -> String {
    t.system
        .issuer
        .mint(t.system.issuer.claims_for(subject, scopes))
}

#[tokio::test]
async fn a_second_session_header_or_its_underscored_twin_is_refused() {
    let t = common::start().await;
    let mine = t.token(&ALL_SCOPES);
    let own = open_session(&t, &mine).await;
    let theirs = open_session(&t, &token_of(&t, "someone-else", &ALL_SCOPES)).await;
    let repeated = |name: &str| Refusal {
        status: 400,
        challenge: String::new(),
        reason: if name.is_empty() {
            "repeated_header".into()
        } else {
            name.into()
        },
    };
    let call = || t.post(Some(&mine), TestSystem::tool_call("get_customer_info", 2));
    let cases = [
        (
            "two session ids",
            call()
                .header("mcp-session-id", &own)
                .header("mcp-session-id", &theirs),
        ),
        (
            "session id and its underscored twin",
            call()
                .header("mcp-session-id", &own)
                .header("mcp_session_id", &theirs),
        ),
        (
            "two protocol versions",
            call()
                .header("mcp-session-id", &own)
                .header("mcp-protocol-version", "2025-06-18")
                .header("mcp-protocol-version", "2025-03-26"),
        ),
        (
            "two Last-Event-IDs",
            call()
                .header("mcp-session-id", &own)
                .header("last-event-id", "1")
                .header("last-event-id", "2"),
        ),
        (
            "two request ids",
            call()
                .header("mcp-session-id", &own)
                .header("x-request-id", "a")
                .header("x-request-id", "b"),
        ),
        (
            "an underscored Mcp-Method",
            call()
                .header("mcp-session-id", &own)
                .header("mcp_method", "tools/list"),
        ),
    ];
    let mut results = Vec::new();
    for (name, request) in cases {
        results.push(check(&t, name, request, &repeated(""), Some(&mine)).await);
    }
    all_pass(results);
    // The caller's own session alone still works.
    let response = call().header("mcp-session-id", &own).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn underscored_copies_of_headers_the_proxy_sets_never_reach_the_upstream() {
    let t = common::start().await;
    let token = t.token(&ALL_SCOPES);
    let session = open_session(&t, &token).await;
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 3))
        .header("mcp-session-id", &session)
        .header("x_scopegate_subject", "admin")
        .header("X_Scopegate_Client_Id", "root")
        .header("x_forwarded_for", "203.0.113.9")
        .header("x-unrelated_header", "kept")
        .header("forwarded", "for=203.0.113.9;proto=http")
        .header("x-real-ip", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = t.system.upstream.last_request_headers();
    for name in [
        "x_scopegate_subject",
        "x_scopegate_client_id",
        "x_forwarded_for",
        "forwarded",
        "x-real-ip",
    ] {
        assert!(seen.get(name).is_none(), "{name} reached the upstream");
    }
    assert_eq!(seen["x-scopegate-subject"], "tester");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-unrelated_header"], "kept");
}

/// A listing as an upstream writes it: `inputSchema` keys in its own order (zeta before alpha).
fn listing(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"get_customer_info","inputSchema":{{"type":"object","properties":{{"zeta":{{"type":"string"}},"alpha":{{"type":"number"}}}}}}}},{{"name":"create_support_ticket","inputSchema":{{"type":"object"}}}}],"nextCursor":"c2"}}}}"#
    )
}

/// An MCP upstream that answers every request with the same scripted response, and counts.
async fn scripted_upstream(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let body = Bytes::from(body);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (seen, body) = (seen.clone(), body.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        seen.fetch_add(1, Ordering::SeqCst);
                        let body = body.clone();
                        async move {
                            let _ = request.into_body().collect().await;
                            let mut response = hyper::Response::new(Full::new(body));
                            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            for (name, value) in headers {
                                response.headers_mut().append(*name, value.parse().unwrap());
                            }
                            Ok::<_, Infallible>(response)
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (url, count)
}

/// The proxy in front of an upstream that answers everything with `status`, `headers`, `body`.
async fn system_answering(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
) -> (TestSystem, Arc<AtomicUsize>) {
    let (url, count) = scripted_upstream(status, headers, body).await;
    let t = common::start_with(Options {
        upstream_url: Some(url),
        ..Options::default()
    })
    .await;
    (t, count)
}

async fn system_before(content_type: &'static str, body: String) -> (TestSystem, Arc<AtomicUsize>) {
    let headers: &'static [(&'static str, &'static str)] = match content_type {
        "application/json" => &[("content-type", "application/json")],
        _ => &[("content-type", "text/event-stream")],
    };
    system_answering(200, headers, body.into_bytes()).await
}

/// A resumed GET stream through the proxy, as a `customer:read` caller: status and body.
async fn resumed_stream(t: &TestSystem) -> (u16, String) {
    let response = t
        .http
        .get(t.url())
        .bearer_auth(t.token(&["customer:read"]))
        .header("accept", "text/event-stream")
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn tool_names(listing: &Value) -> Vec<&str> {
    listing["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect()
}

const LIST_REQUEST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

#[tokio::test]
async fn an_answer_id_written_1_0_is_filtered_with_the_upstreams_key_order_kept() {
    let (t, upstream) = system_before("application/json", listing("1.0")).await;
    let response = t
        .post(Some(&t.token(&["customer:read"])), LIST_REQUEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_eq!(upstream.load(Ordering::SeqCst), 1);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(tool_names(&value), ["get_customer_info"]);
    // The kept entry is the upstream's own bytes: its keys in its order.
    assert_eq!(
        text,
        listing("1.0").replace(
            r#",{"name":"create_support_ticket","inputSchema":{"type":"object"}}"#,
            ""
        )
    );
}

/// Sends `request` (id 1) as a `customer:read` caller to a proxy whose upstream answers
/// `answer` as JSON, and asserts the answer is refused as unreadable, not relayed.
async fn refused_as_unreadable(request: &'static str, answer: String) {
    let (t, upstream) = system_before("application/json", answer).await;
    let response = t
        .post(Some(&t.token(&["customer:read"])), request)
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 502);
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["data"]["reason"], "list_unreadable");
    assert_eq!(upstream.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_listing_that_cannot_be_read_is_refused_not_relayed() {
    let duplicated = listing("1").replace(r#","nextCursor""#, r#","tools":[],"nextCursor""#);
    refused_as_unreadable(LIST_REQUEST, duplicated).await;
}

#[tokio::test]
async fn a_tool_result_is_relayed_byte_for_byte_and_one_that_is_not_json_is_refused() {
    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_customer_info","arguments":{"customer_id":"C-1"}}}"#;
    // No listing name in its bytes: only checked to be JSON, then passed on as it came.
    let result = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"plan\":\"pro\"}"}]}}"#;
    let (t, upstream) = system_before("application/json", result.to_string()).await;
    let response = t
        .post(Some(&t.token(&["customer:read"])), CALL)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), result);
    assert_eq!(upstream.load(Ordering::SeqCst), 1);

    refused_as_unreadable(CALL, result.replace("}}", "}")).await;
}

/// The events of a stream whose lines end in `line_end` and events in `blank`.
fn replay(line_end: &str, blank: &str) -> String {
    format!(
        "id: 0{line_end}data: {line_end}{blank}id: 1{line_end}event: message{line_end}data: {}{line_end}{blank}",
        listing("1")
    )
}

#[tokio::test]
async fn a_resumed_stream_replays_listings_filtered_whatever_its_line_ends() {
    for (line_end, blank) in [("\n", "\n"), ("\r", "\r"), ("\n", "\r\n"), ("\r\n", "\r\n")] {
        let (t, upstream) = system_before("text/event-stream", replay(line_end, blank)).await;
        let (status, text) = resumed_stream(&t).await;
        assert_eq!(status, 200);
        assert_eq!(upstream.load(Ordering::SeqCst), 1);
        assert!(text.contains("get_customer_info"), "{line_end:?}: {text:?}");
        assert!(
            !text.contains("create_support_ticket"),
            "{line_end:?} / {blank:?} relayed unfiltered: {text:?}"
        );
        // The event keeps its id, so the client can resume after it.
        assert!(text.contains("event: message\nid: 1\ndata: {"), "{text:?}");
        // The priming event before it keeps its id and empty data, written anew.
        assert!(text.starts_with("id: 0\ndata: \n\n"), "{text:?}");
    }
}

#[tokio::test]
async fn a_refused_batch_spends_no_rate_limit_tokens() {
    let policy = "version = 1\n\
        [[tools]]\nname = \"get_customer_info\"\nscopes = []\nrate_limit = \"2/h\"\n\
        [[tools]]\nname = \"calculate_account_value\"\nscopes = []\nrate_limit = \"1/h\"\n";
    let t = common::start_with(Options {
        policy: Some(policy.into()),
        ..Options::default()
    })
    .await;
    let token = t.token(&[]);
    let session = open_session(&t, &token).await;
    let send = async |body: String| {
        let before = t.upstream_requests();
        let response = t
            .post(Some(&token), body)
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap();
        let (status, _, body) = read(response).await;
        (status, body, t.upstream_requests() - before)
    };
    let (status, _, reached) = send(TestSystem::tool_call("calculate_account_value", 1)).await;
    assert_eq!((status, reached), (200, 1));
    let batch = json!([
        { "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": { "name": "get_customer_info", "arguments": { "customer_id": "C001" } } },
        { "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "calculate_account_value", "arguments": { "customer_id": "C001" } } }
    ]);
    let (status, body, reached) = send(batch.to_string()).await;
    assert_eq!((status, reached), (429, 0), "{body}");
    assert_eq!(body["error"]["data"]["rule"], "calculate_account_value");
    assert_eq!(body["id"], 3);
    // get_customer_info kept both of its calls.
    for id in [4, 5] {
        let (status, body, reached) = send(TestSystem::tool_call("get_customer_info", id)).await;
        assert_eq!((status, reached), (200, 1), "{body}");
    }
    let (status, _, reached) = send(TestSystem::tool_call("get_customer_info", 6)).await;
    assert_eq!((status, reached), (429, 0));
}

#[tokio::test]
async fn a_refusal_before_the_body_announces_that_the_connection_closes() {
    let t = common::start().await;
    let mut tls = super::wire::raw_tls(&t).await;
    // The head says a body follows; the proxy answers 401 before reading it.
    tls.write_all(
        b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let read_all = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    assert!(read_all.is_ok(), "the connection was not closed");
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 401"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
}

#[tokio::test]
async fn every_answer_outside_the_mcp_endpoint_has_a_request_id_and_metadata_takes_head() {
    let t = common::start().await;
    let metadata = scopegate_core::metadata::url_for(&t.system.resource);
    let get = t.http.get(&metadata).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert!(!header(get.headers(), "x-request-id").is_empty());
    let document = get.bytes().await.unwrap();

    let head = t.http.head(&metadata).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        header(head.headers(), "content-length"),
        document.len().to_string()
    );
    assert_eq!(header(head.headers(), "content-type"), "application/json");
    assert!(head.bytes().await.unwrap().is_empty());

    let post = t.http.post(&metadata).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(header(post.headers(), "allow"), "GET, HEAD");

    let missing = t
        .http
        .get(t.url().replace("/mcp", "/nowhere"))
        .header("x-request-id", "trace-me")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(header(missing.headers(), "x-request-id"), "trace-me");
}

#[tokio::test]
async fn a_listing_on_the_stream_of_a_post_that_did_not_ask_for_one_is_filtered() {
    // SDK servers route answers by JSON-RPC id: when two POSTs of a session share an id, one
    // POST's `tools/list` answer is written to the other's stream.
    let stream = format!("event: message\ndata: {}\n\n", listing("5"));
    let (t, _) = system_before("text/event-stream", stream).await;
    let ping = r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#;
    let response = t
        .post(Some(&t.token(&["customer:read"])), ping)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("get_customer_info"), "{text}");
    assert!(!text.contains("create_support_ticket"), "{text}");
}

#[tokio::test]
async fn bytes_other_readers_split_or_strip_cannot_hide_a_listing() {
    // The TypeScript SDK's reader strips a mojibake BOM from its first chunk; httpx (the Python
    // SDK's) also ends lines at \x0c and U+2028. The proxy writes every event anew from what it
    // read, so none of these bytes reach the client.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "mojibake BOM",
            [
                &b"\xC3\xAF\xC2\xBB\xC2\xBF"[..],
                format!("data: {}\n\n", listing("1")).as_bytes(),
            ]
            .concat(),
        ),
        (
            "form feed",
            format!(": keep-alive\x0cdata: {}\n\n", listing("1")).into_bytes(),
        ),
        (
            "U+2028",
            format!(": keep-alive\u{2028}data: {}\n\n", listing("1")).into_bytes(),
        ),
        (
            "in an id",
            format!("id: 1\x0cdata: {}\ndata: {{}}\n\n", listing("1")).into_bytes(),
        ),
    ];
    for (name, body) in cases {
        let (t, _) = system_answering(200, &[("content-type", "text/event-stream")], body).await;
        let (status, text) = resumed_stream(&t).await;
        assert_eq!(status, 200, "{name}");
        assert!(!text.contains("create_support_ticket"), "{name}: {text:?}");
    }
}

#[tokio::test]
async fn an_error_answer_is_filtered_too_and_compressed_or_partial_ones_are_refused() {
    // A client shows an error's body to its user or model.
    let (t, _) = system_answering(
        500,
        &[("content-type", "Application/JSON; charset=utf-8")],
        listing("1").into_bytes(),
    )
    .await;
    let response = t
        .post(Some(&t.token(&["customer:read"])), LIST_REQUEST)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("get_customer_info") && !text.contains("create_support_ticket"),
        "{text}"
    );

    for headers in [
        &[
            ("content-type", "text/event-stream"),
            ("content-encoding", "gzip"),
        ][..],
        &[
            ("content-type", "application/json"),
            ("content-encoding", "br"),
        ],
    ] {
        let (t, _) = system_answering(200, headers, listing("1").into_bytes()).await;
        let (status, text) = resumed_stream(&t).await;
        assert_eq!(status, 502, "{headers:?}: {text}");
        assert!(text.contains("list_unreadable"), "{text}");
    }
    let (t, _) = system_answering(206, &[("content-type", "text/event-stream")], Vec::new()).await;
    assert_eq!(resumed_stream(&t).await.0, 502);
}

#[tokio::test]
async fn an_accepted_chunked_post_keeps_its_connection() {
    let t = common::start().await;
    let token = t.token(&ALL_SCOPES);
    let session = open_session(&t, &token).await;
    let body = TestSystem::tool_call("get_customer_info", 2);
    let mut tls = super::wire::raw_tls(&t).await;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(!text.contains("\r\nconnection: close\r\n"), "{text}");
}

#[tokio::test]
async fn a_header_named_in_connection_is_dropped_before_the_proxy_decides_on_it() {
    let t = common::start().await;
    let token = t.token(&ALL_SCOPES);
    let session = open_session(&t, &token).await;
    let init = json!({"jsonrpc":"2.0","id":9,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}).to_string();
    let mut tls = super::wire::raw_tls(&t).await;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\nConnection: mcp-session-id\r\nContent-Length: {}\r\n\r\n{init}",
        init.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // The proxy decided on what the upstream got: a new session, bound to this caller.
    let seen = t.system.upstream.last_request_headers();
    assert!(seen.get("mcp-session-id").is_none(), "{seen:?}");
    let issued = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("mcp-session-id")
                .then(|| value.trim().to_string())
        })
        .expect("a new session");
    assert_ne!(issued, session);
    let other = t
        .system
        .issuer
        .mint(t.system.issuer.claims_for("someone-else", &ALL_SCOPES));
    let response = t
        .post(Some(&other), TestSystem::tool_call("get_customer_info", 3))
        .header("mcp-session-id", issued)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        404,
        "the new session is bound to its creator"
    );
}
