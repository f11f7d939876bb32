//! Every Prometheus metric, defined once, in a registry of the proxy's own (not the process-wide
//! default, so tests running side by side each count their own). Label values are bounded: they
//! come from fixed lists, from the policy's own rule names, or from `&'static str` reasons.

use std::sync::Mutex;
use std::time::SystemTime;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::auth::JwksStatus;

/// Latency buckets from 100 µs to 10 s: the proxy's own cost sits at the bottom, slow tools and
/// timeouts at the top.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// MCP methods that get their own `method` label; everything else counts as `_other`, so a
/// client inventing method names cannot grow the label set.
const KNOWN_METHODS: [&str; 18] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "sampling/createMessage",
];

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
    match method {
        Some(method) => KNOWN_METHODS
            .iter()
            .find(|known| **known == method)
            .copied()
            .unwrap_or("_other"),
        None if http_method == http::Method::GET => "_get",
        None if http_method == http::Method::DELETE => "_delete",
        None => "_none",
    }
}

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub tool_calls: IntCounterVec,
    pub auth_failures: IntCounterVec,
    pub denials: IntCounterVec,
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    pub upstream_responses: IntCounterVec,
    jwks_fetches: IntCounterVec,
    jwks_keys: IntGauge,
    jwks_age: Gauge,
    pub policy_reloads: IntCounterVec,
    policy_info: IntGaugeVec,
    pub tls_reloads: IntCounterVec,
    tls_expiry: Gauge,
    pub rate_limited: IntCounterVec,
    pub connections: IntGauge,
    /// Fetch counts already added to `jwks_fetches`, so each scrape adds only what is new.
    jwks_seen: Mutex<(u64, u64)>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let histogram = |name: &str, help: &str| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let metric = Histogram::with_opts(opts).expect("valid metric");
            registry
                .register(Box::new(metric.clone()))
                .expect("unique metric");
            metric
        };
        let metrics = Metrics {
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
            connections: IntGauge::new(
                "scopegate_open_connections",
                "Client connections open on the public listener.",
            )
            .expect("valid metric"),
            jwks_seen: Mutex::new((0, 0)),
            registry,
        };
        for gauge in [&metrics.jwks_keys, &metrics.connections] {
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
        metrics
    }

    /// Marks `hash` as the loaded policy (one series at 1; the previous one removed).
    pub fn policy_loaded(&self, hash: &str) {
        self.policy_info.reset();
        self.policy_info.with_label_values(&[hash]).set(1);
    }

    pub fn certificate_loaded(&self, not_after: Option<i64>) {
        if let Some(not_after) = not_after {
            self.tls_expiry.set(not_after as f64);
        }
    }

    /// Renders the text exposition format, bringing the JWKS figures up to date first.
    pub fn render(&self, jwks: &JwksStatus) -> String {
        self.observe_jwks(jwks);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
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
