use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

const SSE_AND_JSON: &str = "application/json, text/event-stream";
const PROTOCOL_VERSION: &str = "2025-06-18";

/// The `data:` payloads of an SSE body that carry JSON (priming events have empty data).
fn sse_messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .filter(|data| !data.is_empty())
        .map(|data| serde_json::from_str(data).expect("SSE data is JSON"))
        .collect()
}

/// A raw streamable-HTTP client: one POST per JSON-RPC message, session id carried along.
struct RawClient {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
}

impl RawClient {
    fn new(server: &SampleServerHandle) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: server.url(),
            session: None,
        }
    }

    fn post(&self, message: &Value) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", SSE_AND_JSON)
            .header("x-forwarded-for", "192.0.2.7")
            .body(message.to_string());
        if let Some(session) = &self.session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        request
    }

    /// Sends a request and returns the JSON-RPC response with its id, from SSE or plain JSON.
    async fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        let message = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let response = self.post(&message).send().await.expect("server answers");
        assert_eq!(response.status(), 200, "{method}");
        if let Some(session) = response.headers().get("mcp-session-id") {
            self.session = Some(session.to_str().unwrap().to_owned());
        }
        let is_sse = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream");
        let body = response.text().await.unwrap();
        let messages = if is_sse {
            sse_messages(&body)
        } else {
            vec![serde_json::from_str(&body).unwrap()]
        };
        messages
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no response to {method} in {body}"))
    }

    async fn initialize(&mut self) {
        let response = self
            .call(
                1,
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": { "name": "sample-server-test", "version": "0" },
                }),
            )
            .await;
        assert!(response["result"]["serverInfo"].is_object(), "{response}");
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let response = self.post(&initialized).send().await.unwrap();
        assert_eq!(response.status(), 202);
    }

    async fn tool_names(&mut self) -> Vec<String> {
        let response = self.call(2, "tools/list", json!({})).await;
        let mut names: Vec<String> = response["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    /// Calls a tool and returns its `result`.
    async fn call_tool(&mut self, id: u64, name: &str, arguments: Value) -> Value {
        let response = self
            .call(
                id,
                "tools/call",
                json!({ "name": name, "arguments": arguments }),
            )
            .await;
        response["result"].clone()
    }
}

/// The JSON inside a tool result's first text block.
fn text_json(result: &Value) -> Value {
    serde_json::from_str(result["content"][0]["text"].as_str().expect("text content"))
        .expect("text is JSON")
}

#[tokio::test]
async fn answers_initialize_tools_list_and_tools_call_over_sse_and_counts_requests() {
    let server = SampleServer::start(SampleServerOptions::default())
        .await
        .unwrap();
    assert_eq!(server.url(), format!("http://{}/mcp", server.addr()));
    assert_eq!(server.requests(), 0);
    let mut client = RawClient::new(&server);

    client.initialize().await;
    assert!(
        client.session.is_some(),
        "stateful mode hands out a session"
    );
    assert_eq!(
        client.tool_names().await,
        [
            "calculate_account_value",
            "create_support_ticket",
            "get_customer_info",
            "get_recent_customers",
        ]
    );
    let result = client
        .call_tool(3, "get_customer_info", json!({ "customer_id": "C001" }))
        .await;
    assert_ne!(result["isError"], true, "{result}");
    assert_eq!(
        text_json(&result),
        json!({ "id": "C001", "name": "Alice Martin", "email": "alice.martin@example.com", "tier": "gold" })
    );

    assert_eq!(server.requests(), 4);
    let headers = server.last_request_headers();
    assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
    assert!(!headers.contains_key("authorization"));
}

#[tokio::test]
async fn tools_compute_from_the_fixed_table() {
    let server = SampleServer::start(SampleServerOptions::default())
        .await
        .unwrap();
    let mut client = RawClient::new(&server);
    client.initialize().await;

    let unknown = client
        .call_tool(3, "get_customer_info", json!({ "customer_id": "C999" }))
        .await;
    assert_eq!(unknown["isError"], true, "{unknown}");

    let recent = client
        .call_tool(4, "get_recent_customers", json!({ "limit": 2 }))
        .await;
    assert_eq!(text_json(&recent)["customers"].as_array().unwrap().len(), 2);

    let value = client
        .call_tool(
            5,
            "calculate_account_value",
            json!({ "customer_id": "C001" }),
        )
        .await;
    assert_eq!(text_json(&value)["total"], "520.49");

    let ticket = |id| json!({ "customer_id": "C002", "subject": "Refund", "description": "Order 17", "priority": id });
    let first = text_json(
        &client
            .call_tool(6, "create_support_ticket", ticket("high"))
            .await,
    );
    let second = text_json(
        &client
            .call_tool(7, "create_support_ticket", ticket("low"))
            .await,
    );
    assert_eq!(first["ticket_id"], "T0001");
    assert_eq!(first["priority"], "high");
    assert_eq!(second["ticket_id"], "T0002");
}

#[tokio::test]
async fn slow_count_streams_progress_before_its_result() {
    let server = SampleServer::start(SampleServerOptions {
        slow_tools: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut client = RawClient::new(&server);
    client.initialize().await;
    assert!(client.tool_names().await.contains(&"slow_count".to_owned()));

    let call = json!({
        "jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {
            "name": "slow_count",
            "arguments": { "count": 3, "delay_ms": 100 },
            "_meta": { "progressToken": "count-1" },
        },
    });
    let mut response = client.post(&call).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    // Read event by event; record what each message was when it arrived.
    let mut seen = Vec::new();
    let mut buffer = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.iter().any(|(m, _): &(Value, Instant)| m["id"] == 9) {
        assert!(Instant::now() < deadline, "no result; saw {seen:?}");
        let chunk = response.chunk().await.unwrap().expect("stream still open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            seen.extend(
                sse_messages(&event)
                    .into_iter()
                    .map(|m| (m, Instant::now())),
            );
        }
    }
    let methods: Vec<_> = seen
        .iter()
        .map(|(m, _)| m["method"].as_str().unwrap_or("result"))
        .collect();
    assert_eq!(
        methods,
        [
            "notifications/progress",
            "notifications/progress",
            "notifications/progress",
            "result"
        ]
    );
    assert_eq!(seen[0].0["params"]["progressToken"], "count-1");
    assert_eq!(text_json(&seen[3].0["result"]), json!({ "counted": 3 }));
    // The first progress event arrived while two more 100 ms steps were still to come.
    assert!(seen[3].1 - seen[0].1 >= Duration::from_millis(150));
}

#[tokio::test]
async fn slow_count_is_absent_unless_enabled() {
    let server = SampleServer::start(SampleServerOptions::default())
        .await
        .unwrap();
    let mut client = RawClient::new(&server);
    client.initialize().await;
    assert!(!client.tool_names().await.contains(&"slow_count".to_owned()));
}

#[tokio::test]
async fn json_response_mode_answers_in_plain_json_without_a_session() {
    let server = SampleServer::start(SampleServerOptions {
        json_response: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = RawClient::new(&server);
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": { "name": "sample-server-test", "version": "0" },
        },
    });
    let response = client.post(&initialize).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("mcp-session-id"));
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], 1);
    assert!(body["result"]["serverInfo"].is_object());
}

#[tokio::test]
async fn other_paths_are_not_found_but_still_counted() {
    let server = SampleServer::start(SampleServerOptions::default())
        .await
        .unwrap();
    let response = reqwest::get(format!("http://{}/other", server.addr()))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(server.requests(), 1);
}
