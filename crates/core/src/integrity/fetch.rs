//! Asks the upstream for its whole tool listing, as `tools pin` and `tools diff` need it: every
//! page (following `nextCursor`), in whichever protocol revision the server speaks. A
//! 2026-07-28 server answers a stateless `tools/list`; an older one is asked after the
//! `initialize` handshake, in the session it opens. Answers in JSON or as an event stream are
//! both read. Goes to the upstream directly (the config's `[upstream]`), not through the proxy:
//! the pins are of what the server says, before any filtering.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::client::HttpClient;
use crate::config::Config;
use crate::env::Env;
use crate::sse::Decoder;

/// The stateless revision, tried first.
const STATELESS: &str = "2026-07-28";
/// The revision offered in an `initialize` handshake.
const HANDSHAKE: &str = "2025-11-25";
/// Pages followed at most: a server whose cursors never end cannot keep the command running.
const MAX_PAGES: usize = 1_000;

/// A whole listing and the revision it was asked in.
#[derive(Debug)]
pub struct Listing {
    pub revision: &'static str,
    pub tools: Vec<Value>,
}

/// Where and how an MCP server is asked.
pub struct Upstream {
    pub client: HttpClient,
    pub url: Uri,
    /// A bearer token to send (an MCP server behind scopegate, or one that wants a token).
    pub token: Option<String>,
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// The bearer token in the environment variable `var` (`--token-env`): a token is passed by
/// variable because one on the command line would show in the process list. The message names
/// the variable, never its value.
pub fn token_from_env(env: &dyn Env, var: &str) -> Result<String, String> {
    match env.var(var) {
        Some(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
        _ => Err(format!("the environment variable {var} holds no token")),
    }
}

/// The config's upstream's tools, every page; `token` is sent as a bearer token (an upstream
/// that wants one, or scopegate in front of it).
pub async fn list_tools(config: &Config, token: Option<String>) -> anyhow::Result<Listing> {
    let upstream = Upstream {
        client: crate::client::build(
            config.upstream.ca_file.as_deref(),
            config.upstream.connect_timeout,
        )
        .context("upstream.ca_file")?,
        url: config.upstream.url.clone(),
        token,
        timeout: config.upstream.response_timeout,
        max_bytes: config.mcp.max_list_bytes,
    };
    upstream.list_tools().await
}

impl Upstream {
    /// This server's tools, every page, in whichever revision it speaks.
    pub async fn list_tools(&self) -> anyhow::Result<Listing> {
        let upstream = self;
        // A server that does not speak 2026-07-28 refuses the stateless request (an error answer or
        // a 4xx asking for a session); it is then asked the older way.
        if let Some(tools) = upstream.pages(&[], Some(STATELESS)).await? {
            return Ok(Listing {
                revision: STATELESS,
                tools,
            });
        }
        let session = upstream.handshake().await?;
        let mut headers = vec![("mcp-protocol-version", session.revision.clone())];
        if let Some(id) = &session.id {
            headers.push(("mcp-session-id", id.clone()));
        }
        let tools = upstream.pages(&headers, None).await;
        if let Some(id) = &session.id {
            // Ending the session is a courtesy; the listing is what matters.
            let _ = upstream.send(Method::DELETE, &headers, Bytes::new()).await;
            tracing::debug!(session = %id, "upstream session ended");
        }
        let tools = tools?.ok_or_else(|| anyhow!("the upstream did not answer tools/list"))?;
        Ok(Listing {
            revision: HANDSHAKE,
            tools,
        })
    }
}

/// An `initialize`d session: its id (a stateless 2025 server issues none) and revision.
struct Session {
    id: Option<String>,
    revision: String,
}

impl Upstream {
    async fn handshake(&self) -> anyhow::Result<Session> {
        let initialize = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": HANDSHAKE,
                "capabilities": {},
                "clientInfo": { "name": "scopegate", "version": env!("CARGO_PKG_VERSION") }
            }
        });
        let response = self
            .send(Method::POST, &[], Bytes::from(initialize.to_string()))
            .await?;
        let id = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let answer = self.answer(response, 0).await?;
        let result = answer
            .get("result")
            .ok_or_else(|| anyhow!("the upstream refused initialize: {}", answer["error"]))?;
        let revision = result["protocolVersion"]
            .as_str()
            .unwrap_or(HANDSHAKE)
            .to_string();
        let mut headers = vec![("mcp-protocol-version", revision.clone())];
        if let Some(id) = &id {
            headers.push(("mcp-session-id", id.clone()));
        }
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        let response = self
            .send(Method::POST, &headers, Bytes::from(initialized.to_string()))
            .await?;
        if !response.status().is_success() {
            bail!(
                "the upstream refused notifications/initialized: {}",
                response.status()
            );
        }
        Ok(Session { id, revision })
    }

    /// Every page of `tools/list`; `None` when the first request is refused (in the stateless
    /// form, a server that wants a session).
    async fn pages(
        &self,
        headers: &[(&'static str, String)],
        stateless: Option<&str>,
    ) -> anyhow::Result<Option<Vec<Value>>> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 1..=MAX_PAGES {
            let id = page as i64;
            let mut params = json!({});
            if let Some(cursor) = &cursor {
                params["cursor"] = json!(cursor);
            }
            let mut headers = headers.to_vec();
            if let Some(revision) = stateless {
                params["_meta"] = json!({
                    "io.modelcontextprotocol/protocolVersion": revision,
                    "io.modelcontextprotocol/clientInfo": { "name": "scopegate", "version": env!("CARGO_PKG_VERSION") },
                    "io.modelcontextprotocol/clientCapabilities": {}
                });
                headers.push(("mcp-protocol-version", revision.to_string()));
                headers.push(("mcp-method", "tools/list".to_string()));
            }
            let body =
                json!({ "jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params });
            let response = self
                .send(Method::POST, &headers, Bytes::from(body.to_string()))
                .await?;
            if page == 1 && stateless.is_some() && response.status().is_client_error() {
                return Ok(None);
            }
            let answer = self.answer(response, id).await?;
            let Some(result) = answer.get("result") else {
                if page == 1 && stateless.is_some() {
                    return Ok(None);
                }
                bail!("the upstream refused tools/list: {}", answer["error"]);
            };
            let listed = result["tools"]
                .as_array()
                .ok_or_else(|| anyhow!("the upstream's tools/list result has no tools array"))?;
            tools.extend(listed.iter().cloned());
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) if cursor.as_deref() == Some(next) => {
                    bail!("the upstream gave the same cursor twice")
                }
                Some(next) => cursor = Some(next.to_string()),
                None => return Ok(Some(tools)),
            }
        }
        bail!("the upstream's listing goes on past {MAX_PAGES} pages")
    }

    async fn send(
        &self,
        method: Method,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(token) = &self.token {
            request = request.header(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}"))?,
            );
        }
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_str(value)?);
        }
        let request = request.body(Full::new(body))?;
        tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| anyhow!("the upstream at {} did not answer in time", self.url))?
            .with_context(|| format!("cannot reach the upstream at {}", self.url))
    }

    /// The JSON-RPC answer with `id` in a response, JSON or an event stream.
    async fn answer(&self, response: Response<Incoming>, id: i64) -> anyhow::Result<Value> {
        let status = response.status();
        let event_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let body = tokio::time::timeout(
            self.timeout,
            Limited::new(response.into_body(), self.max_bytes).collect(),
        )
        .await
        .map_err(|_| anyhow!("the upstream's answer did not arrive in time"))?
        .map_err(|error| anyhow!("cannot read the upstream's answer: {error}"))?
        .to_bytes();
        let messages = if event_stream {
            let mut decoder = Decoder::new(self.max_bytes);
            decoder.push(&body);
            let mut messages = Vec::new();
            while let Some(event) = decoder
                .next_event()
                .map_err(|_| anyhow!("an event of the upstream's answer is too large"))?
            {
                if let Some(data) = event.data.as_deref()
                    && let Ok(message) = serde_json::from_str::<Value>(data)
                {
                    messages.push(message);
                }
            }
            messages
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Array(batch)) => batch,
                Ok(message) => vec![message],
                Err(_) => bail!(
                    "the upstream answered {status} with no JSON-RPC message: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            }
        };
        messages
            .into_iter()
            .find(|message| message["id"] == json!(id))
            .ok_or_else(|| {
                anyhow!("the upstream answered {status} without an answer to request {id}")
            })
    }
}
