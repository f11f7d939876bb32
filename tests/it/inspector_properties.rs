//! Properties of the JSON-RPC inspector over generated bodies: whatever it accepts, serde_json
//! (standing in for the upstream's reader) reads as the same messages; whatever holds a
//! duplicate key, at any depth and however escaped, it refuses.

use proptest::prelude::*;
use scopegate_core::mcp::{InspectError, InspectLimits, Inspection, RequestId, inspect};
use serde_json::{Value, json};

const METHODS: [&str; 8] = [
    "tools/call",
    "tools/list",
    "prompts/get",
    "resources/read",
    "initialize",
    "ping",
    "notifications/initialized",
    "Tools/Call",
];

fn id() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        any::<i64>().prop_map(|n| Some(json!(n))),
        "[a-z0-9-]{0,12}".prop_map(|s| Some(json!(s))),
    ]
}

/// Argument values: nested objects and arrays of scalars, a few levels deep.
fn argument() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\\\\/\"]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON-RPC request or notification as a value (so its keys are unique).
fn message() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(METHODS.to_vec()),
        id(),
        "\\PC{1,20}",
        argument(),
    )
        .prop_map(|(method, id, name, arguments)| {
            let params = match method {
                "resources/read" => json!({ "uri": name }),
                _ => json!({ "name": name, "arguments": arguments }),
            };
            let mut message = json!({ "jsonrpc": "2.0", "method": method, "params": params });
            if let Some(id) = id {
                message["id"] = id;
            }
            message
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        message().prop_map(|m| m.to_string().into_bytes()),
        prop::collection::vec(message(), 1..4)
            .prop_map(|batch| Value::Array(batch).to_string().into_bytes()),
    ]
}

/// Method, id and target of each message as serde_json reads the body.
/// One message as a reader sees it: method, id, target.
type Reading = (Option<String>, Option<Value>, Option<String>);

fn serde_reading(body: &[u8]) -> Option<Vec<Reading>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let messages = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    Some(
        messages
            .iter()
            .map(|m| {
                let method = m["method"].as_str().map(str::to_owned);
                let target = match method.as_deref() {
                    Some("tools/call" | "prompts/get") => m["params"]["name"].as_str(),
                    Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
                        m["params"]["uri"].as_str()
                    }
                    _ => None,
                };
                (method, m.get("id").cloned(), target.map(str::to_owned))
            })
            .collect(),
    )
}

fn inspector_reading(inspection: &Inspection<'_>) -> Vec<Reading> {
    inspection
        .messages
        .iter()
        .map(|m| {
            let id = m.id.as_ref().map(|id| match id {
                RequestId::Number(n) => json!(n),
                RequestId::String(s) => json!(s),
            });
            (
                m.method.as_deref().map(str::to_owned),
                id,
                m.target.as_deref().map(str::to_owned),
            )
        })
        .collect()
}

/// Replaces one byte, inserts one, or deletes one: small damage that keeps most of the body.
fn mutate(mut body: Vec<u8>, at: usize, byte: u8, how: u8) -> Vec<u8> {
    if body.is_empty() {
        return vec![byte];
    }
    let at = at % body.len();
    match how % 3 {
        0 => body[at] = byte,
        1 => body.insert(at, byte),
        _ => {
            body.remove(at);
        }
    }
    body
}

/// Bytes that matter to JSON, more often than chance would pick them.
fn json_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(b"{}[]\",:\\u0123456789eE.-+ tfn\xEF\xBB\xBF\xC0\x80".to_vec()),
        any::<u8>(),
    ]
}

/// An object with `key` twice among other members; the second spelling may be escaped.
fn with_duplicate(key: &str, escaped: bool, position: usize, others: &[(String, Value)]) -> String {
    let second = if escaped {
        let mut chars = key.chars();
        let first = chars.next().unwrap();
        format!("\\u{:04x}{}", first as u32, chars.as_str())
    } else {
        key.to_owned()
    };
    let mut members: Vec<String> = others
        .iter()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| format!("{}:{v}", json!(k)))
        .collect();
    members.insert(0, format!("\"{key}\":1"));
    let at = 1 + position % members.len();
    members.insert(at, format!("\"{second}\":2"));
    format!("{{{}}}", members.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_bodies_read_the_same_in_serde_json(body in body()) {
        if let Ok(inspection) = inspect(&body, &InspectLimits::default()) {
            let serde = serde_reading(&body).expect("serde_json reads what the inspector accepted");
            prop_assert_eq!(inspector_reading(&inspection), serde);
        }
    }

    #[test]
    fn damaged_bodies_are_refused_or_read_the_same(
        body in body(), at in any::<usize>(), byte in json_byte(), how in any::<u8>()
    ) {
        let body = mutate(body, at, byte, how);
        if let Ok(inspection) = inspect(&body, &InspectLimits::default()) {
            let serde = serde_reading(&body);
            prop_assert!(serde.is_some(), "accepted what serde_json refuses: {:?}", String::from_utf8_lossy(&body));
            prop_assert_eq!(inspector_reading(&inspection), serde.unwrap());
        }
    }

    #[test]
    fn a_duplicate_key_at_any_depth_is_refused(
        key in "[a-z][a-z_]{0,8}",
        escaped in any::<bool>(),
        position in any::<usize>(),
        depth in 0usize..12,
        others in prop::collection::vec(("[a-z]{1,6}", argument()), 0..4),
        place in 0u8..3,
    ) {
        let object = with_duplicate(&key, escaped, position, &others);
        let nested = format!("{}{object}{}", "{\"n\":[".repeat(depth), "]}".repeat(depth));
        let body = match place {
            // In the arguments of a tool call, nested `depth` levels down.
            0 => format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{nested}}}}}"#),
            // As params itself.
            1 => format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{object}}}"#),
            // Inside the second message of a batch.
            _ => format!(r#"[{{"jsonrpc":"2.0","method":"ping"}},{{"jsonrpc":"2.0","id":2,"method":"x","params":{nested}}}]"#),
        };
        let result = inspect(body.as_bytes(), &InspectLimits::default());
        prop_assert!(matches!(result, Err(InspectError::DuplicateKey { .. })), "{body}: {result:?}");
    }

    #[test]
    fn a_duplicated_envelope_member_is_refused(
        member in prop::sample::select(vec!["jsonrpc", "id", "method", "params"]),
        escaped in any::<bool>(),
    ) {
        let members = [
            ("jsonrpc", json!("2.0")),
            ("id", json!(1)),
            ("method", json!("tools/call")),
            ("params", json!({ "name": "t" })),
        ];
        let others: Vec<(String, Value)> = members.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let mut object = with_duplicate(member, escaped, 3, &others);
        // `with_duplicate` gave the duplicated member the values 1 and 2; restore valid ones.
        let valid = members.iter().find(|(k, _)| *k == member).unwrap().1.to_string();
        object = object.replacen(":1", &format!(":{valid}"), 1);
        let result = inspect(object.as_bytes(), &InspectLimits::default());
        prop_assert!(matches!(result, Err(InspectError::DuplicateKey { .. })), "{object}: {result:?}");
    }
}
