//! MCP 2026-07-28 (stateless) through the proxy: `server/discover` and `subscriptions/listen`,
//! header–body agreement (`-32020`), private cache scope on filtered listings, multi round-trip
//! retries decided one by one, and task handles bound to their creator. The upstream is scripted
//! per method, so each test states exactly what the server said and counts what reached it.

use crate::common;
mod rmcp_client;
mod tasks;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{Options, TestSystem, read};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const VERSION: &str = "2026-07-28";

/// What the scripted upstream answers to one request body.
enum Reply {
    Json(String),
    /// An event stream whose events the test sends, one `Bytes` each, while it stays open.
    Stream(mpsc::Receiver<Bytes>),
}

type Script = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

/// An upstream that answers as `script` says and counts the requests that reached it.
struct Upstream {
    url: String,
    seen: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start(script: Script) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, script) = (counter.clone(), script.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            counter.fetch_add(1, Ordering::SeqCst);
                            let script = script.clone();
                            async move {
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let value: Value =
                                    serde_json::from_slice(&body).unwrap_or_default();
                                Ok::<_, Infallible>(respond(script(&value)))
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
        Upstream { url, seen }
    }

    fn requests(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

fn respond(reply: Reply) -> hyper::Response<UnsyncBoxBody<Bytes, Infallible>> {
    let (content_type, body) = match reply {
        Reply::Json(text) => (
            "application/json",
            Full::new(Bytes::from(text)).boxed_unsync(),
        ),
        Reply::Stream(events) => {
            let frames = futures_util::stream::unfold(events, |mut events| async move {
                let event = events.recv().await?;
                Some((Ok::<_, Infallible>(Frame::data(event)), events))
            });
            (
                "text/event-stream",
                StreamBody::new(Box::pin(frames)).boxed_unsync(),
            )
        }
    };
    let mut response = hyper::Response::new(body);
    response
        .headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    response
}

/// The proxy in front of `script`, with `policy` (the customer-service one when `None`).
async fn system(script: Script, policy: Option<&str>) -> (TestSystem, Upstream) {
    let upstream = Upstream::start(script).await;
    let t = common::start_with(Options {
        upstream_url: Some(upstream.url.clone()),
        policy: policy.map(str::to_string),
        ..Options::default()
    })
    .await;
    (t, upstream)
}

/// A 2026-07-28 request body: `params` with the `_meta` such a client sends.
fn request(id: i64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientInfo": { "name": "test", "version": "1" },
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string()
}

/// A POST with the headers a 2026-07-28 client sends, then `extra` (which may repeat them).
fn post(
    t: &TestSystem,
    token: &str,
    body: String,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut request = t.post(Some(token), body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
}

fn ok(id: i64, result: Value) -> Reply {
    Reply::Json(json!({ "jsonrpc": "2.0", "id": id, "result": result }).to_string())
}

#[tokio::test]
async fn server_discover_and_subscriptions_listen_need_only_a_valid_token() {
    let (t, upstream) = system(
        Arc::new(|body| {
            ok(
                body["id"].as_i64().unwrap_or(0),
                json!({ "resultType": "complete" }),
            )
        }),
        None,
    )
    .await;
    let token = t.token(&[]);
    for method in ["server/discover", "subscriptions/listen"] {
        let before = upstream.requests();
        let body = request(1, method, json!({}));
        let headers = [("mcp-protocol-version", VERSION), ("mcp-method", method)];
        let (status, _, answer) =
            read(post(&t, &token, body, &headers).send().await.unwrap()).await;
        assert_eq!(status, 200, "{method}: {answer}");
        assert_eq!(upstream.requests(), before + 1, "{method}");
    }
    // Without a token, not even discovery.
    let body = request(1, "server/discover", json!({}));
    let response = t.post(None, body).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn the_listen_stream_is_relayed_event_by_event_while_it_stays_open() {
    let (events, stream) = mpsc::channel::<Bytes>(4);
    let stream = Mutex::new(Some(stream));
    let (t, _upstream) = system(
        Arc::new(move |_| Reply::Stream(stream.lock().unwrap().take().expect("one listen"))),
        None,
    )
    .await;
    let acknowledged = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\",\"params\":{\"notifications\":{\"toolsListChanged\":true}}}\n\n";
    events.send(Bytes::from(acknowledged)).await.unwrap();
    let body = request(
        7,
        "subscriptions/listen",
        json!({ "notifications": { "toolsListChanged": true } }),
    );
    let headers = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "subscriptions/listen"),
    ];
    let mut response = post(&t, &t.token(&[]), body, &headers)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        common::header(response.headers(), "content-type"),
        "text/event-stream"
    );
    // The upstream has not ended the stream: each event must arrive on its own.
    let within = Duration::from_secs(10);
    let first = tokio::time::timeout(within, response.chunk())
        .await
        .expect("first event relayed");
    assert_eq!(first.unwrap().unwrap(), acknowledged);
    let changed = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
    events.send(Bytes::from(changed)).await.unwrap();
    let second = tokio::time::timeout(within, response.chunk())
        .await
        .expect("next event relayed");
    assert_eq!(second.unwrap().unwrap(), changed);
}

#[tokio::test]
async fn the_listen_stream_drops_updates_of_resources_the_caller_may_not_subscribe_to() {
    let (events, stream) = mpsc::channel::<Bytes>(4);
    let stream = Mutex::new(Some(stream));
    let policy =
        "version = 1\n[methods]\n\"resources/subscribe\" = { scopes = [\"customer:read\"] }\n";
    let (t, _upstream) = system(
        Arc::new(move |_| Reply::Stream(stream.lock().unwrap().take().expect("one listen"))),
        Some(policy),
    )
    .await;
    let body = request(
        8,
        "subscriptions/listen",
        json!({ "notifications": { "resourceSubscriptions": ["file:///secret"] } }),
    );
    let headers = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "subscriptions/listen"),
    ];
    let mut response = post(&t, &t.token(&[]), body, &headers)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let updated = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/updated\",\"params\":{\"uri\":\"file:///secret\"}}\n\n";
    let changed = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n";
    events.send(Bytes::from(updated)).await.unwrap();
    events.send(Bytes::from(changed)).await.unwrap();
    let within = Duration::from_secs(10);
    let next = tokio::time::timeout(within, response.chunk())
        .await
        .expect("an event relayed");
    assert_eq!(next.unwrap().unwrap(), changed);
}

#[tokio::test]
async fn headers_that_disagree_with_the_body_are_refused_with_32020_before_the_upstream() {
    let (t, upstream) = system(
        Arc::new(|body| ok(body["id"].as_i64().unwrap_or(0), json!({ "content": [] }))),
        None,
    )
    .await;
    let token = t.token(&["customer:read", "ticket:create"]);
    let call = || {
        request(
            3,
            "tools/call",
            json!({ "name": "get_customer_info", "arguments": { "customer_id": "C001" } }),
        )
    };
    let encoded = "=?base64?Z2V0X2N1c3RvbWVyX2luZm8=?="; // get_customer_info
    let wrong_encoded = "=?base64?Y3JlYXRlX3N1cHBvcnRfdGlja2V0?="; // create_support_ticket
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "version header differs from _meta",
            vec![
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_customer_info"),
            ],
        ),
        (
            "version header missing",
            vec![
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_customer_info"),
            ],
        ),
        (
            "Mcp-Method differs",
            vec![
                ("mcp-protocol-version", VERSION),
                ("mcp-method", "tools/list"),
                ("mcp-name", "get_customer_info"),
            ],
        ),
        (
            "Mcp-Method missing",
            vec![
                ("mcp-protocol-version", VERSION),
                ("mcp-name", "get_customer_info"),
            ],
        ),
        (
            "Mcp-Name differs",
            vec![
                ("mcp-protocol-version", VERSION),
                ("mcp-method", "tools/call"),
                ("mcp-name", "create_support_ticket"),
            ],
        ),
        (
            "encoded Mcp-Name differs",
            vec![
                ("mcp-protocol-version", VERSION),
                ("mcp-method", "tools/call"),
                ("mcp-name", wrong_encoded),
            ],
        ),
        (
            "Mcp-Name not base64",
            vec![
                ("mcp-protocol-version", VERSION),
                ("mcp-method", "tools/call"),
                ("mcp-name", "=?base64?***?="),
            ],
        ),
        (
            "Mcp-Name missing on tools/call",
            vec![
                ("mcp-protocol-version", VERSION),
                ("mcp-method", "tools/call"),
            ],
        ),
    ];
    for (name, headers) in &cases {
        let before = upstream.requests();
        let (status, _, body) = read(post(&t, &token, call(), headers).send().await.unwrap()).await;
        assert_eq!(status, 400, "{name}: {body}");
        assert_eq!(body["error"]["code"], -32020, "{name}: {body}");
        assert_eq!(body["error"]["data"]["reason"], "header_mismatch", "{name}");
        // The answer names the request it refuses (a null id is no valid answer to a request).
        assert_eq!(body["id"], 3, "{name}: {body}");
        assert_eq!(upstream.requests(), before, "{name}: reached the upstream");
    }
    // A repeated mirrored argument: the proxy and the upstream could each read another copy.
    let before = upstream.requests();
    let headers = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "tools/call"),
        ("mcp-name", "get_customer_info"),
        ("mcp-param-region", "eu"),
        ("mcp-param-region", "us"),
    ];
    let (status, _, body) = read(post(&t, &token, call(), &headers).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["data"]["reason"].as_str()),
        (400, Some("repeated_header"))
    );
    assert_eq!(upstream.requests(), before);
    // Agreeing headers, the name plain or encoded, pass.
    for name in ["get_customer_info", encoded] {
        let headers = [
            ("mcp-protocol-version", VERSION),
            ("mcp-method", "tools/call"),
            ("mcp-name", name),
        ];
        let (status, _, body) =
            read(post(&t, &token, call(), &headers).send().await.unwrap()).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    assert_eq!(upstream.requests(), before + 2);
}

#[tokio::test]
async fn a_filtered_listing_says_cache_scope_private_and_keeps_the_rest_of_the_bytes() {
    let listing = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_customer_info","inputSchema":{"type":"object"}},{"name":"create_support_ticket","inputSchema":{"type":"object"}}],"ttlMs":300000,"cacheScope":"public","resultType":"complete"}}"#;
    let (t, upstream) = system(Arc::new(move |_| Reply::Json(listing.to_string())), None).await;
    let body = request(1, "tools/list", json!({}));
    let headers = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "tools/list"),
    ];
    let response = post(&t, &t.token(&["customer:read"]), body, &headers)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_eq!(upstream.requests(), 1);
    assert_eq!(
        text,
        listing
            .replace(
                r#",{"name":"create_support_ticket","inputSchema":{"type":"object"}}"#,
                ""
            )
            .replace(r#""public""#, r#""private""#)
    );
}

#[tokio::test]
async fn each_retry_of_an_input_required_call_is_authorized_as_a_new_call() {
    let policy = "version = 1\n[[tools]]\nname = \"get_customer_info\"\nscopes = [\"customer:read\"]\nrate_limit = \"1/m\"\n";
    let (t, upstream) = system(
        Arc::new(|body| {
            let id = body["id"].as_i64().unwrap_or(0);
            ok(id, json!({ "resultType": "input_required", "inputRequests": { "q": { "method": "elicitation/create", "params": { "message": "Which?" } } } }))
        }),
        Some(policy),
    )
    .await;
    let token = t.token(&["customer:read"]);
    let headers = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "tools/call"),
        ("mcp-name", "get_customer_info"),
    ];
    let first = request(
        1,
        "tools/call",
        json!({ "name": "get_customer_info", "arguments": { "customer_id": "C001" } }),
    );
    let (status, _, body) = read(post(&t, &token, first, &headers).send().await.unwrap()).await;
    assert_eq!(
        (status, body["result"]["resultType"].as_str()),
        (200, Some("input_required"))
    );
    // The retry carries the answers; it is one more call for the policy and its rate limit.
    let retry = request(
        2,
        "tools/call",
        json!({
            "name": "get_customer_info", "arguments": { "customer_id": "C001" },
            "inputResponses": { "q": { "action": "accept", "content": { "which": "C001" } } }
        }),
    );
    let (status, _, body) = read(
        post(&t, &token, retry.clone(), &headers)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["data"]["reason"].as_str()),
        (429, Some("rate_limited"))
    );
    assert_eq!(body["id"], 2);
    // And a token without the scope is refused on the retry, whatever the first round was.
    let (status, _, body) = read(
        post(&t, &t.token(&[]), retry, &headers)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["data"]["reason"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(upstream.requests(), 1);
}

#[tokio::test]
async fn mirrored_arguments_must_match_the_marks_the_listed_tool_declares() {
    let listing = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"get_customer_info","inputSchema":{"type":"object","properties":{"customer_id":{"type":"string","x-mcp-header":"Customer"}}}}],"ttlMs":0,"cacheScope":"private"}}"#;
    let (t, upstream) = system(
        Arc::new(move |body| match body["method"].as_str() {
            Some("tools/list") => Reply::Json(listing.to_string()),
            _ => ok(body["id"].as_i64().unwrap_or(0), json!({ "content": [] })),
        }),
        None,
    )
    .await;
    let token = t.token(&["customer:read"]);
    let list = [
        ("mcp-protocol-version", VERSION),
        ("mcp-method", "tools/list"),
    ];
    let response = post(&t, &token, request(1, "tools/list", json!({})), &list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let call = || {
        request(
            2,
            "tools/call",
            json!({ "name": "get_customer_info", "arguments": { "customer_id": "C001" } }),
        )
    };
    let headers = |customer: Option<&'static str>| {
        let mut headers = vec![
            ("mcp-protocol-version", VERSION),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_customer_info"),
        ];
        headers.extend(customer.map(|value| ("mcp-param-customer", value)));
        headers
    };
    for (case, customer) in [
        ("differs", Some("C002")),
        ("missing", None),
        ("undecodable", Some("=?base64?***?=")),
    ] {
        let before = upstream.requests();
        let (status, _, body) = read(
            post(&t, &token, call(), &headers(customer))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &json!(-32020)),
            "{case}: {body}"
        );
        assert_eq!(body["error"]["data"]["reason"], "header_mismatch", "{case}");
        assert_eq!(upstream.requests(), before, "{case}: reached the upstream");
    }
    let before = upstream.requests();
    for customer in ["C001", "=?base64?QzAwMQ==?="] {
        let (status, _, body) = read(
            post(&t, &token, call(), &headers(Some(customer)))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{customer}: {body}");
    }
    // A client of an earlier revision mirrors nothing and is not held to the marks.
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 3))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.requests(), before + 3);
}
