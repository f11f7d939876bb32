//! The metric handles labelled by one policy's rules, indexed like its rules and swapped with it
//! on reload: a request counts its rule with an atomic add, not a label hash and a lock. Owns
//! only the handles and how a rule finds its own; `Metrics::rule_counters` registers them.

use prometheus::IntCounter;

use super::Policy;

/// One rule as the metrics label it: its name, and which families carry it.
pub struct RuleLabel<'p> {
    pub name: &'p str,
    /// A `[[tools]]` rule: labels `scopegate_tool_calls_total`.
    pub tool: bool,
    /// Carries a rate limit: labels `scopegate_rate_limited_total`.
    pub rate_limited: bool,
}

/// Handles by rule index ([`super::RuleRef::index`]), then the `_other` one for calls no rule
/// names. Empty (counts nothing) until filled.
#[derive(Default)]
pub struct RuleCounters {
    /// `scopegate_tool_calls_total{tool, decision}` by decision index, for tool rules.
    pub tool_calls: Vec<Option<[IntCounter; 3]>>,
    /// `scopegate_rate_limited_total{tool}`, for rate-limited rules.
    pub rate_limited: Vec<Option<IntCounter>>,
}

impl RuleCounters {
    /// The tool call counters of `rule`, or the `_other` ones without a rule.
    pub fn tool_calls(&self, rule: Option<usize>) -> Option<&[IntCounter; 3]> {
        let other = self.tool_calls.len().checked_sub(1)?;
        match rule.and_then(|index| self.tool_calls.get(index).filter(|_| index < other)) {
            Some(Some(counters)) => Some(counters),
            _ => self.tool_calls[other].as_ref(),
        }
    }

    /// The rate-limit refusal counter of `rule`, or the `_other` one.
    pub fn rate_limited(&self, rule: Option<usize>) -> Option<&IntCounter> {
        let other = self.rate_limited.len().checked_sub(1)?;
        match rule.and_then(|index| self.rate_limited.get(index).filter(|_| index < other)) {
            Some(Some(counter)) => Some(counter),
            _ => self.rate_limited[other].as_ref(),
        }
    }
}

impl Policy {
    /// Every rule as the metrics label it, in index order.
    pub fn rule_labels(&self) -> impl Iterator<Item = RuleLabel<'_>> {
        self.rules.iter().map(|rule| RuleLabel {
            name: &rule.name,
            tool: !self.methods.values().any(|method| method.0 == rule.index),
            rate_limited: rule.rate_limit.is_some(),
        })
    }
}

impl Policy {
    /// The name of the rule at `index` ([`super::RuleRef::index`]), as written.
    pub fn rule_name(&self, index: usize) -> Option<&str> {
        self.rules.get(index).map(|rule| &*rule.name)
    }
}
