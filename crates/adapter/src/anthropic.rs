//! Anthropic's Messages API on the wire: the adapter's OpenAI-shaped conversation turned into a
//! Messages request (top-level `system`, `tools` with `input_schema`, `tool_use` / `tool_result`
//! blocks, strict user/assistant alternation, a required `max_tokens`), and a Messages response
//! read back into a [`Turn`]. Not the HTTP exchange (see `provider`).

use serde_json::{Map, Value, json};

use super::openai::{ModelRequest, ToolCall, Turn, Usage};
use super::stream::Delta;

/// The Messages body for `request`; `default_max_tokens` when the caller set none.
pub fn request_body(
    request: &ModelRequest,
    default_max_tokens: u64,
    stream: bool,
) -> Result<Value, String> {
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for message in &request.messages {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        match role {
            "system" | "developer" => system.push(text_of(message.get("content"))),
            "user" => push(&mut messages, "user", user_blocks(message.get("content"))),
            "assistant" => push(&mut messages, "assistant", assistant_blocks(message)?),
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or("a tool message needs tool_call_id")?;
                let block = json!({
                    "type": "tool_result",
                    "tool_use_id": id,
                    "content": text_of(message.get("content")),
                });
                push(&mut messages, "user", vec![block]);
            }
            other => return Err(format!("role {other:?} has no Messages API equivalent")),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    let max_tokens = request
        .params
        .get("max_tokens")
        .or_else(|| request.params.get("max_completion_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(default_max_tokens);
    body.insert("max_tokens".into(), json!(max_tokens));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    body.insert("messages".into(), json!(messages));
    if stream {
        body.insert("stream".into(), json!(true));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request.tools.iter().filter_map(tool).collect();
        body.insert("tools".into(), json!(tools));
    }
    for key in ["temperature", "top_p"] {
        if let Some(value) = request.params.get(key) {
            body.insert(key.into(), value.clone());
        }
    }
    match request.params.get("stop") {
        Some(Value::String(s)) => {
            body.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(a)) => {
            body.insert("stop_sequences".into(), json!(a));
        }
        _ => {}
    }
    Ok(Value::Object(body))
}

/// Appends blocks under `role`, merging with the previous message when it has the same role:
/// the Messages API wants user and assistant turns to alternate, and all tool results of one
/// round in one user message.
fn push(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if let Some(last) = messages.last_mut()
        && last["role"] == role
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        return;
    }
    messages.push(json!({ "role": role, "content": blocks }));
}

fn user_blocks(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .map(|text| json!({ "type": "text", "text": text }))
            .collect(),
        other => vec![json!({ "type": "text", "text": text_of(other) })],
    }
}

fn assistant_blocks(message: &Value) -> Result<Vec<Value>, String> {
    let mut blocks = Vec::new();
    let text = text_of(message.get("content"));
    if !text.is_empty() {
        blocks.push(json!({ "type": "text", "text": text }));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let function = &call["function"];
        let arguments = function["arguments"].as_str().unwrap_or("{}");
        // Anthropic takes the arguments as an object; a model that wrote invalid JSON gets an
        // empty one rather than a refused request.
        let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
        blocks.push(json!({
            "type": "tool_use",
            "id": call["id"].as_str().ok_or("a tool call needs an id")?,
            "name": function["name"].as_str().ok_or("a tool call needs a name")?,
            "input": if input.is_object() { input } else { json!({}) },
        }));
    }
    Ok(blocks)
}

/// Message content as text: a string, or the text parts of an array.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An OpenAI `function` tool as an Anthropic tool.
fn tool(openai_tool: &Value) -> Option<Value> {
    let function = openai_tool.get("function")?;
    let schema = function
        .get("parameters")
        .cloned()
        .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
    Some(json!({
        "name": function.get("name")?,
        "description": function.get("description").cloned().unwrap_or(json!("")),
        "input_schema": schema,
    }))
}

/// Reads a Messages response into a [`Turn`].
pub fn parse_response(body: &[u8]) -> Result<Turn, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("type").and_then(Value::as_str) != Some("message") {
        return Err("not a message".into());
    }
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in value["content"].as_array().ok_or("no content")? {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or("")),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block["id"]
                    .as_str()
                    .ok_or("tool_use without id")?
                    .to_owned(),
                name: block["name"]
                    .as_str()
                    .ok_or("tool_use without name")?
                    .to_owned(),
                arguments: block["input"].to_string(),
            }),
            _ => {}
        }
    }
    let finish_reason = finish_reason(value["stop_reason"].as_str());
    Ok(Turn {
        content: (!text.is_empty() || tool_calls.is_empty()).then_some(text),
        tool_calls,
        finish_reason: finish_reason.to_owned(),
        usage: Usage {
            prompt_tokens: value["usage"]["input_tokens"].as_u64().unwrap_or(0),
            completion_tokens: value["usage"]["output_tokens"].as_u64().unwrap_or(0),
        },
    })
}

/// A Messages `stop_reason` in OpenAI's `finish_reason` names.
fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("tool_use") => "tool_calls",
        Some("max_tokens") => "length",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// One event of a streamed Messages answer (`event:` name and data) as deltas. Tool calls are
/// indexed by their content block, so text blocks between them leave gaps the turn ignores.
pub fn parse_stream_event(event: &str, data: &str) -> Result<Vec<Delta>, String> {
    let value: Value = serde_json::from_str(data).map_err(|e| format!("event not JSON: {e}"))?;
    let index = || {
        value["index"]
            .as_u64()
            .ok_or("content block event without index")
    };
    let delta = match event {
        "message_start" => Delta::Usage(Usage {
            prompt_tokens: value["message"]["usage"]["input_tokens"]
                .as_u64()
                .unwrap_or(0),
            completion_tokens: 0,
        }),
        "content_block_start" => {
            let block = &value["content_block"];
            match block["type"].as_str() {
                Some("tool_use") => Delta::ToolCall {
                    index: index()?,
                    id: block["id"].as_str().map(str::to_owned),
                    name: block["name"].as_str().map(str::to_owned),
                    arguments: String::new(),
                },
                Some("text") => match block["text"].as_str().filter(|t| !t.is_empty()) {
                    Some(text) => Delta::Text(text.to_owned()),
                    None => return Ok(Vec::new()),
                },
                _ => return Ok(Vec::new()),
            }
        }
        "content_block_delta" => {
            let delta = &value["delta"];
            match delta["type"].as_str() {
                Some("text_delta") => Delta::Text(delta["text"].as_str().unwrap_or("").to_owned()),
                Some("input_json_delta") => Delta::ToolCall {
                    index: index()?,
                    id: None,
                    name: None,
                    arguments: delta["partial_json"].as_str().unwrap_or("").to_owned(),
                },
                _ => return Ok(Vec::new()),
            }
        }
        "message_delta" => {
            let mut deltas = vec![Delta::Usage(Usage {
                prompt_tokens: 0,
                completion_tokens: value["usage"]["output_tokens"].as_u64().unwrap_or(0),
            })];
            if let Some(reason) = value["delta"]["stop_reason"].as_str() {
                deltas.push(Delta::Finish(finish_reason(Some(reason)).to_owned()));
            }
            return Ok(deltas);
        }
        "error" => {
            return Err(format!(
                "the provider broke off its answer: {}",
                value["error"]["message"].as_str().unwrap_or("no message")
            ));
        }
        // ping, content_block_stop, message_stop and event types added later carry nothing.
        _ => return Ok(Vec::new()),
    };
    Ok(vec![delta])
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn request(messages: Value, tools: Value) -> ModelRequest {
        ModelRequest {
            model: "claude".into(),
            messages: serde_json::from_value(messages).unwrap(),
            tools: serde_json::from_value(tools).unwrap(),
            params: Map::new(),
        }
    }

    #[test]
    fn a_tool_round_becomes_tool_use_and_one_user_message_of_tool_results() {
        let body = request_body(
            &request(
                json!([
                    { "role": "system", "content": "be brief" },
                    { "role": "user", "content": "look up C001 and its value" },
                    { "role": "assistant", "content": null, "tool_calls": [
                        { "id": "c1", "type": "function", "function": { "name": "a", "arguments": "{\"x\":1}" } },
                        { "id": "c2", "type": "function", "function": { "name": "b", "arguments": "{}" } },
                    ]},
                    { "role": "tool", "tool_call_id": "c1", "content": "one" },
                    { "role": "tool", "tool_call_id": "c2", "content": "two" },
                ]),
                json!([{ "type": "function", "function": {
                    "name": "a", "description": "d", "parameters": { "type": "object" } } }]),
            ),
            4096,
            false,
        )
        .unwrap();
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["max_tokens"], 4096);
        assert_eq!(
            body["tools"],
            json!([{ "name": "a", "description": "d", "input_schema": { "type": "object" } }])
        );
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert_eq!(messages[1]["role"], "assistant");
        assert_eq!(
            messages[1]["content"][0],
            json!({ "type": "tool_use", "id": "c1", "name": "a", "input": { "x": 1 } })
        );
        assert_eq!(messages[2]["role"], "user");
        assert_eq!(messages[2]["content"][0]["tool_use_id"], "c1");
        assert_eq!(messages[2]["content"][1]["tool_use_id"], "c2");
    }

    #[test]
    fn the_callers_max_tokens_wins_over_the_default() {
        let mut req = request(json!([{ "role": "user", "content": "hi" }]), json!([]));
        req.params.insert("max_tokens".into(), json!(50));
        assert_eq!(request_body(&req, 4096, false).unwrap()["max_tokens"], 50);
    }

    #[test]
    fn a_tool_use_response_becomes_openai_tool_calls() {
        let turn = parse_response(
            br#"{"id":"msg_1","type":"message","role":"assistant","model":"m","stop_reason":"tool_use",
                "content":[{"type":"text","text":"Let me check."},
                           {"type":"tool_use","id":"toolu_1","name":"get_customer_info","input":{"customer_id":"C001"}}],
                "usage":{"input_tokens":10,"output_tokens":5}}"#,
        )
        .unwrap();
        assert_eq!(turn.finish_reason, "tool_calls");
        assert_eq!(turn.tool_calls[0].id, "toolu_1");
        assert_eq!(turn.tool_calls[0].arguments, r#"{"customer_id":"C001"}"#);
        assert_eq!(turn.usage.prompt_tokens, 10);
    }

    #[test]
    fn streamed_messages_events_become_text_tool_call_and_finish_deltas() {
        let text = parse_stream_event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let"}}"#,
        )
        .unwrap();
        assert_eq!(text, [Delta::Text("Let".into())]);
        let start = parse_stream_event(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}"#,
        )
        .unwrap();
        assert!(
            matches!(&start[..], [Delta::ToolCall { index: 1, id: Some(id), .. }] if id == "toolu_1")
        );
        let end = parse_stream_event(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}"#,
        )
        .unwrap();
        assert_eq!(end[1], Delta::Finish("tool_calls".into()));
        assert!(
            parse_stream_event(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            )
            .is_err()
        );
    }
}
