//! `tools pin` in each protocol revision, and the official Python SDK server (dual-era, asked
//! statelessly over 2026-07-28) changing a description mid-run through the proxy.

use std::time::Duration;

use serde_json::{Value, json};

use super::common::{self, Options, TestSystem, eventually, sample, scrape};
use super::{CHANGED, NEW_DESCRIPTION, SCOPES, binary, pin_config, tools};

/// A 2026-07-28 server, scripted: it answers only stateless `tools/list` requests whose header
/// and `_meta` name 2026-07-28 (anything else, `initialize` included, is a `400`), in two pages.
async fn stateless_upstream() -> String {
    use http_body_util::{BodyExt as _, Full};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: hyper::Request<hyper::body::Incoming>| async move {
                        let revision = request
                            .headers()
                            .get("mcp-protocol-version")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let message: Value = serde_json::from_slice(&body).unwrap_or_default();
                        let stateless = revision == "2026-07-28"
                            && message["method"] == "tools/list"
                            && message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]
                                == "2026-07-28";
                        let (status, answer) = if !stateless {
                            (
                                400,
                                json!({ "jsonrpc": "2.0", "id": message["id"], "error": { "code": -32600, "message": "unsupported" } }),
                            )
                        } else if message["params"]["cursor"] == "page-2" {
                            (
                                200,
                                json!({ "jsonrpc": "2.0", "id": message["id"], "result": {
                                "tools": [{ "name": "second", "description": "On page two", "inputSchema": { "type": "object" } }]
                            } }),
                            )
                        } else {
                            (
                                200,
                                json!({ "jsonrpc": "2.0", "id": message["id"], "result": {
                                "tools": [{ "name": "first", "title": "First", "inputSchema": { "type": "object" } }],
                                "nextCursor": "page-2"
                            } }),
                            )
                        };
                        let mut response =
                            hyper::Response::new(Full::new(bytes::Bytes::from(answer.to_string())));
                        *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        response
                            .headers_mut()
                            .insert("content-type", "application/json".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_pin_asks_a_2026_07_28_server_statelessly_and_follows_its_cursor() {
    let url = stateless_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = pin_config(dir.path(), &url);
    let lock = dir.path().join("tools.lock");
    let (ok, out) = tools(&[
        "pin",
        "--config",
        config.to_str().unwrap(),
        "--out",
        lock.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("2 tools pinned"), "{out}");
    assert!(out.contains("(MCP 2026-07-28)"), "{out}");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    assert_eq!(file["tools"][0]["name"], "first");
    assert_eq!(file["tools"][0]["title"], "First");
    assert_eq!(file["tools"][1]["name"], "second");
    assert!(
        file["pins"]["second"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

/// A 2026-07-28 (stateless) request through the proxy: the body with its `_meta`, and the
/// headers that must agree with it.
async fn stateless(t: &TestSystem, token: &str, method: &str, params: Value) -> (u16, Value) {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { "name": "test", "version": "1" },
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let mut request = t
        .post(
            Some(token),
            json!({ "jsonrpc": "2.0", "id": 3, "method": method, "params": params }).to_string(),
        )
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str() {
        request = request.header("mcp-name", name);
    }
    let (status, _, body) = common::read(request.send().await.unwrap()).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the MCP Python SDK 2.x: .ci/python-sdk.sh"]
async fn the_python_sdk_server_changing_a_description_mid_run_loses_the_tool_until_it_is_pinned_again()
 {
    let (_server, base) = common::python::start_server();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let calls = async |tool: &str| -> u64 {
        let counts: Value = http
            .get(format!("{base}/calls"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        counts[tool].as_u64().unwrap_or(0)
    };
    let dir = tempfile::tempdir().unwrap();
    let config = pin_config(dir.path(), &format!("{base}/mcp"));
    let lock = dir.path().join("tools.lock");
    let pin = [
        "pin",
        "--config",
        config.to_str().unwrap(),
        "--out",
        lock.to_str().unwrap(),
    ];
    let (ok, out) = tools(&pin);
    assert!(ok && out.contains("2 tools pinned"), "{out}");
    assert!(out.contains("(MCP 2026-07-28)"), "{out}");

    let t = common::start_with(Options {
        upstream_url: Some(format!("{base}/mcp")),
        proxy_binary: Some(binary()),
        extra_tables: format!("\n[integrity]\npins = \"{}\"\n", lock.display()),
        ..Options::default()
    })
    .await;
    let token = t.token(&SCOPES);
    let listed = async || -> Vec<String> {
        let (status, body) = stateless(&t, &token, "tools/list", json!({})).await;
        assert_eq!(status, 200, "{body}");
        let mut names: Vec<String> = body["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tool| tool["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let ticket = json!({ "name": "create_support_ticket", "arguments": { "customer_id": "C001", "subject": "s" } });
    let lookup = json!({ "name": CHANGED, "arguments": { "customer_id": "C001" } });
    assert_eq!(listed().await, ["create_support_ticket", CHANGED]);
    let (status, body) = stateless(&t, &token, "tools/call", lookup.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(calls(CHANGED).await, 1);

    let changed = http
        .post(format!("{base}/describe"))
        .json(&json!({ "tool": CHANGED, "description": NEW_DESCRIPTION }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_eq!(listed().await, ["create_support_ticket"]);
    let (status, body) = stateless(&t, &token, "tools/call", lookup.clone()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "tool_changed");
    assert_eq!(
        calls(CHANGED).await,
        1,
        "the refused call reached the server"
    );
    let (status, body) = stateless(&t, &token, "tools/call", ticket).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(calls("create_support_ticket").await, 1);
    let metrics = scrape(&t).await;
    assert_eq!(
        sample(
            &metrics,
            &format!("scopegate_tool_changes_total{{tool=\"{CHANGED}\"}}")
        ),
        Some(1.0)
    );

    let diff = [
        "diff",
        "--config",
        config.to_str().unwrap(),
        "--pins",
        lock.to_str().unwrap(),
    ];
    let (same, out) = tools(&diff);
    println!("{out}");
    assert!(!same, "{out}");
    assert!(out.contains("    - \"One customer's record.\""), "{out}");
    assert!(
        out.contains(&format!("    + \"{NEW_DESCRIPTION}\"")),
        "{out}"
    );
    assert!(
        out.contains("1 unchanged, 1 changed, 0 added, 0 removed"),
        "{out}"
    );

    let (ok, out) = tools(&pin);
    assert!(ok, "{out}");
    assert!(
        eventually(Duration::from_secs(10), async || listed().await.len() == 2).await,
        "the renewed pin is not in force"
    );
    let (status, body) = stateless(&t, &token, "tools/call", lookup).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(calls(CHANGED).await, 2);
}
