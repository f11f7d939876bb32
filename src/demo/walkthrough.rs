//! What `scopegate demo --serve` prints so a person can drive the running demo by hand: the
//! endpoints, each demo client's scopes, and the whole MCP exchange as curl commands (token,
//! `initialize`, `notifications/initialized`, `tools/list`, an allowed and a denied call). The
//! steps are data, rendered here and sent as they are by the test that checks them, so what is
//! printed is what is known to work. Not the scenarios (`scenarios.rs`).

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use scopegate_testkit::issuer::{DEMO_CLIENT_SECRET, DemoClient};

/// The MCP protocol version the printed requests speak.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// The client the walkthrough acts as: it may read customers but not open tickets, so one
/// session shows both an allowed and a denied call.
pub const WALKTHROUGH_CLIENT: &str = "readonly-agent";

/// Where the running demo can be reached; also the JSON of `demo --endpoints-file`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoints {
    pub mcp_url: String,
    pub ca_file: PathBuf,
    pub token_url: String,
    pub resource: String,
    pub client_secret: String,
    pub metrics_url: String,
    pub metadata_url: String,
    pub config_file: PathBuf,
}

/// One request of the walkthrough.
#[derive(Debug, Clone)]
pub struct Step {
    /// What the step shows, printed above its command.
    pub title: &'static str,
    /// The JSON-RPC message sent.
    pub body: String,
    /// The status the proxy answers with.
    pub status: u16,
}

/// The exchange after the token, in order. `initialize` is the only step without the session id
/// (it is the step that creates it); every later step sends it.
pub fn steps() -> Vec<Step> {
    let message = |id: Option<u32>, method: &str, params: serde_json::Value| {
        let mut message = serde_json::json!({ "jsonrpc": "2.0", "method": method });
        if let Some(id) = id {
            message["id"] = id.into();
        }
        if !params.is_null() {
            message["params"] = params;
        }
        message.to_string()
    };
    let call = |id, tool: &str, arguments: serde_json::Value| {
        message(
            Some(id),
            "tools/call",
            serde_json::json!({ "name": tool, "arguments": arguments }),
        )
    };
    vec![
        Step {
            title: "initialize; keep the session id the server hands out",
            body: message(
                Some(1),
                "initialize",
                serde_json::json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": { "name": "curl", "version": "1" }
                }),
            ),
            status: 200,
        },
        Step {
            title: "notifications/initialized: the handshake's last message (202)",
            body: message(None, "notifications/initialized", serde_json::Value::Null),
            status: 202,
        },
        Step {
            title: "tools/list: only the tools this token may call (200)",
            body: message(Some(2), "tools/list", serde_json::Value::Null),
            status: 200,
        },
        Step {
            title: "get_customer_info: allowed, the token has customer:read (200)",
            body: call(
                3,
                "get_customer_info",
                serde_json::json!({ "customer_id": "C001" }),
            ),
            status: 200,
        },
        Step {
            title: "create_support_ticket: denied, it needs ticket:create (403)",
            body: call(
                4,
                "create_support_ticket",
                serde_json::json!({
                    "customer_id": "C001",
                    "subject": "Refund",
                    "description": "Charged twice"
                }),
            ),
            status: 403,
        },
    ]
}

/// The shell command that gets a token for `client` into `$TOKEN`.
pub fn token_command(endpoints: &Endpoints, client: &str) -> String {
    format!(
        "TOKEN=$(curl -s {token_url} -d grant_type=client_credentials -d client_id={client} \\\n    \
         -d client_secret={secret} --data-urlencode resource={resource} \\\n    \
         | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')",
        token_url = endpoints.token_url,
        secret = endpoints.client_secret,
        resource = endpoints.resource,
    )
}

/// The shell command for one step. `initialize` stores the `Mcp-Session-Id` response header in
/// `$SESSION`; the other steps send it, and print the body and the status.
pub fn command(endpoints: &Endpoints, step: &Step, first: bool) -> String {
    let common = format!(
        "--cacert {ca} -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n    \
         -H 'Accept: application/json, text/event-stream'",
        ca = endpoints.ca_file.display(),
    );
    if first {
        format!(
            "SESSION=$(curl -s -D - -o /dev/null {common} \\\n    {mcp} -d '{body}' \\\n    \
             | tr -d '\\r' | awk 'tolower($1) == \"mcp-session-id:\" {{print $2}}')",
            mcp = endpoints.mcp_url,
            body = step.body,
        )
    } else {
        format!(
            "curl -s -w '\\nHTTP %{{http_code}}\\n' {common} \\\n    \
             -H \"Mcp-Session-Id: $SESSION\" -H 'Mcp-Protocol-Version: {PROTOCOL_VERSION}' \\\n    \
             {mcp} -d '{body}'",
            mcp = endpoints.mcp_url,
            body = step.body,
        )
    }
}

/// Everything `demo --serve` prints once the system is up.
pub fn render(endpoints: &Endpoints, clients: &[DemoClient]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "\nEverything keeps running until Ctrl-C or SIGTERM; the demo's files are removed then.\n  \
         MCP endpoint (through scopegate): {mcp}\n  \
         CA certificate to trust:          {ca}\n  \
         proxy config:                     {config}\n  \
         protected-resource metadata:      {metadata}\n  \
         metrics:                          {metrics}\n\n\
         Demo clients (secret {secret}):\n",
        mcp = endpoints.mcp_url,
        ca = endpoints.ca_file.display(),
        config = endpoints.config_file.display(),
        metadata = endpoints.metadata_url,
        metrics = endpoints.metrics_url,
        secret = DEMO_CLIENT_SECRET,
    );
    for client in clients {
        let _ = write!(out, "  {:<16} {}", client.id, client.scopes.join(" "));
        if let Some(tenant) = &client.tenant {
            let _ = write!(out, " (tenant {tenant})");
        }
        out.push('\n');
    }
    let _ = write!(
        out,
        "\nA session as {WALKTHROUGH_CLIENT}, step by step (paste into a POSIX shell):\n\n\
         1. a token:\n  {}\n",
        token_command(endpoints, WALKTHROUGH_CLIENT)
    );
    for (i, step) in steps().iter().enumerate() {
        let _ = write!(
            out,
            "\n{}. {}:\n  {}\n",
            i + 2,
            step.title,
            command(endpoints, step, i == 0)
        );
    }
    out
}
