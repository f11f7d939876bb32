//! The JSON Schema of a policy file. Its rule, requirement and deny tables are generated from
//! the types that read them (`raw.rs`); the top level, which `raw.rs` reads key by key, is
//! written here and held to that reader's key list by a test. `schemas/policy.schema.json` is
//! this, written out.

use serde_json::{Value, json};

use super::raw::{RawDeny, RawRule};

/// The policy file's schema (JSON Schema 2020-12).
pub fn json_schema() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let rule = generator.subschema_for::<RawRule>();
    let deny = generator.subschema_for::<RawDeny>();
    let defs = generator.take_definitions(true);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://scopegate.dev/schemas/policy.schema.json",
        "title": "scopegate policy file",
        "type": "object",
        "additionalProperties": false,
        "required": ["version"],
        "properties": {
            "version": { "description": "1, or 2 for conditions, deny rules and a scope hierarchy", "enum": [1, 2] },
            "default": { "description": "what a call no rule names gets", "const": "deny" },
            "mode": { "description": "audit: the whole policy in shadow mode", "enum": ["enforce", "audit"] },
            "tools": { "type": "array", "items": rule },
            "methods": { "type": "object", "additionalProperties": rule },
            "scopes": {
                "description": "version 2: each scope and the narrower scopes it implies",
                "type": "object",
                "additionalProperties": { "type": "array", "items": { "type": "string" } }
            },
            "deny": { "type": "array", "items": deny },
        },
        "$defs": defs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_schema_names_exactly_the_keys_the_reader_accepts() {
        let schema = json_schema();
        let mut named: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut read = super::super::raw::POLICY_KEYS.to_vec();
        named.sort_unstable();
        read.sort_unstable();
        assert_eq!(named, read);
    }
}
