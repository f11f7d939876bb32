//! Policy: the TOML policy model, loading, the compiled matcher and decisions.
//!
//! A policy says which token scopes each MCP call needs. It is loaded once (and again on reload)
//! into a [`Policy`], whose [`Policy::decide`] answers for one JSON-RPC message without touching
//! the file again. This module does not read tokens, parse JSON-RPC or count rate limits: it
//! takes the token's scopes as a [`ScopeSet`] and the message as an [`Action`], and hands the
//! rule's rate limit and mode back for the proxy to apply.
//!
//! Matching a `tools/call`: an exact tool name beats any glob; among globs, the first in file
//! order wins, so put narrow globs (`admin_delete_*`) before broad ones (`admin_*`). A tool
//! that no rule matches is denied.

mod cel_json;
pub mod cli;
mod compile;
mod condition;
mod counters;
mod decide;
mod error;
#[cfg(feature = "schema")]
mod file_schema;
mod glob;
mod hierarchy;
mod raw;
mod reads;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use condition::{Arguments, ClaimsCache, Facts, Outcome, VARIABLES};
pub use counters::RuleCounters;
pub use decide::{ConditionValue, Decision, Denial, RuleRef, ScopeSet};
pub use error::{PolicyError, Problem};
#[cfg(feature = "schema")]
pub use file_schema::json_schema;
pub use hierarchy::{Granted, GrantedCache};

/// The loaded policy with what is derived from it (the RFC 9728 document, whose
/// `scopes_supported` come from the policy), swapped as one on reload so a request never sees
/// one without the other.
pub struct PolicyState {
    pub policy: Policy,
    pub metadata_document: bytes::Bytes,
    /// The counters labelled by this policy's rules, resolved when it loaded.
    pub counters: RuleCounters,
}

use glob::GlobList;

/// What the policy decides about: one JSON-RPC message's method and, for `tools/call`,
/// `prompts/get`, `resources/read`…, its target (tool name, prompt name, resource URI).
///
/// Only `tools/call` rules look at the target today; other methods are ruled per method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action<'a> {
    pub method: &'a str,
    pub target: Option<&'a str>,
}

/// Whether a denial is enforced or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Deny: the call is refused.
    #[default]
    Enforce,
    /// Shadow roll-out: the denial is logged and counted, and the call goes through.
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// A rule's rate limit, `count` calls `per` period (written `"10/m"`). Counting is the proxy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// At least 1.
    pub count: u32,
    pub per: Per,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    Second,
    Minute,
    Hour,
}

impl RateLimit {
    /// The window the count applies to.
    pub fn period(&self) -> Duration {
        match self.per {
            Per::Second => Duration::from_secs(1),
            Per::Minute => Duration::from_secs(60),
            Per::Hour => Duration::from_secs(3600),
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per {
            Per::Second => "s",
            Per::Minute => "m",
            Per::Hour => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// A loaded, validated and compiled policy. Cheap to share (`Arc`) and to swap on reload.
#[derive(Debug)]
pub struct Policy {
    mode: Mode,
    rules: Vec<Rule>,
    /// Exact tool names, tried first.
    exact_tools: HashMap<Box<str>, RuleIndex>,
    /// Glob tool names in file order, indexed by literal prefix; tried when no exact name matches.
    glob_tools: GlobList<RuleIndex>,
    /// `[methods]` rules by exact method name.
    methods: HashMap<Box<str>, RuleIndex>,
    /// `[[deny]]` rules in file order: any that holds refuses the call.
    deny: Vec<DenyRule>,
    /// `[scopes]`: what each broad scope implies.
    hierarchy: hierarchy::Hierarchy,
    /// The fields of `args` that any condition reads: a call's arguments are converted for the
    /// conditions with only these.
    args_read: cel_json::ArgFields,
    source_hash: String,
}

/// A `[[deny]]` rule.
#[derive(Debug)]
struct DenyRule {
    when: condition::Condition,
    /// Told to the caller in the 403's `data`.
    reason: Box<str>,
    mode: Mode,
}

/// A `[[tools.require]]` block: `scopes` are needed too by the calls `when` holds for.
#[derive(Debug)]
struct Require {
    when: condition::Condition,
    scopes: Box<[Box<str>]>,
}

/// Index into `Policy::rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RuleIndex(usize);

#[derive(Debug)]
struct Rule {
    /// Its position in `Policy::rules`: what [`RuleRef::index`] and [`RuleCounters`] go by.
    index: usize,
    /// The tool name or pattern, or the method, as written.
    name: Box<str>,
    need: Need,
    /// Allows only where it holds too (version 2).
    when: Option<condition::Condition>,
    /// More scopes for some calls (version 2).
    require: Box<[Require]>,
    /// The rule's own mode, or else the policy's.
    mode: Mode,
    rate_limit: Option<RateLimit>,
}

/// The scopes a rule needs.
#[derive(Debug)]
enum Need {
    /// Every one of these (none: any valid token).
    All(Box<[Box<str>]>),
    /// Every scope of at least one of these sets; never empty, nor is any set.
    AnyOf(Box<[Box<[Box<str>]>]>),
}

impl Policy {
    /// Reads and compiles the policy file at `path`; errors name the path as given.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let source = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Policy::parse(&source, &path.display().to_string())
    }

    /// Compiles a policy from its text; `origin` (usually the file name) starts every message.
    pub fn parse(source: &str, origin: &str) -> Result<Policy, PolicyError> {
        let mut problems = error::Problems::default();
        let policy = raw::read(source, &mut problems)
            .map(|raw| compile::compile(raw, source, &mut problems));
        match policy {
            Some(policy) if problems.is_empty() => Ok(policy),
            _ => Err(problems.into_error(origin, source)),
        }
    }

    /// The policy-wide mode, which applies to rules without their own and to denials without a
    /// rule.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every scope that some rule or the `[scopes]` hierarchy names, deduplicated, narrowest
    /// first (a scope before every scope that implies it), else by name: the protected resource
    /// metadata's `scopes_supported` (RFC 9728).
    pub fn scopes_supported(&self) -> Vec<&str> {
        let mut scopes: Vec<&str> = Vec::new();
        for rule in &self.rules {
            match &rule.need {
                Need::All(set) => scopes.extend(set.iter().map(|s| &**s)),
                Need::AnyOf(sets) => scopes.extend(sets.iter().flatten().map(|s| &**s)),
            }
            for require in &rule.require {
                scopes.extend(require.scopes.iter().map(|s| &**s));
            }
        }
        scopes.extend(self.hierarchy.scopes());
        scopes.sort_unstable();
        scopes.dedup();
        scopes.sort_by_key(|scope| self.hierarchy.implied_count(scope));
        scopes
    }

    /// The token's scopes as this policy sees them: with every scope the `[scopes]` hierarchy
    /// implies. Expanded once per token and policy, then kept in `cache` (the verified token's).
    pub fn granted<'a>(&self, scopes: &'a ScopeSet, cache: &GrantedCache) -> Granted<'a> {
        self.hierarchy.expand(scopes, cache)
    }

    /// Whether some tool rule (exact or glob) matches `name`: only such names become metric
    /// labels, which keeps label values bounded by the policy rather than by callers.
    pub fn knows_tool(&self, name: &str) -> bool {
        self.tool_rule(name).is_some()
    }

    /// The name (exact or glob) of the rule for tool `name`: a bounded metric label.
    pub fn tool_rule_name(&self, name: &str) -> Option<&str> {
        self.tool_rule(name).map(|rule| &*rule.name)
    }

    /// The tool rules' names (exact or glob), as written: the `tool` label values of tool call
    /// counts under this policy, listed at 0 as soon as it loads.
    pub fn tool_rule_names(&self) -> impl Iterator<Item = &str> {
        let is_method = |index: usize| self.methods.values().any(|method| method.0 == index);
        self.rules
            .iter()
            .enumerate()
            .filter(move |&(index, _)| !is_method(index))
            .map(|(_, rule)| &*rule.name)
    }

    /// The names of the rules with a rate limit, tools' and methods': the `tool` label values of
    /// rate-limit refusals under this policy.
    pub fn rate_limited_rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .filter(|rule| rule.rate_limit.is_some())
            .map(|rule| &*rule.name)
    }

    /// Hex of a 64-bit FNV-1a hash of the policy text, to tell which policy is running.
    pub fn source_hash(&self) -> &str {
        &self.source_hash
    }

    /// The rule for tool `name`: exact name first, then globs in file order.
    fn tool_rule(&self, name: &str) -> Option<&Rule> {
        let index = match self.exact_tools.get(name) {
            Some(&index) => index,
            None => self.glob_tools.first_match(name)?,
        };
        Some(&self.rules[index.0])
    }

    fn method_rule(&self, method: &str) -> Option<&Rule> {
        self.methods.get(method).map(|&index| &self.rules[index.0])
    }
}

/// 64-bit FNV-1a: stable across builds and platforms, unlike `std`'s hasher.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(PRIME)
    })
}
