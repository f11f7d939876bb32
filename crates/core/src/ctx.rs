//! The per-request context: what is known about one request on the MCP endpoint, filled from
//! the steps' typed outputs as it travels and read once at its end by the metrics, the audit
//! line and the span. Never holds the token or a tool's arguments. Not how the line is written
//! (`audit`) nor what each step decides (`proxy`).
//!
//! Nothing here copies a name per request: a known method is the method table's `&'static str`,
//! a tool name a slice of the body it was read from, the rule an index into the policy that
//! decided (held here, so the rule name, its counters and the policy hash all come from it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::audit::{self, Line};
use crate::auth::Principal;
use crate::error::ProxyError;
use crate::metrics::{self, IssuerCounters, Metrics};
use crate::policy::{PolicyState, RuleCounters};
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

/// A name the request carried (its method, its tool), kept without a copy where it can be.
#[derive(Debug, Clone)]
enum Text {
    Static(&'static str),
    /// A slice of the body it was read from, or, where it held escapes, its unescaped copy.
    Shared(Bytes),
}

impl Text {
    fn method(body: &Bytes, method: &str) -> Text {
        match crate::mcp::methods::position(method) {
            Some(index) => Text::Static(crate::mcp::methods::METHODS[index].name),
            None => Text::of(body, method),
        }
    }

    fn of(body: &Bytes, text: &str) -> Text {
        let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        if start <= body.len() && text.len() <= body.len() - start {
            Text::Shared(body.slice(start..start + text.len()))
        } else {
            Text::Shared(Bytes::copy_from_slice(text.as_bytes()))
        }
    }

    fn owned(text: &str) -> Text {
        Text::Shared(Bytes::copy_from_slice(text.as_bytes()))
    }

    fn as_str(&self) -> &str {
        match self {
            Text::Static(text) => text,
            // Sliced from a `&str`, so always UTF-8.
            Text::Shared(bytes) => std::str::from_utf8(bytes).unwrap_or(""),
        }
    }
}

/// What a request's end is recorded into.
pub struct Sinks<'a> {
    pub metrics: &'a Metrics,
    pub issuers: &'a IssuerCounters,
    /// The policy in force, for a request that ended before one decided it.
    pub policy: &'a arc_swap::ArcSwap<PolicyState>,
}

/// What is known about one request so far.
pub struct Ctx {
    tracked: bool,
    started: Instant,
    request_id: Option<HeaderValue>,
    /// The `Mcp-Session-Id` as sent (a shared handle on the header's bytes, not a copy).
    session_id: Option<HeaderValue>,
    http_method: Method,
    /// Who the token says the caller is; shared with the token cache, not copied.
    principal: Option<Arc<Principal>>,
    /// The configured issuer the token named (its index), when one was recognised.
    issuer: Option<usize>,
    /// The policy that decided the request, once one did.
    policy: Option<Arc<PolicyState>>,
    method: Option<Text>,
    tool: Option<Text>,
    /// The index of the policy rule that decided the first message: the bounded `tool` label.
    rule: Option<usize>,
    /// The rule whose rate limit refused the request (or would have): in a batch, not
    /// necessarily the first message's.
    limited_rule: Option<usize>,
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
        let mut ctx = Ctx::untracked(headers);
        ctx.tracked = true;
        ctx.session_id = crate::mcp::headers::session_id(headers).cloned();
        ctx.http_method = method.clone();
        ctx
    }

    /// A request that decides nothing (metadata, unknown paths): no audit line, but a request id
    /// like every response.
    pub fn untracked(headers: &HeaderMap) -> Ctx {
        Ctx {
            tracked: false,
            started: Instant::now(),
            request_id: Some(request_id(headers)),
            session_id: None,
            http_method: Method::GET,
            principal: None,
            issuer: None,
            policy: None,
            method: None,
            tool: None,
            rule: None,
            limited_rule: None,
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

    /// The issuer the token named (its index), whether or not it was then accepted.
    pub fn token_issuer(&mut self, issuer: Option<usize>) {
        self.issuer = issuer;
    }

    pub fn authenticated(&mut self, principal: &Arc<Principal>) {
        self.principal = Some(principal.clone());
    }

    /// The policy that decided, and the first message it decided (out of `messages`), which
    /// names the request in the audit line and the metrics. `method` and `tool` are read from
    /// `body`.
    pub fn decided(
        &mut self,
        policy: Arc<PolicyState>,
        body: &Bytes,
        first: Option<(&str, Option<&str>, Option<usize>)>,
        messages: usize,
    ) {
        self.policy = Some(policy);
        self.messages = messages;
        if let Some((method, tool, rule)) = first {
            self.method = Some(Text::method(body, method));
            self.tool = tool.map(|tool| Text::of(body, tool));
            self.rule = rule;
        }
    }

    pub fn allowed(&mut self) {
        self.outcome = Outcome::Allow;
        self.reason = None;
    }

    /// A rule in audit (shadow) mode would have refused: logged and counted, let through.
    pub fn would_deny(&mut self, reason: Reason, missing: Vec<String>, condition: Option<String>) {
        self.outcome = Outcome::WouldDeny;
        self.reason = Some(reason);
        self.missing = missing;
        self.condition = condition;
    }

    /// A rate limit in audit mode was exceeded: counted and logged, the call goes through.
    pub fn would_rate_limit(&mut self, rule: usize) {
        self.limited_rule = Some(rule);
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
        if let ProxyError::RateLimited { rule_index, .. } = error {
            self.limited_rule = Some(*rule_index);
        }
        if let ProxyError::ToolChanged { tool, .. } = error {
            self.method = Some(Text::Static("tools/call"));
            self.tool = Some(Text::owned(tool));
        }
        if let ProxyError::Forbidden(denied) = error {
            self.method = Some(Text::owned(&denied.method));
            self.tool = denied.target.as_deref().map(Text::owned);
            self.missing.clone_from(&denied.missing);
            self.condition.clone_from(&denied.condition);
        }
    }

    pub fn upstream_answered(&mut self, status: StatusCode, elapsed: Duration) {
        self.upstream_status = Some(status);
        self.upstream_duration = Some(elapsed);
    }

    /// Writes the audit line, records the metrics and ends the span: once per request, at its
    /// end.
    pub fn finish(&mut self, status: StatusCode, sinks: &Sinks<'_>) {
        if !self.tracked {
            return;
        }
        let loaded;
        let policy = match &self.policy {
            Some(policy) => &**policy,
            None => {
                loaded = sinks.policy.load();
                &**loaded
            }
        };
        self.record(sinks, &policy.counters);
        let principal = self.principal.as_deref();
        let rule = self.rule.and_then(|index| policy.policy.rule_name(index));
        let trace_id = self.trace.as_mut().map(|trace| trace.trace_id());
        let reason = self.reason.map_or("allowed", Reason::as_str);
        let session_id = self.session_id.as_ref().and_then(|v| v.to_str().ok());
        let method = self.method.as_ref().map(Text::as_str);
        let tool = self.tool.as_ref().map(Text::as_str);
        audit::write(&Line {
            request_id: self.request_id.as_ref().and_then(|v| v.to_str().ok()),
            session_id,
            http_method: self.http_method.as_str(),
            subject: principal.and_then(|p| p.subject.as_deref()),
            client_id: principal.and_then(|p| p.client_id.as_deref()),
            issuer: self.issuer.and_then(|index| sinks.issuers.label(index)),
            method,
            tool,
            rule,
            messages: self.messages,
            decision: self.outcome.label(),
            reason,
            missing: &self.missing,
            condition: self.condition.as_deref(),
            status: status.as_u16(),
            upstream_status: self.upstream_status.map(|s| s.as_u16()),
            upstream_ms: self.upstream_duration.map(|d| d.as_secs_f64() * 1e3),
            duration_ms: self.started.elapsed().as_secs_f64() * 1e3,
            trace_id: trace_id.as_deref(),
            policy_hash: policy.policy.source_hash(),
        });
        if let Some(trace) = self.trace.take() {
            trace.end(&Ended {
                method,
                tool,
                session_id,
                subject: principal.and_then(|p| p.subject.as_deref()),
                rule,
                decision: self.outcome.label(),
                reason,
                status: status.as_u16(),
            });
        }
    }

    /// The request's metrics, each through a handle resolved ahead (no label lookups).
    fn record(&self, sinks: &Sinks<'_>, rules: &RuleCounters) {
        let metrics = sinks.metrics;
        let method = self.method.as_ref().map(Text::as_str);
        metrics.request(
            metrics::method_index(method, &self.http_method),
            self.outcome as usize,
        );
        if method == Some("tools/call")
            && let Some(counters) = rules.tool_calls(self.rule)
        {
            counters[self.outcome as usize].inc();
        }
        if let Some(reason) = self.reason
            && self.outcome != Outcome::Allow
        {
            metrics.denied(reason);
        }
        if let Some(issuer) = self.issuer {
            let refused = match self.error {
                Some(ErrorKind::Token) => self.reason,
                _ => None,
            };
            sinks.issuers.count(issuer, refused);
        }
        match self.error {
            Some(ErrorKind::Token) => {
                if let Some(reason) = self.reason {
                    metrics.auth_failed(reason);
                }
            }
            Some(ErrorKind::RateLimit) => {
                if let Some(counter) = rules.rate_limited(self.limited_rule.or(self.rule)) {
                    counter.inc();
                }
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
            metrics.upstream_answered(status);
        }
    }
}

/// The client's `X-Request-Id` when it is short visible ASCII, else a new one:
/// `<process start, ns>-<thread>-<count>` in hex, unique per process without a random source.
/// The count is the thread's own, so that requests on different cores share no counter.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(&X_REQUEST_ID)
        && !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return id.clone();
    }
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    /// Numbers threads as they first make an id: once per thread, not per request.
    static THREADS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static NEXT: std::cell::Cell<(u64, u64)> =
            std::cell::Cell::new((THREADS.fetch_add(1, Ordering::Relaxed), 0));
    }
    let epoch = *EPOCH.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let (thread, n) = NEXT.get();
    NEXT.set((thread, n.wrapping_add(1)));
    let mut id = [0u8; 16 + 1 + 16 + 1 + 16];
    let mut len = hex(&mut id, 0, epoch, 16);
    id[len] = b'-';
    len = hex(&mut id, len + 1, thread, 1);
    id[len] = b'-';
    len = hex(&mut id, len + 1, n, 8);
    HeaderValue::from_bytes(&id[..len]).unwrap_or(HeaderValue::from_static("-"))
}

/// Writes `value` in lower-case hex at `at`, at least `min_digits` long; returns where it ends.
fn hex(out: &mut [u8], at: usize, value: u64, min_digits: usize) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - value.leading_zeros() as usize / 4).max(min_digits);
    for i in 0..digits {
        out[at + i] = DIGITS[((value >> (4 * (digits - 1 - i))) & 0xf) as usize];
    }
    at + digits
}

#[cfg(test)]
mod request_id_tests {
    use super::*;

    #[test]
    fn new_ids_are_distinct_across_threads_and_keep_their_shape() {
        let ids: Vec<String> = (0..3)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..3)
                        .map(|_| request_id(&HeaderMap::new()).to_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                })
            })
            .flat_map(|thread| thread.join().unwrap())
            .collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 9, "{ids:?}");
        for id in &ids {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(parts.len(), 3, "{id}");
            assert_eq!(parts[0].len(), 16, "{id}");
            assert!(parts[2].len() >= 8, "{id}");
            assert!(
                id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
                "{id}"
            );
        }
    }

    #[test]
    fn hex_pads_to_its_minimum_and_grows_past_it() {
        let written = |value: u64, min_digits: usize| {
            let mut out = [0u8; 16];
            let end = hex(&mut out, 0, value, min_digits);
            String::from_utf8(out[..end].to_vec()).unwrap()
        };
        assert_eq!(written(0x2a, 8), "0000002a");
        assert_eq!(written(0x1_2345_6789, 8), "123456789");
        assert_eq!(written(0, 1), "0");
        assert_eq!(written(u64::MAX, 1), "ffffffffffffffff");
    }

    #[test]
    fn a_usable_client_id_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("trace-123"));
        assert_eq!(request_id(&headers), "trace-123");
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        let replaced = request_id(&headers);
        assert_eq!(
            replaced.to_str().unwrap().split('-').count(),
            3,
            "{replaced:?}"
        );
    }
}
