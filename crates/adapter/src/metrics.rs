//! The adapter's metrics, defined once, in a `prometheus` registry of the adapter's own (not the
//! process-wide default, so tests running side by side each read their own counters), rendered in
//! the Prometheus text format. Label values are bounded: providers and models come from config,
//! outcomes and reasons from fixed lists, tools from the list scopegate returned (others count as
//! `_other`). Every label value known at start-up is present at 0 from the first scrape, so a
//! dashboard's rate() has a series before the first event.

use prometheus::{Encoder, IntCounterVec, Registry, TextEncoder};

use super::config::AdapterConfig;

/// Request outcomes other than a provider failure's reason (`disconnected`: a streaming caller
/// went away before the end).
const OUTCOMES: [&str; 3] = ["ok", "max_tool_rounds", "disconnected"];
/// Every reason a provider attempt can fail with (see `ProviderError::reason`).
pub const FAILURE_REASONS: [&str; 7] = [
    "rate_limited",
    "server_error",
    "timeout",
    "connect",
    "auth_failed",
    "rejected",
    "invalid_response",
];
/// The decisions a tool call ends with.
const DECISIONS: [&str; 3] = ["allow", "deny", "error"];
/// The label for a tool scopegate did not list, and for a request no target answered.
pub const OTHER_TOOL: &str = "_other";
const NO_TARGET: &str = "_none";

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    attempts: IntCounterVec,
    fallbacks: IntCounterVec,
    tool_rounds: IntCounterVec,
    tool_calls: IntCounterVec,
}

impl Metrics {
    /// The metrics of an adapter with `config`, every known label set present at 0.
    pub fn new(config: &AdapterConfig) -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            scopegate_core::metrics::counter_vec(&registry, name, help, labels)
        };
        let metrics = Metrics {
            requests: counter(
                "scopegate_adapter_requests_total",
                "Chat completion requests by the target that answered (or _none) and outcome.",
                &["provider", "model", "outcome"],
            ),
            attempts: counter(
                "scopegate_adapter_provider_attempts_total",
                "Requests sent to a provider, by result.",
                &["provider", "model", "result"],
            ),
            fallbacks: counter(
                "scopegate_adapter_fallbacks_total",
                "Targets given up on for the next one, by the reason of the last failure.",
                &["provider", "model", "reason"],
            ),
            tool_rounds: counter(
                "scopegate_adapter_tool_rounds_total",
                "Model -> tools -> model rounds run.",
                &["provider", "model"],
            ),
            tool_calls: counter(
                "scopegate_adapter_tool_calls_total",
                "Tool calls made through scopegate, by decision (allow, deny, error).",
                &["tool", "decision"],
            ),
            registry,
        };
        let mut targets: Vec<(&str, &str)> = Vec::new();
        for target in config.models.values().flatten() {
            let pair = (target.provider.as_str(), target.model.as_str());
            if !targets.contains(&pair) {
                targets.push(pair);
            }
        }
        for (provider, model) in targets {
            for outcome in OUTCOMES {
                metrics
                    .requests
                    .with_label_values(&[provider, model, outcome]);
            }
            metrics.attempts.with_label_values(&[provider, model, "ok"]);
            for reason in FAILURE_REASONS {
                metrics
                    .attempts
                    .with_label_values(&[provider, model, reason]);
                metrics
                    .fallbacks
                    .with_label_values(&[provider, model, reason]);
            }
            metrics.tool_rounds.with_label_values(&[provider, model]);
        }
        for reason in FAILURE_REASONS {
            metrics
                .requests
                .with_label_values(&[NO_TARGET, NO_TARGET, reason]);
        }
        for decision in DECISIONS {
            metrics
                .tool_calls
                .with_label_values(&[OTHER_TOOL, decision]);
        }
        metrics
    }

    /// A request no target answered, by the last failure's reason.
    pub fn request_failed(&self, reason: &str) {
        self.request(NO_TARGET, NO_TARGET, reason);
    }

    pub fn request(&self, provider: &str, model: &str, outcome: &str) {
        self.requests
            .with_label_values(&[provider, model, outcome])
            .inc();
    }

    pub fn attempt(&self, provider: &str, model: &str, result: &str) {
        self.attempts
            .with_label_values(&[provider, model, result])
            .inc();
    }

    pub fn fallback(&self, provider: &str, model: &str, reason: &str) {
        self.fallbacks
            .with_label_values(&[provider, model, reason])
            .inc();
    }

    pub fn tool_round(&self, provider: &str, model: &str) {
        self.tool_rounds.with_label_values(&[provider, model]).inc();
    }

    /// Present at 0 for each tool scopegate lists, once the list is known.
    pub fn tools_listed<'a>(&self, tools: impl IntoIterator<Item = &'a str>) {
        for tool in tools {
            for decision in DECISIONS {
                self.tool_calls.with_label_values(&[tool, decision]);
            }
        }
    }

    pub fn tool_call(&self, tool: &str, decision: &str) {
        self.tool_calls.with_label_values(&[tool, decision]).inc();
    }

    /// The tool-call counter for `tool` and `decision`: what the demo and tests read.
    pub fn tool_calls(&self, tool: &str, decision: &str) -> u64 {
        self.tool_calls.with_label_values(&[tool, decision]).get()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for counters with valid names.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    fn config() -> AdapterConfig {
        let text = r#"
[listen]
address = "127.0.0.1:0"
[[providers]]
name = "local"
kind = "openai-compatible"
base_url = "http://127.0.0.1:1/v1"
[models.support]
targets = ["local/llama"]
"#;
        AdapterConfig::parse(
            text,
            Path::new("adapter.toml"),
            &BTreeMap::<String, String>::new(),
        )
        .unwrap()
    }

    #[test]
    fn known_label_values_are_present_at_zero_before_any_request() {
        let text = Metrics::new(&config()).render();
        for series in [
            r#"scopegate_adapter_requests_total{model="llama",outcome="ok",provider="local"} 0"#,
            r#"scopegate_adapter_requests_total{model="_none",outcome="auth_failed",provider="_none"} 0"#,
            r#"scopegate_adapter_provider_attempts_total{model="llama",provider="local",result="auth_failed"} 0"#,
            r#"scopegate_adapter_fallbacks_total{model="llama",provider="local",reason="server_error"} 0"#,
            r#"scopegate_adapter_tool_rounds_total{model="llama",provider="local"} 0"#,
            r#"scopegate_adapter_tool_calls_total{decision="deny",tool="_other"} 0"#,
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
    }

    #[test]
    fn counters_count_with_their_labels() {
        let metrics = Metrics::new(&config());
        metrics.tools_listed(["get_customer_info"]);
        metrics.tool_call("create_support_ticket", "deny");
        metrics.tool_call("create_support_ticket", "deny");
        metrics.request("local", "llama", "ok");
        let text = metrics.render();
        assert!(text.contains(
            r#"scopegate_adapter_tool_calls_total{decision="deny",tool="create_support_ticket"} 2"#
        ));
        assert!(text.contains(
            r#"scopegate_adapter_tool_calls_total{decision="allow",tool="get_customer_info"} 0"#
        ));
        assert!(text.contains(
            r#"scopegate_adapter_requests_total{model="llama",outcome="ok",provider="local"} 1"#
        ));
        assert!(text.contains("# TYPE scopegate_adapter_fallbacks_total counter"));
        assert_eq!(metrics.tool_calls("create_support_ticket", "deny"), 2);
    }
}
