//! The shipped JSON Schemas (schemas/) are the ones the Rust types generate today: a change to
//! the config, policy or cases model that is not written out fails here. `SCOPEGATE_BLESS=1 cargo test --test
//! it schemas::` writes them anew.
#![cfg(feature = "schema")]

use std::path::PathBuf;

fn check(file: &str, generated: serde_json::Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(file);
    let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
    if std::env::var_os("SCOPEGATE_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == text,
        "{} is not what the types generate: run SCOPEGATE_BLESS=1 cargo test --test it schemas::",
        path.display()
    );
}

#[test]
fn the_shipped_config_schema_is_what_the_config_model_generates() {
    check("config.schema.json", scopegate_core::config::json_schema());
}

#[test]
fn the_shipped_cases_schema_is_what_the_cases_model_generates() {
    check(
        "cases.schema.json",
        scopegate_core::policy::cli::cases_json_schema(),
    );
}

#[test]
fn the_shipped_policy_schema_is_what_the_policy_model_generates() {
    check("policy.schema.json", scopegate_core::policy::json_schema());
}

#[test]
fn the_config_schema_refuses_unknown_keys_and_requires_the_tables_run_needs() {
    let schema = scopegate_core::config::json_schema();
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for table in ["listen", "upstream", "mcp", "auth", "policy"] {
        assert!(required.contains(&table), "{table} required: {required:?}");
    }
    assert!(schema["properties"]["telemetry"].is_object());
}
