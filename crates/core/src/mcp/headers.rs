//! The MCP transport's header names (Streamable HTTP, both protocol eras) and reading the session
//! header: one place for the names every part of the proxy checks, forwards or binds.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub static MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
pub static MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub static MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The request's or answer's `Mcp-Session-Id`, as sent.
pub fn session_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(&MCP_SESSION_ID)
}
