//! The sample MCP server: a small customer-service backend (four tools over a fixed in-memory
//! table) served with rmcp's streamable HTTP transport at `/mcp`. It stands in for the MCP server
//! that scopegate protects, in the demo and as the integration tests' upstream, and so records what
//! reached it (request count, last request's headers). It knows nothing about tokens or scopes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, RequestMetaObject,
    ServerCapabilities, ServerConfig,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{Peer, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::serve::{self, BoxBody, full};

/// The path the MCP endpoint is served at.
pub const MCP_PATH: &str = "/mcp";

/// `slow_count` refuses more than this many steps, so a typo cannot tie a test up for hours.
const SLOW_COUNT_MAX_STEPS: u32 = 1_000;

/// `slow_count` refuses a longer pause between steps, for the same reason.
const SLOW_COUNT_MAX_DELAY_MS: u64 = 10_000;

/// How the sample server runs.
#[derive(Debug, Clone)]
pub struct SampleServerOptions {
    /// Where to listen; default `127.0.0.1:0`, a free port on loopback.
    pub bind: SocketAddr,
    /// Answer in plain `application/json` instead of SSE, which rmcp offers only without sessions;
    /// default `false`: stateful sessions and SSE responses, rmcp's default and the common case.
    pub json_response: bool,
    /// Also offer the `slow_count` tool, whose response streams progress while it works; default
    /// `false`, so the demo shows the four customer-service tools only.
    pub slow_tools: bool,
}

impl Default for SampleServerOptions {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            json_response: false,
            slow_tools: false,
        }
    }
}

/// Starts sample servers.
pub struct SampleServer;

impl SampleServer {
    /// Binds `opts.bind` and serves until the last handle is dropped or
    /// [`SampleServerHandle::shutdown`] is called.
    pub async fn start(opts: SampleServerOptions) -> anyhow::Result<SampleServerHandle> {
        let listener = TcpListener::bind(opts.bind)
            .await
            .with_context(|| format!("binding the sample MCP server to {}", opts.bind))?;
        let addr = listener.local_addr()?;

        // rmcp's defaults accept `Host: 127.0.0.1:<any port>` and `localhost`, which is what the
        // proxy sends after rewriting `Host` to the upstream authority.
        let config = if opts.json_response {
            StreamableHttpServerConfig::default()
                .with_legacy_session_mode(false)
                .with_json_response(true)
        } else {
            StreamableHttpServerConfig::default()
        };
        let tickets = Arc::new(AtomicU64::new(0));
        let slow_tools = opts.slow_tools;
        let descriptions = Arc::new(Mutex::new(HashMap::new()));
        let mcp = StreamableHttpService::new(
            {
                let descriptions = descriptions.clone();
                move || {
                    Ok(CustomerService::new(tickets.clone(), slow_tools)
                        .described(&lock(&descriptions)))
                }
            },
            Arc::new(LocalSessionManager::default()),
            config,
        );

        let seen = Arc::new(Seen::default());
        let service = {
            let mcp = mcp.clone();
            let seen = seen.clone();
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let mcp = mcp.clone();
                let seen = seen.clone();
                async move {
                    // Read whole, so tests can compare the bytes with what the client sent.
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    seen.record(&parts.headers, &body);
                    if parts.uri.path() != MCP_PATH {
                        return Ok::<_, Infallible>(not_found());
                    }
                    Ok(mcp
                        .handle(Request::from_parts(parts, Full::new(body)))
                        .await)
                }
            })
        };
        let (stop, stopped) = oneshot::channel();
        // Cancelling rmcp's token ends its sessions along with the connections.
        serve::spawn(listener, service, stopped, move || {
            mcp.config.cancellation_token.cancel();
        });
        tracing::debug!(%addr, "sample MCP server listening");

        Ok(SampleServerHandle {
            inner: Arc::new(HandleInner {
                addr,
                seen,
                descriptions,
                stop: Mutex::new(Some(stop)),
            }),
        })
    }
}

/// A running sample server. Clones share it; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct SampleServerHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    addr: SocketAddr,
    seen: Arc<Seen>,
    /// Tool descriptions that replace the built-in ones in sessions opened from now on.
    descriptions: Arc<Mutex<HashMap<String, String>>>,
    /// Dropping the sender (with this struct) stops the accept loop too.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

/// What reached the server, for tests that assert on what the proxy forwarded.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    last_headers: Mutex<HeaderMap>,
    last_body: Mutex<Bytes>,
}

impl Seen {
    fn record(&self, headers: &HeaderMap, body: &Bytes) {
        *lock(&self.last_headers) = headers.clone();
        *lock(&self.last_body) = body.clone();
        self.requests.fetch_add(1, Ordering::SeqCst);
    }
}

impl SampleServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.inner.addr)
    }

    /// How many HTTP requests arrived, on any path.
    pub fn requests(&self) -> usize {
        self.inner.seen.requests.load(Ordering::SeqCst)
    }

    /// The headers of the last request that arrived; empty before the first.
    pub fn last_request_headers(&self) -> HeaderMap {
        lock(&self.inner.seen.last_headers).clone()
    }

    /// The body of the last request that arrived, as received.
    pub fn last_request_body(&self) -> Bytes {
        lock(&self.inner.seen.last_body).clone()
    }

    /// Gives `tool` a new description in every session opened from now on: a server updated
    /// while running, as the tool-integrity tests need it.
    pub fn set_description(&self, tool: &str, description: &str) {
        lock(&self.inner.descriptions).insert(tool.to_string(), description.to_string());
    }

    /// Stops serving; open connections and sessions are closed.
    pub fn shutdown(&self) {
        if let Some(stop) = lock(&self.inner.stop).take() {
            let _ = stop.send(());
        }
    }
}

impl std::fmt::Debug for SampleServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleServerHandle")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

fn not_found() -> Response<BoxBody> {
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(r#"{"error":"not_found"}"#))
        .expect("static response parts are valid")
}

/// A poisoned lock only means a test panicked while holding it; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct Customer {
    id: &'static str,
    name: &'static str,
    email: &'static str,
    tier: &'static str,
    /// Purchase amounts in cents, so the account value adds up exactly.
    purchases_cents: &'static [u64],
}

/// Ordered most recent first, as `get_recent_customers` lists them. The last two belong to
/// tenants, their ids prefixed with the tenant (`policies/tenant-isolation.toml`'s convention).
const CUSTOMERS: [Customer; 5] = [
    Customer {
        id: "C001",
        name: "Alice Martin",
        email: "alice.martin@example.com",
        tier: "gold",
        purchases_cents: &[12_050, 8_999, 31_000],
    },
    Customer {
        id: "C002",
        name: "Bob Chen",
        email: "bob.chen@example.com",
        tier: "silver",
        purchases_cents: &[4_500, 6_025],
    },
    Customer {
        id: "C003",
        name: "Carla Diaz",
        email: "carla.diaz@example.com",
        tier: "bronze",
        purchases_cents: &[1_999],
    },
    Customer {
        id: "acme-7",
        name: "Dana Okafor",
        email: "dana.okafor@acme.example",
        tier: "gold",
        purchases_cents: &[52_000],
    },
    Customer {
        id: "globex-1",
        name: "Emil Novak",
        email: "emil.novak@globex.example",
        tier: "silver",
        purchases_cents: &[7_500, 2_250],
    },
];

fn customer(id: &str) -> Option<&'static Customer> {
    CUSTOMERS.iter().find(|c| c.id == id)
}

fn customer_json(c: &Customer) -> serde_json::Value {
    json!({ "id": c.id, "name": c.name, "email": c.email, "tier": c.tier })
}

fn json_result(value: &serde_json::Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value.to_string())])
}

fn unknown_customer(id: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("unknown customer: {id}"))])
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CustomerIdRequest {
    #[schemars(description = "the customer's id, e.g. C001")]
    pub customer_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RecentCustomersRequest {
    #[schemars(description = "how many customers to list at most; default all")]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CreateTicketRequest {
    #[schemars(description = "the customer's id, e.g. C001")]
    pub customer_id: String,
    pub subject: String,
    pub description: String,
    #[schemars(description = "low, normal (default), high or urgent")]
    pub priority: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SlowCountRequest {
    #[schemars(description = "how many steps to count")]
    pub count: u32,
    #[schemars(description = "pause before each step, in milliseconds")]
    pub delay_ms: u64,
}

/// The MCP server behind one session.
#[derive(Clone)]
pub struct CustomerService {
    tool_router: ToolRouter<Self>,
    /// Shared by every session, so ticket ids stay unique across them.
    tickets: Arc<AtomicU64>,
}

impl CustomerService {
    fn new(tickets: Arc<AtomicU64>, slow_tools: bool) -> Self {
        let mut tool_router = Self::customer_tools();
        if slow_tools {
            tool_router += Self::streaming_tools();
        }
        Self {
            tool_router,
            tickets,
        }
    }

    /// With the descriptions in `descriptions` instead of the built-in ones.
    fn described(mut self, descriptions: &HashMap<String, String>) -> Self {
        for (tool, description) in descriptions {
            if let Some(route) = self.tool_router.map.get_mut(tool.as_str()) {
                route.attr.description = Some(description.clone().into());
            }
        }
        self
    }
}

#[tool_router(router = customer_tools)]
impl CustomerService {
    #[tool(description = "Look up a customer's name, email and tier by id")]
    fn get_customer_info(
        &self,
        Parameters(CustomerIdRequest { customer_id }): Parameters<CustomerIdRequest>,
    ) -> CallToolResult {
        match customer(&customer_id) {
            Some(c) => json_result(&customer_json(c)),
            None => unknown_customer(&customer_id),
        }
    }

    #[tool(description = "List the customers with the most recent activity")]
    fn get_recent_customers(
        &self,
        Parameters(RecentCustomersRequest { limit }): Parameters<RecentCustomersRequest>,
    ) -> CallToolResult {
        let limit = limit.map_or(CUSTOMERS.len(), |l| l as usize);
        let customers: Vec<_> = CUSTOMERS.iter().take(limit).map(customer_json).collect();
        json_result(&json!({ "customers": customers }))
    }

    #[tool(description = "Open a support ticket for a customer")]
    fn create_support_ticket(
        &self,
        Parameters(request): Parameters<CreateTicketRequest>,
    ) -> CallToolResult {
        if customer(&request.customer_id).is_none() {
            return unknown_customer(&request.customer_id);
        }
        let number = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        json_result(&json!({
            "ticket_id": format!("T{number:04}"),
            "customer_id": request.customer_id,
            "subject": request.subject,
            "description": request.description,
            "priority": request.priority.unwrap_or_else(|| "normal".to_owned()),
            "status": "open",
        }))
    }

    #[tool(description = "Sum a customer's purchases")]
    fn calculate_account_value(
        &self,
        Parameters(CustomerIdRequest { customer_id }): Parameters<CustomerIdRequest>,
    ) -> CallToolResult {
        let Some(c) = customer(&customer_id) else {
            return unknown_customer(&customer_id);
        };
        let cents: u64 = c.purchases_cents.iter().sum();
        json_result(&json!({
            "customer_id": c.id,
            "purchases": c.purchases_cents.len(),
            "total": format!("{}.{:02}", cents / 100, cents % 100),
            "currency": "USD",
        }))
    }
}

#[tool_router(router = streaming_tools)]
impl CustomerService {
    /// Streams while it works: a progress notification per step, which rmcp sends on the call's
    /// own SSE response. Only a call that carries a `progressToken` gets them (MCP sends progress
    /// for a token only); without one the tool just takes its time. Log messages are no
    /// alternative: MCP deprecated them, and rmcp routes them to the session's GET stream.
    #[tool(
        description = "Count to `count`, pausing `delay_ms` before each step, reporting progress"
    )]
    async fn slow_count(
        &self,
        Parameters(SlowCountRequest { count, delay_ms }): Parameters<SlowCountRequest>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> CallToolResult {
        if count > SLOW_COUNT_MAX_STEPS || delay_ms > SLOW_COUNT_MAX_DELAY_MS {
            return CallToolResult::error(vec![ContentBlock::text(format!(
                "count is limited to {SLOW_COUNT_MAX_STEPS} and delay_ms to {SLOW_COUNT_MAX_DELAY_MS}"
            ))]);
        }
        let token = meta.get_progress_token();
        for step in 1..=count {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let Some(token) = &token else { continue };
            let sent = peer
                .notify_progress(
                    ProgressNotificationParam::new(token.clone(), f64::from(step))
                        .with_total(f64::from(count))
                        .with_message(format!("step {step} of {count}")),
                )
                .await;
            if sent.is_err() {
                // The client went away; nobody is waiting for the rest.
                break;
            }
        }
        json_result(&json!({ "counted": count }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CustomerService {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .build(),
        )
        .with_server_info(Implementation::new(
            "scopegate-sample-customer-service",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(
            "A sample customer-service backend: look up customers, open tickets, sum purchases.",
        )
    }
}

#[cfg(test)]
#[path = "sample_server_tests.rs"]
mod tests;
