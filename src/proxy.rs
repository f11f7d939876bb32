//! The request path: route, authenticate, inspect, authorize, forward, in that order, in one
//! function that reads top to bottom. Each step's work lives in its own module; this one owns
//! their order and the per-request context that the audit line is written from.

use crate::error::error_chain;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, Version};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};

use crate::audit::Ctx;
use crate::auth::{Authenticator, Principal};
use crate::client::HttpClient;
use crate::config::Config;
use crate::error::{Denied, ErrorId, ProxyError};
use crate::listfilter::{ListFilter, SseListBody};
use crate::mcp::{self, InspectLimits, Inspection, MessageKind, RequestId};
use crate::metadata;
use crate::metrics::Metrics;
use crate::policy::{Action, Decision, Denial, DenyReason, Mode, Policy, RateLimit, RuleRef};
use crate::ratelimit::RateLimiter;
use crate::session::{Binding, Sessions};
use crate::upstream::{self, EndOnError, Peer, Target};
use tokio::sync::Semaphore;

/// What the proxy answers with: the upstream's body streamed as it comes, its own, or an SSE
/// stream with its listings filtered.
pub type ProxyBody = Either<Upstream, Either<Full<Bytes>, SseListBody<Upstream>>>;

/// The upstream's response body as the client gets it.
pub type Upstream = EndOnError<Incoming>;

/// The longest a refused request's body is waited for before the answer goes out regardless.
const DRAIN_WINDOW: Duration = Duration::from_secs(1);
/// Refused bodies read at once, at most.
const MAX_DRAINS: usize = 64;

static MCP_METHOD: header::HeaderName = header::HeaderName::from_static("mcp-method");
static MCP_NAME: header::HeaderName = header::HeaderName::from_static("mcp-name");
static MCP_SESSION_ID: header::HeaderName = header::HeaderName::from_static("mcp-session-id");

/// The loaded policy with what is derived from it, swapped as one on reload.
pub struct PolicyState {
    pub policy: Policy,
    /// The RFC 9728 document, whose `scopes_supported` come from the policy.
    pub metadata_document: Bytes,
}

/// Everything a request needs, built once at start-up and shared by all connections.
pub struct Proxy {
    mcp_path: String,
    resource: String,
    authorization_servers: Vec<String>,
    metadata_url: String,
    metadata_paths: Vec<String>,
    allowed_origins: Vec<String>,
    max_body_bytes: usize,
    inspect_limits: InspectLimits,
    response_timeout: Duration,
    auth: Authenticator,
    policy: ArcSwap<PolicyState>,
    limiter: RateLimiter,
    sessions: Option<Sessions>,
    filter_lists: bool,
    max_list_bytes: usize,
    in_flight: Semaphore,
    body_read_timeout: Duration,
    /// How long a request the proxy answers itself may take to finish sending its body.
    drain_window: Duration,
    /// Bounds the refused bodies being read at once; apart from the in-flight limit, so that
    /// refused requests never take slots from accepted ones.
    draining: Semaphore,
    /// The upstream connection pools: one per per-core worker, else one.
    clients: Vec<HttpClient>,
    target: Target,
    metrics: Arc<Metrics>,
}

impl Proxy {
    /// `clients` reach the upstream, one per worker (at least one); `auth_client` the IdP (each
    /// may trust its own extra CA).
    pub fn new(
        config: &Config,
        policy: Policy,
        clients: Vec<HttpClient>,
        auth_client: HttpClient,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Proxy> {
        metrics.policy_loaded(&policy);
        let auth = Authenticator::with_token_cache(
            config.auth.clone(),
            auth_client,
            config.token_cache_entries,
        );
        let state = policy_state(&config.mcp.resource, &config.authorization_servers, policy);
        Ok(Proxy {
            mcp_path: config.mcp.path.clone(),
            resource: config.mcp.resource.clone(),
            authorization_servers: config.authorization_servers.clone(),
            metadata_url: metadata::url_for(&config.mcp.resource),
            metadata_paths: metadata::paths(&config.mcp.resource, &config.mcp.path),
            allowed_origins: config.listen.allowed_origins.clone(),
            max_body_bytes: config.mcp.max_body_bytes,
            inspect_limits: InspectLimits::default(),
            response_timeout: config.upstream.response_timeout,
            auth,
            policy: ArcSwap::from_pointee(state),
            limiter: RateLimiter::new(),
            sessions: config
                .mcp
                .bind_sessions
                .then(|| Sessions::new(config.mcp.max_sessions, config.mcp.session_idle)),
            filter_lists: config.mcp.filter_lists,
            max_list_bytes: config.mcp.max_list_bytes,
            in_flight: Semaphore::new(config.limits.max_requests),
            body_read_timeout: config.limits.body_read_timeout,
            drain_window: config.limits.body_read_timeout.min(DRAIN_WINDOW),
            draining: Semaphore::new(MAX_DRAINS),
            clients,
            target: Target::new(&config.upstream)?,
            metrics,
        })
    }

    /// Swaps in a new policy; requests in flight finish under the one they started with.
    pub fn replace_policy(&self, policy: Policy) {
        self.metrics.policy_loaded(&policy);
        let state = policy_state(&self.resource, &self.authorization_servers, policy);
        self.policy.store(Arc::new(state));
    }

    /// This worker's upstream pool.
    fn client(&self) -> &HttpClient {
        &self.clients[crate::workers::index() % self.clients.len()]
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The policy now in force.
    pub fn policy(&self) -> arc_swap::Guard<Arc<PolicyState>> {
        self.policy.load()
    }

    /// The response to a request on a connection past the connection limit.
    pub fn overloaded(&self) -> Response<ProxyBody> {
        ProxyError::Overloaded
            .into_response(&self.metadata_url)
            .map(full)
    }

    /// Serves one request. Never fails: every error becomes its response here.
    pub async fn handle(&self, request: Request<Incoming>, peer: Peer) -> Response<ProxyBody> {
        let (parts, mut body) = request.into_parts();
        let drain = self.wants_drain(&parts.version, &parts.headers);
        let path = parts.uri.path();
        let response = if path == self.mcp_path {
            let mut ctx = Ctx::start(&parts.headers, &parts.method);
            let result = self.mcp(parts, &mut body, peer, &mut ctx).await;
            let response = self.respond(result, &mut ctx);
            ctx.finish(response.status(), &self.metrics);
            response
        } else if self.metadata_paths.iter().any(|p| p == path) {
            let result = self.metadata(&parts.method);
            self.respond(result, &mut Ctx::untracked())
        } else {
            self.respond(Err(ProxyError::NotFound), &mut Ctx::untracked())
        };
        if drain && matches!(response.body(), Either::Right(Either::Left(_))) {
            // Past the bound, the stream is reset after the answer instead.
            if let Ok(_draining) = self.draining.try_acquire() {
                discard_rest(&mut body, self.max_body_bytes, self.drain_window).await;
            }
        }
        response
    }

    /// Whether the rest of a request body is read before the proxy's own answer goes out: over
    /// HTTP/2 only (an HTTP/1.1 connection is simply not reused), never when the client waits
    /// for `100 Continue` (reading would ask it to upload), nor for a declared length past the
    /// limit (the drain could not finish).
    fn wants_drain(&self, version: &Version, headers: &HeaderMap) -> bool {
        *version == Version::HTTP_2
            && !headers.contains_key(header::EXPECT)
            && declared_length(headers).is_none_or(|len| len <= self.max_body_bytes as u64)
    }

    fn respond(
        &self,
        result: Result<Response<ProxyBody>, ProxyError>,
        ctx: &mut Ctx,
    ) -> Response<ProxyBody> {
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                ctx.failed(&error);
                error.into_response(&self.metadata_url).map(full)
            }
        };
        if let Some(id) = ctx.request_id() {
            response
                .headers_mut()
                .insert(crate::audit::X_REQUEST_ID.clone(), id.clone());
        }
        response
    }

    fn metadata(&self, method: &Method) -> Result<Response<ProxyBody>, ProxyError> {
        if method != Method::GET {
            return Err(ProxyError::MethodNotAllowed);
        }
        let document = self.policy.load().metadata_document.clone();
        let mut response = Response::new(full(document));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }

    /// The MCP endpoint: POST carries JSON-RPC, GET opens the server's event stream, DELETE ends a
    /// session.
    ///
    /// The body stays with the caller, which reads the rest of a refused one (`discard_rest`).
    async fn mcp(
        &self,
        parts: Parts,
        body: &mut Incoming,
        peer: Peer,
        ctx: &mut Ctx,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // Held until the response head: a request past the limit is refused at once, never
        // queued (a queue would only turn overload into timeouts).
        let _in_flight = self
            .in_flight
            .try_acquire()
            .map_err(|_| ProxyError::Overloaded)?;
        if !matches!(parts.method, Method::POST | Method::GET | Method::DELETE) {
            return Err(ProxyError::MethodNotAllowed);
        }
        // Before the token: a browser page on a foreign origin learns nothing, not even whether
        // a token would have worked (DNS-rebinding defence).
        self.check_origin(&parts.headers)?;

        // Authenticate before reading the body, so a caller without a valid token costs no
        // buffering and no parsing.
        let principal = self
            .auth
            .authenticate(&parts.headers)
            .await
            .map_err(ProxyError::Unauthenticated)?;
        ctx.authenticated(&principal);

        // A session is its creator's: another principal's request for it is told it does not
        // exist, before its body costs anything.
        let session_header = session_id(&parts.headers).cloned();
        let session = match &session_header {
            Some(value) => Some(value.to_str().map_err(|_| ProxyError::SessionNotFound)?),
            None => None,
        };
        if let Some(sessions) = &self.sessions
            && sessions.check(session, &principal).await == Binding::Foreign
        {
            return Err(ProxyError::SessionNotFound);
        }

        let body = if parts.method == Method::POST {
            check_media_type(&parts.headers)?;
            let read = read_body(body, &parts.headers, self.max_body_bytes);
            tokio::time::timeout(self.body_read_timeout, read)
                .await
                .map_err(|_| ProxyError::BodyTimeout)??
        } else {
            // GET and DELETE carry no body; one that does would reach the upstream unchecked.
            refuse_body(&parts.headers)?;
            Bytes::new()
        };

        let (error_id, list_filter) = if parts.method == Method::POST {
            let inspection = mcp::inspect(&body, &self.inspect_limits)
                .map_err(|error| ProxyError::Malformed { error })?;
            check_mcp_headers(&parts.headers, &inspection)?;
            self.authorize(&principal, &inspection, ctx).await?;
            let error_id = inspection
                .first_id()
                .and_then(|id| serde_json::to_value(id).ok());
            (error_id, self.list_filter(&inspection, &principal))
        } else {
            ctx.allowed_without_body();
            (None, None)
        };

        let creates_session = session.is_none();
        let ends_session = parts.method == Method::DELETE;
        let response = self
            .forward(parts, body, &principal, peer, error_id, list_filter, ctx)
            .await?;
        if let Some(sessions) = &self.sessions {
            let issued = session_id(response.headers()).and_then(|v| v.to_str().ok());
            match (issued, session) {
                (Some(issued), _) if creates_session => sessions.bind(issued, &principal).await,
                (_, Some(ended)) if ends_session && response.status().is_success() => {
                    sessions.release(ended).await
                }
                _ => {}
            }
        }
        Ok(response)
    }

    /// A filter for the list requests of the body, when listings are filtered.
    fn list_filter(
        &self,
        inspection: &Inspection<'_>,
        principal: &Principal,
    ) -> Option<ListFilter> {
        if !self.filter_lists {
            return None;
        }
        let requests = inspection.messages.iter().filter_map(|message| {
            let method = message.method.as_deref()?;
            let id = serde_json::to_value(message.id.as_ref()?).ok()?;
            (message.kind == MessageKind::Request).then_some((id, method))
        });
        ListFilter::for_requests(requests, principal.granted.clone(), self.policy.load_full())
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), ProxyError> {
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let Some(origin) = origins.next() else {
            return Ok(());
        };
        let text = origin.to_str().unwrap_or("");
        let allowed = origins.next().is_none()
            && self
                .allowed_origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(text.trim_end_matches('/')));
        if allowed {
            Ok(())
        } else {
            Err(ProxyError::OriginNotAllowed(
                text.chars().take(64).collect(),
            ))
        }
    }

    /// Every message of the body is decided; one denial refuses the whole body, since the
    /// upstream would run every element of a batch. Rate limits are counted only once the whole
    /// body is allowed, so a refused batch costs its caller nothing.
    async fn authorize(
        &self,
        principal: &Principal,
        inspection: &Inspection<'_>,
        ctx: &mut Ctx,
    ) -> Result<(), ProxyError> {
        let state = self.policy.load();
        let scopes = &principal.granted;
        let mut limited: Vec<(RuleRef<'_>, RateLimit, Option<&RequestId<'_>>)> = Vec::new();
        for message in &inspection.messages {
            // A response answers the server's own request (sampling, elicitation): nothing to
            // authorize beyond the token.
            let (MessageKind::Request | MessageKind::Notification, Some(method)) =
                (message.kind, message.method.as_deref())
            else {
                continue;
            };
            let action = Action {
                method,
                target: message.target.as_deref(),
            };
            match state.policy.decide(scopes, &action) {
                Decision::Allow { rule } => {
                    ctx.saw(method, action.target, rule.map(|r| r.name));
                    if let Some(rule) = rule
                        && let Some(limit) = rule.rate_limit
                    {
                        limited.push((rule, limit, message.id.as_ref()));
                    }
                }
                Decision::Deny(denial) => {
                    ctx.saw(method, action.target, denial.rule.map(|r| r.name));
                    if denial.mode == Mode::Audit {
                        ctx.would_deny(&denial);
                        continue;
                    }
                    let id = message
                        .id
                        .as_ref()
                        .and_then(|id| serde_json::to_value(id).ok());
                    return Err(ProxyError::Forbidden(Box::new(denied(
                        id, &action, &denial, principal,
                    ))));
                }
            }
        }
        let subject = principal
            .subject
            .as_deref()
            .or(principal.client_id.as_deref())
            .unwrap_or("");
        for (rule, limit, id) in limited {
            if let Err(retry_after) = self.limiter.take(subject, rule.name, limit).await {
                if rule.mode == Mode::Audit {
                    ctx.would_rate_limit();
                    continue;
                }
                return Err(ProxyError::RateLimited {
                    id: id.and_then(|id| serde_json::to_value(id).ok()),
                    rule: rule.name.to_string(),
                    retry_after,
                });
            }
        }
        ctx.allowed();
        Ok(())
    }

    #[allow(clippy::too_many_arguments)] // each is one piece of what this request carries
    async fn forward(
        &self,
        parts: Parts,
        body: Bytes,
        principal: &Principal,
        peer: Peer,
        error_id: ErrorId,
        list_filter: Option<ListFilter>,
        ctx: &mut Ctx,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let mut request = self.target.request(
            parts.method,
            &parts.uri,
            parts.headers,
            body,
            principal,
            peer,
        );
        if list_filter.is_some() {
            // A listing is filtered, so it must arrive readable.
            request.headers_mut().insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        let started = Instant::now();
        let response =
            match tokio::time::timeout(self.response_timeout, self.client().request(request)).await
            {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    tracing::warn!(error = %error_chain(&error), "upstream request failed");
                    return Err(ProxyError::UpstreamUnreachable { id: error_id });
                }
                Err(_) => return Err(ProxyError::UpstreamTimeout { id: error_id }),
            };
        ctx.upstream_answered(response.status(), started.elapsed());
        let (mut parts, body) = response.into_parts();
        let body = EndOnError::new(body);
        upstream::rewrite_response_headers(&mut parts.headers);
        let Some(filter) = list_filter.filter(|_| parts.status.is_success()) else {
            return Ok(Response::from_parts(parts, Either::Left(body)));
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type.starts_with("text/event-stream") {
            let body = SseListBody::new(body, filter);
            return Ok(Response::from_parts(
                parts,
                Either::Right(Either::Right(body)),
            ));
        }
        let bytes = match Limited::new(body, self.max_list_bytes).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(ProxyError::ListTooLarge { id: error_id }),
        };
        let bytes = filter.filter_json(&bytes).unwrap_or(bytes);
        parts.headers.remove(header::CONTENT_LENGTH);
        Ok(Response::from_parts(parts, full(bytes)))
    }
}

/// A body the proxy wrote itself.
pub fn full(bytes: Bytes) -> ProxyBody {
    Either::Right(Either::Left(Full::new(bytes)))
}

/// Reads and throws away what is left of the body of a request the proxy answers itself, up to
/// the body limit and for a short while, so that a client still sending gets the answer after
/// its last frame, as it expects. Over HTTP/2 a stream whose body is cut short is reset after
/// the answer, and some clients (curl 7.x among them) then drop the answer, even though the
/// reset says NO_ERROR.
async fn discard_rest(body: &mut Incoming, limit: usize, window: Duration) {
    if body.is_end_stream() {
        return;
    }
    let mut left = limit;
    let drain = async {
        while let Some(Ok(frame)) = body.frame().await {
            let Some(len) = frame.data_ref().map(Bytes::len) else {
                continue;
            };
            let Some(rest) = left.checked_sub(len) else {
                return;
            };
            left = rest;
        }
    };
    let _ = tokio::time::timeout(window, drain).await;
}

fn policy_state(resource: &str, authorization_servers: &[String], policy: Policy) -> PolicyState {
    let metadata_document =
        metadata::document(resource, authorization_servers, policy.scopes_supported());
    PolicyState {
        policy,
        metadata_document,
    }
}

fn denied(id: ErrorId, action: &Action<'_>, denial: &Denial<'_>, principal: &Principal) -> Denied {
    let what = match action.target {
        Some(target) => format!("{} {target:?}", action.method),
        None => action.method.to_string(),
    };
    let message = match denial.reason {
        DenyReason::InsufficientScope => format!(
            "{what} requires scope {}; missing {}",
            denial.required.join(" "),
            denial.missing.join(" ")
        ),
        DenyReason::NoRule => format!("{what} is not allowed by policy"),
        DenyReason::MissingTarget => format!("{what} names no target"),
    };
    let challenge_scopes = if denial.reason == DenyReason::InsufficientScope {
        let mut scopes: Vec<String> = denial.required.iter().map(|s| s.to_string()).collect();
        for held in &principal.scopes {
            if is_scope_token(held) && !scopes.contains(held) {
                scopes.push(held.clone());
            }
        }
        scopes
    } else {
        Vec::new()
    };
    Denied {
        id,
        message,
        reason: denial.reason.label(),
        method: action.method.to_string(),
        target: action.target.map(str::to_string),
        missing: denial.missing.iter().map(|s| s.to_string()).collect(),
        challenge_scopes,
    }
}

/// RFC 6749 §3.3 scope-token characters: a token's scope that is not one never reaches a header.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// `application/json`, optionally with `charset=utf-8`: the only form the MCP servers parse the
/// way the inspector does. One header only, and no content coding (the JavaScript server
/// inflates gzip, which would let a compressed body differ from the one inspected).
fn check_media_type(headers: &HeaderMap) -> Result<(), ProxyError> {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(content_type), None) = (types.next(), types.next()) else {
        return Err(ProxyError::UnsupportedMediaType(
            "exactly one Content-Type: application/json is required",
        ));
    };
    let content_type = content_type.to_str().unwrap_or("");
    let mut params = content_type.split(';');
    let essence = params.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ProxyError::UnsupportedMediaType(
            "Content-Type must be application/json",
        ));
    }
    for param in params {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let value = value.trim().trim_matches('"');
        if !name.trim().eq_ignore_ascii_case("charset") || !value.eq_ignore_ascii_case("utf-8") {
            return Err(ProxyError::UnsupportedMediaType(
                "only charset=utf-8 is accepted with application/json",
            ));
        }
    }
    for encoding in headers.get_all(header::CONTENT_ENCODING) {
        if !encoding.as_bytes().eq_ignore_ascii_case(b"identity") {
            return Err(ProxyError::UnsupportedMediaType(
                "Content-Encoding is not accepted: send the body uncompressed",
            ));
        }
    }
    Ok(())
}

async fn read_body(
    body: &mut Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, ProxyError> {
    // A declared length past the limit is refused before a byte is read.
    if declared_length(headers).is_some_and(|len| len > limit as u64) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ProxyError::BodyTooLarge { limit })
        }
        Err(_) => Err(ProxyError::BodyRead),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn refuse_body(headers: &HeaderMap) -> Result<(), ProxyError> {
    let has_length = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    if has_length || headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(ProxyError::UnsupportedMediaType(
            "GET and DELETE on the MCP endpoint carry no body",
        ));
    }
    Ok(())
}

/// `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28) let intermediaries route without the body; where a
/// client sends them they must say what the body says, or a router and the upstream would act
/// on different calls.
fn check_mcp_headers(headers: &HeaderMap, inspection: &Inspection<'_>) -> Result<(), ProxyError> {
    let method = single(headers, &MCP_METHOD)?;
    let name = single(headers, &MCP_NAME)?;
    if method.is_none() && name.is_none() {
        return Ok(());
    }
    let [message] = inspection.messages.as_slice() else {
        return Err(ProxyError::HeaderMismatch(
            "Mcp-Method/Mcp-Name headers require a single JSON-RPC message",
        ));
    };
    if let Some(method) = method
        && Some(method.as_bytes()) != message.method.as_deref().map(str::as_bytes)
    {
        return Err(ProxyError::HeaderMismatch(
            "Mcp-Method header does not match the body's method",
        ));
    }
    if let Some(name) = name
        && Some(name.as_bytes()) != message.target.as_deref().map(str::as_bytes)
    {
        return Err(ProxyError::HeaderMismatch(
            "Mcp-Name header does not match the body's tool or resource",
        ));
    }
    Ok(())
}

fn single<'h>(
    headers: &'h HeaderMap,
    name: &header::HeaderName,
) -> Result<Option<&'h HeaderValue>, ProxyError> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (first, None) => Ok(first),
        _ => Err(ProxyError::HeaderMismatch(
            "an Mcp-* header appears more than once",
        )),
    }
}

/// The session the request belongs to, for the audit line.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(&MCP_SESSION_ID)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                header::HeaderName::try_from(*k).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn json_with_utf8_charset_is_accepted_in_any_case() {
        assert!(
            check_media_type(&headers(&[(
                "content-type",
                "Application/JSON; Charset=\"UTF-8\""
            )]))
            .is_ok()
        );
        assert!(check_media_type(&headers(&[("content-type", "application/json")])).is_ok());
    }

    #[test]
    fn other_media_types_and_charsets_are_refused() {
        for value in [
            "text/plain",
            "application/json; charset=utf-16",
            "application/jsonx",
            "",
        ] {
            assert!(
                check_media_type(&headers(&[("content-type", value)])).is_err(),
                "{value}"
            );
        }
        assert!(check_media_type(&headers(&[])).is_err());
        assert!(
            check_media_type(&headers(&[
                ("content-type", "application/json"),
                ("content-type", "application/json")
            ]))
            .is_err()
        );
    }

    #[test]
    fn any_content_coding_but_identity_is_refused() {
        let gzip = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]);
        assert!(check_media_type(&gzip).is_err());
        let identity = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
        ]);
        assert!(check_media_type(&identity).is_ok());
    }

    #[test]
    fn scope_tokens_exclude_quotes_and_spaces() {
        assert!(is_scope_token("customer:read"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token(""));
    }
}
