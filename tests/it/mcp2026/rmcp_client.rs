//! rmcp (the Rust SDK) through the proxy in the newest revision it speaks: 2026-07-28, with
//! `server/discover` instead of the `initialize` handshake, against the rmcp sample server.

use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use super::*;

fn requests(metrics: &str, method: &str, decision: &str) -> f64 {
    common::sample(
        metrics,
        &format!("scopegate_requests_total{{decision=\"{decision}\",method=\"{method}\"}}"),
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn rmcp_speaks_2026_07_28_through_the_proxy_and_sees_a_refusal_as_an_error() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    let transport = StreamableHttpClientTransport::with_client(
        t.http.clone(),
        StreamableHttpClientTransportConfig::with_uri(t.url().to_string()).auth_header(token),
    );
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    let client =
        ().serve_with_lifecycle(transport, lifecycle)
            .await
            .expect("rmcp discovers the server through the proxy");
    assert_eq!(
        client.peer_info().map(|info| info.protocol_version.clone()),
        Some(ProtocolVersion::V_2026_07_28)
    );

    let mut tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|tool| tool.name.to_string())
        .collect();
    tools.sort();
    assert_eq!(tools, ["get_customer_info", "get_recent_customers"]);

    let args = json!({ "customer_id": "C001" });
    let call = |name: &'static str| {
        CallToolRequestParams::new(name).with_arguments(args.as_object().unwrap().clone())
    };
    let answer = client.call_tool(call("get_customer_info")).await.unwrap();
    assert_ne!(answer.is_error, Some(true), "{answer:?}");
    assert!(format!("{answer:?}").contains("Alice Martin"), "{answer:?}");

    let before = t.upstream_requests();
    let refused = client.call_tool(call("create_support_ticket")).await;
    assert!(refused.is_err(), "a refusal is an error: {refused:?}");
    assert_eq!(
        t.upstream_requests(),
        before,
        "the refused call reached the upstream"
    );

    // Over the wire: a discovery, no handshake.
    let metrics = common::scrape(&t).await;
    assert!(requests(&metrics, "server/discover", "allow") >= 1.0);
    assert_eq!(requests(&metrics, "initialize", "allow"), 0.0);
    assert_eq!(requests(&metrics, "tools/call", "deny"), 1.0);
}
