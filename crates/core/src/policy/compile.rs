//! From the raw model to a [`Policy`]: checks what each value means (version, globs, scopes,
//! rate limits, modes, duplicates) and builds the lookup tables. Owns the semantic checks; not
//! syntax or key names (`raw.rs`), nor decisions (`decide.rs`).

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use toml::Spanned;

use super::cel_json;
use super::condition::Condition;
use super::error::{Problems, line_of};
use super::glob::{Glob, GlobList, RESERVED};
use super::hierarchy::Hierarchy;
use super::raw::{Entry, RawPolicy};
use super::{DenyRule, Mode, Need, Per, Policy, RateLimit, Require, Rule, RuleIndex, fnv1a_64};

/// The newest policy format this build reads; version 1 files load unchanged.
const VERSION: i64 = 2;
/// The first version with `[scopes]`, `when`, `[[tools.require]]` and `[[deny]]`.
const CONDITIONS_VERSION: i64 = 2;

/// Builds the policy, reporting every semantic problem. The result is only used when no
/// problem was found, so a bad rule is simply left out.
pub(super) fn compile(raw: RawPolicy, source: &str, problems: &mut Problems) -> Policy {
    // A missing version is reported by `raw::read`, which sees the keys.
    match &raw.version {
        Some(version) if !(1..=VERSION).contains(&version.value) => problems.push(
            version.at,
            "version",
            format!(
                "unsupported version {}; this scopegate reads versions 1 to {VERSION}",
                version.value
            ),
        ),
        _ => {}
    }
    let version = raw.version.as_ref().map_or(1, |v| v.value);
    check_version_2_keys(&raw, version, problems);
    if let Some(default) = &raw.default
        && default.value != "deny"
    {
        problems.push(
            default.at,
            "default",
            format!(
                "{:?} is not supported; the only default is \"deny\"",
                default.value
            ),
        );
    }
    let mode = match &raw.mode {
        None => Mode::default(),
        Some(mode) => parse_mode(&mode.value).unwrap_or_else(|message| {
            problems.push(mode.at, "mode", message);
            Mode::default()
        }),
    };

    let mut policy = Policy {
        mode,
        rules: Vec::new(),
        exact_tools: HashMap::new(),
        glob_tools: GlobList::default(),
        methods: HashMap::new(),
        deny: compile_deny(&raw, mode, problems),
        hierarchy: compile_hierarchy(&raw, problems),
        args_read: Default::default(),
        source_hash: format!("{:016x}", fnv1a_64(source.as_bytes())),
    };

    // Offset of each tool name's first rule, to point back at it from a duplicate.
    let mut first_at: HashMap<&str, usize> = HashMap::new();
    for entry in &raw.tools {
        let rule = compile_rule(
            entry,
            entry.rule.name.as_deref().unwrap_or(""),
            mode,
            problems,
        );
        let Some(name) = &entry.rule.name else {
            problems.push(
                entry.at,
                &entry.path,
                "missing name: the tool's exact name, or a glob such as \"admin_*\"",
            );
            continue;
        };
        let name_at = entry.key_at("name");
        if let Err(message) = check_tool_name(name) {
            problems.push(name_at, entry.key_path("name"), message);
            continue;
        }
        match first_at.entry(name) {
            MapEntry::Occupied(first) => {
                problems.push(
                    name_at,
                    entry.key_path("name"),
                    format!(
                        "duplicate rule for {name:?} (first at line {})",
                        line_of(source, *first.get())
                    ),
                );
                continue;
            }
            MapEntry::Vacant(slot) => {
                slot.insert(name_at);
            }
        }
        let Some(mut rule) = rule else { continue };
        let index = RuleIndex(policy.rules.len());
        rule.index = index.0;
        policy.rules.push(rule);
        if Glob::is_glob(name) {
            policy.glob_tools.push(Glob::new(name), index);
        } else {
            policy.exact_tools.insert(name.as_str().into(), index);
        }
    }

    for entry in &raw.methods {
        let Some(method) = &entry.method else {
            continue;
        };
        let rule = compile_rule(entry, &method.value, mode, problems);
        if let Err(message) = check_method(&method.value) {
            problems.push(method.at, &entry.path, message);
            continue;
        }
        let Some(mut rule) = rule else { continue };
        let index = RuleIndex(policy.rules.len());
        rule.index = index.0;
        match policy.methods.entry(method.value.as_str().into()) {
            // TOML already refuses a key twice in one table; kept so the invariant is local.
            MapEntry::Occupied(_) => problems.push(
                method.at,
                &entry.path,
                format!("duplicate rule for {:?}", method.value),
            ),
            MapEntry::Vacant(slot) => {
                slot.insert(index);
                policy.rules.push(rule);
            }
        }
    }
    let mut args_read = cel_json::ArgFields::default();
    let rule_conditions = policy
        .rules
        .iter()
        .flat_map(|rule| rule.when.iter().chain(rule.require.iter().map(|r| &r.when)));
    for condition in rule_conditions.chain(policy.deny.iter().map(|deny| &deny.when)) {
        condition.read_args_into(&mut args_read);
    }
    policy.args_read = args_read;
    policy
}

/// Compiles what tool and method rules share; `name` is the tool pattern or method, checked by
/// the caller.
fn compile_rule(
    entry: &Entry,
    name: &str,
    policy_mode: Mode,
    problems: &mut Problems,
) -> Option<Rule> {
    let raw = &entry.rule;
    let mut ok = true;
    let mut report = |at: usize, key: String, message: String| {
        ok = false;
        problems.push(at, key, message);
    };

    let need = match (&raw.scopes, &raw.any_of) {
        (Some(_), Some(_)) => {
            report(
                entry.key_at("any_of"),
                entry.path.clone(),
                "has both scopes and any_of; keep one".into(),
            );
            None
        }
        (None, None) => {
            report(
                entry.at,
                entry.path.clone(),
                "needs scopes = [...] or any_of = [[...], ...]; scopes = [] allows any valid token"
                    .into(),
            );
            None
        }
        (Some(scopes), None) => Some(Need::All(scope_set(
            scopes,
            &entry.key_path("scopes"),
            &mut report,
        ))),
        (None, Some(sets)) => {
            if sets.is_empty() {
                report(
                    entry.key_at("any_of"),
                    entry.key_path("any_of"),
                    "needs at least one set of scopes".into(),
                );
            }
            let path = entry.key_path("any_of");
            let sets = sets
                .iter()
                .enumerate()
                .map(|(i, set)| {
                    let set_path = format!("{path}[{i}]");
                    if set.get_ref().is_empty() {
                        report(
                            set.span().start,
                            set_path.clone(),
                            "empty set; to allow any valid token, use scopes = [] instead".into(),
                        );
                    }
                    scope_set(set.get_ref(), &set_path, &mut report)
                })
                .collect();
            Some(Need::AnyOf(sets))
        }
    };

    let rate_limit = raw.rate_limit.as_deref().and_then(|text| {
        parse_rate_limit(text)
            .map_err(|message| {
                report(
                    entry.key_at("rate_limit"),
                    entry.key_path("rate_limit"),
                    message,
                )
            })
            .ok()
    });
    let mode = match raw.mode.as_deref() {
        None => policy_mode,
        Some(text) => parse_mode(text).unwrap_or_else(|message| {
            report(entry.key_at("mode"), entry.key_path("mode"), message);
            policy_mode
        }),
    };

    let when = raw
        .when
        .as_ref()
        .and_then(|when| condition(when, &entry.key_path("when"), problems));
    if raw.when.is_some() && when.is_none() {
        ok = false;
    }
    let mut require = Vec::new();
    for (i, block) in raw.require.iter().flatten().enumerate() {
        let path = format!("{}[{i}]", entry.key_path("require"));
        let block = block.get_ref();
        let mut block_ok = true;
        let scopes = scope_set(
            &block.scopes,
            &format!("{path}.scopes"),
            &mut |at, key, message| {
                block_ok = false;
                problems.push(at, key, message);
            },
        );
        if block.scopes.is_empty() {
            block_ok = false;
            problems.push(
                block.when.span().start,
                format!("{path}.scopes"),
                "needs at least one scope: a require block adds scopes to the calls it matches",
            );
        }
        match condition(&block.when, &format!("{path}.when"), problems) {
            Some(when) if block_ok => require.push(Require { when, scopes }),
            _ => ok = false,
        }
    }

    let need = need?;
    ok.then(|| Rule {
        // Set when the rule takes its place.
        index: 0,
        name: name.into(),
        need,
        when,
        require: require.into(),
        mode,
        rate_limit,
    })
}

/// Compiles one `when` expression, reporting a problem at its value.
fn condition(when: &Spanned<String>, path: &str, problems: &mut Problems) -> Option<Condition> {
    Condition::compile(when.get_ref())
        .map_err(|message| problems.push(when.span().start, path, message))
        .ok()
}

/// Version 2 keys in a file that says it is version 1 are errors that name the fix.
fn check_version_2_keys(raw: &RawPolicy, version: i64, problems: &mut Problems) {
    if version >= CONDITIONS_VERSION {
        return;
    }
    let needs = |what: &str| format!("{what} needs version = {CONDITIONS_VERSION}");
    if let Some(hierarchy) = &raw.hierarchy {
        problems.push(hierarchy.at, "scopes", needs("a [scopes] hierarchy"));
    }
    for (i, deny) in raw.deny.iter().enumerate() {
        problems.push(deny.at, format!("deny[{i}]"), needs("a [[deny]] rule"));
    }
    for entry in raw.tools.iter().chain(&raw.methods) {
        if entry.rule.when.is_some() {
            problems.push(entry.key_at("when"), entry.key_path("when"), needs("when"));
        }
        if entry.rule.require.is_some() {
            problems.push(
                entry.key_at("require"),
                entry.key_path("require"),
                needs("require"),
            );
        }
    }
}

fn compile_deny(raw: &RawPolicy, policy_mode: Mode, problems: &mut Problems) -> Vec<DenyRule> {
    let mut rules = Vec::new();
    for (i, deny) in raw.deny.iter().enumerate() {
        let path = format!("deny[{i}]");
        let mode = match deny.value.mode.as_deref() {
            None => policy_mode,
            Some(text) => parse_mode(text).unwrap_or_else(|message| {
                problems.push(deny.at, format!("{path}.mode"), message);
                policy_mode
            }),
        };
        if deny.value.reason.trim().is_empty() {
            problems.push(
                deny.at,
                format!("{path}.reason"),
                "empty; say why, the caller is told",
            );
        }
        if let Some(when) = condition(&deny.value.when, &format!("{path}.when"), problems) {
            rules.push(DenyRule {
                when,
                reason: deny.value.reason.as_str().into(),
                mode,
            });
        }
    }
    rules
}

fn compile_hierarchy(raw: &RawPolicy, problems: &mut Problems) -> Hierarchy {
    let Some(hierarchy) = &raw.hierarchy else {
        return Hierarchy::default();
    };
    let mut edges = Vec::new();
    for (scope, narrower) in &hierarchy.value {
        let path = format!("scopes.{}", super::raw::quote_key(&scope.value));
        if let Err(message) = check_scope(&scope.value) {
            problems.push(scope.at, path.clone(), message);
        }
        let mut checked = Vec::new();
        for (i, narrow) in narrower.iter().enumerate() {
            match check_scope(narrow.get_ref()) {
                Ok(()) => checked.push(narrow.get_ref().as_str()),
                Err(message) => problems.push(narrow.span().start, format!("{path}[{i}]"), message),
            }
        }
        edges.push((scope.value.as_str(), checked, scope.at));
    }
    Hierarchy::build(&edges, &mut |at, message| {
        problems.push(at, "scopes", message)
    })
}

/// Checks each scope and drops repeats, keeping the order written (it is the order the
/// challenge lists them in).
fn scope_set(
    scopes: &[Spanned<String>],
    path: &str,
    report: &mut impl FnMut(usize, String, String),
) -> Box<[Box<str>]> {
    let mut set: Vec<Box<str>> = Vec::with_capacity(scopes.len());
    for (i, scope) in scopes.iter().enumerate() {
        if let Err(message) = check_scope(scope.get_ref()) {
            report(scope.span().start, format!("{path}[{i}]"), message);
        } else if !set.iter().any(|s| **s == **scope.get_ref()) {
            set.push(scope.get_ref().as_str().into());
        }
    }
    set.into()
}

/// A scope is an RFC 6749 §3.3 scope-token: printable ASCII without space, `"` or `\`. It is
/// echoed inside a quoted WWW-Authenticate parameter, where anything else could break out.
fn check_scope(scope: &str) -> Result<(), String> {
    let allowed = |b: u8| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E);
    if scope.is_empty() {
        Err("empty scope".into())
    } else if !scope.bytes().all(allowed) {
        Err(format!(
            "{scope:?} is not a valid scope: printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)"
        ))
    } else {
        Ok(())
    }
}

fn check_tool_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name; name a tool, or use a glob such as \"admin_*\"".into());
    }
    match name.chars().find(|c| RESERVED.contains(c)) {
        Some(c) => Err(format!(
            "{name:?} contains {c:?}, which is not allowed; the only glob characters are * and ?"
        )),
        None => Ok(()),
    }
}

fn check_method(method: &str) -> Result<(), String> {
    if method.is_empty() {
        Err("empty method name".into())
    } else if method.eq_ignore_ascii_case("tools/call") {
        // Also for odd case: such a rule could only ever allow a spelling that a lenient server
        // might still run as tools/call, past the per-tool rules.
        Err("tools/call is ruled per tool by [[tools]] entries, not under [methods]".into())
    } else if Glob::is_glob(method) {
        Err(format!(
            "{method:?}: method rules name one method exactly; globs are for [[tools]] names"
        ))
    } else {
        Ok(())
    }
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    match text {
        "enforce" => Ok(Mode::Enforce),
        "audit" => Ok(Mode::Audit),
        _ => Err(format!(
            "{text:?} is not a mode; expected \"enforce\" or \"audit\""
        )),
    }
}

/// Parses `N/s`, `N/m` or `N/h` with N at least 1.
fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let malformed = || format!("{text:?} is not a rate such as \"10/s\", \"10/m\" or \"10/h\"");
    let (count, unit) = text.split_once('/').ok_or_else(malformed)?;
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let count: u32 = count
        .parse()
        .map_err(|_| format!("{text:?}: the count is too large"))?;
    if count == 0 {
        return Err(format!(
            "{text:?} allows no calls; to refuse a tool, remove its rule"
        ));
    }
    let per = match unit {
        "s" => Per::Second,
        "m" => Per::Minute,
        "h" => Per::Hour,
        _ => return Err(malformed()),
    };
    Ok(RateLimit { count, per })
}

#[cfg(test)]
mod tests {
    use super::parse_rate_limit;
    use crate::policy::{Per, RateLimit};

    #[test]
    fn rate_limit_reads_count_and_unit() {
        assert_eq!(
            parse_rate_limit("10/m"),
            Ok(RateLimit {
                count: 10,
                per: Per::Minute
            })
        );
        assert_eq!(parse_rate_limit("1/s").map(|r| r.per), Ok(Per::Second));
        assert_eq!(
            parse_rate_limit("3600/h").map(|r| r.to_string()),
            Ok("3600/h".into())
        );
        for bad in [
            "",
            "10",
            "/m",
            "10/",
            "10/min",
            "+10/m",
            "-1/m",
            "1.5/m",
            "10 /m",
            "0/m",
            "99999999999/s",
        ] {
            assert!(parse_rate_limit(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
