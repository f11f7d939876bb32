//! The policy file as written: TOML parsed into a raw model that remembers where each key
//! stands, so that later checks can name a line. Owns the structural checks (syntax, unknown
//! keys, value types); not what the values mean (`compile.rs`).
//!
//! The top level and each rule's keys are walked one by one instead of deserialising the whole
//! document in one go: serde stops at the first error, and a policy author fixing a file in CI
//! wants every problem in one run.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::error::Problems;
use crate::diagnostics::read_value;

/// Top-level keys, in the order the documentation presents them.
pub(super) const POLICY_KEYS: [&str; 7] = [
    "version", "default", "mode", "scopes", "tools", "methods", "deny",
];
/// Keys of a `[[tools]]` entry.
const TOOL_KEYS: [&str; 7] = [
    "name",
    "scopes",
    "any_of",
    "when",
    "require",
    "rate_limit",
    "mode",
];
/// Keys of a `[methods]` rule: a tool rule without `name`, the method being the key.
const METHOD_KEYS: [&str; 5] = ["scopes", "any_of", "when", "rate_limit", "mode"];
/// Keys that need `version = 2`: a version 1 file's unknown-key messages leave them out, and
/// using one there is an error that says so (`compile.rs`).
const VERSION_2_KEYS: [&str; 4] = ["deny", "when", "require", "scopes"];

const TOOL_EXAMPLE: &str = r#"{ name = "tool", scopes = ["scope"] }"#;
const METHOD_EXAMPLE: &str = r#"{ scopes = ["scope"] }"#;

/// A value and the byte offset of the key that introduced it.
#[derive(Debug)]
pub(super) struct Keyed<T> {
    pub at: usize,
    pub value: T,
}

#[derive(Debug, Default)]
pub(super) struct RawPolicy {
    pub version: Option<Keyed<i64>>,
    pub default: Option<Keyed<String>>,
    pub mode: Option<Keyed<String>>,
    pub tools: Vec<Entry>,
    pub methods: Vec<Entry>,
    /// `[scopes]`: each scope and the narrower scopes it implies (version 2).
    pub hierarchy: Option<Keyed<Vec<Implies>>>,
    /// `[[deny]]` rules in file order (version 2).
    pub deny: Vec<Keyed<RawDeny>>,
}

/// One `[scopes]` entry: a scope and the narrower scopes it names.
pub(super) type Implies = (Keyed<String>, Vec<Spanned<String>>);

/// A `[[deny]]` rule as written.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { when = 'jwt.client_id == \"bot\"', reason = \"blocked\" }"
)]
pub(super) struct RawDeny {
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub when: Spanned<String>,
    pub reason: String,
    pub mode: Option<String>,
}

/// A `[[tools.require]]` block: more scopes for the calls its condition matches.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequire {
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub when: Spanned<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Vec<String>"))]
    pub scopes: Vec<Spanned<String>>,
}

/// One rule as written: a `[[tools]]` entry or one `[methods]` key.
#[derive(Debug)]
pub(super) struct Entry {
    /// `tools[1]` or `methods."prompts/get"`.
    pub path: String,
    /// Where the entry starts: its `[[tools]]` header or its method key.
    pub at: usize,
    /// The method, for a `[methods]` rule; `None` for a tool rule, whose name is `rule.name`.
    pub method: Option<Keyed<String>>,
    /// Offsets of the keys present, to point at a key rather than at its value.
    keys: Vec<(String, usize)>,
    pub rule: RawRule,
}

impl Entry {
    /// Offset of `key` in this entry, or of the entry itself when the key is absent.
    pub fn key_at(&self, key: &str) -> usize {
        self.keys
            .iter()
            .find(|(name, _)| name == key)
            .map_or(self.at, |&(_, at)| at)
    }

    /// `tools[1].scopes`, for messages.
    pub fn key_path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }
}

/// Fields shared by tool and method rules. `deny_unknown_fields` is a backstop: unknown keys
/// are reported (all of them) by `read_entry` before serde sees the table.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(
    deny_unknown_fields,
    expecting = "a table such as { name = \"tool\", scopes = [\"scope\"] }"
)]
pub(super) struct RawRule {
    pub name: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub scopes: Option<Vec<Spanned<String>>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<Vec<String>>>"))]
    pub any_of: Option<Vec<Spanned<Vec<Spanned<String>>>>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub when: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<RawRequire>>"))]
    pub require: Option<Vec<Spanned<RawRequire>>>,
    pub rate_limit: Option<String>,
    pub mode: Option<String>,
}

/// Parses `source` into the raw model, or reports every structural problem found.
pub(super) fn read(source: &str, problems: &mut Problems) -> Option<RawPolicy> {
    let (root, syntax) = DeTable::parse_recoverable(source);
    if !syntax.is_empty() {
        // The recovered tree may be missing whatever follows each error, so checking it would
        // only add confusing follow-on problems.
        for error in syntax {
            let span = error.span().unwrap_or(0..0);
            let mut message = error.message().to_owned();
            if message == "duplicate key" {
                // TOML keeps a key once per table (and so one rule per method): name it.
                message = format!("duplicate key {}", source.get(span.clone()).unwrap_or(""));
            }
            problems.push(span.start, "", message);
        }
        return None;
    }

    let root = root.into_inner();
    if !root.contains_key("version") {
        problems.push(0, "version", "missing; start the file with `version = 1`");
    }
    // Only a file that says `version = 2` is told about version 2 keys.
    let v1 = !matches!(
        root.get("version").map(|v| v.get_ref()),
        Some(DeValue::Integer(n)) if n.as_str() == "2"
    );
    let mut raw = RawPolicy::default();
    for (key, value) in root {
        let at = key.span().start;
        match key.get_ref().as_ref() {
            "version" => raw.version = keyed(value, at, "version", problems),
            "default" => raw.default = keyed(value, at, "default", problems),
            "mode" => raw.mode = keyed(value, at, "mode", problems),
            "tools" => read_tools(value, v1, problems, &mut raw.tools),
            "methods" => read_methods(value, v1, problems, &mut raw.methods),
            "scopes" => raw.hierarchy = read_hierarchy(value, at, problems),
            "deny" => read_deny(value, problems, &mut raw.deny),
            other => {
                let listed = listed_keys(&POLICY_KEYS, v1, true);
                problems.push(at, quote_key(other), unknown_key("", other, &listed))
            }
        }
    }
    Some(raw)
}

fn read_tools(
    value: Spanned<DeValue<'_>>,
    v1: bool,
    problems: &mut Problems,
    into: &mut Vec<Entry>,
) {
    let at = value.span().start;
    let DeValue::Array(array) = value.get_ref() else {
        problems.push(
            at,
            "tools",
            "expected an array of tables: [[tools]] entries",
        );
        return;
    };
    for (i, item) in array.iter().enumerate() {
        let path = format!("tools[{i}]");
        if let Some(entry) = read_entry(
            item.clone(),
            path,
            None,
            (&TOOL_KEYS, v1, TOOL_EXAMPLE),
            problems,
        ) {
            into.push(entry);
        }
    }
}

fn read_hierarchy(
    value: Spanned<DeValue<'_>>,
    at: usize,
    problems: &mut Problems,
) -> Option<Keyed<Vec<Implies>>> {
    let DeValue::Table(table) = value.into_inner() else {
        problems.push(
            at,
            "scopes",
            "expected a table: [scopes] with \"broad\" = [\"narrow\", ...]",
        );
        return None;
    };
    let mut implied = Vec::new();
    for (key, item) in table {
        let scope = Keyed {
            at: key.span().start,
            value: key.get_ref().to_string(),
        };
        let path = format!("scopes.{}", quote_key(&scope.value));
        match keyed::<Vec<Spanned<String>>>(item, scope.at, &path, problems) {
            Some(narrower) => implied.push((scope, narrower.value)),
            None => continue,
        }
    }
    Some(Keyed { at, value: implied })
}

fn read_deny(value: Spanned<DeValue<'_>>, problems: &mut Problems, into: &mut Vec<Keyed<RawDeny>>) {
    let at = value.span().start;
    let DeValue::Array(array) = value.get_ref() else {
        problems.push(at, "deny", "expected an array of tables: [[deny]] entries");
        return;
    };
    for (i, item) in array.iter().enumerate() {
        let item_at = item.span().start;
        if let Some(rule) = keyed::<RawDeny>(item.clone(), item_at, &format!("deny[{i}]"), problems)
        {
            into.push(rule);
        }
    }
}

fn read_methods(
    value: Spanned<DeValue<'_>>,
    v1: bool,
    problems: &mut Problems,
    into: &mut Vec<Entry>,
) {
    let at = value.span().start;
    let DeValue::Table(table) = value.into_inner() else {
        problems.push(at, "methods", "expected a table: [methods]");
        return;
    };
    for (key, item) in table {
        let method = Keyed {
            at: key.span().start,
            value: key.get_ref().to_string(),
        };
        let path = format!("methods.{}", quote_key(&method.value));
        if let Some(entry) = read_entry(
            item,
            path,
            Some(method),
            (&METHOD_KEYS, v1, METHOD_EXAMPLE),
            problems,
        ) {
            into.push(entry);
        }
    }
}

/// Reads one rule: reports its unknown keys, then deserialises the known ones.
fn read_entry(
    value: Spanned<DeValue<'_>>,
    path: String,
    method: Option<Keyed<String>>,
    (allowed, v1, example): (&[&str], bool, &str),
    problems: &mut Problems,
) -> Option<Entry> {
    let span = value.span();
    let at = method.as_ref().map_or(span.start, |m| m.at);
    let DeValue::Table(table) = value.into_inner() else {
        problems.push(at, path, format!("expected a table such as {example}"));
        return None;
    };

    let mut known = DeTable::new();
    let mut keys = Vec::new();
    for (key, value) in table {
        let name = key.get_ref().as_ref();
        if allowed.contains(&name) {
            keys.push((name.to_owned(), key.span().start));
            known.insert(key, value);
        } else {
            let key_path = format!("{path}.{}", quote_key(name));
            let listed = listed_keys(allowed, v1, false);
            problems.push(
                key.span().start,
                key_path,
                unknown_key(&path, name, &listed),
            );
        }
    }

    // Every wrong value of the rule is reported, not only the first serde meets.
    let (rule, found) = read_value::<RawRule>(Spanned::new(span, DeValue::Table(known)));
    let valid = found.is_empty();
    for problem in found {
        let key = match problem.key.as_str() {
            "" => path.clone(),
            key if key.starts_with('[') => format!("{path}{key}"),
            key => format!("{path}.{key}"),
        };
        problems.push(problem.at.map_or(at, |s| s.start), key, problem.message);
    }
    let rule = rule.filter(|_| valid)?;
    Some(Entry {
        path,
        at,
        method,
        keys,
        rule,
    })
}

/// Deserialises one top-level value introduced by the key at `at`, reporting a type error
/// against `key`.
fn keyed<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    at: usize,
    key: &str,
    problems: &mut Problems,
) -> Option<Keyed<T>> {
    let value_at = value.span().start;
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(value) => Some(Keyed { at, value }),
        Err(error) => {
            let error_at = error.span().map_or(value_at, |s| s.start);
            problems.push(error_at, key, error.message());
            None
        }
    }
}

/// The keys an unknown-key message lists: a version 1 file is not told about version 2 keys
/// (`scopes` is one only at the top level).
fn listed_keys<'k>(allowed: &[&'k str], v1: bool, top_level: bool) -> Vec<&'k str> {
    allowed
        .iter()
        .copied()
        .filter(|key| !(v1 && VERSION_2_KEYS.contains(key) && (top_level || *key != "scopes")))
        .collect()
}

/// The message for a key the model does not have, naming the key it was likely meant to be.
fn unknown_key(parent: &str, key: &str, allowed: &[&str]) -> String {
    match crate::suggest::nearest(key, allowed.iter().copied()) {
        Some(near) if parent.is_empty() => format!("unknown key; did you mean `{near}`?"),
        Some(near) => format!("unknown key; did you mean `{parent}.{near}`?"),
        None => format!("unknown key; expected one of: {}", allowed.join(", ")),
    }
}

/// A key as it would be written in TOML: bare when it can be, quoted otherwise.
pub(super) fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}
