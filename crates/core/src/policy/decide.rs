//! Decisions: what the policy says about one action for one token's scopes. Owns the decision
//! types and the token's [`ScopeSet`]; not how rules are found (`mod.rs`) or loaded.

use std::borrow::Cow;

use super::condition::{Facts, Outcome, Scope};
use super::{Action, Mode, Need, Policy, RateLimit, Rule};
use crate::reason::Reason;

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
    pub reason: Reason,
    /// The rule that denied, if one matched.
    pub rule: Option<RuleRef<'p>>,
    /// Whether to enforce this denial: the rule's mode, or else the policy's.
    pub mode: Mode,
    /// The scope set that was checked (for `any_of`, the closest one); empty without a rule.
    pub required: Vec<&'p str>,
    /// The scopes of `required` that the token lacks: the `scope` of the `insufficient_scope`
    /// challenge.
    pub missing: Vec<&'p str>,
    /// The condition that decided: the failed `when`, the matching `[[deny]]`, or the one that
    /// could not be evaluated.
    pub condition: Option<&'p str>,
    /// A `[[deny]]` rule's reason, or why a condition could not be evaluated.
    pub note: Option<Cow<'p, str>>,
}

/// One condition's value for one call.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionValue<'p> {
    /// What the condition does: `when`, `require SCOPES` or `[[deny]] (REASON)`.
    pub role: String,
    pub source: &'p str,
    pub outcome: Outcome,
}

impl Denial<'_> {
    /// The deciding condition as the audit line shows it: with its run-time error, if any.
    pub fn audited_condition(&self) -> Option<String> {
        self.condition.map(|condition| match &self.note {
            Some(note) if self.reason == Reason::ConditionError => {
                format!("{condition} ({note})")
            }
            _ => condition.to_string(),
        })
    }
}

/// The rule behind a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleRef<'p> {
    /// The rule's position in its policy: the index of its [`super::RuleCounters`].
    pub index: usize,
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
    ///
    /// Conditions see no claims and no arguments here; [`Policy::decide_with`] gives them some.
    pub fn decide<'p>(&'p self, scopes: &ScopeSet, action: &Action<'_>) -> Decision<'p> {
        self.decide_with(scopes, action, &Facts::none())
    }

    /// Decides one action with what its conditions read: `[[deny]]` rules first (forbid wins),
    /// then the rule's scopes (with its `require` blocks), then its `when`. Conditions are
    /// evaluated only where a rule carries them.
    pub fn decide_with<'p>(
        &'p self,
        scopes: &ScopeSet,
        action: &Action<'_>,
        facts: &Facts<'_>,
    ) -> Decision<'p> {
        let scope = Scope::new(
            facts,
            action.method,
            self.condition_tool(action),
            scopes,
            &self.args_read,
        );
        // A shadowed `[[deny]]` must not hide what the rest of the policy enforces.
        let mut shadowed = None;
        for deny in &self.deny {
            let (reason, note) = match deny.when.evaluate(&scope) {
                Outcome::True => (Reason::DeniedByRule, Cow::Borrowed(&*deny.reason)),
                Outcome::Error(error) => (Reason::ConditionError, Cow::Owned(error)),
                Outcome::False | Outcome::Unknown => continue,
            };
            let denial = Denial {
                reason,
                rule: None,
                mode: deny.mode,
                required: Vec::new(),
                missing: Vec::new(),
                condition: Some(&*deny.when.source),
                note: Some(note),
            };
            if deny.mode == Mode::Enforce {
                return Decision::Deny(denial);
            }
            shadowed.get_or_insert(denial);
        }
        let decision = self.decide_rule(action, &scope);
        match (decision, shadowed) {
            (Decision::Deny(denial), _) if denial.mode == Mode::Enforce => Decision::Deny(denial),
            (_, Some(shadowed)) => Decision::Deny(shadowed),
            (decision, None) => decision,
        }
    }

    /// The decision of the rule for `action`, or of its absence.
    fn decide_rule<'p>(&'p self, action: &Action<'_>, scope: &Scope<'_, '_>) -> Decision<'p> {
        let rule = if action.method == "tools/call" {
            let Some(tool) = action.target else {
                return self.deny_without_rule(Reason::MissingTarget);
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
            Some(rule) => rule.decide(scope.scopes(), scope),
            None => self.deny_without_rule(Reason::NoRule),
        }
    }

    /// Every condition that bears on `action`, in the order a decision meets them, each with its
    /// value for this call: what `policy explain` shows. Evaluates all of them, unlike a decision.
    pub fn condition_values<'p>(
        &'p self,
        scopes: &ScopeSet,
        action: &Action<'_>,
        facts: &Facts<'_>,
    ) -> Vec<ConditionValue<'p>> {
        let scope = Scope::new(
            facts,
            action.method,
            self.condition_tool(action),
            scopes,
            &self.args_read,
        );
        let mut values: Vec<ConditionValue<'p>> = self
            .deny
            .iter()
            .map(|deny| ConditionValue {
                role: format!("[[deny]] ({})", deny.reason),
                source: &deny.when.source,
                outcome: deny.when.evaluate(&scope),
            })
            .collect();
        let rule = match (action.method, action.target) {
            ("tools/call", Some(tool)) => self.tool_rule(tool),
            ("tools/call", None) => None,
            (method, _) => self.method_rule(method),
        };
        if let Some(rule) = rule {
            for require in &rule.require {
                values.push(ConditionValue {
                    role: format!("require {}", require.scopes.join(" ")),
                    source: &require.when.source,
                    outcome: require.when.evaluate(&scope),
                });
            }
            if let Some(when) = &rule.when {
                values.push(ConditionValue {
                    role: "when".into(),
                    source: &when.source,
                    outcome: when.evaluate(&scope),
                });
            }
        }
        values
    }

    /// `tool` as conditions see it: the tool's name for `tools/call`, else `""`.
    fn condition_tool<'a>(&self, action: &Action<'a>) -> &'a str {
        match (action.method, action.target) {
            ("tools/call", Some(tool)) => tool,
            _ => "",
        }
    }

    fn deny_without_rule(&self, reason: Reason) -> Decision<'_> {
        Decision::Deny(Denial {
            reason,
            rule: None,
            mode: self.mode,
            required: Vec::new(),
            missing: Vec::new(),
            condition: None,
            note: None,
        })
    }
}

/// Methods that need only a valid token unless a `[methods]` rule names them (the handshake,
/// keep-alive, listings, the change stream and notifications): the MCP method table says which.
pub(super) fn is_protocol_method(method: &str) -> bool {
    crate::mcp::methods::is_protocol(method)
}

impl Rule {
    fn as_ref(&self) -> RuleRef<'_> {
        RuleRef {
            index: self.index,
            name: &self.name,
            mode: self.mode,
            rate_limit: self.rate_limit,
        }
    }

    fn decide(&self, scopes: &ScopeSet, scope: &Scope<'_, '_>) -> Decision<'_> {
        // Scopes the matching `require` blocks add, in file order.
        let mut extra: Vec<&str> = Vec::new();
        for require in &self.require {
            match require.when.evaluate(scope) {
                Outcome::True => extra.extend(require.scopes.iter().map(|s| &**s)),
                Outcome::Error(error) => {
                    return self.deny_on(Reason::ConditionError, &require.when.source, error);
                }
                Outcome::False | Outcome::Unknown => {}
            }
        }
        let extra_held = extra.iter().all(|s| scopes.contains(s));
        let required: &[Box<str>] = match &self.need {
            Need::All(set) => {
                if extra_held && holds_all(scopes, set) {
                    return self.check_when(scope);
                }
                set
            }
            Need::AnyOf(sets) => {
                if extra_held && sets.iter().any(|set| holds_all(scopes, set)) {
                    return self.check_when(scope);
                }
                // Report the set the token is closest to; `min_by_key` keeps the first on ties.
                sets.iter()
                    .min_by_key(|set| lacking(scopes, set))
                    .map_or(&[], |set| set)
            }
        };
        let mut all: Vec<&str> = required.iter().map(|s| &**s).collect();
        for scope in extra {
            if !all.contains(&scope) {
                all.push(scope);
            }
        }
        Decision::Deny(Denial {
            reason: Reason::InsufficientScope,
            rule: Some(self.as_ref()),
            mode: self.mode,
            missing: all
                .iter()
                .copied()
                .filter(|s| !scopes.contains(s))
                .collect(),
            required: all,
            condition: None,
            note: None,
        })
    }

    /// The scopes are held: the rule allows where its `when` holds too.
    fn check_when(&self, scope: &Scope<'_, '_>) -> Decision<'_> {
        let Some(when) = &self.when else {
            return Decision::Allow {
                rule: Some(self.as_ref()),
            };
        };
        match when.evaluate(scope) {
            Outcome::True | Outcome::Unknown => Decision::Allow {
                rule: Some(self.as_ref()),
            },
            Outcome::False => Decision::Deny(Denial {
                reason: Reason::ConditionFailed,
                rule: Some(self.as_ref()),
                mode: self.mode,
                required: Vec::new(),
                missing: Vec::new(),
                condition: Some(&when.source),
                note: None,
            }),
            Outcome::Error(error) => self.deny_on(Reason::ConditionError, &when.source, error),
        }
    }

    fn deny_on<'p>(&'p self, reason: Reason, condition: &'p str, note: String) -> Decision<'p> {
        Decision::Deny(Denial {
            reason,
            rule: Some(self.as_ref()),
            mode: self.mode,
            required: Vec::new(),
            missing: Vec::new(),
            condition: Some(condition),
            note: Some(Cow::Owned(note)),
        })
    }
}

fn holds_all(scopes: &ScopeSet, set: &[Box<str>]) -> bool {
    set.iter().all(|s| scopes.contains(s))
}

fn lacking(scopes: &ScopeSet, set: &[Box<str>]) -> usize {
    set.iter().filter(|s| !scopes.contains(s)).count()
}
