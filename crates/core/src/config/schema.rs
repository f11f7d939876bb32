//! The JSON Schema of the config file, generated from the raw model that reads it (`raw.rs`), so
//! the schema editors and CI check against cannot drift from what `scopegate run` accepts.
//! `schemas/config.schema.json` is this, written out (tests/schemas.rs keeps it current).

use serde_json::Value;

/// Where the shipped schema is published beside the example configs.
const ID: &str = "https://scopegate.dev/schemas/config.schema.json";

/// The config file's schema (JSON Schema 2020-12).
pub fn json_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(super::raw::RawConfig))
        .expect("a schema is JSON");
    schema["$id"] = Value::from(ID);
    schema["title"] = Value::from("scopegate config file (scopegate run --config)");
    schema
}
