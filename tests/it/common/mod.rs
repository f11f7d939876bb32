//! Starts the real system for a test in a few lines: dev issuer (real JWKS over HTTP, real signed
//! tokens), rmcp sample server, and the proxy on TLS with a generated CA; plus clients that trust
//! that CA. Everything binds 127.0.0.1:0.

pub mod child;

pub mod python;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use rmcp::ServiceExt;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use scopegate_testkit::system::{DemoSystem, SystemOptions};
use serde_json::{Value, json};

pub use scopegate_testkit::system::SystemOptions as Options;

pub struct TestSystem {
    pub system: DemoSystem,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub async fn start() -> TestSystem {
    start_with(SystemOptions::default()).await
}

pub async fn start_with(options: SystemOptions) -> TestSystem {
    let dir = tempfile::tempdir().expect("temp dir");
    let system = DemoSystem::start_with(dir.path(), options)
        .await
        .expect("system starts");
    let http = https_client(&system);
    TestSystem {
        system,
        http,
        _dir: dir,
    }
}

/// A client that trusts the test CA and goes nowhere but here.
pub fn https_client(system: &DemoSystem) -> reqwest::Client {
    let ca = std::fs::read(&system.certs.ca).expect("CA file");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .no_proxy()
        .build()
        .expect("client")
}

impl TestSystem {
    pub fn url(&self) -> &str {
        &self.system.mcp_url
    }

    /// A valid ES256 token for subject `tester` with these scopes.
    pub fn token(&self, scopes: &[&str]) -> String {
        self.system
            .issuer
            .mint(self.system.issuer.claims_for("tester", scopes))
    }

    /// A token whose claims were changed by `edit` from a valid set.
    pub fn token_with(&self, scopes: &[&str], edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.system.issuer.claims_for("tester", scopes);
        edit(&mut claims);
        self.system.issuer.mint(claims)
    }

    /// A POST to the MCP endpoint with the headers a Streamable HTTP client sends.
    pub fn post(
        &self,
        token: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.url())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(body);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request
    }

    /// A `tools/call` body for `tool` with request id `id`.
    pub fn tool_call(tool: &str, id: i64) -> String {
        json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": tool, "arguments": { "customer_id": "C001" } }
        })
        .to_string()
    }

    /// Requests the sample server has received so far.
    pub fn upstream_requests(&self) -> usize {
        self.system.upstream.requests()
    }

    /// An `rmcp` client session through the proxy, with this bearer token.
    pub async fn mcp_client(&self, token: &str) -> RunningService<rmcp::RoleClient, ()> {
        let transport = StreamableHttpClientTransport::with_client(
            self.http.clone(),
            StreamableHttpClientTransportConfig::with_uri(self.url().to_string())
                .auth_header(token),
        );
        ().serve(transport)
            .await
            .expect("MCP session through the proxy")
    }
}

/// A response's status, headers and JSON body.
pub async fn read(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

pub fn header<'h>(headers: &'h reqwest::header::HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `initialize` and `notifications/initialized` over raw HTTP; returns the session id.
pub async fn open_session(t: &TestSystem, token: &str) -> String {
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } }
    });
    let response = t.post(Some(token), init.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let session = header(response.headers(), "mcp-session-id").to_string();
    let _ = response.text().await;
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    t.post(Some(token), initialized.to_string())
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    session
}

/// The proxy's `/metrics` page.
pub async fn scrape(t: &TestSystem) -> String {
    t.http
        .get(format!("{}/metrics", t.system.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels as rendered).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Opens a session with `token` and calls `tool` in it as request `id`: the status and body the
/// client gets. An allowed call is the upstream's `200`; anything else is the proxy's refusal.
pub async fn session_call(t: &TestSystem, token: &str, tool: &str, id: i64) -> (u16, Value) {
    let session = open_session(t, token).await;
    let response = t
        .post(Some(token), TestSystem::tool_call(tool, id))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    (status, body)
}

/// Polls `check` every 20 ms until it holds or `within` passes: waiting on a condition, never on
/// a fixed sleep.
pub async fn eventually(within: std::time::Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// Options for a system whose sample server has the `slow_count` tool, allowed to any token.
pub fn slow_tool_options() -> SystemOptions {
    SystemOptions {
        upstream: scopegate_testkit::sample_server::SampleServerOptions {
            slow_tools: true,
            ..Default::default()
        },
        policy: Some("version = 1\n[[tools]]\nname = \"slow_count\"\nscopes = []\n".into()),
        ..SystemOptions::default()
    }
}

/// Opens a session and starts `slow_count` (`count` progress events, `delay_ms` apart) as
/// request `id`; returns the streaming response once its head has arrived.
pub async fn start_slow_call(
    t: &TestSystem,
    id: i64,
    count: u32,
    delay_ms: u64,
) -> reqwest::Response {
    let token = t.token(&[]);
    let session = open_session(t, &token).await;
    let slow = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": "slow_count",
            "arguments": { "count": count, "delay_ms": delay_ms },
            "_meta": { "progressToken": "progress" }
        }
    });
    let response = t
        .post(Some(&token), slow.to_string())
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(header(response.headers(), "content-type").starts_with("text/event-stream"));
    response
}
