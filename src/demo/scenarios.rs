//! The demo's scenarios: real clients asking for real tokens and calling tools through the proxy,
//! each outcome shown in a table. Speaks plain HTTP so the status and headers a client sees are
//! on screen, not hidden behind an SDK.

use std::fmt::Write as _;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use scopegate_adapter as adapter;
use scopegate_core::client::{self, HttpClient};
use scopegate_testkit::issuer::form_encode;
use scopegate_testkit::scripted_model::ScriptedModel;
use scopegate_testkit::system::DemoSystem;

/// One scenario's result, as the table shows it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: &'static str,
    pub client: &'static str,
    pub call: String,
    pub expected: StatusCode,
    pub status: StatusCode,
    pub detail: String,
    /// Whether what the client saw beyond the status is what the scenario expects: for the chat
    /// rows, the tool call's decision and what the model was told.
    pub as_told: bool,
}

impl Outcome {
    pub fn as_expected(&self) -> bool {
        self.status == self.expected && self.as_told
    }
}

/// A response as the demo reads it.
pub(super) struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    /// A JSON body, or the JSON-RPC response among an SSE body's events.
    pub(super) body: Value,
    /// An SSE body's events' data, as JSON.
    events: Vec<Value>,
}

pub(super) struct DemoClient<'s> {
    pub(super) http: HttpClient,
    pub(super) system: &'s DemoSystem,
}

impl DemoClient<'_> {
    pub(super) async fn token(&self, client_id: &str) -> anyhow::Result<String> {
        let form = format!(
            "grant_type=client_credentials&client_id={client_id}&client_secret={secret}&resource={resource}",
            secret = scopegate_testkit::issuer::DEMO_CLIENT_SECRET,
            resource = form_encode(&self.system.resource),
        );
        let request = Request::post(self.system.issuer.token_url())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form)))?;
        let answer = self.send(request).await?;
        answer.body["access_token"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("token endpoint said {}: {}", answer.status, answer.body))
    }

    async fn post(
        &self,
        token: Option<&str>,
        session: Option<&str>,
        message: Value,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::post(&self.system.mcp_url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        self.send(request.body(Full::new(Bytes::from(message.to_string())))?)
            .await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        let response = self.http.request(request).await?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await?.to_bytes();
        let (body, events) = parse_body(&parts.headers, &bytes);
        Ok(Answer {
            status: parts.status,
            body,
            events,
            headers: parts.headers,
        })
    }

    /// `initialize` and `notifications/initialized`: the handshake every MCP session starts with.
    pub(super) async fn open_session(&self, token: &str) -> anyhow::Result<String> {
        let init = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "scopegate-demo", "version": env!("CARGO_PKG_VERSION") }
            }
        });
        let answer = self.post(Some(token), None, init).await?;
        if answer.status != StatusCode::OK {
            bail!("initialize answered {}: {}", answer.status, answer.body);
        }
        let session = answer
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .context("initialize returned no Mcp-Session-Id")?
            .to_string();
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        self.post(Some(token), Some(&session), initialized).await?;
        Ok(session)
    }

    /// One chat turn through the adapter's OpenAI-compatible endpoint, streamed or not: the
    /// status and the assistant's text.
    async fn chat(
        &self,
        adapter: &adapter::Running,
        text: &str,
        stream: bool,
    ) -> anyhow::Result<(StatusCode, String)> {
        let body = json!({
            "model": "support",
            "messages": [{ "role": "user", "content": text }],
            "stream": stream,
        });
        let request = Request::post(format!("http://{}/v1/chat/completions", adapter.addrs.api))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let answer = self.send(request).await?;
        let text = match answer.body["choices"][0]["message"]["content"].as_str() {
            Some(text) => text.to_owned(),
            // A stream: the text of its chunks.
            None => answer
                .events
                .iter()
                .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
                .collect(),
        };
        Ok((answer.status, text))
    }

    pub(super) async fn call_tool(
        &self,
        token: Option<&str>,
        session: Option<&str>,
        tool: &str,
        arguments: Value,
    ) -> anyhow::Result<Answer> {
        let call = json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": tool, "arguments": arguments }
        });
        self.post(token, session, call).await
    }
}

/// Plays every scenario against a running system.
pub async fn play(system: &DemoSystem) -> anyhow::Result<Vec<Outcome>> {
    let http = client::build(Some(&system.certs.ca), std::time::Duration::from_secs(5))?;
    let client = DemoClient { http, system };
    let support = client.token("support-agent").await?;
    let readonly = client.token("readonly-agent").await?;
    let support_session = client.open_session(&support).await?;
    let readonly_session = client.open_session(&readonly).await?;
    let mut outcomes = Vec::new();

    let answer = client
        .call_tool(
            Some(&support),
            Some(&support_session),
            "get_customer_info",
            json!({ "customer_id": "C001" }),
        )
        .await?;
    outcomes.push(outcome(
        "allowed customer lookup",
        "support-agent",
        "get_customer_info C001",
        StatusCode::OK,
        &answer,
    ));

    let answer = client
        .call_tool(
            Some(&support),
            Some(&support_session),
            "calculate_account_value",
            json!({ "customer_id": "C001" }),
        )
        .await?;
    outcomes.push(outcome(
        "account calculation",
        "support-agent",
        "calculate_account_value C001",
        StatusCode::OK,
        &answer,
    ));

    let ticket =
        json!({ "customer_id": "C001", "subject": "Refund", "description": "Double charge" });
    let answer = client
        .call_tool(
            Some(&readonly),
            Some(&readonly_session),
            "create_support_ticket",
            ticket,
        )
        .await?;
    outcomes.push(outcome(
        "ticket by a read-only client",
        "readonly-agent",
        "create_support_ticket",
        StatusCode::FORBIDDEN,
        &answer,
    ));

    let answer = client
        .call_tool(
            None,
            Some(&support_session),
            "get_customer_info",
            json!({ "customer_id": "C001" }),
        )
        .await?;
    outcomes.push(outcome(
        "no token",
        "(none)",
        "get_customer_info C001",
        StatusCode::UNAUTHORIZED,
        &answer,
    ));

    let mut claims = system
        .issuer
        .claims_for("support-agent", &["customer:read"]);
    let now = unix_now();
    claims["iat"] = json!(now - 7200);
    claims["nbf"] = json!(now - 7200);
    claims["exp"] = json!(now - 3600);
    let expired = system.issuer.mint(claims);
    let answer = client
        .call_tool(
            Some(&expired),
            Some(&support_session),
            "get_customer_info",
            json!({ "customer_id": "C001" }),
        )
        .await?;
    outcomes.push(outcome(
        "expired token",
        "support-agent",
        "get_customer_info C001",
        StatusCode::UNAUTHORIZED,
        &answer,
    ));

    outcomes.extend(chat_via_adapter(&client).await?);
    outcomes.extend(super::tenants::play().await?);
    Ok(outcomes)
}

/// The adapter's turns: a chat whose tool call scopegate allows and one whose tool call it
/// refuses, each through an adapter of its own OAuth client, the model a scripted one on the
/// OpenAI wire format, so no provider key is needed.
async fn chat_via_adapter(client: &DemoClient<'_>) -> anyhow::Result<Vec<Outcome>> {
    let model = ScriptedModel::start().await?;
    let mut outcomes = Vec::new();

    let adapter = client
        .system
        .start_adapter("support-agent", model.base_url())
        .await?;
    let (status, text) = client
        .chat(&adapter, "Please look up customer C001.", true)
        .await?;
    let metrics = &adapter.engine.metrics;
    let allowed = metrics.tool_calls("get_customer_info", "allow") == 1;
    outcomes.push(Outcome {
        scenario: "chat via adapter, allowed",
        client: "support-agent",
        call: "chat, streamed: customer C001".into(),
        expected: StatusCode::OK,
        status,
        detail: format!("tool call allowed; model said: {}", truncate(&text, 60)),
        as_told: allowed && text.contains("Alice Martin"),
    });
    adapter.stop();

    let adapter = client
        .system
        .start_adapter("readonly-agent", model.base_url())
        .await?;
    let (status, text) = client
        .chat(
            &adapter,
            "Open a ticket for customer C002: refund request.",
            false,
        )
        .await?;
    // scopegate hides the tool from this client's listing, so the call counts as `_other`.
    let denied = adapter.engine.metrics.tool_calls("_other", "deny") == 1;
    let told = text
        .split_once("missing scope(s) ")
        .and_then(|(_, rest)| rest.split_once(','))
        .map(|(scopes, _)| scopes.to_owned());
    outcomes.push(Outcome {
        scenario: "chat via adapter, refused",
        client: "readonly-agent",
        call: "chat: open a ticket for C002".into(),
        expected: StatusCode::OK,
        status,
        detail: match &told {
            Some(scopes) => format!("tool call refused, model told missing scope {scopes}"),
            None => format!("model said: {}", truncate(&text, 60)),
        },
        as_told: denied && told.is_some(),
    });
    adapter.stop();
    Ok(outcomes)
}

pub(super) fn outcome(
    scenario: &'static str,
    client: &'static str,
    call: &str,
    expected: StatusCode,
    answer: &Answer,
) -> Outcome {
    Outcome {
        scenario,
        client,
        call: call.to_string(),
        expected,
        status: answer.status,
        detail: describe(answer),
        as_told: true,
    }
}

/// What a person wants to read of an answer: the tool's text, or why it was refused.
fn describe(answer: &Answer) -> String {
    if let Some(text) = answer.body["result"]["content"][0]["text"].as_str() {
        let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        return format!("allowed: {}", truncate(&text, 60));
    }
    let challenge = answer
        .headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok());
    match (answer.body["error"]["message"].as_str(), challenge) {
        (Some(message), Some(challenge)) => {
            format!("{}; WWW-Authenticate: {}", message, truncate(challenge, 70))
        }
        (Some(message), None) => message.to_string(),
        _ => truncate(&answer.body.to_string(), 80),
    }
}

/// Renders the outcomes as a table.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<30} {:<15} {:<30} {:<8} what the client saw",
        "scenario", "client", "call", "status"
    );
    let _ = writeln!(out, "{}", "-".repeat(120));
    for o in outcomes {
        let mark = if o.as_expected() {
            ""
        } else {
            "  <-- UNEXPECTED"
        };
        let _ = writeln!(
            out,
            "{:<30} {:<15} {:<30} {:<8} {}{mark}",
            o.scenario,
            o.client,
            o.call,
            o.status.as_u16(),
            o.detail
        );
    }
    out
}

/// A JSON body; or for an SSE body, its events' data as JSON (read with the project's one
/// event-stream parser) and among them the JSON-RPC response.
fn parse_body(headers: &http::HeaderMap, bytes: &[u8]) -> (Value, Vec<Value>) {
    let is_sse = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return (
            serde_json::from_slice(bytes).unwrap_or(Value::Null),
            Vec::new(),
        );
    }
    let mut decoder = scopegate_core::sse::Decoder::new(bytes.len().max(1));
    decoder.push(bytes);
    let mut events = Vec::new();
    while let Ok(Some(event)) = decoder.next_event() {
        if let Some(data) = event
            .data
            .and_then(|d| serde_json::from_str::<Value>(&d).ok())
        {
            events.push(data);
        }
    }
    let body = events
        .iter()
        .find(|message| message.get("result").is_some() || message.get("error").is_some())
        .cloned()
        .unwrap_or(Value::Null);
    (body, events)
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
