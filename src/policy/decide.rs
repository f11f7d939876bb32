//! Decisions: what the policy says about one action for one token's scopes. Owns the decision
//! types and the token's [`ScopeSet`]; not how rules are found (`mod.rs`) or loaded.

use super::{Action, Mode, Need, Policy, RateLimit, Rule};

/// Methods that need only a valid token unless a `[methods]` rule names them: the session
/// handshake (`initialize`, or 2026-07-28's `server/discover`), keep-alive, listings and the
/// change-notification stream (`subscriptions/listen`, which carries no data of its own).
/// Listings reveal names only; calling still needs a rule.
const PROTOCOL_METHODS: [&str; 8] = [
    "initialize",
    "server/discover",
    "subscriptions/listen",
    "ping",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
];

/// Notifications carry no result, so every `notifications/…` method is a protocol method.
const NOTIFICATION_PREFIX: &str = "notifications/";

/// The scopes a token carries. Tokens hold a handful, so a sorted vector beats a hash set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<Box<str>>);

impl ScopeSet {
    /// Collects scopes (duplicates are dropped), e.g. `ScopeSet::new(scope.split_whitespace())`.
    pub fn new<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Box<str>>,
    {
        let mut scopes: Vec<Box<str>> = scopes.into_iter().map(Into::into).collect();
        scopes.sort_unstable();
        scopes.dedup();
        ScopeSet(scopes)
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.binary_search_by(|held| (**held).cmp(scope)).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|s| &**s)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The policy's answer for one action. Borrows from the [`Policy`] that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'p> {
    /// Let it through. `rule` is `None` for protocol methods that no rule names.
    Allow {
        rule: Option<RuleRef<'p>>,
    },
    Deny(Denial<'p>),
}

impl Decision<'_> {
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// Why an action was denied, and what would have allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial<'p> {
    pub reason: DenyReason,
    /// The rule that denied, if one matched.
    pub rule: Option<RuleRef<'p>>,
    /// Whether to enforce this denial: the rule's mode, or else the policy's.
    pub mode: Mode,
    /// The scope set that was checked (for `any_of`, the closest one); empty without a rule.
    pub required: Vec<&'p str>,
    /// The scopes of `required` that the token lacks: the `scope` of the `insufficient_scope`
    /// challenge.
    pub missing: Vec<&'p str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No rule names this tool or method (default deny).
    NoRule,
    /// A rule matched and the token lacks some of its scopes.
    InsufficientScope,
    /// A `tools/call` without a tool name.
    MissingTarget,
}

impl DenyReason {
    /// Bounded label for metrics and the audit line.
    pub fn label(&self) -> &'static str {
        match self {
            DenyReason::NoRule => "no_rule",
            DenyReason::InsufficientScope => "insufficient_scope",
            DenyReason::MissingTarget => "missing_target",
        }
    }
}

/// The rule behind a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef<'p> {
    /// The tool name or pattern, or the method, as written in the policy.
    pub name: &'p str,
    /// The rule's own mode, or else the policy's.
    pub mode: Mode,
    pub rate_limit: Option<RateLimit>,
}

impl Policy {
    /// Decides one action for a token holding `scopes`. Allowing allocates nothing.
    ///
    /// `tools/call` goes by the tool's rule; other methods by their `[methods]` rule, then the
    /// protocol methods need only a token; every other method, including odd-case spellings
    /// such as `Tools/Call`, is denied, so a method this policy has not heard of fails closed.
    pub fn decide<'p>(&'p self, scopes: &ScopeSet, action: &Action<'_>) -> Decision<'p> {
        let rule = if action.method == "tools/call" {
            let Some(tool) = action.target else {
                return self.deny_without_rule(DenyReason::MissingTarget);
            };
            self.tool_rule(tool)
        } else {
            match self.method_rule(action.method) {
                Some(rule) => Some(rule),
                None if is_protocol_method(action.method) => {
                    return Decision::Allow { rule: None };
                }
                None => None,
            }
        };
        match rule {
            Some(rule) => rule.decide(scopes),
            None => self.deny_without_rule(DenyReason::NoRule),
        }
    }

    fn deny_without_rule(&self, reason: DenyReason) -> Decision<'_> {
        Decision::Deny(Denial {
            reason,
            rule: None,
            mode: self.mode,
            required: Vec::new(),
            missing: Vec::new(),
        })
    }
}

pub(super) fn is_protocol_method(method: &str) -> bool {
    PROTOCOL_METHODS.contains(&method) || method.starts_with(NOTIFICATION_PREFIX)
}

impl Rule {
    fn as_ref(&self) -> RuleRef<'_> {
        RuleRef {
            name: &self.name,
            mode: self.mode,
            rate_limit: self.rate_limit,
        }
    }

    fn decide(&self, scopes: &ScopeSet) -> Decision<'_> {
        let required: &[Box<str>] = match &self.need {
            Need::All(set) => {
                if holds_all(scopes, set) {
                    return Decision::Allow {
                        rule: Some(self.as_ref()),
                    };
                }
                set
            }
            Need::AnyOf(sets) => {
                if sets.iter().any(|set| holds_all(scopes, set)) {
                    return Decision::Allow {
                        rule: Some(self.as_ref()),
                    };
                }
                // Report the set the token is closest to; `min_by_key` keeps the first on ties.
                sets.iter()
                    .min_by_key(|set| lacking(scopes, set))
                    .map_or(&[], |set| set)
            }
        };
        Decision::Deny(Denial {
            reason: DenyReason::InsufficientScope,
            rule: Some(self.as_ref()),
            mode: self.mode,
            required: required.iter().map(|s| &**s).collect(),
            missing: required
                .iter()
                .filter(|s| !scopes.contains(s))
                .map(|s| &**s)
                .collect(),
        })
    }
}

fn holds_all(scopes: &ScopeSet, set: &[Box<str>]) -> bool {
    set.iter().all(|s| scopes.contains(s))
}

fn lacking(scopes: &ScopeSet, set: &[Box<str>]) -> usize {
    set.iter().filter(|s| !scopes.contains(s)).count()
}
