//! Test cases for a policy: the cases file, and running it through [`Policy::decide`] offline.
//! Owns the cases format and the pass/fail table; not decisions.
//!
//! ```toml
//! policy = "customer-service.toml"  # optional: the policy these cases are for, from this file's
//!                                   # folder; `policy check` then runs them against it
//!
//! [[cases]]
//! name = "reader can look a customer up"
//! scopes = ["customer:read"]        # the token's scopes; default none
//! method = "tools/call"             # default "tools/call"
//! tool = "get_customer_info"        # only for tools/call
//! expect = "allow"                  # "allow", "deny" (enforced) or "would_deny" (audit mode)
//! # claims = { tenant = "acme" }             # the token's other claims (`jwt`), version 2
//! # arguments = { customer_id = "acme-7" }   # the call's arguments (`args`), version 2
//! # expect_missing = ["ticket:create"]       # for a denial: exactly these scopes missing
//! # expect_reason = "insufficient_scope"     # or "no_rule", "missing_target", "condition_failed",
//! #                                          # "denied_by_rule", "condition_error"
//! ```

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::super::error::line_col;
use super::super::{
    Action, Arguments, ClaimsCache, Decision, Facts, GrantedCache, Mode, Policy, ScopeSet,
};
use super::{Finding, Severity};
use crate::diagnostics::read_document;

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct CasesFile {
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    policy: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Vec<RawCase>"))]
    cases: Vec<Spanned<RawCase>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
struct RawCase {
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    name: Spanned<String>,
    #[serde(default)]
    scopes: Vec<String>,
    method: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    tool: Option<Spanned<String>>,
    #[serde(default)]
    claims: serde_json::Map<String, serde_json::Value>,
    arguments: Option<serde_json::Map<String, serde_json::Value>>,
    expect: Expect,
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    expect_missing: Option<Spanned<Vec<String>>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    expect_reason: Option<Spanned<String>>,
}

/// The JSON Schema of a cases file (`*.cases.toml`), generated from the model that reads it;
/// `schemas/cases.schema.json` is this, written out.
#[cfg(feature = "schema")]
pub fn json_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(CasesFile)).expect("a schema is JSON");
    schema["$id"] = serde_json::Value::from("https://scopegate.dev/schemas/cases.schema.json");
    schema["title"] =
        serde_json::Value::from("scopegate policy cases file (scopegate policy test)");
    schema
}

/// The outcome of a decision, as a cases file and the table write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
enum Expect {
    Allow,
    Deny,
    WouldDeny,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Expect::Allow => "allow",
            Expect::Deny => "deny",
            Expect::WouldDeny => "would_deny",
        }
    }
}

const REASONS: [&str; 6] = [
    "no_rule",
    "insufficient_scope",
    "missing_target",
    "condition_failed",
    "denied_by_rule",
    "condition_error",
];

/// A validated cases file.
#[derive(Debug)]
pub(super) struct Cases {
    /// The policy the file names (its `policy` key), as a path, and where the key's value stands.
    policy: Option<(PathBuf, (usize, usize))>,
    pub(super) cases: Vec<Case>,
}

/// One validated case.
#[derive(Debug)]
pub(super) struct Case {
    name: String,
    /// Line and column of its name.
    at: (usize, usize),
    scopes: ScopeSet,
    method: String,
    tool: Option<String>,
    /// The token's claims besides its scopes.
    claims: serde_json::Map<String, serde_json::Value>,
    /// `params.arguments` as JSON text, as the proxy would find it in the body.
    arguments: Option<Box<serde_json::value::RawValue>>,
    expect: Expect,
    /// Sorted.
    expect_missing: Option<Vec<String>>,
    expect_reason: Option<String>,
}

/// Reads and validates a cases file; every problem comes back as a finding with its line.
pub(super) fn read(path: &Path) -> Result<Cases, Vec<Finding>> {
    let origin = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|error| {
        vec![Finding::file(
            &origin,
            Severity::Error,
            format!("cannot read the cases file: {error}"),
        )]
    })?;
    let at = |offset: usize, key: &str, message: String| {
        let (line, column) = line_col(&source, offset);
        Finding {
            origin: origin.clone(),
            line: Some((line, column)),
            severity: Severity::Error,
            key: key.to_owned(),
            message,
        }
    };
    // Every problem of the file at once, each with its key, as for the config and the policy.
    let (file, found) = read_document::<CasesFile>(&source);
    let file = match file {
        Some(file) if found.is_empty() => file,
        _ => {
            return Err(found
                .into_iter()
                .map(|f| at(f.at.map_or(0, |span| span.start), &f.key, f.message))
                .collect());
        }
    };
    if file.cases.is_empty() {
        return Err(vec![at(
            0,
            "cases",
            "no cases; add [[cases]] entries".into(),
        )]);
    }

    let mut problems = Vec::new();
    let mut names = HashSet::new();
    let mut cases = Vec::new();
    for (i, case) in file.cases.into_iter().enumerate() {
        let case = case.into_inner();
        let path = format!("cases[{i}]");
        let name = case.name.get_ref().clone();
        if !names.insert(name.clone()) {
            problems.push(at(
                case.name.span().start,
                &format!("{path}.name"),
                format!("duplicate case name {name:?}"),
            ));
        }
        let method = case.method.unwrap_or_else(|| "tools/call".to_owned());
        if let Some(tool) = &case.tool
            && method != "tools/call"
        {
            problems.push(at(
                tool.span().start,
                &format!("{path}.tool"),
                format!("a tool only applies to tools/call, not {method:?}"),
            ));
        }
        if let Some(missing) = &case.expect_missing
            && case.expect == Expect::Allow
        {
            problems.push(at(
                missing.span().start,
                &format!("{path}.expect_missing"),
                "expect_missing only applies to a denial".into(),
            ));
        }
        if let Some(reason) = &case.expect_reason {
            if case.expect == Expect::Allow {
                problems.push(at(
                    reason.span().start,
                    &format!("{path}.expect_reason"),
                    "expect_reason only applies to a denial".into(),
                ));
            } else if !REASONS.contains(&reason.get_ref().as_str()) {
                problems.push(at(
                    reason.span().start,
                    &format!("{path}.expect_reason"),
                    format!(
                        "{:?} is not a reason; expected one of: {}",
                        reason.get_ref(),
                        REASONS.join(", ")
                    ),
                ));
            }
        }
        cases.push(Case {
            name,
            at: line_col(&source, case.name.span().start),
            scopes: ScopeSet::new(case.scopes),
            method,
            tool: case.tool.map(Spanned::into_inner),
            claims: case.claims,
            arguments: case
                .arguments
                .and_then(|arguments| serde_json::value::to_raw_value(&arguments).ok()),
            expect: case.expect,
            expect_missing: case.expect_missing.map(|m| {
                let mut m = m.into_inner();
                m.sort_unstable();
                m.dedup();
                m
            }),
            expect_reason: case.expect_reason.map(Spanned::into_inner),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let policy = file.policy.map(|policy| {
        let folder = path.parent().unwrap_or(Path::new(""));
        (
            folder.join(policy.get_ref()),
            line_col(&source, policy.span().start),
        )
    });
    Ok(Cases { policy, cases })
}

/// `policy check` on a cases file: its shape, and when it names its policy, every case against
/// that policy. Each failing case is an error at its name; a policy that does not load brings its
/// own findings and one at the `policy` key.
pub(super) fn check(path: &Path) -> Vec<Finding> {
    let file = match read(path) {
        Ok(file) => file,
        Err(findings) => return findings,
    };
    let Some((policy_path, policy_at)) = &file.policy else {
        return Vec::new();
    };
    let origin = path.display().to_string();
    let at = |(line, column): (usize, usize), key: String, message: String| Finding {
        origin: origin.clone(),
        line: Some((line, column)),
        severity: Severity::Error,
        key,
        message,
    };
    let loaded = match super::load(policy_path) {
        Ok(loaded) => loaded,
        Err(mut findings) => {
            findings.push(at(
                *policy_at,
                "policy".into(),
                format!(
                    "the cases cannot be run: {} does not load",
                    policy_path.display()
                ),
            ));
            return findings;
        }
    };
    file.cases
        .iter()
        .enumerate()
        .filter_map(|(i, case)| {
            let (got, passed) = evaluate(&loaded.policy, case);
            (!passed).then(|| {
                at(
                    case.at,
                    format!("cases[{i}]"),
                    format!(
                        "{:?} against {}: expected {}, got {got}",
                        case.name,
                        policy_path.display(),
                        expected(case)
                    ),
                )
            })
        })
        .collect()
}

/// Runs every case and prints the table: one row per case, then `N passed, M failed`.
pub(super) fn run(policy: &Policy, cases: &[Case], out: &mut dyn Write) -> io::Result<bool> {
    let rows: Vec<[String; 4]> = cases
        .iter()
        .map(|case| {
            let (got, passed) = evaluate(policy, case);
            [
                case.name.clone(),
                expected(case),
                got,
                if passed { "PASS" } else { "FAIL" }.to_owned(),
            ]
        })
        .collect();
    let header = ["CASE", "EXPECTED", "GOT", "RESULT"].map(str::to_owned);
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    let failed = rows.iter().filter(|row| row[3] == "FAIL").count();
    writeln!(out, "{} passed, {failed} failed", rows.len() - failed)?;
    Ok(failed == 0)
}

/// What the case expects, as the table shows it.
fn expected(case: &Case) -> String {
    let mut text = case.expect.as_str().to_owned();
    let mut details = Vec::new();
    if let Some(reason) = &case.expect_reason {
        details.push(reason.clone());
    }
    if let Some(missing) = &case.expect_missing {
        details.push(format!("missing {}", list(missing)));
    }
    if !details.is_empty() {
        text = format!("{text} ({})", details.join("; "));
    }
    text
}

/// The decision as the table shows it, and whether it meets the case's expectations.
fn evaluate(policy: &Policy, case: &Case) -> (String, bool) {
    let action = Action {
        method: &case.method,
        target: case.tool.as_deref(),
    };
    let claims_cache = ClaimsCache::default();
    let facts = Facts {
        claims: &case.claims,
        claims_cache: &claims_cache,
        arguments: Arguments::Raw(case.arguments.as_deref()),
    };
    let scopes = policy.granted(&case.scopes, &GrantedCache::default());
    match policy.decide_with(&scopes, &action, &facts) {
        Decision::Allow { .. } => ("allow".to_owned(), case.expect == Expect::Allow),
        Decision::Deny(denial) => {
            let got = match denial.mode {
                Mode::Enforce => Expect::Deny,
                Mode::Audit => Expect::WouldDeny,
            };
            let mut missing: Vec<String> = denial.missing.iter().map(|s| s.to_string()).collect();
            missing.sort_unstable();
            let reason = denial.reason.as_str();
            let passed = got == case.expect
                && case.expect_reason.as_deref().is_none_or(|r| r == reason)
                && case.expect_missing.as_ref().is_none_or(|m| *m == missing);
            let mut text = format!("{} ({reason}", got.as_str());
            if !missing.is_empty() {
                text.push_str(&format!("; missing {}", list(&missing)));
            }
            text.push(')');
            (text, passed)
        }
    }
}

fn list(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "nothing".to_owned()
    } else {
        scopes.join(" ")
    }
}
