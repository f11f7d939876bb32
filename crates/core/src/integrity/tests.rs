//! The pin decisions, without a proxy: what stays listed, what is refused, what is reported.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::metrics::Metrics;

fn policy() -> Policy {
    Policy::parse(
        "version = 1\n[[tools]]\nname = \"lookup\"\nscopes = []\n",
        "policy.toml",
    )
    .unwrap()
}

fn tool(description: &str) -> Value {
    json!({ "name": "lookup", "description": description, "inputSchema": { "type": "object" } })
}

fn seen(tool: &Value) -> Result<Fingerprint, NotCanonical> {
    Fingerprint::of_value(tool)
}

fn integrity(pins: Option<PinSet>, on_change: OnChange) -> (Integrity, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let config = IntegrityConfig {
        pins: None,
        on_change,
    };
    (Integrity::new(&config, pins, metrics.clone()), metrics)
}

fn changes(metrics: &Metrics, label: &str) -> u64 {
    metrics.tool_changes.with_label_values(&[label]).get()
}

#[test]
fn first_use_pins_the_first_definition_and_hides_a_later_change_until_it_reverts() {
    let (integrity, metrics) = integrity(None, OnChange::Hide);
    let policy = policy();
    assert!(integrity.observe(Some("lookup"), seen(&tool("a")), &policy));
    assert!(!integrity.refuses("lookup"));
    assert!(!integrity.observe(Some("lookup"), seen(&tool("b")), &policy));
    assert!(integrity.refuses("lookup"));
    // Seen again: still hidden, but reported once.
    assert!(!integrity.observe(Some("lookup"), seen(&tool("b")), &policy));
    assert_eq!(changes(&metrics, "lookup"), 1);
    assert!(integrity.observe(Some("lookup"), seen(&tool("a")), &policy));
    assert!(!integrity.refuses("lookup"));
}

#[test]
fn with_a_pins_file_an_unpinned_tool_is_hidden_and_its_calls_refused_until_pinned() {
    let pins = PinSet::from_listing(&[tool("a")]).unwrap();
    let (integrity, metrics) = integrity(Some(pins), OnChange::Hide);
    let policy = policy();
    let other = json!({ "name": "other", "description": "x" });
    assert!(integrity.refuses("other"), "never listed, never pinned");
    assert!(!integrity.observe(Some("other"), seen(&other), &policy));
    assert_eq!(changes(&metrics, "_other"), 1);
    assert!(integrity.observe(Some("lookup"), seen(&tool("a")), &policy));
    assert!(!integrity.refuses("lookup"));

    // A renewed pins file lets the changed definition through at once.
    assert!(!integrity.observe(Some("lookup"), seen(&tool("b")), &policy));
    assert!(integrity.refuses("lookup"));
    integrity.replace_pins(PinSet::from_listing(&[tool("b"), other.clone()]).unwrap());
    assert!(!integrity.refuses("lookup"));
    assert!(!integrity.refuses("other"));
    assert!(integrity.observe(Some("lookup"), seen(&tool("b")), &policy));
}

#[test]
fn audit_mode_keeps_changed_tools_listed_and_callable_but_counts_the_change() {
    let pins = PinSet::from_listing(&[tool("a")]).unwrap();
    let (integrity, metrics) = integrity(Some(pins), OnChange::Audit);
    let policy = policy();
    assert!(integrity.observe(Some("lookup"), seen(&tool("b")), &policy));
    assert!(!integrity.refuses("lookup"));
    assert_eq!(changes(&metrics, "lookup"), 1);
}

#[test]
fn an_entry_without_a_name_or_canonical_form_is_hidden_when_changes_hide() {
    let (integrity, _) = integrity(None, OnChange::Hide);
    let policy = policy();
    assert!(!integrity.observe(None, seen(&tool("a")), &policy));
    assert!(!integrity.observe(Some("lookup"), Err(NotCanonical("inputSchema")), &policy));
}

#[test]
fn a_definition_seen_before_byte_for_byte_gets_the_same_fingerprint_and_respacing_still_matches() {
    let (integrity, _) = integrity(None, OnChange::Hide);
    let compact = [None, Some(r#""Sum""#), None, Some(r#""sum""#), None, None];
    let spaced = [None, Some(r#" "Sum" "#), None, Some(r#""sum""#), None, None];
    let first = integrity.fingerprint(compact).unwrap();
    assert_eq!(integrity.fingerprint(compact).unwrap(), first);
    assert_eq!(integrity.fingerprint(spaced).unwrap(), first);
    assert_eq!(
        first,
        Fingerprint::of_value(&json!({ "name": "sum", "description": "Sum" })).unwrap()
    );
}
