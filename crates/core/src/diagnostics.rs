//! Problem reporting for the TOML files scopegate reads (config, policy, cases, the adapter's
//! config): the one line/column rule ([`line_col`]: characters, as editors count), the collector
//! that turns places into `file:line:col: key: reason` lines, and [`read_document`], which reads a whole document into
//! its serde model while finding every type error and unknown key in one go, each with its
//! dotted key, a hint, and the nearest known key for a misspelling. Not the checks of the
//! values themselves (the config's `validate_*`).

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue, ValueDeserializer};

use crate::suggest::nearest;
use crate::units::parse_duration;

/// Passes over one document at most: each pass takes out one bad entry, so this bounds the
/// work a file full of mistakes can cause while reporting more problems than anyone reads.
const MAX_PASSES: usize = 64;

/// One problem found while reading a document: its place, its dotted key (empty for a syntax
/// error, where TOML cannot say which key it was reading) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub at: Option<Range<usize>>,
    pub key: String,
    pub message: String,
}

/// Reads `source` into `T`, reporting every problem rather than the first. serde stops at the
/// first error, so after each type error or unknown key the entry it came from is taken out and
/// the rest is read again: a file with three mistakes shows three lines. The value is returned
/// when what remains reads (so the caller can check the values too); any problem in the list
/// still makes the file unusable.
pub fn read_document<T: DeserializeOwned>(source: &str) -> (Option<T>, Vec<Found>) {
    let (root, syntax) = DeTable::parse_recoverable(source);
    if !syntax.is_empty() {
        // The recovered tree lacks whatever followed each error; reading it would only add
        // confusing follow-on problems.
        let found = syntax
            .into_iter()
            .map(|error| Found {
                at: error.span(),
                key: String::new(),
                message: error.message().trim_end().to_owned(),
            })
            .collect();
        return (None, found);
    }
    let span = root.span();
    read_value(Spanned::new(span, DeValue::Table(root.into_inner())))
}

/// Reads one parsed value (a whole document, or one entry of it) into `T` as
/// [`read_document`] does; keys are named from that value down.
pub fn read_value<T: DeserializeOwned>(original: Spanned<DeValue<'_>>) -> (Option<T>, Vec<Found>) {
    // Keys are named from the value as written: taking an element out of an array would
    // otherwise shift the indices of the ones after it.
    let mut root = original.clone();
    let mut found = Vec::new();
    // Keys taken out so far: the model may need one of them, and its "missing" is no news.
    let mut taken: Vec<String> = Vec::new();
    for _ in 0..MAX_PASSES {
        let error = match T::deserialize(ValueDeserializer::from(root.clone())) {
            Ok(value) => return (Some(value), found),
            Err(error) => error,
        };
        let (mut path, mut shown) = (Vec::new(), Vec::new());
        if let Some(at) = error.span() {
            locate(&root, &at, &mut path);
            locate(&original, &at, &mut shown);
        }
        let message = error.message().trim_end();
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            // serde checks for missing fields after reading the rest of the table, so the
            // table itself can go: what it held wrong has been reported already.
            let key = join(&dotted(&shown), field);
            if !taken.contains(&key) {
                found.push(Found {
                    at: error.span(),
                    key,
                    message: "missing".to_owned(),
                });
            }
        } else {
            let (key, message, meant) = describe(&shown, message);
            // The key a misspelling was meant to be is missing too, which is no news.
            taken.extend(meant);
            found.push(Found {
                at: error.span(),
                key,
                message,
            });
        }
        if !remove(&mut root, &path) {
            break;
        }
        taken.push(dotted(&shown));
    }
    (None, found)
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Fills `path` with the innermost key or element whose span holds all of `at`: a key for an
/// unknown key, a value for a wrong type, a table for a missing field.
fn locate(value: &Spanned<DeValue<'_>>, at: &Range<usize>, path: &mut Vec<Step>) -> bool {
    let holds = |span: Range<usize>| span.start <= at.start && at.end <= span.end;
    match value.get_ref() {
        DeValue::Table(table) => {
            for (key, item) in table {
                path.push(Step::Key(key.get_ref().to_string()));
                if holds(key.span()) || locate(item, at, path) || holds(item.span()) {
                    return true;
                }
                path.pop();
            }
            false
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                if locate(item, at, path) || holds(item.span()) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

/// Takes the entry at `path` out of the document; false when there is nothing to take.
fn remove(root: &mut Spanned<DeValue<'_>>, path: &[Step]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut current = root;
    for step in parents {
        let next = match (current.get_mut(), step) {
            (DeValue::Table(table), Step::Key(name)) => table
                .iter_mut()
                .find(|(k, _)| k.get_ref() == name)
                .map(|(_, v)| v),
            (DeValue::Array(items), Step::Index(i)) => items.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        current = next;
    }
    match (current.get_mut(), last) {
        (DeValue::Table(table), Step::Key(name)) => {
            let key = table.keys().find(|k| k.get_ref() == name).cloned();
            key.and_then(|key| table.remove(&key)).is_some()
        }
        (DeValue::Array(items), Step::Index(i)) if *i < items.len() => {
            let mut kept = DeArray::new();
            for (j, item) in items.iter().enumerate() {
                if j != *i {
                    kept.push(item.clone());
                }
            }
            *items = kept;
            true
        }
        _ => false,
    }
}

/// The dotted key and the message a person reads, for a wrong type or an unknown key; and for a
/// misspelt key, the key it was likely meant to be.
fn describe(path: &[Step], message: &str) -> (String, String, Option<String>) {
    let key = dotted(path);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // serde names the field, then the fields it expected: `a`, `b` or `c`.
        let field = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = message.split('`').skip(3).step_by(2).collect();
        let parent = dotted(&path[..path.len().saturating_sub(1)]);
        let Some(near) = nearest(field, expected.iter().copied()) else {
            let reason = if expected.is_empty() {
                "unknown key".to_owned()
            } else {
                format!("unknown key; expected one of: {}", expected.join(", "))
            };
            return (key, reason, None);
        };
        let meant = join(&parent, near);
        return (
            key,
            format!("unknown key; did you mean `{meant}`?"),
            Some(meant),
        );
    }
    let hint = hint(path, message);
    (key, format!("{message}{hint}"), None)
}

/// How to write the value, for the mistakes people make: bare numbers for durations and sizes.
fn hint(path: &[Step], message: &str) -> &'static str {
    let Some(Step::Key(name)) = path.last() else {
        return "";
    };
    if !(message.starts_with("invalid type") && message.ends_with("expected a string")) {
        return "";
    }
    const DURATIONS: [&str; 7] = [
        "timeout", "interval", "period", "ttl", "idle", "stale", "leeway",
    ];
    if DURATIONS.iter().any(|end| name.ends_with(end)) {
        "; write durations as strings, e.g. \"30s\""
    } else if name.ends_with("size") || name == "max_body" {
        "; write sizes as strings, e.g. \"1MiB\""
    } else {
        ""
    }
}

fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(name) => {
                let bare = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                let name = if bare {
                    name.clone()
                } else {
                    format!("{name:?}")
                };
                out = join(&out, &name);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Collects problems with their `file:line:col`; the adapter's config reports the same way.
pub struct Problems<'s> {
    source: &'s str,
    pub(super) file: String,
    pub(super) positions: bool,
    found: Vec<String>,
}

impl<'s> Problems<'s> {
    pub fn new(source: &'s str, path: &Path) -> Self {
        Problems {
            source,
            file: path.display().to_string(),
            positions: true,
            found: Vec::new(),
        }
    }

    /// Reads the whole source into its model, recording every problem [`read_document`] finds.
    /// The value comes back whenever what remains reads, so its values can be checked too; a
    /// problem recorded here still fails the file.
    pub fn parse<T: DeserializeOwned>(&mut self) -> Option<T> {
        let (value, found) = read_document(self.source);
        for problem in found {
            self.at(problem.at, &problem.key, &problem.message);
        }
        value
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub fn into_error(self) -> ConfigError {
        ConfigError {
            problems: self.found,
        }
    }

    pub fn at(&mut self, span: Option<Range<usize>>, key: &str, message: &str) {
        let place = match span.filter(|_| self.positions) {
            Some(span) => {
                let (line, col) = line_col(self.source, span.start);
                format!("{}:{line}:{col}", self.file)
            }
            None => self.file.clone(),
        };
        let key = if key.is_empty() {
            String::new()
        } else {
            format!(" {key}:")
        };
        self.found.push(format!("{place}:{key} {message}"));
    }

    /// Parses one spanned value, recording a problem at its place on failure.
    pub fn value<T, R>(
        &mut self,
        raw: &Spanned<R>,
        key: &str,
        parse: impl FnOnce(&R) -> Result<T, String>,
    ) -> Option<T> {
        match parse(raw.get_ref()) {
            Ok(value) => Some(value),
            Err(msg) => {
                self.at(Some(raw.span()), key, &msg);
                None
            }
        }
    }

    pub fn duration(
        &mut self,
        raw: Option<&Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Option<Duration> {
        match raw {
            Some(raw) => self.value(raw, key, |s| parse_duration(s)),
            None => Some(default),
        }
    }
}

/// 1-based line and character column of a byte offset (clamped to the source): the column
/// counts characters, as editors do, so a key after `é` is where the editor shows it.
pub fn line_col(source: &str, at: usize) -> (usize, usize) {
    let at = at.min(source.len());
    let before = &source.as_bytes()[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1);
    let column = source
        .get(line_start..at)
        .map_or(at - line_start, |text| text.chars().count());
    (line, column + 1)
}

/// A file that cannot be used: every problem found, each with its place.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
