//! `scopegate policy …`: the policy tools a platform team runs by hand and in CI. `check`
//! validates and lints policy files, `test` runs a cases file against a policy offline, and
//! `explain` shows which rule decides one call and why. Owns the commands' output; not the
//! decisions themselves, which are [`Policy::decide`]'s, so what these commands say is what the
//! proxy does.
//!
//! Each command writes its report to `out` and returns whether it passed; the binary turns that
//! into the exit status (0 passed, 1 not).

mod cases;
mod explain;
mod lint;
mod schema;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::{Problems, line_col};
use super::raw::{self, RawPolicy};
use super::{Policy, PolicyError};

#[cfg(feature = "schema")]
pub use cases::json_schema as cases_json_schema;
pub use explain::{Call, explain};

/// Options of `scopegate policy check`.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Warnings fail the check too.
    pub deny_warnings: bool,
    /// The scopes the issuer grants, when known: a rule scope outside them is reported, and so
    /// is a known scope that no rule uses.
    pub known_scopes: Option<Vec<String>>,
    /// A `tools/list` answer: each condition's `args.X` is checked against the tool's
    /// `inputSchema`.
    pub tools: Option<Tools>,
}

/// Where `policy check` finds the tools' input schemas.
#[derive(Debug, Clone)]
pub enum Tools {
    /// A saved `tools/list` answer (JSON).
    File(PathBuf),
    /// One fetched from a running server at `url` by the caller (the policy tools themselves
    /// stay offline): the answer, or why there is none.
    Fetched {
        url: String,
        listing: Result<serde_json::Value, String>,
    },
}

/// Validates and lints each file, printing one `file:line:col: error|warning: message` line per
/// finding and a summary line. Passes when no file has an error (nor, with `deny_warnings`, a
/// warning).
///
/// A folder stands for the `*.toml` files directly in it, in name order (not its subfolders: a
/// policy repository's other folders hold other things). A `*.cases.toml` file is checked as a
/// cases file: its shape, and its cases against the policy it names, if it names one.
pub fn check(paths: &[&Path], options: &CheckOptions, out: &mut dyn Write) -> io::Result<bool> {
    let (mut errors, mut warnings) = (0, 0);
    let (files, mut findings) = expand(paths);
    let schemas = match &options.tools {
        None => None,
        Some(Tools::File(path)) => Some(schema::read(path)),
        Some(Tools::Fetched { url, listing }) => Some(match listing {
            Ok(listing) => schema::parse(url, listing),
            Err(error) => Err(Finding::file(
                url,
                Severity::Error,
                format!("cannot fetch tools/list: {error}"),
            )),
        }),
    };
    let schemas = match schemas {
        None => None,
        Some(Ok(schemas)) => Some(schemas),
        Some(Err(finding)) => {
            findings.push(finding);
            None
        }
    };
    for path in &files {
        findings.extend(if is_cases_file(path) {
            cases::check(path)
        } else {
            match load(path) {
                Ok(loaded) => {
                    let mut found = lint::lint(&loaded, options.known_scopes.as_deref());
                    if let Some(schemas) = &schemas {
                        found.extend(schema::check(&loaded, schemas));
                        found.sort_by_key(|finding| finding.line);
                    }
                    found
                }
                Err(findings) => findings,
            }
        });
    }
    for finding in &findings {
        writeln!(out, "{finding}")?;
        match finding.severity {
            Severity::Error => errors += 1,
            Severity::Warning => warnings += 1,
        }
    }
    let passed = errors == 0 && (warnings == 0 || !options.deny_warnings);
    writeln!(
        out,
        "{}: {} checked, {}, {}",
        if passed { "ok" } else { "failed" },
        plural(files.len(), "file"),
        plural(errors, "error"),
        plural(warnings, "warning"),
    )?;
    Ok(passed)
}

/// Evaluates every case of `cases_path` against the policy at `policy_path` and prints a
/// pass/fail table ending in `N passed, M failed`. Passes when every case does. A policy or
/// cases file that cannot be read is reported as findings instead, and fails. The cases file's
/// own `policy` key is not read here: the policy is the one given.
pub fn test(policy_path: &Path, cases_path: &Path, out: &mut dyn Write) -> io::Result<bool> {
    let loaded = match load(policy_path) {
        Ok(loaded) => loaded,
        Err(findings) => return report_findings(&findings, out),
    };
    let file = match cases::read(cases_path) {
        Ok(file) => file,
        Err(findings) => return report_findings(&findings, out),
    };
    cases::run(&loaded.policy, &file.cases, out)
}

/// The files `check` is given: each folder replaced by its `*.toml` files, sorted; an empty or
/// unreadable folder is an error finding.
fn expand(paths: &[&Path]) -> (Vec<PathBuf>, Vec<Finding>) {
    let (mut files, mut findings) = (Vec::new(), Vec::new());
    for path in paths {
        if !path.is_dir() {
            // A missing file is reported when it is read.
            files.push(path.to_path_buf());
            continue;
        }
        let origin = path.display().to_string();
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) => {
                let message = format!("cannot read the folder: {error}");
                findings.push(Finding::file(&origin, Severity::Error, message));
                continue;
            }
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|file| file.is_file() && file.extension().is_some_and(|e| e == "toml"))
            .collect();
        if found.is_empty() {
            let message = "no *.toml files in this folder (subfolders are not searched)";
            findings.push(Finding::file(&origin, Severity::Error, message));
        }
        found.sort();
        files.append(&mut found);
    }
    (files, findings)
}

fn is_cases_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.ends_with(".cases.toml"))
}

fn report_findings(findings: &[Finding], out: &mut dyn Write) -> io::Result<bool> {
    for finding in findings {
        writeln!(out, "{finding}")?;
    }
    Ok(false)
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A policy that loaded, with what the lints need beside it: its text and the rules as written,
/// which remember where each key stands.
struct Loaded {
    origin: String,
    source: String,
    policy: Policy,
    raw: RawPolicy,
}

impl Loaded {
    /// `file:line:col` of a byte offset.
    fn finding(
        &self,
        at: usize,
        severity: Severity,
        key: &str,
        message: impl Into<String>,
    ) -> Finding {
        let (line, column) = line_col(&self.source, at);
        Finding {
            origin: self.origin.clone(),
            line: Some((line, column)),
            severity,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn line(&self, at: usize) -> usize {
        line_col(&self.source, at).0
    }

    /// Where each tool rule's name and each method rule's key stands, by name.
    fn sites(&self) -> Sites {
        let mut sites = Sites::default();
        for entry in &self.raw.tools {
            if let Some(name) = &entry.rule.name {
                sites
                    .tools
                    .insert(name.clone(), (entry.path.clone(), entry.key_at("name")));
            }
        }
        for entry in &self.raw.methods {
            if let Some(method) = &entry.method {
                sites
                    .methods
                    .insert(method.value.clone(), (entry.path.clone(), method.at));
            }
        }
        sites
    }
}

/// Key path and byte offset of each rule.
#[derive(Default)]
struct Sites {
    tools: HashMap<String, (String, usize)>,
    methods: HashMap<String, (String, usize)>,
}

/// Loads a policy for the commands: load errors come back as error findings.
fn load(path: &Path) -> Result<Loaded, Vec<Finding>> {
    let origin = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|error| {
        vec![Finding::file(
            &origin,
            Severity::Error,
            format!("cannot read the policy file: {error}"),
        )]
    })?;
    let policy = Policy::parse(&source, &origin).map_err(|error| match error {
        PolicyError::Invalid(problems) => problems
            .into_iter()
            .map(|p| Finding {
                origin: p.origin,
                line: Some((p.line, p.column)),
                severity: Severity::Error,
                key: p.key,
                message: p.message,
            })
            .collect::<Vec<_>>(),
        PolicyError::Read { .. } => {
            vec![Finding::file(&origin, Severity::Error, error.to_string())]
        }
    })?;
    // The policy loaded, so reading its raw model again finds no problem.
    let raw = raw::read(&source, &mut Problems::default()).unwrap_or_default();
    Ok(Loaded {
        origin,
        source,
        policy,
        raw,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Severity {
    Error,
    Warning,
}

/// One line of a report: `file:line:col: error|warning: key: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    origin: String,
    /// 1-based line and column; `None` for the file as a whole.
    line: Option<(usize, usize)>,
    severity: Severity,
    /// Dotted key path, e.g. `tools[2].name`; may be empty.
    key: String,
    message: String,
}

impl Finding {
    fn file(origin: &str, severity: Severity, message: impl Into<String>) -> Finding {
        Finding {
            origin: origin.to_owned(),
            line: None,
            severity,
            key: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some((line, column)) = self.line {
            write!(f, ":{line}:{column}")?;
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {severity}: ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}
