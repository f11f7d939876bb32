//! The adversarial suite: what an attacker sends to get a call past the proxy, case by case.
//! Every refusal asserts the exact status, the `WWW-Authenticate` challenge or JSON error reason,
//! and that the upstream saw nothing. Cases are tables, one running system per table.
//!
//! Sources: RFC 8725 (JWT BCP), jwt_tool's exploit modes, Wycheproof-style malformed JWS, Envoy
//! jwt_authn's fixtures, parser differentials between serde_json and the Python/JavaScript MCP
//! SDKs, and HTTP/1.1 request smuggling.

#[allow(unused_imports)] // this suite starts every system with the default options
use crate::common;

mod bodies;
mod claims;
mod findings;
mod headers;
mod jws;
mod wire;

use common::{TestSystem, header, read};
use serde_json::Value;

/// The scopes of a caller who may call every customer-service tool.
pub const ALL_SCOPES: [&str; 3] = ["customer:read", "ticket:create", "account:calculate"];

/// What the proxy must answer, for one case.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    /// `WWW-Authenticate`, exactly; empty when the response must carry none.
    pub challenge: String,
    /// `error.data.reason` of a JSON-RPC error body, else the top-level `error` of a plain one.
    pub reason: String,
}

/// The challenge for a presented but unusable token with this `error_description`.
pub fn invalid_token(t: &TestSystem, description: &str) -> String {
    format!(
        "Bearer resource_metadata=\"{}\", error=\"invalid_token\", error_description=\"{description}\"",
        scopegate_core::metadata::url_for(&t.system.resource)
    )
}

/// Sends one request and reports what came back, checking that a refusal never reached the
/// upstream nor echoed the token. `Err` describes a mismatch, so a table reports every failing
/// row at once.
pub async fn check(
    t: &TestSystem,
    name: &str,
    request: reqwest::RequestBuilder,
    want: &Refusal,
    token: Option<&str>,
) -> Result<(), String> {
    let before = t.upstream_requests();
    let response = request.send().await.map_err(|e| format!("{name}: {e}"))?;
    let (status, headers, body) = read(response).await;
    let got = Refusal {
        status,
        challenge: header(&headers, "www-authenticate").to_string(),
        reason: reason_of(&body),
    };
    let mut problems = Vec::new();
    if got != *want {
        problems.push(format!("got {got:?}, body {body}"));
    }
    if t.upstream_requests() != before {
        problems.push("reached the upstream".to_string());
    }
    if let Some(token) = token.filter(|t| t.len() > 16)
        && (got.challenge.contains(token) || body.to_string().contains(token))
    {
        problems.push("token echoed".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: {}", problems.join("; ")))
    }
}

pub fn reason_of(body: &Value) -> String {
    match &body["error"] {
        Value::String(error) => error.clone(),
        error => error["data"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Panics with every failed row of a table.
pub fn all_pass(results: Vec<Result<(), String>>) {
    let count = results.len();
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Asserts that a request reached the upstream (the proxy let it through).
pub async fn assert_forwarded(t: &TestSystem, name: &str, request: reqwest::RequestBuilder) {
    let before = t.upstream_requests();
    let response = request.send().await.unwrap();
    let (status, _, body) = read(response).await;
    assert!(
        t.upstream_requests() > before,
        "{name}: refused with {status}: {body}"
    );
}
