//! One conversation, top to bottom: resolve the caller's model to targets, offer the tools that
//! scopegate lets this client see, then model → tool calls → `tools/call` through scopegate →
//! results → model, until a final answer or `max_tool_rounds`. Each tool call leaves an audit line
//! and a metric. Not HTTP (see `server`), not the provider formats (see `openai`, `anthropic`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::config::{AdapterConfig, Target};
use super::mcp_client::{CallOutcome, McpClient, McpError, McpTool};
use super::metrics::{Metrics, OTHER_TOOL};
use super::openai::{CallerRequest, ModelRequest, Turn, Usage, function_tool};
use super::provider::{Provider, ProviderError};
use super::relay::Relay;
use super::routing;
use super::stream::{Delta, ProviderStream, TurnBuilder};

pub struct Tools {
    pub mcp: McpClient,
    pub max_rounds: u32,
    /// The OAuth client id the calls are made as, for the audit line.
    pub client_id: String,
}

/// Everything a conversation needs, built once at start-up.
pub struct Engine {
    pub providers: BTreeMap<String, Provider>,
    pub config: AdapterConfig,
    pub tools: Option<Tools>,
    pub metrics: Arc<Metrics>,
}

/// A finished conversation.
#[derive(Debug)]
pub struct Answer {
    pub turn: Turn,
    /// The target that gave the final answer.
    pub target: Target,
    /// Targets given up on along the way.
    pub fallbacks: usize,
    pub tool_rounds: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the model {0:?} is neither an alias nor provider/model with a configured provider")]
    UnknownModel(String),
    /// The provider is named so that a caller never mistakes a provider's 401 for its own.
    #[error("provider {:?} failed for {target}: {error}", target.provider)]
    Provider {
        target: Target,
        error: ProviderError,
    },
    #[error("tools are unavailable: {0}")]
    Tools(McpError),
    #[error("the caller closed the stream")]
    Disconnected,
}

/// A provider's reply to one round, whole or as a stream to read.
enum Reply {
    Whole(Turn),
    Stream(ProviderStream),
}

impl Engine {
    /// The models `GET /v1/models` lists: every alias and every configured target.
    pub fn model_ids(&self) -> Vec<(String, String)> {
        let mut ids: Vec<(String, String)> = self
            .config
            .models
            .keys()
            .map(|alias| (alias.clone(), "scopegate".to_owned()))
            .collect();
        for target in self.config.models.values().flatten() {
            let id = target.to_string();
            if !ids.iter().any(|(i, _)| *i == id) {
                ids.push((id, target.provider.clone()));
            }
        }
        ids
    }

    /// Runs the conversation. With a `relay` the caller is streaming: each provider is asked to
    /// stream too, and its text goes to the caller as it arrives, round after round.
    pub async fn chat(
        &self,
        request: CallerRequest,
        request_id: &str,
        mut relay: Option<&mut Relay>,
    ) -> Result<Answer, ChatError> {
        let names: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        let targets = routing::resolve(&request.model, &self.config.models, &names)
            .ok_or_else(|| ChatError::UnknownModel(request.model.clone()))?;

        // The tool list is fetched with this client's token, through scopegate: where the proxy
        // filters list responses by policy, the model is offered only what it may call.
        let mcp_tools: Vec<McpTool> = match &self.tools {
            Some(tools) => tools.mcp.list_tools().await.map_err(ChatError::Tools)?,
            None => Vec::new(),
        };
        self.metrics
            .tools_listed(mcp_tools.iter().map(|t| t.name.as_str()));
        let mut offered: Vec<Value> = mcp_tools
            .iter()
            .map(|t| function_tool(&t.name, &t.description, &t.input_schema))
            .collect();
        offered.extend(request.tools.iter().cloned());

        let mut messages = request.messages;
        let mut usage = Usage::default();
        let mut fallbacks = 0;
        // Later rounds start at the target that answered: the conversation stays with one model
        // unless that one fails.
        let mut first = 0;
        let max_rounds = self.tools.as_ref().map_or(0, |t| t.max_rounds);
        let mut round = 0;
        loop {
            let model_request = |target: &Target| ModelRequest {
                model: target.model.clone(),
                messages: messages.clone(),
                tools: offered.clone(),
                params: request.params.clone(),
            };
            let streaming = relay.is_some();
            let (result, walk) = routing::walk(&targets[first..], &self.config.routing, |t| {
                let request = model_request(t);
                let target = t.clone();
                async move {
                    let provider = &self.providers[&target.provider];
                    // A stream counts as answered once the provider accepted the request: past
                    // that point its text may be on the way to the caller, so no fallback.
                    let result = if streaming {
                        provider.open_stream(&request).await.map(Reply::Stream)
                    } else {
                        provider.complete(&request).await.map(Reply::Whole)
                    };
                    let label = match &result {
                        Ok(_) => "ok",
                        Err(e) => e.reason(),
                    };
                    self.metrics.attempt(&target.provider, &target.model, label);
                    result
                }
            })
            .await;
            for (target, reason) in &walk.fallbacks {
                self.metrics
                    .fallback(&target.provider, &target.model, reason);
                tracing::warn!(request_id, %target, reason, "falling back to the next target");
            }
            fallbacks += walk.fallbacks.len();
            let reply = match result {
                Ok(reply) => reply,
                Err(error) => {
                    self.metrics.request_failed(error.reason());
                    let target = walk.failed.unwrap_or_else(|| targets[first].clone());
                    return Err(ChatError::Provider { target, error });
                }
            };
            first += walk.answered.unwrap_or(0);
            let target = targets[first].clone();
            let mut turn = match (reply, relay.as_deref_mut()) {
                (Reply::Whole(turn), _) => turn,
                (Reply::Stream(stream), Some(relay)) => {
                    self.relay_turn(stream, relay, &target, fallbacks).await?
                }
                (Reply::Stream(_), None) => unreachable!("streams are opened for a relay only"),
            };
            usage.add(turn.usage);

            // Calls to the caller's own tools go back to the caller, who runs them. Every other
            // call goes to scopegate, even for a tool that was not on the list: the policy there
            // decides, not a guess here, and a refusal reaches the model as a tool result.
            let caller_tool = |name: &str| {
                request
                    .tools
                    .iter()
                    .any(|t| t["function"]["name"].as_str() == Some(name))
            };
            let for_caller = turn.tool_calls.iter().any(|c| caller_tool(&c.name));
            if turn.tool_calls.is_empty() || for_caller || self.tools.is_none() {
                turn.usage = usage;
                self.metrics.request(&target.provider, &target.model, "ok");
                return Ok(Answer {
                    turn,
                    target,
                    fallbacks,
                    tool_rounds: round,
                });
            }
            if round >= max_rounds {
                self.metrics
                    .request(&target.provider, &target.model, "max_tool_rounds");
                let stopped = format!(
                    "Stopped: the model asked for more tool calls than max_tool_rounds ({max_rounds}) allows."
                );
                if let Some(relay) = relay.as_deref_mut() {
                    relay.text(&stopped).await.map_err(|_| self.gone(&target))?;
                }
                return Ok(Answer {
                    turn: Turn {
                        content: Some(stopped),
                        tool_calls: Vec::new(),
                        finish_reason: "length".into(),
                        usage,
                    },
                    target,
                    fallbacks,
                    tool_rounds: round,
                });
            }
            round += 1;
            self.metrics.tool_round(&target.provider, &target.model);
            messages.push(turn.assistant_message());
            let tools = self.tools.as_ref().expect("checked above");
            for call in &turn.tool_calls {
                let listed = mcp_tools.iter().any(|t| t.name == call.name);
                let content = self
                    .run_tool(tools, call, listed, &target, round, request_id)
                    .await;
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": content,
                }));
            }
        }
    }

    /// Reads one streamed provider answer, passing its text to the caller as it arrives; the
    /// tool calls are gathered, as they are run here or handed back whole at the end.
    async fn relay_turn(
        &self,
        mut stream: ProviderStream,
        relay: &mut Relay,
        target: &Target,
        fallbacks: usize,
    ) -> Result<Turn, ChatError> {
        relay
            .start(target, fallbacks)
            .await
            .map_err(|_| self.gone(target))?;
        let mut builder = TurnBuilder::default();
        loop {
            let deltas = match stream.next().await {
                Ok(Some(deltas)) => deltas,
                Ok(None) => break,
                Err(error) => {
                    self.metrics
                        .request(&target.provider, &target.model, error.reason());
                    return Err(ChatError::Provider {
                        target: target.clone(),
                        error,
                    });
                }
            };
            for delta in deltas {
                if let Delta::Text(text) = &delta {
                    relay.text(text).await.map_err(|_| self.gone(target))?;
                }
                builder.add(delta);
            }
        }
        builder.finish().map_err(|error| ChatError::Provider {
            target: target.clone(),
            error,
        })
    }

    /// The caller closed its stream: counted, and the conversation stops.
    fn gone(&self, target: &Target) -> ChatError {
        self.metrics
            .request(&target.provider, &target.model, "disconnected");
        ChatError::Disconnected
    }

    /// Runs one tool call through scopegate; whatever happens becomes the text the model reads.
    async fn run_tool(
        &self,
        tools: &Tools,
        call: &super::openai::ToolCall,
        listed: bool,
        target: &Target,
        round: u32,
        request_id: &str,
    ) -> String {
        let started = Instant::now();
        let (decision, content, detail) = match serde_json::from_str::<Value>(&call.arguments) {
            Err(e) => (
                "error",
                format!("The tool was not called: its arguments are not valid JSON ({e})."),
                "bad_arguments".to_owned(),
            ),
            Ok(arguments) => match tools.mcp.call_tool(&call.name, arguments).await {
                Ok(CallOutcome::Done { text, is_error }) => {
                    let detail = if is_error { "tool_error" } else { "ok" };
                    ("allow", text, detail.to_owned())
                }
                // Said plainly, so the model can tell the user; never retried with other
                // credentials.
                Ok(CallOutcome::Denied {
                    missing_scopes,
                    message,
                }) => (
                    "deny",
                    denial_text(&call.name, &missing_scopes, &tools.client_id),
                    message,
                ),
                Err(error) => (
                    "error",
                    format!("The tool could not be called: {error}."),
                    error.to_string(),
                ),
            },
        };
        // A name not on scopegate's list counts as `_other`, keeping the label bounded.
        let label = if listed {
            call.name.as_str()
        } else {
            OTHER_TOOL
        };
        self.metrics.tool_call(label, decision);
        tracing::info!(
            target: "audit",
            request_id,
            caller = %tools.client_id,
            tool = %call.name,
            decision,
            detail = %detail,
            provider = %target.provider,
            model = %target.model,
            round,
            duration_ms = started.elapsed().as_millis() as u64,
            "tool call"
        );
        content
    }
}

/// What the model reads when scopegate refused a call: said plainly, naming only the scopes the
/// token lacks (what the user needs to ask for), so the model can tell the user; never retried
/// with other credentials.
pub fn denial_text(tool: &str, missing_scopes: &[String], client_id: &str) -> String {
    if missing_scopes.is_empty() {
        return format!(
            "Permission denied by scopegate: the policy allows no call to {tool} by OAuth client \
             {client_id}. The action was not performed; tell the user."
        );
    }
    format!(
        "Permission denied by scopegate (insufficient_scope): {tool} needs the missing scope(s) \
         {}, which the token of OAuth client {client_id} does not carry. The action was not \
         performed; tell the user.",
        missing_scopes.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_told_only_the_scopes_the_token_lacks() {
        let text = denial_text(
            "create_support_ticket",
            &["ticket:create".to_owned()],
            "readonly-agent",
        );
        assert!(text.contains("insufficient_scope"), "{text}");
        assert!(text.contains("missing scope(s) ticket:create,"), "{text}");
        assert!(!text.contains("customer:read"), "{text}");
        let no_rule = denial_text("drop_tables", &[], "readonly-agent");
        assert!(
            no_rule.contains("allows no call to drop_tables"),
            "{no_rule}"
        );
    }
}
