//! Traces through the real proxy: the spans reach a real OTLP/HTTP receiver that decodes them
//! with the official OpenTelemetry protobuf types (tests/python/otlp_receiver.py), and the
//! upstream sees scopegate's span as its parent. The receiver needs `opentelemetry-proto`:
//! `.ci/telemetry.sh` installs it into a venv and runs the `--ignored` tests here with
//! `SCOPEGATE_OTLP_PYTHON` naming that venv's interpreter.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::{Options, TestSystem, eventually, header, open_session, read, sample, scrape};
use serde_json::{Value, json};

/// The client's trace and span, as a W3C `traceparent` would name them.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The receiver process and every JSON line it has printed; killed however the test ends.
struct Receiver {
    child: Child,
    url: String,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start() -> Receiver {
        let python = std::env::var("SCOPEGATE_OTLP_PYTHON").expect(
            "SCOPEGATE_OTLP_PYTHON names a Python with opentelemetry-proto: run .ci/telemetry.sh",
        );
        let mut child = Command::new(python)
            .args(["tests/python/otlp_receiver.py", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python starts");
        let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).expect("the receiver prints JSON");
                kept.lock().unwrap().push(value);
            }
        });
        let (sender, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("http://127.0.0.1:") {
                    let _ = sender.send(line[at..].trim().to_string());
                }
            }
        });
        let url = listening
            .recv_timeout(Duration::from_secs(30))
            .expect("the receiver listens within 30 s");
        Receiver { child, url, lines }
    }

    /// Every decoded span so far.
    fn spans(&self) -> Vec<Value> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| l.get("span").cloned())
            .collect()
    }

    /// Every export request body so far, as received.
    fn bodies(&self) -> Vec<Vec<u8>> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter_map(|l| l["request"]["body_b64"].as_str())
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
            .collect()
    }

    /// Waits for the span whose id is `span_id`.
    async fn span(&self, span_id: &str) -> Value {
        let found = eventually(Duration::from_secs(10), async || {
            self.spans().iter().any(|s| s["span_id"] == span_id)
        })
        .await;
        assert!(found, "span {span_id} exported; got {:#?}", self.spans());
        self.spans()
            .into_iter()
            .find(|s| s["span_id"] == span_id)
            .unwrap()
    }
}

async fn traced_system(receiver: &Receiver, sample_ratio: f64) -> TestSystem {
    common::start_with(Options {
        extra_tables: format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"scopegate-test\"\nsample_ratio = {sample_ratio:?}\n",
            receiver.url
        ),
        ..Options::default()
    })
    .await
}

/// The `traceparent` the upstream last received: (trace id, parent span id, flags).
fn upstream_traceparent(t: &TestSystem) -> (String, String, String) {
    let headers = t.system.upstream.last_request_headers();
    let all: Vec<_> = headers.get_all("traceparent").iter().collect();
    assert_eq!(all.len(), 1, "one traceparent upstream: {all:?}");
    let parts: Vec<String> = all[0]
        .to_str()
        .unwrap()
        .split('-')
        .map(str::to_string)
        .collect();
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!(parts[0], "00");
    (parts[1].clone(), parts[2].clone(), parts[3].clone())
}

/// No token, in any export body or any attribute, and no tool argument.
fn assert_no_secrets(receiver: &Receiver, token: &str) {
    for body in receiver.bodies() {
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains(token), "an export carried the token");
        assert!(
            !text.contains("Bearer"),
            "an export carried an authorization header"
        );
        assert!(!text.contains("C001"), "an export carried a tool argument");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs opentelemetry-proto: .ci/telemetry.sh"]
async fn an_allowed_call_is_a_child_of_the_clients_span_and_the_parent_of_the_upstream_request() {
    let receiver = Receiver::start();
    let t = traced_system(&receiver, 1.0).await;
    let token = t.token(&["customer:read"]);
    let session = open_session(&t, &token).await;
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 7))
        .header("mcp-session-id", &session)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 200, "{body}");

    // The upstream's parent is scopegate's span, in the client's trace; tracestate goes on.
    let (trace, parent, flags) = upstream_traceparent(&t);
    assert_eq!(trace, CLIENT_TRACE);
    assert_ne!(parent, CLIENT_SPAN);
    assert_eq!(flags, "01");
    assert_eq!(
        t.system.upstream.last_request_headers()["tracestate"],
        "vendor=opaque"
    );

    // client → scopegate → upstream: scopegate's span is the client's child.
    let span = receiver.span(&parent).await;
    assert_eq!(span["trace_id"], CLIENT_TRACE);
    assert_eq!(span["parent_span_id"], CLIENT_SPAN);
    assert_eq!(span["name"], "tools/call get_customer_info");
    assert_eq!(span["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(span["resource"]["service.name"], "scopegate-test");
    let attributes = &span["attributes"];
    assert_eq!(attributes["mcp.method.name"], "tools/call");
    assert_eq!(attributes["gen_ai.tool.name"], "get_customer_info");
    assert_eq!(attributes["mcp.session.id"], session.as_str());
    assert_eq!(attributes["jsonrpc.request.id"], "7");
    assert_eq!(attributes["scopegate.decision"], "allow");
    assert_eq!(attributes["scopegate.reason"], "allowed");
    assert_eq!(attributes["scopegate.rule"], "get_customer_info");
    assert_eq!(attributes["scopegate.subject"], "tester");
    assert_eq!(attributes["http.response.status_code"], 200);
    assert!(span["start_ns"].as_u64() <= span["end_ns"].as_u64());
    assert_no_secrets(&receiver, &token);
    let metrics = scrape(&t).await;
    assert_eq!(
        sample(&metrics, "scopegate_trace_spans_dropped_total"),
        Some(0.0)
    );
    assert!(
        sample(
            &metrics,
            "scopegate_trace_exports_total{result=\"success\"}"
        ) >= Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs opentelemetry-proto: .ci/telemetry.sh"]
async fn a_denied_call_is_a_child_of_the_meta_traceparent_with_its_reason_and_nothing_goes_upstream()
 {
    let receiver = Receiver::start();
    let t = traced_system(&receiver, 1.0).await;
    let token = t.token(&[]);
    let before = t.upstream_requests();
    let body = json!({
        "jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {
            "name": "get_customer_info",
            "arguments": { "customer_id": "C001" },
            "_meta": { "traceparent": format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01") }
        }
    });
    let response = t.post(Some(&token), body.to_string()).send().await.unwrap();
    let (status, headers, _) = read(response).await;
    assert_eq!(status, 403);
    assert_eq!(
        t.upstream_requests(),
        before,
        "nothing reached the upstream"
    );

    let found = eventually(Duration::from_secs(10), async || {
        receiver
            .spans()
            .iter()
            .any(|s| s["parent_span_id"] == CLIENT_SPAN)
    })
    .await;
    assert!(
        found,
        "the denial's span is exported: {:#?}",
        receiver.spans()
    );
    let span = receiver
        .spans()
        .into_iter()
        .find(|s| s["parent_span_id"] == CLIENT_SPAN)
        .unwrap();
    assert_eq!(span["trace_id"], CLIENT_TRACE);
    let attributes = &span["attributes"];
    assert_eq!(attributes["jsonrpc.request.id"], "call-1");
    assert_eq!(attributes["scopegate.decision"], "deny");
    assert_eq!(attributes["scopegate.reason"], "insufficient_scope");
    assert_eq!(attributes["http.response.status_code"], 403);
    assert_eq!(span["status_code"], 2, "STATUS_CODE_ERROR");
    assert!(!header(&headers, "x-request-id").is_empty());
    assert_no_secrets(&receiver, &token);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs opentelemetry-proto: .ci/telemetry.sh"]
async fn a_caller_that_samples_out_gets_no_span_but_its_decision_goes_upstream() {
    let receiver = Receiver::start();
    let t = traced_system(&receiver, 1.0).await;
    let token = t.token(&["customer:read"]);
    let session = open_session(&t, &token).await;
    let call = |flags: &'static str, id: i64| {
        t.post(Some(&token), TestSystem::tool_call("get_customer_info", id))
            .header("mcp-session-id", &session)
            .header(
                "traceparent",
                format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-{flags}"),
            )
            .send()
    };
    assert_eq!(call("00", 1).await.unwrap().status(), 200);
    let (_, unsampled, flags) = upstream_traceparent(&t);
    assert_eq!(flags, "00", "the caller's sampling decision is kept");
    assert_eq!(call("01", 2).await.unwrap().status(), 200);
    let (_, sampled, _) = upstream_traceparent(&t);
    // Spans leave in the order they end: once the later one is here, the earlier would be.
    receiver.span(&sampled).await;
    assert!(
        receiver.spans().iter().all(|s| s["span_id"] != unsampled),
        "a sampled-out span was exported"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs opentelemetry-proto: .ci/telemetry.sh"]
async fn a_ratio_of_zero_keeps_no_root_trace_yet_the_upstream_gets_a_traceparent() {
    let receiver = Receiver::start();
    let t = traced_system(&receiver, 0.0).await;
    let token = t.token(&["customer:read"]);
    let session = open_session(&t, &token).await;
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 3))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, _, flags) = upstream_traceparent(&t);
    assert_eq!(flags, "00");
    // A sampled caller still wins over the ratio (parent-based), and is the marker that every
    // earlier span has had its chance to arrive.
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 4))
        .header("mcp-session-id", &session)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, sampled, _) = upstream_traceparent(&t);
    receiver.span(&sampled).await;
    assert!(
        receiver
            .spans()
            .iter()
            .all(|s| s["trace_id"] == CLIENT_TRACE),
        "only the sampled caller's trace is exported: {:#?}",
        receiver.spans()
    );
}

/// Without `[telemetry]` the proxy makes no span and leaves the caller's trace context as sent.
#[tokio::test]
async fn without_telemetry_the_callers_traceparent_reaches_the_upstream_unchanged() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    let session = open_session(&t, &token).await;
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 9))
        .header("mcp-session-id", &session)
        .header("traceparent", &traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = t.system.upstream.last_request_headers();
    assert_eq!(headers["traceparent"], traceparent.as_str());
    let metrics = scrape(&t).await;
    assert_eq!(
        sample(
            &metrics,
            "scopegate_trace_exports_total{result=\"success\"}"
        ),
        Some(0.0)
    );
}
