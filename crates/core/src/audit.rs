//! The per-request context and the audit line written from it: one JSON line per decision on the
//! `audit` tracing target. Filled step by step as the request travels, read once at the end.
//! Never holds the token or a tool's arguments.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::auth::Principal;
use crate::error::ProxyError;
use crate::metrics::{self, Metrics};
use crate::policy::Denial;
use crate::reason::Reason;
use crate::telemetry::{Ended, RequestTrace, Telemetry};

/// The request id header: taken from the client when it sends a usable one, so a trace can be
/// followed across hops, and returned on every response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client-sent request id longer than this is replaced: it goes into every audit line.
const MAX_REQUEST_ID_LEN: usize = 128;

/// How a request ended, as the audit line and the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    /// Denied by a rule in audit (shadow) mode, and let through.
    WouldDeny,
    Deny,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        metrics::DECISIONS[self as usize]
    }
}

/// What is known about one request so far.
pub struct Ctx {
    tracked: bool,
    started: Instant,
    request_id: Option<HeaderValue>,
    session_id: Option<String>,
    http_method: Method,
    /// Who the token says the caller is; shared with the token cache, not copied.
    principal: Option<Arc<Principal>>,
    /// The configured issuer the token named, when one was recognised.
    issuer: Option<Arc<str>>,
    method: Option<String>,
    tool: Option<String>,
    /// The policy rule that decided the first `tools/call`: the bounded `tool` metric label.
    rule: Option<String>,
    messages: usize,
    outcome: Outcome,
    /// Why it was refused (or would have been); `None` while allowed.
    reason: Option<Reason>,
    missing: Vec<String>,
    /// The policy condition that decided a denial, with its run-time error if it failed.
    condition: Option<String>,
    upstream_status: Option<StatusCode>,
    upstream_duration: Option<Duration>,
    error: Option<ErrorKind>,
    /// The request's span, when tracing is on (boxed: nothing to carry when it is off).
    trace: Option<Box<RequestTrace>>,
}

/// Which failure counter a refused request also feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Token,
    RateLimit,
    Other,
}

impl Ctx {
    /// A request on the MCP endpoint: it ends in a decision and an audit line.
    pub fn start(headers: &HeaderMap, method: &Method) -> Ctx {
        Ctx::new(true, Some(request_id(headers)), headers, method)
    }

    /// A request that decides nothing (metadata, unknown paths): no audit line, but a request id
    /// like every response.
    pub fn untracked(headers: &HeaderMap) -> Ctx {
        Ctx::new(
            false,
            Some(request_id(headers)),
            &HeaderMap::new(),
            &Method::GET,
        )
    }

    fn new(
        tracked: bool,
        request_id: Option<HeaderValue>,
        headers: &HeaderMap,
        method: &Method,
    ) -> Ctx {
        Ctx {
            tracked,
            started: Instant::now(),
            request_id,
            session_id: crate::mcp::headers::session_id(headers)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            http_method: method.clone(),
            principal: None,
            issuer: None,
            method: None,
            tool: None,
            rule: None,
            messages: 0,
            outcome: Outcome::Deny,
            reason: None,
            missing: Vec::new(),
            condition: None,
            upstream_status: None,
            upstream_duration: None,
            error: None,
            trace: None,
        }
    }

    /// Begins the request's span when tracing is on.
    pub fn traced(&mut self, telemetry: Option<&Telemetry>, headers: &HeaderMap) {
        if let Some(telemetry) = telemetry {
            self.trace = Some(Box::new(telemetry.begin(headers)));
        }
    }

    /// The request's span, when tracing is on.
    pub fn trace(&mut self) -> Option<&mut RequestTrace> {
        self.trace.as_deref_mut()
    }

    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.request_id.as_ref()
    }

    /// The issuer the token named, whether or not it was then accepted.
    pub fn token_issuer(&mut self, issuer: Option<Arc<str>>) {
        self.issuer = issuer;
    }

    pub fn authenticated(&mut self, principal: &Arc<Principal>) {
        self.principal = Some(principal.clone());
    }

    /// Records a message and the rule that decided it; the first one names the request in the
    /// audit line and the metrics.
    pub fn saw(&mut self, method: &str, target: Option<&str>, rule: Option<&str>) {
        self.messages += 1;
        if self.method.is_none() {
            self.method = Some(method.to_string());
            self.tool = target.map(str::to_string);
            self.rule = rule.map(str::to_string);
        }
    }

    pub fn allowed(&mut self) {
        if self.outcome != Outcome::WouldDeny {
            self.outcome = Outcome::Allow;
            self.reason = None;
        }
    }

    pub fn allowed_without_body(&mut self) {
        self.outcome = Outcome::Allow;
        self.reason = None;
    }

    pub fn would_deny(&mut self, denial: &Denial<'_>) {
        self.outcome = Outcome::WouldDeny;
        self.reason = Some(denial.reason);
        self.missing = denial.missing.iter().map(|s| s.to_string()).collect();
        self.condition = denial.audited_condition();
    }

    /// A rate limit in audit mode was exceeded: counted and logged, the call goes through.
    pub fn would_rate_limit(&mut self) {
        self.outcome = Outcome::WouldDeny;
        self.reason = Some(Reason::RateLimited);
        self.error = Some(ErrorKind::RateLimit);
    }

    pub fn failed(&mut self, error: &ProxyError) {
        self.outcome = Outcome::Deny;
        self.reason = Some(error.reason());
        self.error = Some(match error {
            ProxyError::Unauthenticated(_) => ErrorKind::Token,
            ProxyError::RateLimited { .. } => ErrorKind::RateLimit,
            _ => ErrorKind::Other,
        });
        if let ProxyError::ToolChanged { tool, .. } = error {
            self.method = Some("tools/call".to_string());
            self.tool = Some(tool.clone());
        }
        if let ProxyError::Forbidden(denied) = error {
            self.method = Some(denied.method.clone());
            self.tool.clone_from(&denied.target);
            self.missing.clone_from(&denied.missing);
            self.condition.clone_from(&denied.condition);
        }
    }

    pub fn upstream_answered(&mut self, status: StatusCode, elapsed: Duration) {
        self.upstream_status = Some(status);
        self.upstream_duration = Some(elapsed);
    }

    /// Writes the audit line, records the metrics and ends the span: once per request, at its
    /// end. `policy_hash` names the policy in force.
    pub fn finish(&mut self, status: StatusCode, metrics: &Metrics, policy_hash: &str) {
        if !self.tracked {
            return;
        }
        self.record(metrics);
        let request_id = self.request_id.as_ref().and_then(|v| v.to_str().ok());
        let principal = self.principal.as_deref();
        let trace_id = self.trace.as_mut().map(|trace| trace.trace_id());
        tracing::info!(
            target: "audit",
            request_id,
            session_id = self.session_id.as_deref(),
            http_method = self.http_method.as_str(),
            subject = principal.and_then(|p| p.subject.as_deref()),
            client_id = principal.and_then(|p| p.client_id.as_deref()),
            issuer = self.issuer.as_deref(),
            method = self.method.as_deref(),
            tool = self.tool.as_deref(),
            rule = self.rule.as_deref(),
            messages = self.messages,
            decision = self.outcome.label(),
            reason = self.reason.map_or("allowed", Reason::as_str),
            missing_scopes = %self.missing.join(" "),
            condition = self.condition.as_deref(),
            status = status.as_u16(),
            upstream_status = self.upstream_status.map(|s| s.as_u16()),
            upstream_ms = self.upstream_duration.map(|d| d.as_secs_f64() * 1e3),
            duration_ms = self.started.elapsed().as_secs_f64() * 1e3,
            trace_id = trace_id.as_deref(),
            policy_hash,
            "decision"
        );
        if let Some(trace) = self.trace.take() {
            trace.end(&Ended {
                method: self.method.as_deref(),
                tool: self.tool.as_deref(),
                session_id: self.session_id.as_deref(),
                subject: principal.and_then(|p| p.subject.as_deref()),
                rule: self.rule.as_deref(),
                decision: self.outcome.label(),
                reason: self.reason.map_or("allowed", Reason::as_str),
                status: status.as_u16(),
            });
        }
    }
}

impl Ctx {
    fn record(&self, metrics: &Metrics) {
        let decision = self.outcome.label();
        let method = self.method.as_deref();
        metrics.request(
            metrics::method_index(method, &self.http_method),
            self.outcome as usize,
        );
        if method == Some("tools/call") {
            let rule = self.rule.as_deref().unwrap_or("_other");
            metrics
                .tool_calls
                .with_label_values(&[rule, decision])
                .inc();
        }
        if let Some(reason) = self.reason
            && self.outcome != Outcome::Allow
        {
            metrics.denied(reason);
        }
        if let Some(issuer) = &self.issuer {
            let outcome = match (self.error, self.reason) {
                (Some(ErrorKind::Token), Some(reason)) => reason.as_str(),
                _ => metrics::ACCEPTED,
            };
            metrics
                .issuer_auth
                .with_label_values(&[issuer, outcome])
                .inc();
        }
        match self.error {
            Some(ErrorKind::Token) => {
                if let Some(reason) = self.reason {
                    metrics.auth_failed(reason);
                }
            }
            Some(ErrorKind::RateLimit) => {
                let rule = self.rule.as_deref().unwrap_or("_other");
                metrics.rate_limited.with_label_values(&[rule]).inc();
            }
            Some(ErrorKind::Other) | None => {}
        }
        metrics
            .request_duration
            .observe(self.started.elapsed().as_secs_f64());
        if let Some(upstream) = self.upstream_duration {
            metrics.upstream_duration.observe(upstream.as_secs_f64());
        }
        if let Some(status) = self.upstream_status {
            metrics
                .upstream_responses
                .with_label_values(&[metrics::status_class(status)])
                .inc();
        }
    }
}

/// The client's `X-Request-Id` when it is short visible ASCII, else a new one: process-start
/// nanoseconds and a counter, unique per process without a random source.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(&X_REQUEST_ID)
        && !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return id.clone();
    }
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let epoch = *EPOCH.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{epoch:016x}-{n:08x}")).unwrap_or(HeaderValue::from_static("-"))
}
