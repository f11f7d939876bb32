//! The request path: route, authenticate, inspect, authorize, forward, in that order, in one
//! function that reads top to bottom. Each step's work lives in its own module (`inspect`,
//! `authorize` beside this one) and returns what the next needs; this one owns their order and
//! fills the request's record (`ctx`) from what they return.

use crate::error::error_chain;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, Version};
use http_body_util::Either;
use hyper::body::{Body as _, Incoming};

mod authorize;
mod inspect;

use crate::answer::{self, Answer};
use crate::auth::{Authenticator, Principal, RequestView};
use crate::client::HttpClient;
use crate::config::Config;
use crate::ctx::{Ctx, Sinks};
use crate::error::{ProxyError, error_id};
use crate::http_checks::{
    check_media_type, check_singletons, declared_length, discard_rest, read_body, refuse_body,
};
use crate::integrity::Integrity;
use crate::limit::Limit;
use crate::listfilter::ListFilter;
use crate::mcp::InspectLimits;
use crate::mcp::headers::session_id;
use crate::mcp_params::ParamHeaders;
use crate::metadata;
use crate::metrics::{IssuerCounters, Metrics};
use crate::policy::{Policy, PolicyState};
use crate::ratelimit::RateLimiter;
use crate::session::{Binding, Kind, Sessions};
use crate::tasks;
use crate::telemetry::Telemetry;
use crate::upstream::{self, EndOnError, Peer, Target};

pub use crate::answer::{ProxyBody, Upstream, full};

/// The longest a refused request's body is waited for before the answer goes out regardless.
const DRAIN_WINDOW: Duration = Duration::from_secs(1);
/// Refused bodies read at once, at most.
const MAX_DRAINS: usize = 64;

/// Everything a request needs, built once at start-up and shared by all connections.
pub struct Proxy {
    mcp_path: String,
    resource: String,
    /// `https`, or `http` on a plaintext listener: the scheme of the URL clients address, which
    /// DPoP proofs name.
    scheme: &'static str,
    /// A `DPoP` challenge that goes beside each `Bearer` one, when an issuer accepts DPoP.
    dpop_challenge: Option<HeaderValue>,
    /// The metadata's sender-constraint members (DPoP, certificate-bound tokens).
    binding_metadata: metadata::Binding,
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
    /// The `x-mcp-header` marks of the tools seen listed, which `Mcp-Param-*` headers must match.
    param_headers: Arc<ParamHeaders>,
    filter_lists: bool,
    /// Tool pins (`[integrity]`): checked in every listing and on every `tools/call`.
    integrity: Option<Arc<Integrity>>,
    max_list_bytes: usize,
    in_flight: Limit,
    body_read_timeout: Duration,
    /// How long a request the proxy answers itself may take to finish sending its body.
    drain_window: Duration,
    /// Bounds the refused bodies being read at once; apart from the in-flight limit, so that
    /// refused requests never take slots from accepted ones.
    draining: Limit,
    /// The upstream connection pools: one per per-core worker, else one.
    clients: Vec<HttpClient>,
    target: Target,
    metrics: Arc<Metrics>,
    /// The per-issuer token counters, resolved once.
    issuers: IssuerCounters,
    /// Spans for requests on the MCP endpoint; `None` (no exporter configured) costs nothing.
    telemetry: Option<Telemetry>,
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
        let counters = metrics.policy_loaded(&policy);
        let shared = crate::state::SharedState::connect(&config.state, &metrics, clients.len())?;
        let auth = Authenticator::with_shared_state(
            config.issuers.clone(),
            auth_client,
            config.token_cache_entries,
            shared.clone(),
        );
        let issuers = metrics.issuers_configured(auth.issuer_labels());
        let binding_metadata = metadata::Binding {
            dpop: auth.accepts_dpop().then(|| auth.requires_dpop()),
            certificate_bound: config.listen.asks_client_certificates(),
        };
        let metadata_url = metadata::url_for(&config.mcp.resource);
        let dpop_challenge = auth
            .accepts_dpop()
            .then(|| crate::error::dpop_offer(&metadata_url));
        let state = policy_state(
            &config.mcp.resource,
            &config.authorization_servers,
            binding_metadata,
            policy,
            counters,
        );
        let integrity = (config.integrity.as_ref())
            .map(|settings| Integrity::start(settings, shared.clone(), metrics.clone()))
            .transpose()?
            .map(Arc::new);
        Ok(Proxy {
            mcp_path: config.mcp.path.clone(),
            resource: config.mcp.resource.clone(),
            scheme: if config.listen.tls.is_some() {
                "https"
            } else {
                "http"
            },
            dpop_challenge,
            binding_metadata,
            authorization_servers: config.authorization_servers.clone(),
            metadata_url,
            metadata_paths: metadata::paths(&config.mcp.resource, &config.mcp.path),
            allowed_origins: config.listen.allowed_origins.clone(),
            max_body_bytes: config.mcp.max_body_bytes,
            inspect_limits: InspectLimits::default(),
            response_timeout: config.upstream.response_timeout,
            auth,
            policy: ArcSwap::from_pointee(state),
            limiter: RateLimiter::with_shared(shared.clone()),
            sessions: config.mcp.bind_sessions.then(|| {
                Sessions::new(config.mcp.max_sessions, config.mcp.session_idle).with_shared(shared)
            }),
            param_headers: Arc::default(),
            filter_lists: config.mcp.filter_lists,
            integrity,
            max_list_bytes: config.mcp.max_list_bytes,
            in_flight: Limit::new(config.limits.max_requests),
            body_read_timeout: config.limits.body_read_timeout,
            drain_window: config.limits.body_read_timeout.min(DRAIN_WINDOW),
            draining: Limit::new(MAX_DRAINS),
            clients,
            target: Target::new(&config.upstream)?,
            metrics,
            issuers,
            telemetry: None,
        })
    }

    /// Traces every request on the MCP endpoint.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Proxy {
        self.telemetry = Some(telemetry);
        self
    }

    pub fn telemetry(&self) -> Option<&Telemetry> {
        self.telemetry.as_ref()
    }

    /// Swaps in a new policy; requests in flight finish under the one they started with.
    pub fn replace_policy(&self, policy: Policy) {
        let counters = self.metrics.policy_loaded(&policy);
        let state = policy_state(
            &self.resource,
            &self.authorization_servers,
            self.binding_metadata,
            policy,
            counters,
        );
        self.policy.store(Arc::new(state));
    }

    /// This worker's upstream pool.
    fn client(&self) -> &HttpClient {
        &self.clients[crate::workers::index() % self.clients.len()]
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Tool pins, when `[integrity]` is configured.
    pub fn integrity(&self) -> Option<&Arc<Integrity>> {
        self.integrity.as_ref()
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
        let version = parts.version;
        // hyper's `is_end_stream` stays false for a chunked body read to its end.
        let mut body_read = false;
        let path = parts.uri.path();
        let mut response = if path == self.mcp_path {
            let mut ctx = Ctx::start(&parts.headers, &parts.method);
            ctx.traced(self.telemetry.as_ref(), &parts.headers);
            let result = self
                .mcp(parts, &mut body, &mut body_read, peer, &mut ctx)
                .await;
            let response = self.respond(result, &mut ctx);
            let sinks = Sinks {
                metrics: &self.metrics,
                issuers: &self.issuers,
                policy: &self.policy,
            };
            ctx.finish(response.status(), &sinks);
            response
        } else if self.metadata_paths.iter().any(|p| p == path) {
            let result = self.metadata(&parts.method);
            self.respond(result, &mut Ctx::untracked(&parts.headers))
        } else {
            self.respond(
                Err(ProxyError::NotFound),
                &mut Ctx::untracked(&parts.headers),
            )
        };
        if version < Version::HTTP_2 && !body_read && !body.is_end_stream() {
            // Answered before the body was read: hyper will not reuse the connection, so say so
            // (RFC 9112 §9.6), or a pooled or pipelining client sends its next request into a
            // connection that is being closed and loses it.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if drain && matches!(response.body(), Either::Right(Either::Left(_))) {
            // Past the bound, the stream is reset after the answer instead.
            if let Some(_draining) = self.draining.try_enter() {
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
                // A client that holds a DPoP key learns it may use it (RFC 9449 §7.1).
                let dpop_too = match &error {
                    ProxyError::Unauthenticated(auth) => !auth.dpop_challenge(),
                    _ => false,
                };
                let mut response = error.into_response(&self.metadata_url).map(full);
                if let Some(challenge) = self.dpop_challenge.as_ref().filter(|_| dpop_too)
                    && response.status() == http::StatusCode::UNAUTHORIZED
                {
                    response
                        .headers_mut()
                        .append(header::WWW_AUTHENTICATE, challenge.clone());
                }
                response
            }
        };
        if let Some(id) = ctx.request_id() {
            response
                .headers_mut()
                .insert(crate::ctx::X_REQUEST_ID.clone(), id.clone());
        }
        response
    }

    /// The RFC 9728 document, on GET and HEAD (RFC 9110 §9.1: HEAD wherever GET is served).
    fn metadata(&self, method: &Method) -> Result<Response<ProxyBody>, ProxyError> {
        if method != Method::GET && method != Method::HEAD {
            return Err(ProxyError::MethodNotAllowed { allow: "GET, HEAD" });
        }
        let document = self.policy.load().metadata_document.clone();
        let length = HeaderValue::from(document.len());
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            document
        };
        let mut response = Response::new(full(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CONTENT_LENGTH, length);
        Ok(response)
    }

    /// The MCP endpoint: POST carries JSON-RPC, GET opens the server's event stream, DELETE ends a
    /// session.
    ///
    /// The body stays with the caller, which reads the rest of a refused one (`discard_rest`).
    async fn mcp(
        &self,
        mut parts: Parts,
        body: &mut Incoming,
        body_read: &mut bool,
        peer: Peer,
        ctx: &mut Ctx,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // Held until the response head: a request past the limit is refused at once, never
        // queued (a queue would only turn overload into timeouts).
        let _in_flight = self.in_flight.try_enter().ok_or(ProxyError::Overloaded)?;
        if !matches!(parts.method, Method::POST | Method::GET | Method::DELETE) {
            return Err(ProxyError::MethodNotAllowed {
                allow: "GET, POST, DELETE",
            });
        }
        // Before the token: a browser page on a foreign origin learns nothing, not even whether
        // a token would have worked (DNS-rebinding defence).
        self.check_origin(&parts.headers)?;
        upstream::strip_connection_options(&mut parts.headers);
        check_singletons(&parts.headers)?;

        // Authenticate before reading the body, so a caller without a valid token costs no
        // buffering and no parsing.
        let request = RequestView::of(&parts, self.scheme, &self.resource)
            .with_client_cert(peer.client_cert.as_ref());
        let attempt = self.auth.attempt(&request).await;
        ctx.token_issuer(attempt.issuer);
        let principal = attempt.result.map_err(ProxyError::from)?;
        ctx.authenticated(&principal);

        // A session is its creator's: another principal's request for it is told it does not
        // exist, before its body costs anything.
        // One session id (checked above): with two, the proxy and the upstream could each act
        // on another one.
        let session_header = session_id(&parts.headers).cloned();
        let session = match &session_header {
            Some(value) => Some(value.to_str().map_err(|_| ProxyError::SessionNotFound)?),
            None => None,
        };
        if let Some(sessions) = &self.sessions {
            match sessions.check(Kind::Session, session, &principal).await {
                Ok(Binding::Foreign) => return Err(ProxyError::SessionNotFound),
                Ok(_) => {}
                Err(_) => return Err(ProxyError::StateUnavailable { id: None }),
            }
        }

        let body = if parts.method == Method::POST {
            check_media_type(&parts.headers)?;
            let read = read_body(body, &parts.headers, self.max_body_bytes);
            let bytes = tokio::time::timeout(self.body_read_timeout, read)
                .await
                .map_err(|_| ProxyError::BodyTimeout)??;
            *body_read = true;
            bytes
        } else {
            // GET and DELETE carry no body; one that does would reach the upstream unchecked.
            refuse_body(&parts.headers)?;
            Bytes::new()
        };

        // Kept to the end of the request: the first id is serialised only if an error is
        // rendered, and the audit line borrows the method and tool from the body.
        let inspection = if parts.method == Method::POST {
            Some(self.inspect(&parts.headers, &body, &principal, ctx).await?)
        } else {
            None
        };
        let (policy, first_id, asks_for_list, binds_tasks) = match &inspection {
            Some(inspection) => {
                // Every POST is decided on its own, so each retry of an "input required" call
                // (2026-07-28 multi round-trip) is authorized again, arguments and all.
                let authorization = self.authorize(&principal, inspection).await;
                ctx.decided(
                    authorization.policy.clone(),
                    &body,
                    authorization.first,
                    authorization.messages,
                );
                let allowed = authorization.result?;
                match allowed.would_deny {
                    Some((reason, missing, condition)) => {
                        ctx.would_deny(reason, missing, condition)
                    }
                    None => ctx.allowed(),
                }
                if let Some(rule) = allowed.would_rate_limit {
                    ctx.would_rate_limit(rule);
                }
                (
                    authorization.policy,
                    inspection.first_id(),
                    inspect::asks_for_list(inspection),
                    self.sessions.is_some() && tasks::may_create(inspection),
                )
            }
            None => {
                ctx.allowed();
                (self.policy.load_full(), None, false, false)
            }
        };

        let creates_session = session.is_none();
        let ends_session = parts.method == Method::DELETE;
        // Every answer is filtered, not only those to list requests: a GET stream resumed with
        // `Last-Event-ID` replays earlier answers, and SDK servers route answers by id, so one
        // POST's listing can come back on another's stream.
        let answer = Answer {
            first_id,
            list_filter: self.list_filter(&principal, policy),
            asks_for_list,
            binds_tasks,
        };
        let response = self
            .forward(parts, body.clone(), &principal, peer, answer, ctx)
            .await?;
        if let Some(sessions) = &self.sessions {
            let issued = session_id(response.headers()).and_then(|v| v.to_str().ok());
            match (issued, session) {
                (Some(issued), _) if creates_session => {
                    // Unbound, the session would be every caller's or nobody's: the client
                    // is told to try again rather than handed it.
                    sessions
                        .bind(Kind::Session, issued, &principal)
                        .await
                        .map_err(|_| ProxyError::StateUnavailable { id: None })?
                }
                (_, Some(ended)) if ends_session && response.status().is_success() => {
                    sessions.release(Kind::Session, ended).await
                }
                _ => {}
            }
        }
        Ok(response)
    }

    /// A filter for the listings an answer may carry, when listings are filtered by policy or
    /// checked against tool pins.
    fn list_filter(
        &self,
        principal: &Arc<Principal>,
        policy: Arc<PolicyState>,
    ) -> Option<ListFilter> {
        (self.filter_lists || self.integrity.is_some()).then(|| {
            ListFilter::new(Arc::clone(principal), policy)
                .learning(self.param_headers.clone())
                .by_policy(self.filter_lists)
                .checking_pins(self.integrity.clone())
        })
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

    async fn forward(
        &self,
        parts: Parts,
        body: Bytes,
        principal: &Principal,
        peer: Peer,
        answer: Answer<'_>,
        ctx: &mut Ctx,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let first_id = answer.first_id;
        let mut request = self.target.request(
            parts.method,
            &parts.uri,
            parts.headers,
            body,
            principal,
            peer,
        );
        if let Some(trace) = ctx.trace() {
            trace.inject(request.headers_mut());
        }
        if answer.list_filter.is_some() || answer.binds_tasks {
            // A listing is filtered, and a task handle read, so either must arrive readable.
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
                    return Err(ProxyError::UpstreamUnreachable {
                        id: error_id(first_id),
                    });
                }
                Err(_) => {
                    return Err(ProxyError::UpstreamTimeout {
                        id: error_id(first_id),
                    });
                }
            };
        ctx.upstream_answered(response.status(), started.elapsed());
        let (mut parts, body) = response.into_parts();
        upstream::rewrite_response_headers(&mut parts.headers);
        let limits = answer::Limits {
            max_bytes: self.max_list_bytes,
            read_timeout: self.response_timeout,
        };
        answer::deliver(
            parts,
            EndOnError::new(body),
            answer,
            &limits,
            self.sessions.as_ref(),
            principal,
        )
        .await
    }
}

fn policy_state(
    resource: &str,
    authorization_servers: &[String],
    binding: metadata::Binding,
    policy: Policy,
    counters: crate::policy::RuleCounters,
) -> PolicyState {
    let metadata_document = metadata::document(
        resource,
        authorization_servers,
        policy.scopes_supported(),
        binding,
    );
    PolicyState {
        policy,
        metadata_document,
        counters,
    }
}
