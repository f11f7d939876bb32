//! The request path end to end: a real rmcp client and server, real TLS, real tokens.

use crate::common;

use common::{Options, TestSystem, header, read};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

fn call(tool: &str) -> CallToolRequestParams {
    let arguments = json!({ "customer_id": "C001" });
    CallToolRequestParams::new(tool.to_string())
        .with_arguments(arguments.as_object().cloned().unwrap_or_default())
}

#[tokio::test]
async fn rmcp_client_calls_an_allowed_tool_through_tls() {
    let t = common::start().await;
    let client = t.mcp_client(&t.token(&["customer:read"])).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|tool| tool.name == "get_customer_info"));
    let result = client
        .call_tool(call("get_customer_info"))
        .await
        .expect("allowed call");
    let text = serde_json::to_string(&result.content).unwrap();
    assert!(text.contains("C001"), "{text}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn rmcp_client_is_refused_a_tool_its_token_lacks_the_scope_for() {
    let t = common::start().await;
    let client = t.mcp_client(&t.token(&["customer:read"])).await;
    let error = client
        .call_tool(call("create_support_ticket"))
        .await
        .expect_err("denied call");
    // rmcp reads the 403's `WWW-Authenticate: Bearer error="insufficient_scope"` challenge.
    let text = error.to_string();
    assert!(text.contains("Insufficient scope"), "{text}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn insufficient_scope_names_needed_and_held_scopes_and_echoes_the_id() {
    let t = common::start().await;
    let before = t.upstream_requests();
    let response = t
        .post(
            Some(&t.token(&["customer:read"])),
            TestSystem::tool_call("create_support_ticket", 77),
        )
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, 403);
    let challenge = header(&headers, "www-authenticate");
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"ticket:create customer:read\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}\"",
            scopegate_core::metadata::url_for(&t.system.resource)
        )),
        "{challenge}"
    );
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], 77);
    assert_eq!(body["error"]["data"]["tool"], "create_support_ticket");
    assert_eq!(
        body["error"]["data"]["missing_scopes"],
        json!(["ticket:create"])
    );
    assert_eq!(
        t.upstream_requests(),
        before,
        "a denied call never reaches the upstream"
    );
}

#[tokio::test]
async fn a_tool_no_rule_names_is_denied_without_a_step_up_challenge() {
    let t = common::start().await;
    let response = t
        .post(
            Some(&t.token(&["customer:read"])),
            TestSystem::tool_call("delete_everything", 3),
        )
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, 403);
    assert!(headers.get("www-authenticate").is_none());
    assert_eq!(body["error"]["data"]["reason"], "no_rule");
    assert_eq!(body["id"], 3);
}

#[tokio::test]
async fn batch_with_one_denied_element_is_refused_whole() {
    let t = common::start().await;
    let before = t.upstream_requests();
    let batch = json!([
        { "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "get_customer_info", "arguments": {} } },
        { "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": { "name": "create_support_ticket", "arguments": {} } }
    ]);
    let response = t
        .post(Some(&t.token(&["customer:read"])), batch.to_string())
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 403);
    assert_eq!(body["id"], 2);
    assert_eq!(t.upstream_requests(), before);
}

#[tokio::test]
async fn notification_form_tools_call_is_authorized_like_a_request() {
    let t = common::start().await;
    let notification = json!({
        "jsonrpc": "2.0", "method": "tools/call",
        "params": { "name": "create_support_ticket", "arguments": {} }
    });
    let response = t
        .post(Some(&t.token(&["customer:read"])), notification.to_string())
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 403);
    assert_eq!(body["id"], Value::Null);
}

#[tokio::test]
async fn odd_case_method_is_an_unknown_method_and_denied() {
    let t = common::start().await;
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "Tools/Call",
        "params": { "name": "get_customer_info", "arguments": {} }
    });
    let response = t
        .post(Some(&t.token(&["customer:read"])), body.to_string())
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["reason"], "no_rule");
}

#[tokio::test]
async fn upstream_never_sees_the_token_but_sees_the_verified_identity() {
    let t = common::start().await;
    let client = t.mcp_client(&t.token(&["customer:read"])).await;
    client
        .call_tool(call("get_customer_info"))
        .await
        .expect("allowed");
    let headers = t.system.upstream.last_request_headers();
    assert!(headers.get("authorization").is_none(), "{headers:?}");
    assert_eq!(headers["x-scopegate-subject"], "tester");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(
        headers["host"].to_str().unwrap(),
        t.system
            .upstream
            .url()
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn client_sent_identity_headers_are_replaced() {
    let t = common::start().await;
    let response = t
        .post(
            Some(&t.token(&["customer:read"])),
            TestSystem::tool_call("get_customer_info", 1),
        )
        .header("x-scopegate-subject", "admin")
        .header("x-scopegate-client-id", "root")
        .send()
        .await
        .unwrap();
    // Without a session the upstream refuses the call, but it has seen the headers.
    let _ = read(response).await;
    let headers = t.system.upstream.last_request_headers();
    assert_eq!(headers["x-scopegate-subject"], "tester");
    assert_eq!(headers.get_all("x-scopegate-subject").iter().count(), 1);
    assert_ne!(
        headers
            .get("x-scopegate-client-id")
            .map(|v| v.to_str().unwrap()),
        Some("root")
    );
}

#[tokio::test]
async fn forward_token_passes_the_authorization_header_when_configured() {
    let t = common::start_with(Options {
        upstream_settings: "forward_token = true".into(),
        ..Options::default()
    })
    .await;
    let token = t.token(&["customer:read"]);
    let client = t.mcp_client(&token).await;
    client
        .call_tool(call("get_customer_info"))
        .await
        .expect("allowed");
    let headers = t.system.upstream.last_request_headers();
    assert_eq!(headers["authorization"], format!("Bearer {token}").as_str());
    client.cancel().await.ok();
}

#[tokio::test]
async fn sse_events_reach_the_client_while_the_tool_is_still_working() {
    let t = common::start_with(common::slow_tool_options()).await;
    // Ten progress events 200 ms apart: the tool needs two seconds in all.
    let started = std::time::Instant::now();
    let mut response = common::start_slow_call(&t, 2, 10, 200).await;
    let mut first_event_at = None;
    let mut seen = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if first_event_at.is_none() && seen.contains("notifications/progress") {
            first_event_at = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first = first_event_at.expect("a progress event arrived");
    assert!(
        seen.contains("\"id\":2"),
        "the final result arrives too: {seen}"
    );
    assert!(
        first < total / 2,
        "first event after {first:?}, stream ended after {total:?}: the proxy buffered"
    );
}

#[tokio::test]
async fn protected_resource_metadata_is_served_at_both_well_known_paths() {
    let t = common::start().await;
    let base = t.url().trim_end_matches("/mcp").to_string();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let response = t.http.get(format!("{base}{path}")).send().await.unwrap();
        let (status, headers, body) = read(response).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), "application/json");
        assert_eq!(body["resource"], t.system.resource.as_str());
        assert_eq!(
            body["authorization_servers"],
            json!([t.system.issuer.issuer()])
        );
        assert_eq!(
            body["scopes_supported"],
            json!(["account:calculate", "customer:read", "ticket:create"])
        );
        assert_eq!(body["bearer_methods_supported"], json!(["header"]));
    }
}

#[tokio::test]
async fn other_paths_are_not_found_and_other_methods_not_allowed() {
    let t = common::start().await;
    let base = t.url().trim_end_matches("/mcp").to_string();
    let response = t.http.get(format!("{base}/admin")).send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");

    let response = t
        .http
        .put(t.url())
        .header("authorization", format!("Bearer {}", t.token(&[])))
        .send()
        .await
        .unwrap();
    let (status, headers, _) = read(response).await;
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), "GET, POST, DELETE");
}

#[tokio::test]
async fn the_work_stealing_runtime_serves_and_enforces_like_the_per_core_one() {
    for runtime in ["work-stealing", "per-core"] {
        enforced_on_every_connection(runtime).await;
    }
}

async fn enforced_on_every_connection(runtime: &str) {
    let t = common::start_with(Options {
        listen_settings: format!("runtime = \"{runtime}\""),
        ..Options::default()
    })
    .await;
    let allowed = t.token(&["customer:read"]);
    let session = common::open_session(&t, &allowed).await;
    // Each client opens its own connection, so the kernel spreads them over the workers'
    // listeners; every one must authorize the same way.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..16 {
        let client = common::https_client(&t.system);
        let (url, token, session) = (t.url().to_string(), allowed.clone(), session.clone());
        let tool = if i % 2 == 0 {
            "get_customer_info"
        } else {
            "create_support_ticket"
        };
        calls.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", session)
                .body(TestSystem::tool_call(tool, i))
                .send()
                .await
                .unwrap();
            (tool, response.status().as_u16())
        });
    }
    for (tool, status) in calls.join_all().await {
        let expected = if tool == "get_customer_info" {
            200
        } else {
            403
        };
        assert_eq!(status, expected, "{runtime}: {tool}");
    }
    // The session's initialize and initialized notification, then the allowed calls only.
    assert_eq!(t.upstream_requests(), 2 + 8);
}

#[tokio::test]
async fn http2_is_negotiated_over_tls() {
    let t = common::start().await;
    let response = t
        .post(
            Some(&t.token(&["customer:read"])),
            TestSystem::tool_call("create_support_ticket", 1),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_clients() {
    let t = common::start().await;
    let response = t
        .post(None, TestSystem::tool_call("get_customer_info", 1))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(header(response.headers(), "x-request-id"), "trace-123");
    let response = t.post(None, "{}").send().await.unwrap();
    assert!(!header(response.headers(), "x-request-id").is_empty());
}

#[tokio::test]
async fn foreign_origin_is_refused_and_no_origin_passes() {
    let t = common::start_with(Options {
        listen_settings: "allowed_origins = [\"https://app.example.com\"]".into(),
        ..Options::default()
    })
    .await;
    let token = t.token(&["customer:read"]);
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 9))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["data"]["reason"], "origin_not_allowed");

    let session = common::open_session(&t, &token).await;
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 9))
        .header("origin", "https://app.example.com")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn upstream_down_is_a_bad_gateway_with_the_request_id() {
    let t = common::start().await;
    t.system.upstream.shutdown();
    let response = t
        .post(
            Some(&t.token(&["customer:read"])),
            TestSystem::tool_call("get_customer_info", 41),
        )
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 502);
    assert_eq!(body["id"], 41);
    assert_eq!(body["error"]["data"]["reason"], "upstream_unreachable");
}
