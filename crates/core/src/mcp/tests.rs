use std::borrow::Cow;

use super::*;

fn ok(body: &str) -> Inspection<'_> {
    match inspect(body.as_bytes(), &InspectLimits::default()) {
        Ok(inspection) => inspection,
        Err(err) => panic!("refused {body}: {err}"),
    }
}

fn refused(body: &[u8]) -> InspectError {
    match inspect(body, &InspectLimits::default()) {
        Ok(inspection) => panic!(
            "accepted {:?}: {inspection:?}",
            String::from_utf8_lossy(body)
        ),
        Err(err) => err,
    }
}

fn reason(body: &str) -> &'static str {
    refused(body.as_bytes()).reason().as_str()
}

fn single(body: &str) -> Message<'_> {
    let inspection = ok(body);
    assert!(!inspection.batch);
    assert_eq!(inspection.messages.len(), 1);
    inspection.messages.into_iter().next().unwrap()
}

/// A tools/call request whose arguments nest `levels` arrays inside `arguments`.
fn nested_call(levels: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","arguments":{{"x":{}1{}}}}}}}"#,
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

// Happy paths.

#[test]
fn initialize_request_is_a_request_without_target() {
    let m = single(
        r#"{
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {"roots": {"listChanged": true}, "sampling": {}, "elicitation": {}},
                "clientInfo": {"name": "example-client", "title": "Example", "version": "1.0.0"}
            }
        }"#,
    );
    assert_eq!(m.kind, MessageKind::Request);
    assert_eq!(m.id, Some(RequestId::Number(0)));
    assert_eq!(m.method.as_deref(), Some("initialize"));
    assert_eq!(m.target, None);
}

#[test]
fn tools_call_with_nested_arguments_names_its_tool() {
    let m = single(
        r#"{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{
            "name":"get_customer_info",
            "arguments":{"customer":{"id":42,"name":"Ada","tags":["vip",{"name":"x"}]},"limit":1.5e3,"flag":null},
            "_meta":{"progressToken":"p1"}}}"#,
    );
    assert_eq!(m.kind, MessageKind::Request);
    assert_eq!(m.id, Some(RequestId::String(Cow::Borrowed("call-7"))));
    assert_eq!(m.method.as_deref(), Some("tools/call"));
    assert_eq!(m.target.as_deref(), Some("get_customer_info"));
}

#[test]
fn arguments_are_kept_as_the_raw_slice_of_the_body() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"id":"a-1","n":[1, 2]}}}"#;
    let m = single(body);
    let raw = m.arguments.expect("arguments kept");
    assert_eq!(raw.get(), r#"{"id":"a-1","n":[1, 2]}"#);
    // A slice of the body, not a copy.
    assert!(body.as_bytes().as_ptr_range().contains(&raw.get().as_ptr()));
    let none = single(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#);
    assert!(none.arguments.is_none());
}

#[test]
fn a_lone_surrogate_inside_arguments_is_refused() {
    // Depth and duplicate keys inside arguments have their own tests below.
    let surrogate = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"q":"\ud800"}}}"#;
    assert!(matches!(
        inspect(surrogate.as_bytes(), &InspectLimits::default()),
        Err(InspectError::LoneSurrogate)
    ));
}

#[test]
fn unescaped_strings_borrow_from_the_body() {
    let m = single(r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"t"}}"#);
    assert!(matches!(m.method, Some(Cow::Borrowed(_))));
    assert!(matches!(m.target, Some(Cow::Borrowed(_))));
    assert!(matches!(m.id, Some(RequestId::String(Cow::Borrowed(_)))));
}

#[test]
fn escaped_strings_are_read_unescaped() {
    let m = single(
        r#"{"jsonrpc":"2\u002e0","id":1,"method":"tools\/call","params":{"n\u0061me":"get_\u0063ustomer"}}"#,
    );
    assert_eq!(m.method.as_deref(), Some("tools/call"));
    assert_eq!(m.target.as_deref(), Some("get_customer"));
}

#[test]
fn response_element_is_a_response() {
    let m = single(r#"{"jsonrpc":"2.0","id":5,"result":{"content":[]}}"#);
    assert_eq!(m.kind, MessageKind::Response);
    assert_eq!(m.id, Some(RequestId::Number(5)));
    assert_eq!(m.method, None);
    assert_eq!(m.target, None);

    let m = single(r#"{"jsonrpc":"2.0","id":"s1","error":{"code":-32601,"message":"nope"}}"#);
    assert_eq!(m.kind, MessageKind::Response);
}

#[test]
fn null_result_still_makes_a_response() {
    let m = single(r#"{"jsonrpc":"2.0","id":5,"result":null}"#);
    assert_eq!(m.kind, MessageKind::Response);
}

#[test]
fn batch_classifies_every_element() {
    let inspection = ok(r#"[
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
        {"jsonrpc":"2.0","method":"notifications/initialized"},
        {"jsonrpc":"2.0","id":"r","result":{}},
        {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///x"}},
        {"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"p","arguments":{}}}
    ]"#);
    assert!(inspection.batch);
    let got: Vec<_> = inspection
        .messages
        .iter()
        .map(|m| (m.kind, m.method.as_deref(), m.target.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (MessageKind::Request, Some("tools/call"), Some("a")),
            (
                MessageKind::Notification,
                Some("notifications/initialized"),
                None
            ),
            (MessageKind::Response, None, None),
            (
                MessageKind::Request,
                Some("resources/read"),
                Some("file:///x")
            ),
            (MessageKind::Request, Some("prompts/get"), Some("p")),
        ]
    );
}

#[test]
fn single_element_batch_is_still_a_batch() {
    let inspection = ok(r#"[{"jsonrpc":"2.0","method":"ping","id":1}]"#);
    assert!(inspection.batch);
    assert_eq!(inspection.messages.len(), 1);
}

#[test]
fn first_id_skips_notifications() {
    let inspection = ok(
        r#"[{"jsonrpc":"2.0","method":"n"},{"jsonrpc":"2.0","method":"m","id":"x"},{"jsonrpc":"2.0","method":"m","id":2}]"#,
    );
    assert_eq!(
        inspection.first_id(),
        Some(&RequestId::String(Cow::Borrowed("x")))
    );
    assert_eq!(ok(r#"{"jsonrpc":"2.0","method":"n"}"#).first_id(), None);
}

#[test]
fn request_id_serialises_as_sent() {
    assert_eq!(serde_json::to_string(&RequestId::Number(-3)).unwrap(), "-3");
    assert_eq!(
        serde_json::to_string(&RequestId::String(Cow::Borrowed("a\"b"))).unwrap(),
        r#""a\"b""#
    );
}

#[test]
fn whitespace_around_the_value_is_accepted() {
    ok(" \t\r\n{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"id\":1} \n");
}

#[test]
fn unknown_members_are_validated_but_allowed() {
    ok(r#"{"jsonrpc":"2.0","method":"ping","id":1,"extra":{"a":[1,2,{"b":true}]}}"#);
    assert_eq!(
        reason(r#"{"jsonrpc":"2.0","method":"ping","id":1,"extra":{"a":1,"a":2}}"#),
        "duplicate_key"
    );
}

// Encoding.

#[test]
fn bom_is_refused() {
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(br#"{"jsonrpc":"2.0","method":"ping","id":1}"#);
    assert!(matches!(refused(&body), InspectError::Bom));
}

#[test]
fn invalid_utf8_in_a_string_is_refused() {
    let body = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\xFFb\"}}";
    assert!(matches!(refused(body), InspectError::InvalidUtf8));
}

#[test]
fn invalid_utf8_in_an_ignored_value_is_refused() {
    let body = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":{\"x\":\"\xC0\xAF\"}}";
    assert_eq!(refused(body).reason().as_str(), "invalid_utf8");
}

#[test]
fn utf8_encoded_surrogate_is_refused() {
    // Python decodes request bodies with "surrogatepass"; the bytes of U+D800 must not get through.
    let body =
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":{\"x\":\"\xED\xA0\x80\"}}";
    assert_eq!(refused(body).reason().as_str(), "invalid_utf8");
}

#[test]
fn invalid_utf8_outside_strings_is_refused() {
    let body = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\"}\xFF";
    assert_eq!(refused(body).reason().as_str(), "invalid_utf8");
}

#[test]
fn lone_surrogate_is_refused() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\ud800"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\udc00b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"deep":["\ud800\u0041"]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"k\udbff":1}}"#,
    ] {
        assert!(
            matches!(refused(body.as_bytes()), InspectError::LoneSurrogate),
            "{body}"
        );
    }
}

#[test]
fn paired_surrogates_are_accepted() {
    let m = single(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud83d\ude00"}}"#,
    );
    assert_eq!(m.target.as_deref(), Some("\u{1F600}"));
}

// Syntax.

#[test]
fn nan_is_refused() {
    for value in ["NaN", "Infinity", "-Infinity"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"x":{value}}}}}"#);
        assert_eq!(reason(&body), "syntax", "{value}");
    }
}

#[test]
fn non_standard_numbers_are_refused() {
    for value in ["+1", "0x10", "01", ".5", "1.", "1e", "-", "1e999"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"x":{value}}}}}"#);
        assert_eq!(reason(&body), "syntax", "{value}");
    }
}

#[test]
fn trailing_garbage_is_refused() {
    for tail in ["x", "{}", r#"{"jsonrpc":"2.0","method":"m"}"#, "\0"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m"}}{tail}"#);
        assert!(
            matches!(refused(body.as_bytes()), InspectError::TrailingData),
            "{tail:?}"
        );
    }
}

#[test]
fn malformed_json_is_a_syntax_error() {
    for body in [
        "",
        "{",
        r#"{"jsonrpc":"2.0","id":1,"method":"m",}"#,
        r#"{'jsonrpc':'2.0'}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":"\x"}}"#,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":{\"a\":\"\x01\"}}",
        r#"{"jsonrpc":"2.0","id":1,"method":"m"} // comment"#,
    ] {
        let err = refused(body.as_bytes());
        assert!(
            matches!(err, InspectError::Syntax(_) | InspectError::TrailingData),
            "{body}: {err}"
        );
    }
}

// Depth.

#[test]
fn depth_limit_is_enforced() {
    // Message object, params, arguments and the array holding the levels: 3 + levels.
    ok(&nested_call(DEFAULT_MAX_DEPTH - 3));
    let err = refused(nested_call(DEFAULT_MAX_DEPTH - 2).as_bytes());
    assert!(
        matches!(err, InspectError::TooDeep { max_depth: 64 }),
        "{err}"
    );
}

#[test]
fn depth_limit_is_configurable() {
    let limits = InspectLimits { max_depth: 5 };
    assert!(inspect(nested_call(2).as_bytes(), &limits).is_ok());
    let err = inspect(nested_call(3).as_bytes(), &limits).unwrap_err();
    assert_eq!(err.reason().as_str(), "too_deep");
}

#[test]
fn batch_counts_as_a_level() {
    let limits = InspectLimits { max_depth: 2 };
    let body = r#"[{"jsonrpc":"2.0","method":"m"}]"#;
    assert!(inspect(body.as_bytes(), &limits).is_ok());
    let body = r#"[{"jsonrpc":"2.0","method":"m","params":{}}]"#;
    assert_eq!(
        inspect(body.as_bytes(), &limits)
            .unwrap_err()
            .reason()
            .as_str(),
        "too_deep"
    );
}

#[test]
fn depth_limit_above_the_parsers_is_still_too_deep() {
    let limits = InspectLimits { max_depth: 1000 };
    assert!(inspect(nested_call(123).as_bytes(), &limits).is_ok());
    let err = inspect(nested_call(124).as_bytes(), &limits).unwrap_err();
    assert_eq!(err.reason().as_str(), "too_deep");
}

#[test]
fn very_deep_nesting_is_refused_without_overflow() {
    assert_eq!(reason(&nested_call(100_000)), "too_deep");
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(reason(&body), "not_jsonrpc");
}

// Duplicate keys.

#[test]
fn duplicate_key_at_top_level_is_refused() {
    let err = refused(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping","params":{"name":"a"}}"#,
    );
    assert!(
        matches!(&err, InspectError::DuplicateKey { key } if key == "method"),
        "{err}"
    );
}

#[test]
fn duplicate_tool_name_is_refused() {
    let err = refused(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","name":"dangerous"}}"#);
    assert!(
        matches!(&err, InspectError::DuplicateKey { key } if key == "name"),
        "{err}"
    );
}

#[test]
fn duplicate_key_in_nested_arguments_is_refused() {
    let err = refused(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"q":{"path":"/ok","path":"/etc/passwd"}}}}"#,
    );
    assert!(
        matches!(&err, InspectError::DuplicateKey { key } if key == "path"),
        "{err}"
    );
}

#[test]
fn escaped_duplicate_key_is_refused() {
    let err = refused(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","n\u0061me":"b"}}"#,
    );
    assert!(
        matches!(&err, InspectError::DuplicateKey { key } if key == "name"),
        "{err}"
    );
}

#[test]
fn duplicate_key_in_a_batch_element_is_refused() {
    assert_eq!(
        reason(r#"[{"jsonrpc":"2.0","method":"m"},{"jsonrpc":"2.0","method":"m","id":1,"id":2}]"#),
        "duplicate_key"
    );
}

#[test]
fn same_key_in_sibling_and_nested_objects_is_not_a_duplicate() {
    ok(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"name":{"name":1},"x":{"name":2}},"x":[{"name":3},{"name":4}]}}"#,
    );
}

#[test]
fn duplicate_key_in_a_large_object_is_refused() {
    let mut members: Vec<String> = (0..500).map(|i| format!(r#""k{i}":{i}"#)).collect();
    let unique = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{{}}}}}"#,
        members.join(",")
    );
    ok(&unique);
    members.push(r#""k7":0"#.to_owned());
    let duplicated = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{{}}}}}"#,
        members.join(",")
    );
    let err = refused(duplicated.as_bytes());
    assert!(
        matches!(&err, InspectError::DuplicateKey { key } if key == "k7"),
        "{err}"
    );
}

#[test]
fn nested_object_inside_a_large_object_keeps_its_own_keys() {
    let members: Vec<String> = (0..100)
        .map(|i| format!(r#""k{i}":{{"k{i}":1,"z":2}}"#))
        .collect();
    ok(&format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{{}}}}}"#,
        members.join(",")
    ));
}

#[test]
fn duplicate_key_error_echoes_at_most_64_characters() {
    let key = "k".repeat(1000);
    let body = format!(r#"{{"jsonrpc":"2.0","method":"m","{key}":1,"{key}":2}}"#);
    let err = refused(body.as_bytes());
    assert!(matches!(&err, InspectError::DuplicateKey { key } if key.chars().count() == 64));
    assert!(err.to_string().len() < 100, "{err}");
}

// Envelope.

#[test]
fn top_level_scalar_is_refused() {
    for body in ["1", "\"x\"", "null", "true", "-2.5"] {
        assert_eq!(reason(body), "not_jsonrpc", "{body}");
    }
}

#[test]
fn empty_batch_is_refused() {
    assert!(matches!(refused(b"[]"), InspectError::EmptyBatch));
    assert!(matches!(refused(b" [ ] "), InspectError::EmptyBatch));
}

#[test]
fn batch_element_that_is_not_an_object_is_refused() {
    for body in [
        r#"[{"jsonrpc":"2.0","method":"m"},1]"#,
        r#"[{"jsonrpc":"2.0","method":"m"},[{"jsonrpc":"2.0","method":"m"}]]"#,
        r#"[null]"#,
    ] {
        assert_eq!(reason(body), "not_jsonrpc", "{body}");
    }
}

#[test]
fn missing_or_wrong_jsonrpc_version_is_refused() {
    for body in [
        r#"{"id":1,"method":"m"}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#,
        r#"{"jsonrpc":2.0,"id":1,"method":"m"}"#,
        r#"{"jsonrpc":"2.0 ","id":1,"method":"m"}"#,
        r#"{"jsonrpc":null,"id":1,"method":"m"}"#,
    ] {
        assert!(
            matches!(refused(body.as_bytes()), InspectError::BadVersion),
            "{body}"
        );
    }
}

#[test]
fn method_that_is_not_a_string_is_refused() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":null}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":["tools/call"]}"#,
    ] {
        assert_eq!(reason(body), "bad_method", "{body}");
    }
}

#[test]
fn method_case_is_kept() {
    let m = single(r#"{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"a"}}"#);
    assert_eq!(m.method.as_deref(), Some("Tools/Call"));
    // Not the tools/call method, so it names no tool (and needs none).
    assert_eq!(m.target, None);
}

#[test]
fn string_and_integer_ids_are_accepted() {
    let id = |body| single(body).id;
    assert_eq!(
        id(r#"{"jsonrpc":"2.0","id":"","method":"m"}"#),
        Some(RequestId::String(Cow::Borrowed("")))
    );
    assert_eq!(
        id(r#"{"jsonrpc":"2.0","id":-1,"method":"m"}"#),
        Some(RequestId::Number(-1))
    );
    assert_eq!(
        id(r#"{"jsonrpc":"2.0","id":9223372036854775807,"method":"m"}"#),
        Some(RequestId::Number(i64::MAX))
    );
    assert_eq!(
        id(r#"{"jsonrpc":"2.0","id":-9223372036854775808,"method":"m"}"#),
        Some(RequestId::Number(i64::MIN))
    );
}

#[test]
fn big_integer_id_is_refused() {
    for id in [
        "9223372036854775808",
        "18446744073709551616",
        "-9223372036854775809",
        "1e3",
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#);
        assert_eq!(reason(&body), "bad_id", "{id}");
    }
}

#[test]
fn float_id_is_refused() {
    for id in ["1.0", "1.5", "-0"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#);
        assert_eq!(reason(&body), "bad_id", "{id}");
    }
}

#[test]
fn null_and_other_ids_are_refused() {
    for id in ["null", "true", "[1]", r#"{"a":1}"#] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#);
        assert_eq!(reason(&body), "bad_id", "{id}");
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#);
        assert_eq!(reason(&body), "bad_id", "{id}");
    }
}

#[test]
fn method_with_result_or_error_is_refused() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"m","result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"m","error":{"code":1,"message":"x"}}"#,
        r#"{"jsonrpc":"2.0","method":"m","result":null}"#,
    ] {
        assert!(
            matches!(refused(body.as_bytes()), InspectError::Ambiguous),
            "{body}"
        );
    }
}

#[test]
fn object_without_method_result_or_error_is_refused() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"2.0","id":1,"params":{}}"#,
    ] {
        assert!(
            matches!(refused(body.as_bytes()), InspectError::NotAMessage),
            "{body}"
        );
    }
}

#[test]
fn response_needs_an_id_and_one_outcome() {
    for body in [
        r#"{"jsonrpc":"2.0","result":{}}"#,
        r#"{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#,
    ] {
        assert!(
            matches!(refused(body.as_bytes()), InspectError::BadResponse),
            "{body}"
        );
    }
}

#[test]
fn params_must_be_an_object_or_array() {
    ok(r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[1,2]}"#);
    ok(r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{}}"#);
    for params in ["null", "1", "\"x\"", "true"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{params}}}"#);
        assert_eq!(reason(&body), "bad_params", "{params}");
    }
}

// Targets.

#[test]
fn notification_form_tools_call_keeps_its_tool_name() {
    let m =
        single(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"delete_everything"}}"#);
    assert_eq!(m.kind, MessageKind::Notification);
    assert_eq!(m.id, None);
    assert_eq!(m.target.as_deref(), Some("delete_everything"));
}

#[test]
fn tools_call_without_a_string_name_is_refused() {
    for params in [
        None,
        Some("{}"),
        Some(r#"{"name":1}"#),
        Some(r#"{"name":null}"#),
        Some(r#"{"name":["a"]}"#),
        Some(r#"["a"]"#),
        Some(r#"{"arguments":{"name":"a"}}"#),
    ] {
        let body = match params {
            None => r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#.to_owned(),
            Some(p) => format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{p}}}"#),
        };
        assert!(
            matches!(refused(body.as_bytes()), InspectError::MissingToolName),
            "{body}"
        );
    }
    let body = r#"{"jsonrpc":"2.0","method":"tools/call","params":{"uri":"a"}}"#;
    assert_eq!(reason(body), "missing_tool_name");
}

#[test]
fn name_before_method_is_still_the_target() {
    let m = single(
        r#"{"params":{"arguments":{},"name":"late"},"id":1,"method":"tools/call","jsonrpc":"2.0"}"#,
    );
    assert_eq!(m.target.as_deref(), Some("late"));
}

#[test]
fn prompts_get_names_its_prompt() {
    let m =
        single(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summary"}}"#);
    assert_eq!(m.target.as_deref(), Some("summary"));
    assert!(matches!(
        refused(br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"uri":"x"}}"#),
        InspectError::MissingPromptName
    ));
}

#[test]
fn resource_methods_name_their_uri() {
    for method in [
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"uri":"db://t/1","name":"n"}}}}"#
        );
        assert_eq!(
            single(&body).target.as_deref(),
            Some("db://t/1"),
            "{method}"
        );
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"name":"n"}}}}"#);
        assert!(
            matches!(refused(body.as_bytes()), InspectError::MissingResourceUri),
            "{method}"
        );
    }
}

#[test]
fn other_methods_have_no_target() {
    let m =
        single(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"x","uri":"y"}}"#);
    assert_eq!(m.target, None);
}

// Errors.

#[test]
fn every_error_has_a_short_message_and_a_snake_case_reason() {
    let bodies: [&[u8]; 12] = [
        b"\xEF\xBB\xBF{}",
        b"{\"a\":\"\xFF\"}",
        br#"{"a":"\ud800"}"#,
        b"{",
        b"{} x",
        br#"{"a":1,"a":2}"#,
        b"1",
        b"[]",
        br#"{"jsonrpc":"1"}"#,
        br#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"m","params":1}"#,
    ];
    for body in bodies {
        let err = refused(body);
        let reason = err.reason().as_str();
        assert!(
            reason
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{reason}"
        );
        assert!(err.to_string().len() <= 120, "{err}");
    }
}

#[test]
fn syntax_error_does_not_echo_the_body() {
    let secret = "s3cr3t-value";
    let body =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{{"x":"{secret}" "y":1}}}}"#);
    let err = refused(body.as_bytes());
    assert_eq!(err.reason().as_str(), "syntax");
    assert!(!err.to_string().contains(secret), "{err}");
}

#[test]
fn the_meta_protocol_version_task_handle_and_task_opt_in_are_read_from_params() {
    let message = single(
        r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t\u002d1","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}}}}"#,
    );
    assert_eq!(message.task.as_deref(), Some("t-1"));
    assert_eq!(message.protocol_version.as_deref(), Some("2026-07-28"));
    assert!(message.wants_task);
    let legacy = single(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","task":{"ttl":1}}}"#,
    );
    assert!(legacy.wants_task);
    assert_eq!(legacy.protocol_version, None);
    // The same keys deeper down (inside arguments) are the tool's business, not the message's.
    let nested = single(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"taskId":"t","task":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"1"}}}}"#,
    );
    assert_eq!(
        (nested.task, nested.protocol_version, nested.wants_task),
        (None, None, false)
    );
}
