//! The adapter's token manager and MCP client against the real demo system (dev issuer, proxy on
//! TLS with the customer-service policy, rmcp sample server), and the whole adapter with the
//! demo's scripted model.

use std::sync::Arc;
use std::time::Duration;

use scopegate_adapter::config::OAuthConfig;
use scopegate_adapter::mcp_client::{CallOutcome, McpClient};
use scopegate_adapter::token::TokenManager;
use scopegate_core::sse::Decoder;
use scopegate_testkit::issuer::DEMO_CLIENT_SECRET;
use scopegate_testkit::scripted_model::ScriptedModel;
use scopegate_testkit::system::DemoSystem;
use serde_json::json;

fn client_for(system: &DemoSystem, client_id: &str) -> (McpClient, Arc<TokenManager>) {
    let oauth = OAuthConfig {
        token_url: system.issuer.token_url().parse().unwrap(),
        client_id: client_id.to_owned(),
        client_secret: DEMO_CLIENT_SECRET.to_owned(),
        scopes: Vec::new(),
        resource: Some(system.resource.clone()),
        ca_file: None,
    };
    let http =
        scopegate_core::client::build(Some(&system.certs.ca), Duration::from_secs(5)).unwrap();
    let tokens = Arc::new(TokenManager::new(oauth, http.clone()));
    let mcp = McpClient::new(
        system.mcp_url.parse().unwrap(),
        http,
        tokens.clone(),
        Duration::from_secs(10),
    );
    (mcp, tokens)
}

#[tokio::test]
async fn tools_run_through_scopegate_and_a_missing_scope_is_an_outcome_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let system = DemoSystem::start(dir.path()).await.unwrap();

    let (support, support_tokens) = client_for(&system, "support-agent");
    let tools = support.list_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "get_customer_info"));
    let lookup = support
        .call_tool("get_customer_info", json!({ "customer_id": "C001" }))
        .await
        .unwrap();
    assert!(
        matches!(&lookup, CallOutcome::Done { text, is_error: false } if text.contains("Alice Martin")),
        "{lookup:?}"
    );
    // One token serves the whole session.
    assert_eq!(support_tokens.fetches(), 1);

    let (readonly, _) = client_for(&system, "readonly-agent");
    let ticket = readonly
        .call_tool(
            "create_support_ticket",
            json!({ "customer_id": "C002", "subject": "s", "description": "d" }),
        )
        .await
        .unwrap();
    match ticket {
        CallOutcome::Denied {
            missing_scopes,
            message,
        } => {
            // The challenge lists needed and held scopes ("ticket:create customer:read"); the
            // outcome carries only what the token lacks.
            assert_eq!(missing_scopes, ["ticket:create"]);
            assert!(message.contains("insufficient_scope"), "{message}");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    system.stop().await;
}

#[tokio::test]
async fn concurrent_callers_share_one_token_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let system = DemoSystem::start(dir.path()).await.unwrap();
    let (_, tokens) = client_for(&system, "support-agent");
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for handle in handles {
        seen.push(handle.await.unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(tokens.fetches(), 1, "single flight");
    system.stop().await;
}

/// The adapter as a newcomer meets it in the demo: the scripted model on the OpenAI wire
/// format, tools through scopegate. A streamed chat runs its tool round inside the one stream,
/// and the model is told the one scope the token lacks.
#[tokio::test]
async fn a_streamed_chat_runs_its_refused_tool_round_inside_one_stream() {
    let dir = tempfile::tempdir().unwrap();
    let system = DemoSystem::start(dir.path()).await.unwrap();
    let model = ScriptedModel::start().await.unwrap();
    let adapter = system
        .start_adapter("readonly-agent", model.base_url())
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", adapter.addrs.api))
        .json(&json!({
            "model": "support",
            "messages": [{ "role": "user", "content": "Open a ticket for customer C002." }],
            "stream": true,
            "stream_options": { "include_usage": true },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(
        response.headers()["x-scopegate-target"],
        "scripted/scripted-demo-model"
    );
    let body = response.bytes().await.unwrap();
    let mut decoder = Decoder::new(body.len());
    decoder.push(&body);
    let mut datas = Vec::new();
    while let Some(event) = decoder.next_event().unwrap() {
        datas.extend(event.data);
    }
    assert_eq!(datas.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = datas[..datas.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(
        text.contains("missing scope(s) ticket:create,"),
        "the model quotes what it was told: {text}"
    );
    assert!(!text.contains("customer:read"), "{text}");
    // The adapter ran the tool call itself: the caller never sees it.
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none())
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    // Asked for with include_usage: the last chunk holds the conversation's usage, no choices.
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].is_u64(), "{usage}");
    let metrics = &adapter.engine.metrics;
    assert_eq!(metrics.tool_calls("_other", "deny"), 1);
    adapter.stop();
    system.stop().await;
}
