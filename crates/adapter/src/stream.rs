//! A provider's streamed answer as it arrives: the response body read frame by frame through the
//! project's one event-stream parser, each event turned into [`Delta`]s by its wire format
//! (`openai` chunks, `anthropic` events), and the deltas gathered into the [`Turn`] the
//! conversation continues with. Owns reading; not where the deltas go (see `relay`).

use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::anthropic;
use super::config::ProviderKind;
use super::openai::{self, ToolCall, Turn, Usage};
use super::provider::ProviderError;
use scopegate_core::sse::Decoder;

/// Largest single event read from a provider; a chunk is a few hundred bytes, a tool call's
/// arguments at most some KiB.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One piece of a streamed answer, whatever the provider's format.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    /// A piece of tool call `index`: its id and name come with its first piece.
    ToolCall {
        index: u64,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    /// The finish reason, in OpenAI's names.
    Finish(String),
    /// Token counts; a field left at 0 is not known from this piece.
    Usage(Usage),
}

/// A provider's answer being streamed.
pub struct ProviderStream {
    body: Incoming,
    decoder: Decoder,
    kind: ProviderKind,
    /// Longest silence allowed between two frames.
    idle_timeout: Duration,
    done: bool,
}

impl ProviderStream {
    pub fn new(body: Incoming, kind: ProviderKind, idle_timeout: Duration) -> Self {
        ProviderStream {
            body,
            decoder: Decoder::new(MAX_EVENT_BYTES),
            kind,
            idle_timeout,
            done: false,
        }
    }

    /// The deltas of the next event; `None` once the answer is complete.
    pub async fn next(&mut self) -> Result<Option<Vec<Delta>>, ProviderError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let event = self
                .decoder
                .next_event()
                .map_err(|e| ProviderError::Invalid(e.to_string()))?;
            if let Some(event) = event {
                let Some(data) = event.data else { continue };
                let deltas = match self.kind {
                    ProviderKind::Anthropic => {
                        let name = event.event.as_deref().unwrap_or("message");
                        if name == "message_stop" {
                            self.done = true;
                        }
                        anthropic::parse_stream_event(name, &data)
                    }
                    ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
                        match openai::parse_chunk(&data) {
                            Ok(None) => {
                                self.done = true;
                                Ok(Vec::new())
                            }
                            Ok(Some(deltas)) => Ok(deltas),
                            Err(e) => Err(e),
                        }
                    }
                };
                return deltas.map(Some).map_err(ProviderError::Invalid);
            }
            let frame = tokio::time::timeout(self.idle_timeout, self.body.frame())
                .await
                .map_err(|_| ProviderError::Timeout)?;
            match frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.decoder.push(data);
                    }
                }
                Some(Err(e)) => return Err(ProviderError::Connect(e.to_string())),
                None => {
                    self.done = true;
                    return Err(ProviderError::Invalid(
                        "the stream ended before the answer did".into(),
                    ));
                }
            }
        }
    }
}

/// Gathers deltas into the turn they add up to.
#[derive(Debug, Default)]
pub struct TurnBuilder {
    content: Option<String>,
    calls: Vec<(u64, ToolCall)>,
    finish: Option<String>,
    usage: Usage,
}

impl TurnBuilder {
    pub fn add(&mut self, delta: Delta) {
        match delta {
            Delta::Text(text) => self.content.get_or_insert_default().push_str(&text),
            Delta::ToolCall {
                index,
                id,
                name,
                arguments,
            } => {
                let at = match self.calls.iter().position(|(i, _)| *i == index) {
                    Some(at) => at,
                    None => {
                        self.calls.push((
                            index,
                            ToolCall {
                                id: String::new(),
                                name: String::new(),
                                arguments: String::new(),
                            },
                        ));
                        self.calls.len() - 1
                    }
                };
                let call = &mut self.calls[at].1;
                if let Some(id) = id {
                    call.id = id;
                }
                if let Some(name) = name {
                    call.name.push_str(&name);
                }
                call.arguments.push_str(&arguments);
            }
            Delta::Finish(reason) => self.finish = Some(reason),
            Delta::Usage(usage) => {
                if usage.prompt_tokens > 0 {
                    self.usage.prompt_tokens = usage.prompt_tokens;
                }
                if usage.completion_tokens > 0 {
                    self.usage.completion_tokens = usage.completion_tokens;
                }
            }
        }
    }

    /// The turn, or why it cannot be one (a tool call the stream never named).
    pub fn finish(self) -> Result<Turn, ProviderError> {
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for (_, mut call) in self.calls {
            if call.id.is_empty() || call.name.is_empty() {
                return Err(ProviderError::Invalid(
                    "a streamed tool call without id or name".into(),
                ));
            }
            // A tool called without arguments streams none; the conversation needs an object.
            if call.arguments.trim().is_empty() {
                call.arguments = "{}".into();
            }
            tool_calls.push(call);
        }
        let finish_reason = self.finish.unwrap_or_else(|| {
            if tool_calls.is_empty() {
                "stop".into()
            } else {
                "tool_calls".into()
            }
        });
        Ok(Turn {
            content: self.content,
            tool_calls,
            finish_reason,
            usage: self.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_pieces_add_up_to_one_call_with_its_arguments() {
        let mut builder = TurnBuilder::default();
        builder.add(Delta::Text("Let me ".into()));
        builder.add(Delta::Text("check.".into()));
        builder.add(Delta::ToolCall {
            index: 1,
            id: Some("toolu_1".into()),
            name: Some("get_customer_info".into()),
            arguments: String::new(),
        });
        for piece in [r#"{"customer_"#, r#"id":"C001"}"#] {
            builder.add(Delta::ToolCall {
                index: 1,
                id: None,
                name: None,
                arguments: piece.into(),
            });
        }
        builder.add(Delta::ToolCall {
            index: 2,
            id: Some("toolu_2".into()),
            name: Some("get_recent_customers".into()),
            arguments: String::new(),
        });
        builder.add(Delta::Finish("tool_calls".into()));
        builder.add(Delta::Usage(Usage {
            prompt_tokens: 12,
            completion_tokens: 0,
        }));
        builder.add(Delta::Usage(Usage {
            prompt_tokens: 0,
            completion_tokens: 9,
        }));
        let turn = builder.finish().unwrap();
        assert_eq!(turn.content.as_deref(), Some("Let me check."));
        assert_eq!(turn.tool_calls.len(), 2);
        assert_eq!(turn.tool_calls[0].arguments, r#"{"customer_id":"C001"}"#);
        assert_eq!(turn.tool_calls[1].arguments, "{}");
        assert_eq!(turn.finish_reason, "tool_calls");
        assert_eq!(
            turn.usage,
            Usage {
                prompt_tokens: 12,
                completion_tokens: 9
            }
        );
    }
}
