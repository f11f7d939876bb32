//! A small MCP client over Streamable HTTP, spoken through scopegate with the bearer token from
//! the [`TokenManager`] (or one given token, for `policy check --url`): `initialize` →
//! `notifications/initialized` → `tools/list` → `tools/call`,
//! reading each answer as JSON or as an SSE stream. Hand-written on the shared hyper client rather
//! than rmcp's client, so the sidecar image carries no second HTTP stack (reqwest) for four
//! methods. Owns the session; not which tools are called (see `chat`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::token::TokenManager;
use crate::client::HttpClient;
use crate::sse::Decoder;

/// The protocol version offered in `initialize`; scopegate and rmcp both speak it.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// Largest MCP answer read.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// `tools/list` pages followed before giving up on a server that never ends its cursor chain.
const MAX_LIST_PAGES: usize = 20;

/// A tool as the server described it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// How a `tools/call` ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// The tool ran; `is_error` when it reported a failure of its own.
    Done { text: String, is_error: bool },
    /// scopegate refused the call (403). `missing_scopes` is the JSON-RPC error's
    /// `data.missing_scopes`: the scopes the token lacks, not the challenge's list (which also
    /// names those held); empty when no scope would lift the refusal (no rule allows the call).
    Denied {
        missing_scopes: Vec<String>,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("no token for tool calls: {0}")]
    Token(String),
    #[error("MCP request failed: {0}")]
    Transport(String),
    #[error("MCP server answered {status}: {message}")]
    Status {
        status: StatusCode,
        message: String,
        /// The JSON-RPC error's `data`, when the answer had one.
        data: Option<Value>,
    },
    #[error("MCP error {code}: {message}")]
    JsonRpc { code: i64, message: String },
    #[error("unreadable MCP answer: {0}")]
    Invalid(String),
}

struct Session {
    id: Option<HeaderValue>,
    protocol_version: String,
}

/// Where each request's bearer token comes from.
enum Credentials {
    /// A client-credentials grant, fetched again when scopegate refuses it (the adapter).
    Granted(Arc<TokenManager>),
    /// One token given by the caller, or none: nothing to fetch again.
    Fixed(Option<Arc<str>>),
}

pub struct McpClient {
    url: Uri,
    client: HttpClient,
    tokens: Credentials,
    timeout: Duration,
    session: Mutex<Option<Arc<Session>>>,
    next_id: AtomicU64,
}

/// One JSON-RPC exchange's result: the HTTP status, the `WWW-Authenticate` header, the message.
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    session_id: Option<HeaderValue>,
    message: Option<Value>,
}

impl McpClient {
    pub fn new(url: Uri, client: HttpClient, tokens: Arc<TokenManager>, timeout: Duration) -> Self {
        McpClient::with_credentials(url, client, Credentials::Granted(tokens), timeout)
    }

    /// A client that sends `token` as it is (no grant to renew it), or no `Authorization` at
    /// all: for a server reached directly rather than through scopegate.
    pub fn with_token(
        url: Uri,
        client: HttpClient,
        token: Option<String>,
        timeout: Duration,
    ) -> Self {
        let token = Credentials::Fixed(token.map(Arc::from));
        McpClient::with_credentials(url, client, token, timeout)
    }

    fn with_credentials(
        url: Uri,
        client: HttpClient,
        tokens: Credentials,
        timeout: Duration,
    ) -> Self {
        McpClient {
            url,
            client,
            tokens,
            timeout,
            session: Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    /// The tools this client's token may see: scopegate filters the list by policy.
    pub async fn list_tools(&self) -> Result<Vec<McpTool>, McpError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let result = self.call_method("tools/list", params).await?;
            for tool in result["tools"].as_array().into_iter().flatten() {
                let Some(name) = tool["name"].as_str() else {
                    continue;
                };
                tools.push(McpTool {
                    name: name.to_owned(),
                    description: tool["description"].as_str().unwrap_or("").to_owned(),
                    input_schema: tool
                        .get("inputSchema")
                        .cloned()
                        .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
                });
            }
            cursor = result["nextCursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(tools)
    }

    /// Calls a tool. A 403 from scopegate is an outcome, not an error: the model is told.
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Result<CallOutcome, McpError> {
        let params = json!({ "name": name, "arguments": arguments });
        match self.call_method("tools/call", params).await {
            Ok(result) => {
                let text = result["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                let text = if text.is_empty() {
                    result
                        .get("structuredContent")
                        .map(Value::to_string)
                        .unwrap_or_default()
                } else {
                    text
                };
                Ok(CallOutcome::Done {
                    text,
                    is_error: result["isError"].as_bool().unwrap_or(false),
                })
            }
            Err(McpError::Status {
                status,
                message,
                data,
            }) if status == StatusCode::FORBIDDEN => {
                let missing_scopes = data
                    .as_ref()
                    .and_then(|d| d["missing_scopes"].as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect();
                Ok(CallOutcome::Denied {
                    missing_scopes,
                    message,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A request in the current session, opening one first; a session the server has forgotten
    /// (404) is opened again once, and a token scopegate refused (401) is fetched again once.
    async fn call_method(&self, method: &str, params: Value) -> Result<Value, McpError> {
        let mut reopened = false;
        loop {
            let session = self.session().await?;
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
            let (answer, token) = self.post(&body, Some(&session)).await?;
            let retry = matches!(
                answer.status,
                StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED
            );
            if retry && !reopened {
                if answer.status == StatusCode::UNAUTHORIZED {
                    match (&self.tokens, token) {
                        (Credentials::Granted(tokens), Some(token)) => {
                            tokens.invalidate(&token).await
                        }
                        // The same token would be refused again.
                        _ => return result_of(answer),
                    }
                }
                *self.session.lock().await = None;
                reopened = true;
                continue;
            }
            return result_of(answer);
        }
    }

    async fn session(&self) -> Result<Arc<Session>, McpError> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            return Ok(session.clone());
        }
        let init = json!({
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": { "name": "scopegate-adapter", "version": env!("CARGO_PKG_VERSION") },
            },
        });
        let (answer, _) = self.post(&init, None).await?;
        let session_id = answer.session_id.clone();
        let result = result_of(answer)?;
        let session = Arc::new(Session {
            id: session_id,
            protocol_version: result["protocolVersion"]
                .as_str()
                .unwrap_or(PROTOCOL_VERSION)
                .to_owned(),
        });
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let (answer, _) = self.post(&initialized, Some(&session)).await?;
        if !answer.status.is_success() {
            return Err(McpError::Status {
                status: answer.status,
                message: "notifications/initialized refused".into(),
                data: None,
            });
        }
        *slot = Some(session.clone());
        Ok(session)
    }

    /// POSTs one message; returns the answer and the token it went with.
    async fn post(
        &self,
        body: &Value,
        session: Option<&Session>,
    ) -> Result<(Answer, Option<Arc<str>>), McpError> {
        let token = match &self.tokens {
            Credentials::Granted(tokens) => Some(tokens.token().await.map_err(McpError::Token)?),
            Credentials::Fixed(token) => token.clone(),
        };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(token) = &token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(session) = session {
            request = request.header("mcp-protocol-version", &session.protocol_version);
            if let Some(id) = &session.id {
                request = request.header("mcp-session-id", id);
            }
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| McpError::Transport(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| McpError::Transport(e.to_string()))?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| McpError::Transport(e.to_string()))?
                .to_bytes();
            Ok::<_, McpError>((status, headers, bytes))
        };
        let (status, headers, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| McpError::Transport("timed out".into()))??;
        let is_sse = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let message = if bytes.is_empty() {
            None
        } else if is_sse {
            last_sse_message(&bytes, body.get("id"))
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        let answer = Answer {
            status,
            challenge: headers
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            session_id: headers.get("mcp-session-id").cloned(),
            message,
        };
        Ok((answer, token))
    }
}

/// The JSON-RPC result of an answer, or why there is none.
fn result_of(answer: Answer) -> Result<Value, McpError> {
    if !answer.status.is_success() {
        let detail = answer
            .message
            .as_ref()
            .and_then(|m| m["error"]["message"].as_str())
            .unwrap_or("");
        let message = match &answer.challenge {
            Some(challenge) => format!("{challenge}; {detail}"),
            None => detail.to_owned(),
        };
        return Err(McpError::Status {
            status: answer.status,
            message,
            data: answer
                .message
                .as_ref()
                .and_then(|m| m["error"].get("data"))
                .cloned(),
        });
    }
    let message = answer
        .message
        .ok_or_else(|| McpError::Invalid("no JSON-RPC response".into()))?;
    if let Some(error) = message.get("error") {
        return Err(McpError::JsonRpc {
            code: error["code"].as_i64().unwrap_or(0),
            message: error["message"].as_str().unwrap_or("").to_owned(),
        });
    }
    message
        .get("result")
        .cloned()
        .ok_or_else(|| McpError::Invalid("response without result".into()))
}

/// The response to request `id` in an SSE body (notifications such as progress come first),
/// read with the project's one event-stream parser. `None` when the body holds no such response,
/// or an event larger than the body bound (which cannot be a whole answer).
pub fn last_sse_message(body: &[u8], id: Option<&Value>) -> Option<Value> {
    let mut decoder = Decoder::new(MAX_RESPONSE_BYTES);
    decoder.push(body);
    let mut found = None;
    while let Some(event) = decoder.next_event().ok()? {
        let Some(data) = event.data else { continue };
        let Ok(message) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        let is_response = message.get("result").is_some() || message.get("error").is_some();
        if is_response && (id.is_none() || message.get("id") == id) {
            found = Some(message);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_is_found_among_sse_notifications() {
        let body = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\nid: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"ok\":true}}\n\n";
        let message = last_sse_message(body, Some(&json!(7))).unwrap();
        assert_eq!(message["result"]["ok"], true);
        assert!(last_sse_message(body, Some(&json!(8))).is_none());
    }

    #[test]
    fn an_answer_with_cr_line_ends_is_read_as_the_standard_reads_it() {
        // A lone CR ends a line in the event-stream grammar; splitting on LF would miss it.
        let body = b"event: message\rdata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\r\r";
        assert!(last_sse_message(body, Some(&json!(3))).is_some());
    }
}
