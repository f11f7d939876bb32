//! Lints for a policy that loads: rules that can never match, `[methods]` rules that put scopes
//! on protocol methods or name no MCP method, and scopes outside the issuer's known set. Owns
//! these checks; load errors (syntax, unknown keys, bad globs, duplicates) are `Policy::parse`'s.
//!
//! The shadowing check is sound but not complete: when it reports a glob as shadowed, every name
//! that glob matches is taken by the earlier one; it can miss a glob that is covered only because
//! a `?` of the earlier glob can line up with part of a `*` in the later one (`*a?*` covers
//! `*a*a`, which is not reported).

use std::collections::BTreeSet;

use toml::Spanned;

use super::super::condition::Condition;
use super::super::decide::is_protocol_method;
use super::super::glob::Glob;
use super::{Finding, Loaded, Severity};

/// Every lint finding for one loaded policy, in file order.
pub(super) fn lint(loaded: &Loaded, known_scopes: Option<&[String]>) -> Vec<Finding> {
    let mut findings = Vec::new();
    shadowed_globs(loaded, &mut findings);
    method_rules(loaded, &mut findings);
    untested_claims(loaded, &mut findings);
    if let Some(known) = known_scopes {
        unknown_and_unused_scopes(loaded, known, &mut findings);
    }
    findings.sort_by_key(|finding| finding.line);
    findings
}

/// Claims every accepted token carries (the proxy refuses a token without them).
const REQUIRED_CLAIMS: [&str; 3] = ["iss", "aud", "exp"];

/// A condition that reads an optional claim without `has()` fails for a token without it, and a
/// failed condition denies (`condition_error`): usually meant, but then say so with `has()`.
fn untested_claims(loaded: &Loaded, findings: &mut Vec<Finding>) {
    let raw = &loaded.raw;
    let mut conditions: Vec<(&Spanned<String>, String)> = Vec::new();
    for entry in raw.tools.iter().chain(&raw.methods) {
        if let Some(when) = &entry.rule.when {
            conditions.push((when, entry.key_path("when")));
        }
        for (i, block) in entry.rule.require.iter().flatten().enumerate() {
            let path = format!("{}[{i}].when", entry.key_path("require"));
            conditions.push((&block.get_ref().when, path));
        }
    }
    for (i, deny) in raw.deny.iter().enumerate() {
        conditions.push((&deny.value.when, format!("deny[{i}].when")));
    }
    for (when, path) in conditions {
        let Ok(condition) = Condition::compile(when.get_ref()) else {
            continue;
        };
        for field in condition.untested_fields("jwt") {
            if REQUIRED_CLAIMS.contains(&field) {
                continue;
            }
            findings.push(loaded.finding(
                when.span().start,
                Severity::Warning,
                &path,
                format!(
                    "reads jwt.{field} without has(jwt.{field}): a token without that claim is \
                     denied as a condition error; test it first, e.g. has(jwt.{field}) && …"
                ),
            ));
        }
    }
}

/// A glob is tried only when no exact name matches, and then only if no earlier glob matched.
/// So a glob that an earlier glob covers can never match: an error, because the rule the author
/// wrote (often a stricter one, `admin_*` after `*`) is silently not applied. An exact name
/// always beats globs and is never shadowed.
fn shadowed_globs(loaded: &Loaded, findings: &mut Vec<Finding>) {
    let mut earlier: Vec<(&str, usize)> = Vec::new();
    for entry in &loaded.raw.tools {
        let Some(name) = entry.rule.name.as_deref() else {
            continue;
        };
        if !Glob::is_glob(name) {
            continue;
        }
        let at = entry.key_at("name");
        if let Some((cover, cover_at)) = earlier.iter().find(|(e, _)| covers(e, name)) {
            findings.push(loaded.finding(
                at,
                Severity::Error,
                &entry.key_path("name"),
                format!(
                    "{name:?} can never match: the earlier glob {cover:?} (line {}) matches every \
                     name it matches; move this rule above it, or remove it",
                    loaded.line(*cover_at)
                ),
            ));
        }
        earlier.push((name, at));
    }
}

/// `[methods]` rules on protocol methods (which need only a token unless a rule says otherwise)
/// and on names that are no MCP method.
fn method_rules(loaded: &Loaded, findings: &mut Vec<Finding>) {
    for entry in &loaded.raw.methods {
        let Some(method) = &entry.method else {
            continue;
        };
        let name = method.value.as_str();
        let needs_scopes = match (&entry.rule.scopes, &entry.rule.any_of) {
            (Some(scopes), _) => !scopes.is_empty(),
            (None, Some(_)) => true,
            (None, None) => false,
        };
        if is_protocol_method(name) {
            if needs_scopes {
                findings.push(loaded.finding(
                    method.at,
                    Severity::Warning,
                    &entry.path,
                    format!(
                        "{name:?} is a protocol method, which needs only a valid token by \
                         default; this rule makes it need scopes, so a token without them \
                         cannot {}",
                        protocol_consequence(name)
                    ),
                ));
            }
        } else if !crate::mcp::methods::is_client_request(name) {
            findings.push(loaded.finding(
                method.at,
                Severity::Warning,
                &entry.path,
                format!(
                    "{name:?} is not an MCP request method; if it is a typo, the method meant \
                     is still denied by default"
                ),
            ));
        }
    }
}

fn protocol_consequence(method: &str) -> &'static str {
    match method {
        "initialize" | "server/discover" => "start a session at all",
        "subscriptions/listen" => "hear of changes",
        "ping" => "keep its session alive",
        m if m.starts_with("notifications/") => "send this notification",
        m if m.starts_with("tasks/") => "follow the tasks its own calls created",
        _ => "list what the server offers",
    }
}

/// With the issuer's scopes known: a rule scope outside them is a warning at the scope (a typo,
/// or a scope no token can carry, which makes the rule unsatisfiable); a known scope that no rule
/// names is a warning on the file (granted, but it guards nothing here).
fn unknown_and_unused_scopes(loaded: &Loaded, known: &[String], findings: &mut Vec<Finding>) {
    let known: BTreeSet<&str> = known.iter().map(String::as_str).collect();
    let entries = loaded.raw.tools.iter().chain(&loaded.raw.methods);
    for entry in entries {
        let mut scopes: Vec<(String, &toml::Spanned<String>)> = Vec::new();
        if let Some(list) = &entry.rule.scopes {
            let path = entry.key_path("scopes");
            scopes.extend(
                list.iter()
                    .enumerate()
                    .map(|(i, s)| (format!("{path}[{i}]"), s)),
            );
        }
        if let Some(sets) = &entry.rule.any_of {
            let path = entry.key_path("any_of");
            for (i, set) in sets.iter().enumerate() {
                scopes.extend(
                    set.get_ref()
                        .iter()
                        .enumerate()
                        .map(|(j, s)| (format!("{path}[{i}][{j}]"), s)),
                );
            }
        }
        for (path, scope) in scopes {
            if !known.contains(scope.get_ref().as_str()) {
                findings.push(loaded.finding(
                    scope.span().start,
                    Severity::Warning,
                    &path,
                    format!(
                        "scope {:?} is not among the known scopes; no token will carry it",
                        scope.get_ref()
                    ),
                ));
            }
        }
    }
    let used = loaded.policy.scopes_supported();
    for scope in known {
        if !used.contains(&scope) {
            findings.push(Finding::file(
                &loaded.origin,
                Severity::Warning,
                format!("known scope {scope:?} is used by no rule"),
            ));
        }
    }
}

/// One glob element. A run of wildcards is normalised to its `?`s then at most one `*`, which
/// matches the same names (`*?` and `?*` are both "at least one character").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    One,
    Char(char),
}

fn tokens(pattern: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let (mut ones, mut star) = (0, false);
    let flush = |out: &mut Vec<Token>, ones: &mut usize, star: &mut bool| {
        out.extend(std::iter::repeat_n(Token::One, *ones));
        if *star {
            out.push(Token::Star);
        }
        (*ones, *star) = (0, false);
    };
    for c in pattern.chars() {
        match c {
            '*' => star = true,
            '?' => ones += 1,
            c => {
                flush(&mut out, &mut ones, &mut star);
                out.push(Token::Char(c));
            }
        }
    }
    flush(&mut out, &mut ones, &mut star);
    out
}

/// Whether glob `a` matches every name glob `b` matches (sound; see the module docs for what it
/// misses). It matches `a` against `b` read as a string of tokens: a `*` of `a` takes any run of
/// `b`'s tokens, a `?` takes one `?` or character, a character only the same character. If that
/// succeeds, every name `b` matches is matched by `a` through the same alignment.
pub(super) fn covers(a: &str, b: &str) -> bool {
    let (a, b) = (tokens(a), tokens(b));
    // can[i][j]: a[i..] covers b[j..]. Filled from the ends backwards.
    let mut can = vec![vec![false; b.len() + 1]; a.len() + 1];
    can[a.len()][b.len()] = true;
    for i in (0..a.len()).rev() {
        for j in (0..=b.len()).rev() {
            can[i][j] = match (a[i], b.get(j)) {
                (Token::Star, next) => can[i + 1][j] || (next.is_some() && can[i][j + 1]),
                (_, None) => false,
                (Token::One, Some(Token::One | Token::Char(_))) => can[i + 1][j + 1],
                (Token::Char(x), Some(Token::Char(y))) => x == *y && can[i + 1][j + 1],
                _ => false,
            };
        }
    }
    can[0][0]
}

#[cfg(test)]
mod tests {
    use super::covers;
    use crate::policy::glob::Glob;

    #[test]
    fn a_star_covers_every_glob() {
        for b in ["admin_*", "*", "?", "a?c*", "*x*"] {
            assert!(covers("*", b), "{b}");
        }
    }

    #[test]
    fn prefix_globs_cover_longer_prefixes_only() {
        assert!(covers("get_*", "get_customer_*"));
        assert!(covers("get_*", "get_?"));
        assert!(!covers("get_customer_*", "get_*"));
        assert!(!covers("admin_*", "*_admin"));
        assert!(!covers("admin_?", "admin_*"));
        assert!(covers("admin_*", "admin_?"));
    }

    #[test]
    fn wildcard_runs_are_normalised() {
        assert!(covers("*?", "?*"));
        assert!(covers("?*", "*?"));
        assert!(covers("**", "*"));
        assert!(!covers("??*", "?*"));
    }

    #[test]
    fn infixes_and_suffixes() {
        assert!(covers("*_user", "delete_*_user"));
        assert!(covers("*delete*", "admin_delete_*"));
        assert!(!covers("*delete*", "admin_*"));
        assert!(!covers("*a*b", "*b*a"));
    }

    /// Soundness against the matcher: whenever `covers(a, b)`, every name from a sample that `b`
    /// matches, `a` matches too.
    #[test]
    fn covers_never_claims_what_the_matcher_denies() {
        let patterns = [
            "*", "?", "a*", "*a", "a?", "?a", "*a*", "a*b", "*a?*", "*a*a", "?*", "*?", "ab*",
            "a*b*", "*b*a", "??", "a**",
        ];
        let names = [
            "", "a", "b", "aa", "ab", "ba", "bb", "aab", "aba", "abb", "baa", "bab", "abab", "ccc",
            "acb", "abba", "xaya",
        ];
        for a in patterns {
            for b in patterns {
                if !covers(a, b) {
                    continue;
                }
                for name in names {
                    if Glob::new(b).matches(name) {
                        assert!(Glob::new(a).matches(name), "{a} covers {b} but not {name}");
                    }
                }
            }
        }
    }
}
