//! The demo's model provider: a tiny HTTP server on loopback speaking the OpenAI Chat Completions
//! wire format (a `chat.completion` JSON body, or with `stream: true` `chat.completion.chunk` SSE
//! events ending in `data: [DONE]`), whose replies are scripted the way LiteLLM's mock responses
//! are, so `scopegate demo` shows the adapter with no provider key. The script: a first turn asks
//! for the tool the user's words name; once the conversation ends in tool results, the next turn
//! answers with text quoting them. Not a model, and never part of the sidecar.

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The model name the script answers as.
pub const SCRIPTED_MODEL: &str = "scripted-demo-model";
/// Largest request body read; the demo's conversations are a few KiB.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// A running scripted model; stops when dropped.
pub struct ScriptedModel {
    url: String,
    _stop: watch::Sender<bool>,
}

impl ScriptedModel {
    /// Starts on `127.0.0.1:0`.
    pub async fn start() -> anyhow::Result<ScriptedModel> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("scripted model: no loopback port")?;
        let url = format!("http://{}/v1", listener.local_addr()?);
        let (stop, stopped) = watch::channel(false);
        scopegate_adapter::server::serve(listener, stopped, answer);
        Ok(ScriptedModel { url, _stop: stop })
    }

    /// The base URL an `openai-compatible` provider entry points at (`…/v1`).
    pub fn base_url(&self) -> &str {
        &self.url
    }
}

async fn answer(req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST || req.uri().path() != "/v1/chat/completions" {
        return error(StatusCode::NOT_FOUND, "no such endpoint");
    }
    let Ok(body) = Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    else {
        return error(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body.to_bytes()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request.",
        );
    };
    let Some(messages) = body["messages"].as_array().filter(|m| !m.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "'messages' must be a non-empty array",
        );
    };
    let turn = next_turn(messages);
    let model = body["model"].as_str().unwrap_or(SCRIPTED_MODEL);
    let id = format!("chatcmpl-scripted{}", messages.len());
    if body["stream"].as_bool() == Some(true) {
        let usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
        let events = chunks(&id, model, &turn, usage);
        let mut response = Response::new(Full::new(Bytes::from(events)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        return response;
    }
    let (message, finish) = match &turn {
        Turn::Text(text) => (json!({ "role": "assistant", "content": text }), "stop"),
        Turn::Call {
            id,
            name,
            arguments,
        } => (
            json!({ "role": "assistant", "content": null, "tool_calls": [{
                "id": id, "type": "function",
                "function": { "name": name, "arguments": arguments.to_string() },
            }]}),
            "tool_calls",
        ),
    };
    json_response(
        StatusCode::OK,
        &json!({
            "id": id,
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{ "index": 0, "message": message, "finish_reason": finish, "logprobs": null }],
            "usage": usage(messages.len()),
        }),
    )
}

/// What the script says next.
enum Turn {
    Text(String),
    Call {
        id: String,
        name: &'static str,
        arguments: Value,
    },
}

/// The script: tool results at the end of the conversation are quoted; otherwise the tool the
/// last user message asks for is called.
fn next_turn(messages: &[Value]) -> Turn {
    let results: Vec<&str> = messages
        .iter()
        .rev()
        .take_while(|m| m["role"] == "tool")
        .filter_map(|m| m["content"].as_str())
        .collect();
    if !results.is_empty() {
        let quoted: Vec<String> = results.iter().rev().map(|r| format!("\"{r}\"")).collect();
        return Turn::Text(format!("The tool answered: {}", quoted.join("; ")));
    }
    let user = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    let customer = user
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.len() == 4 && w.starts_with('C') && w[1..].bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("C001");
    let (name, arguments) = if user.to_lowercase().contains("ticket") {
        (
            "create_support_ticket",
            json!({ "customer_id": customer, "subject": "Refund", "description": user }),
        )
    } else {
        ("get_customer_info", json!({ "customer_id": customer }))
    };
    Turn::Call {
        id: format!("call_scripted{}", messages.len()),
        name,
        arguments,
    }
}

/// The turn as `chat.completion.chunk` events the way OpenAI streams one: the role first, text
/// in pieces, a tool call's id and name before its arguments in pieces, the finish reason, the
/// usage when asked for, then `[DONE]`.
fn chunks(id: &str, model: &str, turn: &Turn, include_usage: bool) -> String {
    let chunk = |delta: Value, finish: Value| {
        let event = json!({
            "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }],
        });
        format!("data: {event}\n\n")
    };
    let mut out = chunk(json!({ "role": "assistant", "content": "" }), Value::Null);
    let finish = match turn {
        Turn::Text(text) => {
            for piece in pieces(text) {
                out.push_str(&chunk(json!({ "content": piece }), Value::Null));
            }
            "stop"
        }
        Turn::Call {
            id: call_id,
            name,
            arguments,
        } => {
            out.push_str(&chunk(
                json!({ "tool_calls": [{ "index": 0, "id": call_id, "type": "function",
                    "function": { "name": name, "arguments": "" } }] }),
                Value::Null,
            ));
            for piece in pieces(&arguments.to_string()) {
                out.push_str(&chunk(
                    json!({ "tool_calls": [{ "index": 0, "function": { "arguments": piece } }] }),
                    Value::Null,
                ));
            }
            "tool_calls"
        }
    };
    out.push_str(&chunk(json!({}), json!(finish)));
    if include_usage {
        let event = json!({
            "id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [], "usage": usage(1),
        });
        out.push_str(&format!("data: {event}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

/// `text` cut into a few pieces at character boundaries, as a model's tokens arrive.
fn pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (i, _) in text.char_indices() {
        if i - start >= 16 {
            pieces.push(&text[start..i]);
            start = i;
        }
    }
    pieces.push(&text[start..]);
    pieces
}

fn usage(messages: usize) -> Value {
    let prompt = 10 * messages as u64;
    json!({ "prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7 })
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({ "error": { "message": message, "type": "invalid_request_error", "param": null, "code": null } }),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_calls_the_named_tool_then_quotes_its_result() {
        let first = next_turn(&[json!({ "role": "user", "content": "Open a ticket for C002" })]);
        assert!(
            matches!(&first, Turn::Call { name: "create_support_ticket", arguments, .. } if arguments["customer_id"] == "C002")
        );
        let second = next_turn(&[
            json!({ "role": "user", "content": "Look up C001" }),
            json!({ "role": "assistant", "content": null, "tool_calls": [] }),
            json!({ "role": "tool", "tool_call_id": "c", "content": "Alice" }),
        ]);
        assert!(matches!(second, Turn::Text(t) if t == "The tool answered: \"Alice\""));
    }

    #[test]
    fn a_streamed_tool_call_sends_its_name_before_its_arguments_and_ends_with_done() {
        let turn = Turn::Call {
            id: "call_1".into(),
            name: "get_customer_info",
            arguments: json!({ "customer_id": "C001" }),
        };
        let events = chunks("id", "m", &turn, false);
        let datas: Vec<&str> = events
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .collect();
        assert_eq!(*datas.last().unwrap(), "[DONE]");
        let parsed: Vec<Value> = datas[..datas.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(
            parsed[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
            "get_customer_info"
        );
        let arguments: String = parsed[2..]
            .iter()
            .filter_map(|p| {
                p["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(arguments, r#"{"customer_id":"C001"}"#);
        assert_eq!(
            parsed.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
    }
}
