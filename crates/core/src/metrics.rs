//! Every Prometheus metric, defined once, in a registry of the proxy's own (not the process-wide
//! default, so tests running side by side each count their own). Label values are bounded: they
//! come from fixed lists, from the policy's own rule names, or from `&'static str` reasons.
//!
//! Every label value known at start, and every rule name when a policy loads, is listed at 0
//! before anything happens: a series that appears only with its first increment is invisible to
//! `increase()` and `rate()`, so the first failure of a kind would never show in an alert.

use std::sync::Mutex;
use std::time::SystemTime;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::auth::JwksStatus;
use crate::policy::{Policy, RuleCounters};
use crate::reason::Reason;

/// Latency buckets from 100 µs to 10 s: the proxy's own cost sits at the bottom, slow tools and
/// timeouts at the top.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Known MCP methods get their own `method` label (the MCP method table); everything else
/// counts as `_other`, so a client inventing method names cannot grow the label set.
fn known_methods() -> impl Iterator<Item = &'static str> {
    crate::mcp::methods::METHODS.iter().map(|known| known.name)
}

/// `method` values for requests without a known MCP method (see [`method_label`]).
const UNNAMED_METHODS: [&str; 4] = ["_get", "_delete", "_none", "_other"];

/// Every `decision` label value, in the order of `ctx::Outcome`'s variants.
pub const DECISIONS: [&str; 3] = ["allow", "would_deny", "deny"];

/// Every upstream status class ([`status_class`]).
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The `result` of a key set fetch or a reload.
const RESULTS: [&str; 2] = ["success", "failure"];

/// The `outcome` of a token its issuer's checks accepted (refusals carry their reason).
pub const ACCEPTED: &str = "accepted";

/// Every `op` of `scopegate_state_errors_total`, in the order of `state::Op`'s variants (which
/// names itself from here).
pub const STATE_OPS: [&str; 7] = [
    "rate_limit",
    "handle_check",
    "handle_bind",
    "handle_release",
    "set_if_absent",
    "pin_record",
    "pin_read",
];

/// The `tool` label of a call no rule names.
const NO_RULE: &str = "_other";

/// The status class label of an upstream response.
pub fn status_class(status: http::StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The label for a request's method: a known MCP method, `_get`/`_delete` for the stream and
/// session requests that carry none, `_none` when the request failed before its method was
/// known, `_other` for the rest.
pub fn method_label(method: Option<&str>, http_method: &http::Method) -> &'static str {
    let index = method_index(method, http_method);
    known_methods()
        .chain(UNNAMED_METHODS)
        .nth(index)
        .unwrap_or("_other")
}

/// The position of [`method_label`]'s value among the `method` label values: the method table's
/// entries, then `_get`, `_delete`, `_none`, `_other`.
pub fn method_index(method: Option<&str>, http_method: &http::Method) -> usize {
    let known = crate::mcp::methods::METHODS.len();
    match method {
        Some(method) => crate::mcp::methods::position(method).unwrap_or(known + 3),
        None if http_method == http::Method::GET => known,
        None if http_method == http::Method::DELETE => known + 1,
        None => known + 2,
    }
}

/// `issuer_auth` resolved per configured issuer (by its index among the issuers) and outcome.
#[derive(Default)]
pub struct IssuerCounters {
    issuers: Vec<IssuerCounter>,
}

struct IssuerCounter {
    label: Box<str>,
    accepted: IntCounter,
    /// By `Reason::index`, for token reasons.
    refused: Vec<Option<IntCounter>>,
}

impl IssuerCounters {
    /// The configured issuer at `index`, as its label and the audit line name it.
    pub fn label(&self, index: usize) -> Option<&str> {
        self.issuers.get(index).map(|issuer| &*issuer.label)
    }

    /// Counts a token of issuer `index`: accepted, or refused for a token `reason`.
    pub fn count(&self, index: usize, refused: Option<Reason>) {
        let Some(issuer) = self.issuers.get(index) else {
            return;
        };
        match refused {
            None => issuer.accepted.inc(),
            Some(reason) => {
                if let Some(Some(counter)) = issuer.refused.get(reason.index()) {
                    counter.inc();
                }
            }
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub tool_calls: IntCounterVec,
    pub auth_failures: IntCounterVec,
    /// Tokens by the configured issuer they named and how their checks ended.
    pub issuer_auth: IntCounterVec,
    pub denials: IntCounterVec,
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    pub upstream_responses: IntCounterVec,
    jwks_fetches: IntCounterVec,
    jwks_keys: IntGauge,
    jwks_age: Gauge,
    jwks_failing: IntGauge,
    pub policy_reloads: IntCounterVec,
    policy_info: IntGaugeVec,
    pub tls_reloads: IntCounterVec,
    tls_expiry: Gauge,
    pub rate_limited: IntCounterVec,
    /// Operations on the shared state (`[state]`) that failed or timed out, by op.
    pub state_errors: IntCounterVec,
    /// Tool definitions seen that do not match their pins, by policy rule.
    pub tool_changes: IntCounterVec,
    pub pins_reloads: IntCounterVec,
    pub connections: IntGauge,
    /// `denials` and `auth_failures` resolved per reason once (indexed by `Reason::index`), so a
    /// refusal costs an atomic add, not a label hash and a lock.
    denial_counters: Vec<IntCounter>,
    auth_failure_counters: Vec<Option<IntCounter>>,
    /// `requests` resolved per method label and decision ([`method_index`], `DECISIONS`).
    request_counters: Vec<[IntCounter; 3]>,
    /// `upstream_responses` resolved per status class ([`STATUS_CLASSES`]).
    upstream_counters: Vec<IntCounter>,
    /// Finished spans the export queue had no room for.
    pub spans_dropped: IntCounter,
    /// OTLP export requests by result.
    pub span_exports: IntCounterVec,
    /// Fetch counts already added to `jwks_fetches`, so each scrape adds only what is new.
    jwks_seen: Mutex<(u64, u64)>,
    /// Log lines that waited for room in the log writer's queue (process-wide, brought up to
    /// date at each scrape).
    log_queue_waits: IntCounter,
}

/// A counter family registered in `registry`: how the proxy's and the adapter's metrics both
/// make theirs.
pub fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            crate::metrics::counter_vec(&registry, name, help, labels)
        };
        let histogram = |name: &str, help: &str| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let metric = Histogram::with_opts(opts).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let mut metrics = Metrics {
            requests: counter(
                "scopegate_requests_total",
                "Requests on the MCP endpoint by first JSON-RPC method and decision.",
                &["method", "decision"],
            ),
            tool_calls: counter(
                "scopegate_tool_calls_total",
                "tools/call requests by policy rule (tool name or glob; _other without a rule) and decision.",
                &["tool", "decision"],
            ),
            auth_failures: counter(
                "scopegate_auth_failures_total",
                "Requests refused for their token, by reason.",
                &["reason"],
            ),
            issuer_auth: counter(
                "scopegate_issuer_auth_total",
                "Tokens naming a configured issuer, by issuer and outcome (accepted, or the refusal reason).",
                &["issuer", "outcome"],
            ),
            denials: counter(
                "scopegate_denials_total",
                "Requests refused (or, in audit mode, let through) by reason.",
                &["reason"],
            ),
            request_duration: histogram(
                "scopegate_request_duration_seconds",
                "Time from request to response head on the MCP endpoint.",
            ),
            upstream_duration: histogram(
                "scopegate_upstream_duration_seconds",
                "Time the upstream took to answer with a response head.",
            ),
            upstream_responses: counter(
                "scopegate_upstream_responses_total",
                "Upstream responses by status class (2xx, 3xx, 4xx, 5xx).",
                &["class"],
            ),
            jwks_fetches: counter(
                "scopegate_jwks_fetch_total",
                "JWKS fetches by result.",
                &["result"],
            ),
            jwks_keys: IntGauge::new("scopegate_jwks_keys", "Keys in the cached JWKS.")
                .expect("valid metric"),
            jwks_age: Gauge::new(
                "scopegate_jwks_age_seconds",
                "Seconds since the last successful JWKS fetch (-1 before the first).",
            )
            .expect("valid metric"),
            jwks_failing: IntGauge::new(
                "scopegate_jwks_consecutive_failures",
                "Key set fetches failed since the last successful one (0 while the IdP answers).",
            )
            .expect("valid metric"),
            policy_reloads: counter(
                "scopegate_policy_reload_total",
                "Policy reloads by result.",
                &["result"],
            ),
            policy_info: IntGaugeVec::new(
                Opts::new(
                    "scopegate_policy_info",
                    "The loaded policy, by source hash.",
                ),
                &["hash"],
            )
            .expect("valid metric"),
            tls_reloads: counter(
                "scopegate_tls_reload_total",
                "Certificate reloads by result.",
                &["result"],
            ),
            tls_expiry: Gauge::new(
                "scopegate_tls_cert_expiry_timestamp_seconds",
                "notAfter of the served certificate, as a Unix timestamp.",
            )
            .expect("valid metric"),
            rate_limited: counter(
                "scopegate_rate_limited_total",
                "Calls refused by a per-subject rate limit, by rule.",
                &["tool"],
            ),
            state_errors: counter(
                "scopegate_state_errors_total",
                "Operations on the shared state (Redis) that failed or timed out, by op; on_error then applied.",
                &["op"],
            ),
            tool_changes: counter(
                "scopegate_tool_changes_total",
                "Tool definitions relayed that do not match their pins, by policy rule (_other without a rule).",
                &["tool"],
            ),
            pins_reloads: counter(
                "scopegate_pins_reload_total",
                "Pins file reloads by result.",
                &["result"],
            ),
            connections: IntGauge::new(
                "scopegate_open_connections",
                "Client connections open on the public listener.",
            )
            .expect("valid metric"),
            spans_dropped: IntCounter::new(
                "scopegate_trace_spans_dropped_total",
                "Finished spans dropped because the export queue was full (tracing on).",
            )
            .expect("valid metric"),
            span_exports: counter(
                "scopegate_trace_exports_total",
                "OTLP span export requests by result.",
                &["result"],
            ),
            jwks_seen: Mutex::new((0, 0)),
            log_queue_waits: IntCounter::new(
                "scopegate_log_queue_waits_total",
                "Log and audit lines that found the log writer's queue full and waited for room \
                 (the request's worker waited with them).",
            )
            .expect("valid metric"),
            denial_counters: Vec::new(),
            auth_failure_counters: Vec::new(),
            request_counters: Vec::new(),
            upstream_counters: Vec::new(),
            registry,
        };
        for gauge in [
            &metrics.jwks_keys,
            &metrics.jwks_failing,
            &metrics.connections,
        ] {
            metrics
                .registry
                .register(Box::new(gauge.clone()))
                .expect("unique metric");
        }
        for gauge in [&metrics.jwks_age, &metrics.tls_expiry] {
            metrics
                .registry
                .register(Box::new(gauge.clone()))
                .expect("unique metric");
        }
        metrics
            .registry
            .register(Box::new(metrics.policy_info.clone()))
            .expect("unique metric");
        for counter in [&metrics.spans_dropped, &metrics.log_queue_waits] {
            metrics
                .registry
                .register(Box::new(counter.clone()))
                .expect("unique metric");
        }
        metrics.list_known_labels();
        metrics.resolve_hot_handles();
        metrics
    }

    /// Resolves the handles every request touches, once.
    fn resolve_hot_handles(&mut self) {
        self.denial_counters = Reason::ALL
            .iter()
            .map(|reason| self.denials.with_label_values(&[reason.as_str()]))
            .collect();
        self.auth_failure_counters = Reason::ALL
            .iter()
            .map(|reason| {
                reason
                    .is_token()
                    .then(|| self.auth_failures.with_label_values(&[reason.as_str()]))
            })
            .collect();
        self.request_counters = known_methods()
            .chain(UNNAMED_METHODS)
            .map(|method| {
                DECISIONS.map(|decision| self.requests.with_label_values(&[method, decision]))
            })
            .collect();
        self.upstream_counters = STATUS_CLASSES
            .iter()
            .map(|class| self.upstream_responses.with_label_values(&[class]))
            .collect();
    }

    /// Counts an upstream response by its status class.
    pub fn upstream_answered(&self, status: http::StatusCode) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.upstream_counters[class].inc();
    }

    /// Counts a refusal (or, in audit mode, a would-be refusal) for `reason`.
    pub fn denied(&self, reason: Reason) {
        self.denial_counters[reason.index()].inc();
    }

    /// Counts a token refusal; other reasons are not counted here.
    pub fn auth_failed(&self, reason: Reason) {
        if let Some(counter) = &self.auth_failure_counters[reason.index()] {
            counter.inc();
        }
    }

    /// Counts a request on the MCP endpoint by its [`method_index`] and decision index.
    pub fn request(&self, method: usize, decision: usize) {
        self.request_counters[method][decision].inc();
    }

    /// Creates, at 0, the series of every label value known before any traffic.
    fn list_known_labels(&self) {
        for method in known_methods().chain(UNNAMED_METHODS) {
            for decision in DECISIONS {
                self.requests.with_label_values(&[method, decision]);
            }
        }
        for decision in DECISIONS {
            self.tool_calls.with_label_values(&[NO_RULE, decision]);
        }
        self.tool_changes.with_label_values(&[NO_RULE]);
        for reason in Reason::ALL {
            if reason.is_token() {
                self.auth_failures.with_label_values(&[reason.as_str()]);
            }
            self.denials.with_label_values(&[reason.as_str()]);
        }
        for class in STATUS_CLASSES {
            self.upstream_responses.with_label_values(&[class]);
        }
        for op in STATE_OPS {
            self.state_errors.with_label_values(&[op]);
        }
        for result in RESULTS {
            self.jwks_fetches.with_label_values(&[result]);
            self.policy_reloads.with_label_values(&[result]);
            self.tls_reloads.with_label_values(&[result]);
            self.pins_reloads.with_label_values(&[result]);
            self.span_exports.with_label_values(&[result]);
        }
    }

    /// Marks `policy` as the loaded one (its hash's series at 1; the previous one removed) and
    /// resolves its rules' tool call and rate limit counters, which lists their series at 0. A
    /// rule a reload removes keeps its series: counters never go back.
    pub fn policy_loaded(&self, policy: &Policy) -> RuleCounters {
        self.policy_info.reset();
        self.policy_info
            .with_label_values(&[policy.source_hash()])
            .set(1);
        let mut counters = RuleCounters::default();
        for rule in policy.rule_labels() {
            counters.tool_calls.push(rule.tool.then(|| {
                self.tool_changes.with_label_values(&[rule.name]);
                DECISIONS.map(|decision| self.tool_calls.with_label_values(&[rule.name, decision]))
            }));
            counters.rate_limited.push(
                rule.rate_limited
                    .then(|| self.rate_limited.with_label_values(&[rule.name])),
            );
        }
        counters.tool_calls.push(Some(
            DECISIONS.map(|decision| self.tool_calls.with_label_values(&[NO_RULE, decision])),
        ));
        counters
            .rate_limited
            .push(Some(self.rate_limited.with_label_values(&[NO_RULE])));
        counters
    }

    /// Lists every configured issuer's `issuer_auth` series at 0 and resolves them. The label
    /// takes only these values: a token naming any other issuer is refused before it is
    /// attributed to one.
    pub fn issuers_configured<'a>(&self, issuers: impl Iterator<Item = &'a str>) -> IssuerCounters {
        let issuers = issuers
            .map(|issuer| {
                let refused = Reason::ALL
                    .iter()
                    .map(|reason| {
                        reason.is_token().then(|| {
                            self.issuer_auth
                                .with_label_values(&[issuer, reason.as_str()])
                        })
                    })
                    .collect();
                IssuerCounter {
                    label: issuer.into(),
                    accepted: self.issuer_auth.with_label_values(&[issuer, ACCEPTED]),
                    refused,
                }
            })
            .collect();
        IssuerCounters { issuers }
    }

    pub fn certificate_loaded(&self, not_after: Option<i64>) {
        if let Some(not_after) = not_after {
            self.tls_expiry.set(not_after as f64);
        }
    }

    /// Renders the text exposition format, bringing the JWKS figures up to date first.
    pub fn render(&self, jwks: &JwksStatus) -> String {
        self.observe_jwks(jwks);
        self.observe_log_queue();
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Adds the log queue's waits since the last scrape (under the lock, so that two scrapes at
    /// once do not both add them).
    fn observe_log_queue(&self) {
        let _one_at_a_time = self.jwks_seen.lock().unwrap_or_else(|e| e.into_inner());
        let waits = crate::logging::queue_waits();
        self.log_queue_waits
            .inc_by(waits.saturating_sub(self.log_queue_waits.get()));
    }

    fn observe_jwks(&self, jwks: &JwksStatus) {
        let mut seen = self.jwks_seen.lock().unwrap_or_else(|e| e.into_inner());
        let (successes, failures) = *seen;
        self.jwks_fetches
            .with_label_values(&["success"])
            .inc_by(jwks.fetch_successes.saturating_sub(successes));
        self.jwks_fetches
            .with_label_values(&["failure"])
            .inc_by(jwks.fetch_failures.saturating_sub(failures));
        *seen = (
            jwks.fetch_successes.max(successes),
            jwks.fetch_failures.max(failures),
        );
        self.jwks_keys.set(jwks.keys as i64);
        self.jwks_failing
            .set(i64::try_from(jwks.consecutive_failures).unwrap_or(i64::MAX));
        let age = jwks
            .last_success
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .map_or(-1.0, |age| age.as_secs_f64());
        self.jwks_age.set(age);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
