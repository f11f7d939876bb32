//! Every way a request can fail, and the one place each is turned into a response: status,
//! `WWW-Authenticate`, JSON body. Not where failures are detected (each step does that).

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;
use serde_json::json;

use crate::auth::AuthError;
use crate::mcp::InspectError;
use crate::reason::Reason;

/// JSON-RPC error codes. The spec's own for malformed input; the implementation-defined range
/// (-32000 to -32099) for authorization, so a client can tell a denial from a tool failure.
mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const UNAUTHORIZED: i64 = -32001;
    pub const FORBIDDEN: i64 = -32003;
    pub const UPSTREAM: i64 = -32010;
    pub const RATE_LIMITED: i64 = -32029;
    /// The proxy cannot decide now (its shared state is away); the same request may pass later.
    pub const UNAVAILABLE: i64 = -32030;
    /// MCP 2026-07-28's `HeaderMismatch`: the HTTP headers do not say what the body says.
    pub const HEADER_MISMATCH: i64 = -32020;
}

/// A JSON-RPC id as it goes back into an error body: the client's own value, or null.
pub type ErrorId = Option<serde_json::Value>;

/// The error body's id for a request's own: converted here, and only for an error, so a request
/// that passes never serialises its id.
pub fn error_id(id: Option<&crate::mcp::RequestId<'_>>) -> ErrorId {
    id.and_then(|id| serde_json::to_value(id).ok())
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    // ---- the client's request --------------------------------------------------------------
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed here; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("origin {0:?} is not allowed")]
    OriginNotAllowed(String),
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body could not be read")]
    BodyRead,
    #[error("{error}")]
    Malformed { error: InspectError },
    /// `id` is the request's own, which the error answer must repeat.
    #[error("{why}")]
    HeaderMismatch { why: &'static str, id: ErrorId },
    /// A header that may appear once appears again (RFC 9110 §5.3): the proxy and the upstream
    /// could each read another copy.
    #[error("the {0} header appears more than once (a spelling with `_` counts as a copy)")]
    RepeatedHeader(http::HeaderName),
    #[error("session not found")]
    SessionNotFound,
    /// A task handle another principal created, or one this proxy never saw created.
    #[error("task not found")]
    TaskNotFound { id: ErrorId },
    #[error("too many requests in flight; try again")]
    Overloaded,
    #[error("request body not received in time")]
    BodyTimeout,
    /// The shared state (`[state]`, Redis) did not answer and `on_error = "deny"`: what needs it
    /// is refused rather than decided on this replica's own state.
    #[error("shared state unavailable; try again")]
    StateUnavailable { id: ErrorId },

    // ---- the token -------------------------------------------------------------------------
    #[error("{0}")]
    Unauthenticated(AuthError),

    // ---- the policy ------------------------------------------------------------------------
    #[error("{}", .0.message)]
    Forbidden(Box<Denied>),

    #[error("rate limit of {rule:?} reached; retry in {}s", retry_after_secs(*.retry_after))]
    RateLimited {
        id: ErrorId,
        rule: String,
        /// The refused rule's index in its policy, for its `rate_limited` counter: in a batch,
        /// not necessarily the first message's rule.
        rule_index: usize,
        retry_after: std::time::Duration,
    },

    // ---- the upstream ----------------------------------------------------------------------
    /// A call to a tool whose definition no longer matches its pin (or has none in the pins
    /// file): the server changed what the tool says since it was reviewed.
    #[error("tools/call {tool:?} is refused: the tool's definition changed since it was pinned")]
    ToolChanged { id: ErrorId, tool: String },
    #[error("upstream unreachable")]
    UpstreamUnreachable { id: ErrorId },
    #[error("upstream did not answer in time")]
    UpstreamTimeout { id: ErrorId },
    /// A listing too large to filter: refused rather than passed on unfiltered.
    #[error("upstream listing too large to filter")]
    ListTooLarge { id: ErrorId },
    /// A listing that is not well-formed JSON, or holds a duplicated key: it cannot be filtered
    /// the way every client would read it, so it is not passed on.
    #[error("upstream listing could not be read to filter it")]
    ListUnreadable { id: ErrorId },
    /// An answer that may create a task, too large to read for its handle: refused rather than
    /// relayed with a handle the proxy could not bind.
    #[error("upstream answer too large to read for a task handle")]
    AnswerTooLarge { id: ErrorId },
}

/// What a policy denial tells the client: enough to step up (the scopes), nothing about rules.
#[derive(Debug)]
pub struct Denied {
    pub id: ErrorId,
    pub message: String,
    /// `insufficient_scope`, `no_rule`, `missing_target`, `condition_failed`, `denied_by_rule`
    /// or `condition_error`.
    pub reason: Reason,
    pub method: String,
    pub target: Option<String>,
    pub missing: Vec<String>,
    /// A `[[deny]]` rule's reason, which the policy writes for callers to read.
    pub detail: Option<String>,
    /// The condition that decided, for the audit line only: callers learn nothing about rules.
    pub condition: Option<String>,
    /// The scopes to ask for: those the call needs together with those the token already holds,
    /// so a client that steps up loses none (MCP 2025-11-25). Empty when no scope would help.
    pub challenge_scopes: Vec<String>,
}

impl From<AuthError> for ProxyError {
    /// A token refused, except where the shared state could not be asked (a DPoP proof's
    /// `jti`): that is a 503 like every other `on_error = "deny"` refusal, and no verdict on the
    /// token (it is not counted as an authentication failure).
    fn from(error: AuthError) -> ProxyError {
        match error.reason() {
            Reason::StateUnavailable => ProxyError::StateUnavailable { id: None },
            _ => ProxyError::Unauthenticated(error),
        }
    }
}

impl ProxyError {
    /// Why the request is refused, for the body, the metrics and the audit line.
    pub fn reason(&self) -> Reason {
        match self {
            ProxyError::NotFound => Reason::NotFound,
            ProxyError::MethodNotAllowed { .. } => Reason::MethodNotAllowed,
            ProxyError::OriginNotAllowed(_) => Reason::OriginNotAllowed,
            ProxyError::UnsupportedMediaType(_) => Reason::UnsupportedMediaType,
            ProxyError::BodyTooLarge { .. } => Reason::BodyTooLarge,
            ProxyError::BodyRead => Reason::BodyRead,
            ProxyError::Malformed { error } => error.reason(),
            ProxyError::HeaderMismatch { .. } => Reason::HeaderMismatch,
            ProxyError::RepeatedHeader(_) => Reason::RepeatedHeader,
            ProxyError::SessionNotFound => Reason::SessionNotFound,
            ProxyError::TaskNotFound { .. } => Reason::TaskNotFound,
            ProxyError::Overloaded => Reason::Overloaded,
            ProxyError::BodyTimeout => Reason::BodyTimeout,
            ProxyError::StateUnavailable { .. } => Reason::StateUnavailable,
            ProxyError::ListTooLarge { .. } => Reason::ListTooLarge,
            ProxyError::ListUnreadable { .. } => Reason::ListUnreadable,
            ProxyError::AnswerTooLarge { .. } => Reason::AnswerTooLarge,
            ProxyError::Unauthenticated(error) => error.reason(),
            ProxyError::Forbidden(denied) => denied.reason,
            ProxyError::RateLimited { .. } => Reason::RateLimited,
            ProxyError::ToolChanged { .. } => Reason::ToolChanged,
            ProxyError::UpstreamUnreachable { .. } => Reason::UpstreamUnreachable,
            ProxyError::UpstreamTimeout { .. } => Reason::UpstreamTimeout,
        }
    }

    /// Renders the response. `resource_metadata` is the RFC 9728 metadata URL that every
    /// `WWW-Authenticate` challenge points to.
    pub fn into_response(self, resource_metadata: &str) -> Response<Bytes> {
        let description = self.to_string();
        let reason = self.reason();
        match self {
            ProxyError::NotFound => plain(StatusCode::NOT_FOUND, reason.as_str(), &description),
            ProxyError::MethodNotAllowed { allow } => {
                let mut response = plain(
                    StatusCode::METHOD_NOT_ALLOWED,
                    reason.as_str(),
                    &description,
                );
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allow));
                response
            }
            ProxyError::OriginNotAllowed(_) => rpc(
                StatusCode::FORBIDDEN,
                None,
                code::FORBIDDEN,
                &description,
                json!({ "reason": reason }),
            ),
            ProxyError::UnsupportedMediaType(_) => plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                reason.as_str(),
                &description,
            ),
            ProxyError::BodyTooLarge { .. } => {
                plain(StatusCode::PAYLOAD_TOO_LARGE, reason.as_str(), &description)
            }
            ProxyError::BodyRead => plain(StatusCode::BAD_REQUEST, reason.as_str(), &description),
            ProxyError::Malformed { error } => {
                let code = if error.is_parse_error() {
                    code::PARSE_ERROR
                } else {
                    code::INVALID_REQUEST
                };
                rpc(
                    StatusCode::BAD_REQUEST,
                    None,
                    code,
                    &description,
                    json!({ "reason": reason }),
                )
            }
            ProxyError::HeaderMismatch { id, .. } => rpc(
                StatusCode::BAD_REQUEST,
                id.clone(),
                code::HEADER_MISMATCH,
                &description,
                json!({ "reason": reason }),
            ),
            ProxyError::RepeatedHeader(_) => rpc(
                StatusCode::BAD_REQUEST,
                None,
                code::INVALID_REQUEST,
                &description,
                json!({ "reason": reason }),
            ),
            ProxyError::SessionNotFound => rpc(
                StatusCode::NOT_FOUND,
                None,
                code::INVALID_REQUEST,
                &description,
                json!({ "reason": reason }),
            ),
            ProxyError::TaskNotFound { id } => rpc(
                StatusCode::NOT_FOUND,
                id,
                code::INVALID_PARAMS,
                &description,
                json!({ "reason": reason }),
            ),
            ProxyError::Overloaded => {
                let mut response = plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    reason.as_str(),
                    &description,
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            ProxyError::BodyTimeout => {
                plain(StatusCode::REQUEST_TIMEOUT, reason.as_str(), &description)
            }
            ProxyError::StateUnavailable { id } => {
                let mut response = rpc(
                    StatusCode::SERVICE_UNAVAILABLE,
                    id,
                    code::UNAVAILABLE,
                    &description,
                    json!({ "reason": "state_unavailable" }),
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            ProxyError::ListTooLarge { id } => rpc(
                StatusCode::BAD_GATEWAY,
                id,
                code::UPSTREAM,
                &description,
                json!({ "reason": reason }),
            ),
            ProxyError::ListUnreadable { id } => rpc(
                StatusCode::BAD_GATEWAY,
                id,
                code::UPSTREAM,
                &description,
                json!({ "reason": reason }),
            ),
            ProxyError::AnswerTooLarge { id } => rpc(
                StatusCode::BAD_GATEWAY,
                id,
                code::UPSTREAM,
                &description,
                json!({ "reason": reason }),
            ),
            ProxyError::Unauthenticated(error) => unauthenticated(&error, resource_metadata),
            ProxyError::Forbidden(denied) => forbidden(*denied, resource_metadata),
            ProxyError::RateLimited {
                id,
                rule,
                retry_after,
                ..
            } => {
                let seconds = retry_after_secs(retry_after);
                let mut response = rpc(
                    StatusCode::TOO_MANY_REQUESTS,
                    id,
                    code::RATE_LIMITED,
                    &description,
                    json!({ "reason": reason, "rule": rule, "retry_after": seconds }),
                );
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
            // A plain 403: no scope lifts it, only a renewed pin.
            ProxyError::ToolChanged { id, tool } => rpc(
                StatusCode::FORBIDDEN,
                id,
                code::FORBIDDEN,
                &description,
                json!({ "reason": "tool_changed", "method": "tools/call", "tool": tool }),
            ),
            ProxyError::UpstreamUnreachable { id } => rpc(
                StatusCode::BAD_GATEWAY,
                id,
                code::UPSTREAM,
                &description,
                json!({ "reason": reason }),
            ),
            ProxyError::UpstreamTimeout { id } => rpc(
                StatusCode::GATEWAY_TIMEOUT,
                id,
                code::UPSTREAM,
                &description,
                json!({ "reason": reason }),
            ),
        }
    }
}

/// An error and its sources on one line, for logs: hyper's own message alone ("client error
/// (Connect)") does not say what failed.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whole seconds to wait, rounded up and at least one: `Retry-After: 0` would invite a retry
/// that fails the same way.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The `WWW-Authenticate: DPoP` offer sent beside a Bearer challenge where an issuer accepts
/// DPoP (RFC 9449 §7.1): the scheme and the proof algorithms, no error.
pub fn dpop_offer(resource_metadata: &str) -> HeaderValue {
    HeaderValue::try_from(format!(
        "DPoP resource_metadata=\"{resource_metadata}\", algs=\"{}\"",
        crate::auth::DPOP_ALGS
    ))
    .unwrap_or(HeaderValue::from_static("DPoP"))
}

fn unauthenticated(error: &AuthError, resource_metadata: &str) -> Response<Bytes> {
    let description = header_safe(&error.to_string());
    // By reason, so a token sent with the DPoP scheme (wrapped) is answered the same way.
    if matches!(
        error.reason(),
        Reason::KeysUnavailable | Reason::IntrospectionUnavailable
    ) {
        // The token may be fine: the IdP's keys or its introspection answer are not to be had. A 401 would send the client
        // to fetch a new token that fails the same way, so say "try later" instead.
        let mut response = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &description,
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    }
    let challenge = if error.dpop_challenge() {
        // RFC 9449 §7.1: the scheme the token came with (or should have), the proof
        // algorithms accepted, and `invalid_dpop_proof` when the proof is what failed.
        format!(
            "DPoP resource_metadata=\"{resource_metadata}\", algs=\"{}\", error=\"{}\", error_description=\"{description}\"",
            crate::auth::DPOP_ALGS,
            error.challenge_error()
        )
    } else if error.token_presented() {
        format!(
            "Bearer resource_metadata=\"{resource_metadata}\", error=\"invalid_token\", error_description=\"{description}\""
        )
    } else {
        format!("Bearer resource_metadata=\"{resource_metadata}\"")
    };
    let error_code = if error.token_presented() {
        "invalid_token"
    } else {
        "unauthorized"
    };
    let mut response = rpc(
        StatusCode::UNAUTHORIZED,
        None,
        code::UNAUTHORIZED,
        &description,
        json!({ "reason": error.reason(), "error": error_code }),
    );
    insert_challenge(&mut response, challenge);
    // RFC 9449 §8: the nonce to retry with.
    if let Some(nonce) = error
        .dpop_nonce()
        .and_then(|n| HeaderValue::try_from(n).ok())
    {
        response.headers_mut().insert("dpop-nonce", nonce);
    }
    response
}

fn forbidden(denied: Denied, resource_metadata: &str) -> Response<Bytes> {
    let data = json!({
        "reason": denied.reason,
        "method": denied.method,
        "tool": denied.target,
        "missing_scopes": denied.missing,
    });
    let mut data = data;
    if let Some(detail) = &denied.detail {
        data["detail"] = json!(detail);
    }
    let mut response = rpc(
        StatusCode::FORBIDDEN,
        denied.id,
        code::FORBIDDEN,
        &denied.message,
        data,
    );
    // Only a denial that more scopes would lift is an `insufficient_scope` challenge; a call no
    // rule allows gets a plain 403, so clients do not loop on step-up.
    if !denied.challenge_scopes.is_empty() {
        let challenge = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{resource_metadata}\", error_description=\"{}\"",
            denied.challenge_scopes.join(" "),
            header_safe(&denied.message),
        );
        insert_challenge(&mut response, challenge);
    }
    response
}

fn insert_challenge(response: &mut Response<Bytes>, challenge: String) {
    // Every part is header-safe by construction (config URLs, sanitised text); should that ever
    // not hold, the challenge is dropped rather than the process panicking.
    if let Ok(value) = HeaderValue::try_from(challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
}

/// Text that may stand inside a quoted header parameter: printable ASCII without `"` and `\`.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '?',
        })
        .collect()
}

#[derive(Serialize)]
struct RpcErrorBody<'a> {
    jsonrpc: &'static str,
    id: ErrorId,
    error: RpcError<'a>,
}

#[derive(Serialize)]
struct RpcError<'a> {
    code: i64,
    message: &'a str,
    data: serde_json::Value,
}

fn rpc(
    status: StatusCode,
    id: ErrorId,
    code: i64,
    message: &str,
    data: serde_json::Value,
) -> Response<Bytes> {
    let body = RpcErrorBody {
        jsonrpc: "2.0",
        id,
        error: RpcError {
            code,
            message,
            data,
        },
    };
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// An OAuth-style error body, for failures outside JSON-RPC (wrong path, media type, size).
fn plain(status: StatusCode, error: &str, description: &str) -> Response<Bytes> {
    let body = json!({ "error": error, "error_description": description });
    json_response(status, serde_json::to_vec(&body).unwrap_or_default())
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
