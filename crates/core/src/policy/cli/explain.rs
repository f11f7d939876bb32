//! `scopegate policy explain`: which rule decides one call for one token, and why. The decision
//! printed is [`Policy::decide`]'s; this module only finds the same rule again to show where it
//! is written.

use std::io::{self, Write};
use std::path::Path;

use super::super::decide::is_protocol_method;
use super::super::{
    Action, Arguments, ClaimsCache, Decision, Facts, GrantedCache, Mode, Need, Outcome, Policy,
    Rule, ScopeSet,
};
use super::{Loaded, load, report_findings};

/// How the deciding rule was found.
enum Found<'p> {
    Exact(&'p Rule),
    Glob(&'p Rule),
    Method(&'p Rule),
    /// A protocol method that no rule names: any valid token.
    Protocol,
    /// No rule: the default deny.
    Default,
}

/// One call to explain.
#[derive(Debug, Clone, Copy, Default)]
pub struct Call<'a> {
    /// The token's scopes, space-separated.
    pub scopes: &'a str,
    pub method: &'a str,
    /// The tool of a `tools/call`.
    pub tool: Option<&'a str>,
    /// The token's other claims, a JSON object (`jwt` in conditions).
    pub claims: Option<&'a str>,
    /// The call's arguments, a JSON object (`args` in conditions).
    pub arguments: Option<&'a str>,
}

/// Explains the decision for one call. Passes when the policy loads and the claims and arguments
/// are JSON objects, whatever the decision.
pub fn explain(policy_path: &Path, call: &Call<'_>, out: &mut dyn Write) -> io::Result<bool> {
    let loaded = match load(policy_path) {
        Ok(loaded) => loaded,
        Err(findings) => return report_findings(&findings, out),
    };
    let policy = &loaded.policy;
    let claims = match call.claims.map(serde_json::from_str::<serde_json::Value>) {
        None => serde_json::Map::new(),
        Some(Ok(serde_json::Value::Object(claims))) => claims,
        Some(_) => {
            writeln!(out, "error: --claims is not a JSON object")?;
            return Ok(false);
        }
    };
    let arguments = match call
        .arguments
        .map(|text| serde_json::value::RawValue::from_string(text.to_owned()))
    {
        None => None,
        Some(Ok(raw)) if raw.get().trim_start().starts_with('{') => Some(raw),
        Some(_) => {
            writeln!(out, "error: --args is not a JSON object")?;
            return Ok(false);
        }
    };
    let (scopes, method, tool) = (call.scopes, call.method, call.tool);
    let issued = ScopeSet::new(scopes.split_whitespace());
    let held = policy.granted(&issued, &GrantedCache::default());
    let action = Action {
        method,
        target: tool,
    };
    let claims_cache = ClaimsCache::default();
    let facts = Facts {
        claims: &claims,
        claims_cache: &claims_cache,
        arguments: Arguments::Raw(arguments.as_deref()),
    };
    let decision = policy.decide_with(&held, &action, &facts);
    let conditions = policy.condition_values(&held, &action, &facts);
    let found = find(policy, &action);

    let call = match tool {
        Some(tool) => format!("{method} {tool}"),
        None => method.to_owned(),
    };
    writeln!(out, "call:      {call}")?;
    writeln!(out, "rule:      {}", rule_line(&loaded, &found))?;
    writeln!(out, "why:       {}", why(&found, &action))?;
    writeln!(out, "requires:  {}", requires(&found))?;
    writeln!(out, "limit:     {}", limit(&found))?;
    writeln!(out, "held:      {}", words(held.iter()))?;
    for condition in &conditions {
        let value = match &condition.outcome {
            Outcome::True => "true".to_owned(),
            Outcome::False => "false".to_owned(),
            Outcome::Unknown => "unknown".to_owned(),
            Outcome::Error(error) => format!("error: {error} (denies)"),
        };
        writeln!(
            out,
            "condition: {} '{}' = {value}",
            condition.role, condition.source
        )?;
    }
    let (missing, mode, outcome) = match &decision {
        Decision::Allow { rule } => (
            "(none)".to_owned(),
            rule.map_or(policy.mode(), |r| r.mode),
            "allow".to_owned(),
        ),
        Decision::Deny(denial) => (
            words(denial.missing.iter().copied()),
            denial.mode,
            match denial.mode {
                Mode::Enforce => format!("deny ({})", denial.reason.as_str()),
                Mode::Audit => format!(
                    "would_deny ({}): audit mode, so the call goes through and the denial is \
                     logged",
                    denial.reason.as_str()
                ),
            },
        ),
    };
    writeln!(out, "missing:   {missing}")?;
    writeln!(out, "mode:      {}", mode.as_str())?;
    writeln!(out, "decision:  {outcome}")?;
    Ok(true)
}

/// The rule `decide` uses, found the same way: exact tool name, then globs in file order; for
/// other methods the `[methods]` rule, then the protocol methods.
fn find<'p>(policy: &'p Policy, action: &Action<'_>) -> Found<'p> {
    if action.method == "tools/call" {
        let Some(tool) = action.target else {
            return Found::Default;
        };
        if let Some(index) = policy.exact_tools.get(tool) {
            return Found::Exact(&policy.rules[index.0]);
        }
        return match policy.glob_tools.first_match(tool) {
            Some(index) => Found::Glob(&policy.rules[index.0]),
            None => Found::Default,
        };
    }
    match policy.methods.get(action.method) {
        Some(index) => Found::Method(&policy.rules[index.0]),
        None if is_protocol_method(action.method) => Found::Protocol,
        None => Found::Default,
    }
}

fn rule_line(loaded: &Loaded, found: &Found<'_>) -> String {
    let sites = loaded.sites();
    let (rule, kind, site) = match found {
        Found::Exact(rule) => (rule, "exact", sites.tools.get(&*rule.name)),
        Found::Glob(rule) => (rule, "glob", sites.tools.get(&*rule.name)),
        Found::Method(rule) => (rule, "method", sites.methods.get(&*rule.name)),
        Found::Protocol => return "(none: protocol method)".to_owned(),
        Found::Default => return "(none: default deny)".to_owned(),
    };
    match site {
        Some((path, at)) => format!(
            "{path} {:?} ({kind}, {}:{})",
            rule.name,
            loaded.origin,
            loaded.line(*at)
        ),
        None => format!("{:?} ({kind})", rule.name),
    }
}

fn why(found: &Found<'_>, action: &Action<'_>) -> String {
    let target = action.target.unwrap_or("");
    match found {
        Found::Exact(_) => "an exact rule names this tool; exact names beat every glob".into(),
        Found::Glob(rule) => format!(
            "no exact rule names {target:?}; {:?} is the first glob in file order that matches it",
            rule.name
        ),
        Found::Method(_) => "a [methods] rule names this method".into(),
        Found::Protocol => format!(
            "{:?} is a protocol method and no [methods] rule names it: any valid token will do",
            action.method
        ),
        Found::Default if action.method == "tools/call" && action.target.is_none() => {
            "a tools/call without a tool name is always denied".into()
        }
        Found::Default if action.method == "tools/call" => {
            format!("no rule matches the tool {target:?}: denied by default")
        }
        Found::Default => format!(
            "no [methods] rule names {:?} and it is not a protocol method: denied by default",
            action.method
        ),
    }
}

fn requires(found: &Found<'_>) -> String {
    let rule = match found {
        Found::Exact(rule) | Found::Glob(rule) | Found::Method(rule) => rule,
        Found::Protocol => return "a valid token".into(),
        Found::Default => return "(nothing allows it)".into(),
    };
    match &rule.need {
        Need::All(set) if set.is_empty() => "a valid token".into(),
        Need::All(set) => format!("all of: {}", words(set.iter().map(|s| &**s))),
        Need::AnyOf(sets) => {
            let sets: Vec<String> = sets
                .iter()
                .map(|set| format!("[{}]", words(set.iter().map(|s| &**s))))
                .collect();
            format!("one of: {}", sets.join(" "))
        }
    }
}

/// The rule's `rate_limit`: what the proxy allows each token subject before it answers 429.
fn limit(found: &Found<'_>) -> String {
    match found {
        Found::Exact(rule) | Found::Glob(rule) | Found::Method(rule) => match rule.rate_limit {
            Some(limit) => format!("{limit} per token subject"),
            None => "(none)".into(),
        },
        Found::Protocol | Found::Default => "(none)".into(),
    }
}

fn words<'a>(scopes: impl Iterator<Item = &'a str>) -> String {
    let scopes: Vec<&str> = scopes.collect();
    if scopes.is_empty() {
        "(none)".into()
    } else {
        scopes.join(" ")
    }
}
