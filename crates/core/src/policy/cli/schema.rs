//! `policy check --tools FILE` (or `--url`): conditions checked against the tools' real input
//! schemas, from a saved `tools/list` result or one fetched from a running server. An `args.X` that the tool does not take, or a comparison whose type
//! the schema rules out, is an error (the condition could never hold, or always fails closed); an
//! optional argument read without `has()` is a warning. Owns reading the listing and these checks;
//! not the other lints (`lint.rs`).

use std::collections::HashMap;
use std::path::Path;

use toml::Spanned;

use super::super::condition::Condition;
use super::super::glob::Glob;
use super::{Finding, Loaded, Severity};

/// One tool's arguments as its `inputSchema` declares them.
#[derive(Debug, Default)]
pub(super) struct Schema {
    /// Each property and its JSON types (empty: any).
    properties: HashMap<String, Vec<String>>,
    required: Vec<String>,
}

/// Reads a saved `tools/list` answer: the JSON-RPC response, its `result`, or the `tools` array.
/// A pins file (`scopegate tools pin`) is read by its `tools` snapshot, which has that shape.
pub(super) fn read(path: &Path) -> Result<HashMap<String, Schema>, Finding> {
    let origin = path.display().to_string();
    let fail = |message: String| Finding::file(&origin, Severity::Error, message);
    let text = std::fs::read_to_string(path)
        .map_err(|error| fail(format!("cannot read the tools file: {error}")))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| fail(format!("the tools file is not JSON: {error}")))?;
    parse(&origin, &json)
}

/// Each tool's schema from a `tools/list` answer (whole, its `result`, or the `tools` array);
/// `origin` names where it came from in a finding.
pub(super) fn parse(
    origin: &str,
    json: &serde_json::Value,
) -> Result<HashMap<String, Schema>, Finding> {
    let tools = json
        .pointer("/result/tools")
        .or_else(|| json.get("tools"))
        .or(Some(json))
        .and_then(|tools| tools.as_array())
        .ok_or_else(|| {
            Finding::file(
                origin,
                Severity::Error,
                "expected a tools/list answer: {\"result\": {\"tools\": [...]}}",
            )
        })?;
    let mut schemas = HashMap::new();
    for tool in tools {
        let Some(name) = tool.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        let schema = tool.get("inputSchema");
        let properties = schema
            .and_then(|s| s.get("properties"))
            .and_then(|p| p.as_object())
            .map(|properties| {
                properties
                    .iter()
                    .map(|(name, property)| (name.clone(), types(property)))
                    .collect()
            })
            .unwrap_or_default();
        let required = schema
            .and_then(|s| s.get("required"))
            .and_then(|r| r.as_array())
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        schemas.insert(
            name.to_owned(),
            Schema {
                properties,
                required,
            },
        );
    }
    Ok(schemas)
}

/// A property's JSON types: `type` as a string or a list, else those of `anyOf`/`oneOf`; empty
/// when the schema does not say.
fn types(property: &serde_json::Value) -> Vec<String> {
    match property.get("type") {
        Some(serde_json::Value::String(kind)) => vec![kind.clone()],
        Some(serde_json::Value::Array(kinds)) => kinds
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        _ => ["anyOf", "oneOf"]
            .iter()
            .filter_map(|key| property.get(*key).and_then(|v| v.as_array()))
            .flatten()
            .flat_map(types)
            .collect(),
    }
}

/// Whether a value of JSON type `declared` can compare with a use as `used`.
fn compatible(declared: &[String], used: &str) -> bool {
    declared.is_empty()
        || declared.iter().any(|kind| {
            kind == used
                || (used == "number" && kind == "integer")
                || (used == "null" && kind != "null")
        })
}

/// Every finding for the tool rules' conditions against the tools' schemas.
pub(super) fn check(loaded: &Loaded, schemas: &HashMap<String, Schema>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for entry in &loaded.raw.tools {
        let Some(name) = entry.rule.name.as_deref() else {
            continue;
        };
        let glob = Glob::new(name);
        let mut tools: Vec<(&str, &Schema)> = schemas
            .iter()
            .filter(|(tool, _)| glob.matches(tool))
            .map(|(tool, schema)| (tool.as_str(), schema))
            .collect();
        tools.sort_by_key(|(tool, _)| *tool);
        let mut conditions: Vec<(&Spanned<String>, String)> = Vec::new();
        if let Some(when) = &entry.rule.when {
            conditions.push((when, entry.key_path("when")));
        }
        for (i, block) in entry.rule.require.iter().flatten().enumerate() {
            let path = format!("{}[{i}].when", entry.key_path("require"));
            conditions.push((&block.get_ref().when, path));
        }
        for (when, path) in conditions {
            let Ok(condition) = Condition::compile(when.get_ref()) else {
                continue;
            };
            for (tool, schema) in &tools {
                check_condition(&condition, tool, schema, &mut |severity, message| {
                    findings.push(loaded.finding(when.span().start, severity, &path, message))
                });
            }
        }
    }
    findings
}

fn check_condition(
    condition: &Condition,
    tool: &str,
    schema: &Schema,
    report: &mut impl FnMut(Severity, String),
) {
    let untested = condition.untested_fields("args");
    for field in condition.argument_fields() {
        if !schema.properties.contains_key(field) {
            let mut known: Vec<&str> = schema.properties.keys().map(String::as_str).collect();
            known.sort_unstable();
            report(
                Severity::Error,
                format!(
                    "args.{field}: {tool} takes no argument {field:?} (its arguments: {}); the \
                     condition would fail closed on every call",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        } else if untested.contains(&field) && !schema.required.iter().any(|r| r == field) {
            report(
                Severity::Warning,
                format!(
                    "args.{field} is optional for {tool} but read without has(args.{field}): a \
                     call without it is denied as a condition error"
                ),
            );
        }
    }
    let mut reported: Vec<(&str, &str)> = Vec::new();
    for (field, used) in condition.argument_uses() {
        let Some(declared) = schema.properties.get(field) else {
            continue;
        };
        if compatible(declared, used) || reported.contains(&(field.as_str(), *used)) {
            continue;
        }
        reported.push((field, used));
        report(
            Severity::Error,
            format!(
                "args.{field} is {} for {tool} but used as a {used}: this can never hold",
                declared.join(" or ")
            ),
        );
    }
}
