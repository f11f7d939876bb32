//! The adapter's conversation model, which is OpenAI Chat Completions' own, and the OpenAI side of
//! the wire: the request sent to `openai` and `openai-compatible` providers, their answer read back
//! into a [`Turn`], and the response and SSE chunks the adapter itself gives its callers.
//! Not the HTTP exchange (see `provider`), not Anthropic's format (see `anthropic`).

use serde_json::{Map, Value, json};

use super::stream::Delta;

/// What one request to a model carries: the conversation so far (OpenAI chat messages), the tools
/// on offer (OpenAI `function` tools) and the caller's sampling parameters.
#[derive(Debug, Clone)]
pub struct ModelRequest {
    pub model: String,
    pub messages: Vec<Value>,
    pub tools: Vec<Value>,
    /// Caller parameters passed on as they are (temperature, max_tokens, stop, …).
    pub params: Map<String, Value>,
}

/// Request keys the adapter sets itself; every other key is a parameter passed through.
const OWN_KEYS: [&str; 6] = [
    "model",
    "messages",
    "tools",
    "stream",
    "stream_options",
    "tool_choice",
];

/// Parameters that OpenAI-compatible servers and the Messages API both understand; others are
/// dropped rather than sent to a provider that would refuse the request for them.
const PASSED_PARAMS: [&str; 9] = [
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "user",
];

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text, as OpenAI carries it.
    pub arguments: String,
}

/// One model answer, in whatever provider format it came.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Turn {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// OpenAI's names: `stop`, `tool_calls`, `length`, `content_filter`.
    pub finish_reason: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}

impl Turn {
    /// The assistant message that goes back into the conversation.
    pub fn assistant_message(&self) -> Value {
        let mut message = json!({ "role": "assistant", "content": self.content });
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = self
                .tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": { "name": c.name, "arguments": c.arguments },
                    })
                })
                .collect();
        }
        message
    }
}

/// A caller's `POST /v1/chat/completions` body, checked enough to route it.
#[derive(Debug)]
pub struct CallerRequest {
    pub model: String,
    pub stream: bool,
    pub include_usage: bool,
    pub messages: Vec<Value>,
    /// Tools the caller brings; calls to them are handed back to the caller.
    pub tools: Vec<Value>,
    pub params: Map<String, Value>,
}

/// Reads a caller's request; the error names what is wrong, for a 400.
pub fn parse_caller_request(body: &[u8]) -> Result<CallerRequest, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("body is not a JSON object".into());
    };
    let model = match object.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err("`model` must be a non-empty string".into()),
    };
    let messages = match object.remove("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        _ => return Err("`messages` must be a non-empty array".into()),
    };
    for (i, message) in messages.iter().enumerate() {
        match message.get("role").and_then(Value::as_str) {
            Some("system" | "developer" | "user" | "assistant") => {}
            Some("tool")
                if message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .is_some() => {}
            Some("tool") => {
                return Err(format!("messages[{i}]: a tool message needs tool_call_id"));
            }
            _ => return Err(format!("messages[{i}]: unknown or missing role")),
        }
    }
    let tools = match object.remove("tools") {
        Some(Value::Array(t)) => t,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err("`tools` must be an array".into()),
    };
    let stream = object
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let include_usage = object
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let params = object
        .into_iter()
        .filter(|(k, _)| !OWN_KEYS.contains(&k.as_str()) && PASSED_PARAMS.contains(&k.as_str()))
        .collect();
    Ok(CallerRequest {
        model,
        stream,
        include_usage,
        messages,
        tools,
        params,
    })
}

/// The Chat Completions body sent to an `openai` or `openai-compatible` provider. Streamed
/// answers from `openai` ask for the usage chunk; OpenAI-compatible servers are not all known to
/// take `stream_options`, so they are not sent it.
pub fn provider_body(request: &ModelRequest, stream: bool, usage_chunk: bool) -> Value {
    let mut body = request.params.clone();
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), json!(request.messages));
    if !request.tools.is_empty() {
        body.insert("tools".into(), json!(request.tools));
    }
    body.insert("stream".into(), json!(stream));
    if stream && usage_chunk {
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Value::Object(body)
}

/// One streamed `chat.completion.chunk`'s deltas; `None` for the `[DONE]` that ends the stream.
pub fn parse_chunk(data: &str) -> Result<Option<Vec<Delta>>, String> {
    if data.trim() == "[DONE]" {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(data).map_err(|e| format!("chunk not JSON: {e}"))?;
    if let Some(error) = value.get("error") {
        return Err(format!(
            "the provider broke off its answer: {}",
            error["message"].as_str().unwrap_or("no message")
        ));
    }
    let mut deltas = Vec::new();
    if let Some(choice) = value.get("choices").and_then(|c| c.get(0)) {
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            deltas.push(Delta::Text(text.to_owned()));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let function = &call["function"];
            deltas.push(Delta::ToolCall {
                index: call["index"]
                    .as_u64()
                    .ok_or("tool call chunk without index")?,
                id: call["id"].as_str().map(str::to_owned),
                name: function["name"].as_str().map(str::to_owned),
                arguments: function["arguments"].as_str().unwrap_or("").to_owned(),
            });
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            deltas.push(Delta::Finish(reason.to_owned()));
        }
    }
    if let Some(usage) = value.get("usage").filter(|u| u.is_object()) {
        deltas.push(Delta::Usage(Usage {
            prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
            completion_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        }));
    }
    Ok(Some(deltas))
}

/// Reads a Chat Completions response into a [`Turn`].
pub fn parse_provider_response(body: &[u8]) -> Result<Turn, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let choice = value
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or("no choices[0]")?;
    let message = choice.get("message").ok_or("no choices[0].message")?;
    let mut tool_calls = Vec::new();
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = call.get("function").ok_or("tool call without function")?;
        tool_calls.push(ToolCall {
            id: str_field(call, "id")?,
            name: str_field(function, "name")?,
            arguments: function
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}")
                .to_owned(),
        });
    }
    let finish_reason = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or(if tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        })
        .to_owned();
    let usage = value.get("usage");
    let count = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64);
    Ok(Turn {
        content: message
            .get("content")
            .and_then(Value::as_str)
            .map(str::to_owned),
        tool_calls,
        finish_reason,
        usage: Usage {
            prompt_tokens: count("prompt_tokens").unwrap_or(0),
            completion_tokens: count("completion_tokens").unwrap_or(0),
        },
    })
}

fn str_field(value: &Value, key: &str) -> Result<String, String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("missing string {key:?}"))
}

/// The adapter's own non-streaming answer to its caller.
pub fn completion_response(id: &str, created: u64, model: &str, turn: &Turn) -> Value {
    let mut message = turn.assistant_message();
    message["refusal"] = Value::Null;
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": turn.finish_reason,
            "logprobs": null,
        }],
        "usage": usage_json(turn.usage),
    })
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    })
}

/// The event that ends the adapter's own stream.
pub const DONE_EVENT: &str = "data: [DONE]\n\n";

/// One `chat.completion.chunk` event of the adapter's own stream.
pub fn chunk_event(id: &str, created: u64, model: &str, delta: Value, finish: Value) -> String {
    let chunk = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }],
    });
    format!("data: {chunk}\n\n")
}

/// The last chunk when the caller asked for `stream_options.include_usage`: no choices, the
/// usage of the whole conversation.
pub fn usage_event(id: &str, created: u64, model: &str, usage: Usage) -> String {
    let chunk = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_json(usage),
    });
    format!("data: {chunk}\n\n")
}

/// A tool call as the chunk delta that hands it to the caller whole.
pub fn tool_call_delta(index: usize, call: &ToolCall) -> Value {
    json!({ "tool_calls": [{
        "index": index,
        "id": call.id,
        "type": "function",
        "function": { "name": call.name, "arguments": call.arguments },
    }]})
}

/// An MCP tool as an OpenAI `function` tool.
pub fn function_tool(name: &str, description: &str, input_schema: &Value) -> Value {
    json!({
        "type": "function",
        "function": { "name": name, "description": description, "parameters": input_schema },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_requests_need_a_model_and_tool_messages_their_call_id() {
        let ok = parse_caller_request(
            br#"{"model":"support","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"logit_bias":{}}"#,
        )
        .unwrap();
        assert_eq!(ok.model, "support");
        assert!(ok.params.contains_key("temperature"));
        assert!(!ok.params.contains_key("logit_bias"), "not passed on");
        assert!(parse_caller_request(br#"{"messages":[]}"#).is_err());
        let err =
            parse_caller_request(br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#)
                .unwrap_err();
        assert!(err.contains("tool_call_id"), "{err}");
    }

    #[test]
    fn tool_calls_round_trip_through_the_assistant_message() {
        let turn = parse_provider_response(
            br#"{"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,
                "tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}}],
                "usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
        )
        .unwrap();
        let message = turn.assistant_message();
        assert_eq!(message["tool_calls"][0]["id"], "call_1");
        assert_eq!(message["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(turn.usage.completion_tokens, 4);
    }

    #[test]
    fn streamed_chunks_become_deltas_and_done_ends_the_stream() {
        let deltas = parse_chunk(
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,
                "delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},
                "finish_reason":null}]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            deltas,
            [Delta::ToolCall {
                index: 0,
                id: Some("call_1".into()),
                name: Some("f".into()),
                arguments: String::new()
            }]
        );
        let deltas = parse_chunk(
            r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(deltas[0], Delta::Text("hi".into()));
        assert_eq!(deltas[1], Delta::Finish("stop".into()));
        assert_eq!(parse_chunk("[DONE]").unwrap(), None);
        assert!(parse_chunk(r#"{"error":{"message":"overloaded"}}"#).is_err());
    }
}
