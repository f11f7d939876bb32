//! The adapter's metrics, defined once, rendered in the Prometheus text format. A small owned
//! registry (counters with bounded labels) rather than a global one, so tests read their own
//! adapter's counters. Label values are bounded: providers and models come from config, tools
//! from the tool list scopegate returned (others count as `_other`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Each counter: name, help, label names.
const COUNTERS: [(&str, &str, &[&str]); 5] = [
    (
        "scopegate_adapter_requests_total",
        "Chat completion requests by the target that answered (or _none) and outcome.",
        &["provider", "model", "outcome"],
    ),
    (
        "scopegate_adapter_provider_attempts_total",
        "Requests sent to a provider, by result.",
        &["provider", "model", "result"],
    ),
    (
        "scopegate_adapter_fallbacks_total",
        "Targets given up on for the next one, by the reason of the last failure.",
        &["provider", "model", "reason"],
    ),
    (
        "scopegate_adapter_tool_rounds_total",
        "Model -> tools -> model rounds run.",
        &["provider", "model"],
    ),
    (
        "scopegate_adapter_tool_calls_total",
        "Tool calls made through scopegate, by decision (allow, deny, error).",
        &["tool", "decision"],
    ),
];

#[derive(Default)]
pub struct Metrics {
    values: Mutex<BTreeMap<(&'static str, Vec<String>), u64>>,
}

impl Metrics {
    fn add(&self, name: &'static str, labels: &[&str]) {
        debug_assert!(
            COUNTERS
                .iter()
                .any(|(n, _, l)| *n == name && l.len() == labels.len())
        );
        let key = (name, labels.iter().map(|l| (*l).to_owned()).collect());
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        *values.entry(key).or_default() += 1;
    }

    pub fn request(&self, provider: &str, model: &str, outcome: &str) {
        self.add(
            "scopegate_adapter_requests_total",
            &[provider, model, outcome],
        );
    }

    pub fn attempt(&self, provider: &str, model: &str, result: &str) {
        self.add(
            "scopegate_adapter_provider_attempts_total",
            &[provider, model, result],
        );
    }

    pub fn fallback(&self, provider: &str, model: &str, reason: &str) {
        self.add(
            "scopegate_adapter_fallbacks_total",
            &[provider, model, reason],
        );
    }

    pub fn tool_round(&self, provider: &str, model: &str) {
        self.add("scopegate_adapter_tool_rounds_total", &[provider, model]);
    }

    pub fn tool_call(&self, tool: &str, decision: &str) {
        self.add("scopegate_adapter_tool_calls_total", &[tool, decision]);
    }

    /// One counter's value, for tests.
    pub fn get(&self, name: &str, labels: &[&str]) -> u64 {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values
            .iter()
            .find(|((n, l), _)| {
                *n == name && l.iter().map(String::as_str).eq(labels.iter().copied())
            })
            .map_or(0, |(_, v)| *v)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, help, label_names) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((n, labels), value) in values.iter() {
                if *n != name {
                    continue;
                }
                let pairs: Vec<String> = label_names
                    .iter()
                    .zip(labels)
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", pairs.join(","));
            }
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_labels() {
        let metrics = Metrics::default();
        metrics.tool_call("create_support_ticket", "deny");
        metrics.tool_call("create_support_ticket", "deny");
        metrics.request("openai", "gpt\"x", "ok");
        let text = metrics.render();
        assert!(text.contains(
            "scopegate_adapter_tool_calls_total{tool=\"create_support_ticket\",decision=\"deny\"} 2"
        ));
        assert!(text.contains("model=\"gpt\\\"x\""));
        assert!(text.contains("# TYPE scopegate_adapter_fallbacks_total counter"));
        assert_eq!(
            metrics.get(
                "scopegate_adapter_tool_calls_total",
                &["create_support_ticket", "deny"]
            ),
            2
        );
    }
}
