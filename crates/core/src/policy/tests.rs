use super::*;
use crate::reason::Reason;

const CUSTOMER_SERVICE: &str = include_str!("../../../../policies/customer-service.toml");

pub(super) fn policy(source: &str) -> Policy {
    Policy::parse(source, "test.toml").unwrap_or_else(|e| panic!("policy should load:\n{e}"))
}

pub(super) fn error(source: &str) -> String {
    match Policy::parse(source, "p.toml") {
        Ok(_) => panic!("policy should be refused:\n{source}"),
        Err(e) => e.to_string(),
    }
}

pub(super) fn scopes(list: &[&str]) -> ScopeSet {
    ScopeSet::new(list.iter().copied())
}

pub(super) fn call(tool: &str) -> Action<'_> {
    Action {
        method: "tools/call",
        target: Some(tool),
    }
}

fn method(method: &str) -> Action<'_> {
    Action {
        method,
        target: None,
    }
}

fn denial<'p>(decision: Decision<'p>) -> Denial<'p> {
    match decision {
        Decision::Deny(denial) => denial,
        Decision::Allow { rule } => panic!("expected a denial, got an allow by {rule:?}"),
    }
}

fn allowed_by<'p>(decision: Decision<'p>) -> Option<&'p str> {
    match decision {
        Decision::Allow { rule } => rule.map(|r| r.name),
        Decision::Deny(denial) => panic!("expected an allow, got {denial:?}"),
    }
}

// --- The shipped example policy ---------------------------------------------------------------

#[test]
fn customer_service_policy_decides_each_tool() {
    let policy = Policy::parse(CUSTOMER_SERVICE, "customer-service.toml").unwrap();
    let cases = [
        ("get_customer_info", "customer:read"),
        ("get_recent_customers", "customer:read"),
        ("create_support_ticket", "ticket:create"),
        ("calculate_account_value", "account:calculate"),
    ];
    for (tool, scope) in cases {
        let allowed = policy.decide(&scopes(&[scope]), &call(tool));
        assert_eq!(allowed_by(allowed), Some(tool));

        let others: Vec<&str> = cases.iter().map(|c| c.1).filter(|s| *s != scope).collect();
        let denied = denial(policy.decide(&scopes(&others), &call(tool)));
        assert_eq!(denied.reason, Reason::InsufficientScope, "{tool}");
        assert_eq!(denied.missing, [scope], "{tool}");
        assert_eq!(denied.mode, Mode::Enforce);
    }
    let unknown = denial(policy.decide(&scopes(&["customer:read"]), &call("delete_customer")));
    assert_eq!(unknown.reason, Reason::NoRule);
}

#[test]
fn customer_service_policy_lists_its_scopes() {
    let policy = policy(CUSTOMER_SERVICE);
    assert_eq!(
        policy.scopes_supported(),
        ["account:calculate", "customer:read", "ticket:create"]
    );
    assert_eq!(policy.mode(), Mode::Enforce);
}

// --- Loading: what is accepted ----------------------------------------------------------------

#[test]
fn missing_default_means_deny() {
    let policy = policy("version = 1\n[[tools]]\nname = \"a\"\nscopes = []\n");
    assert!(policy.decide(&scopes(&[]), &call("a")).is_allow());
    let denied = denial(policy.decide(&scopes(&[]), &call("b")));
    assert_eq!(denied.reason, Reason::NoRule);
}

#[test]
fn policy_without_rules_denies_every_call() {
    let policy = policy("version = 1\ndefault = \"deny\"\n");
    assert_eq!(
        denial(policy.decide(&scopes(&["x"]), &call("a"))).reason,
        Reason::NoRule
    );
    assert!(policy.scopes_supported().is_empty());
}

#[test]
fn inline_tool_array_and_method_subtables_are_accepted() {
    let policy = policy(
        r#"version = 1
tools = [{ name = "a", scopes = ["s"] }]
[methods."prompts/get"]
scopes = ["p"]
"#,
    );
    assert_eq!(
        allowed_by(policy.decide(&scopes(&["s"]), &call("a"))),
        Some("a")
    );
    assert_eq!(
        allowed_by(policy.decide(&scopes(&["p"]), &method("prompts/get"))),
        Some("prompts/get")
    );
}

#[test]
fn rate_limit_and_mode_are_kept_on_the_rule() {
    let policy = policy(
        r#"version = 1
mode = "audit"
[[tools]]
name = "a"
scopes = ["s"]
rate_limit = "10/m"
mode = "enforce"
[[tools]]
name = "b"
scopes = ["s"]
"#,
    );
    assert_eq!(policy.mode(), Mode::Audit);
    let Decision::Allow { rule: Some(rule) } = policy.decide(&scopes(&["s"]), &call("a")) else {
        panic!("a should be allowed by its rule");
    };
    assert_eq!(rule.mode, Mode::Enforce);
    let limit = rule.rate_limit.unwrap();
    assert_eq!(
        (limit.count, limit.per, limit.period().as_secs()),
        (10, Per::Minute, 60)
    );

    // Without its own mode a rule takes the policy's, and so does a denial without a rule.
    let denied = denial(policy.decide(&scopes(&[]), &call("b")));
    assert_eq!(
        (denied.mode, denied.rule.unwrap().mode),
        (Mode::Audit, Mode::Audit)
    );
    assert_eq!(
        denial(policy.decide(&scopes(&[]), &call("c"))).mode,
        Mode::Audit
    );
}

#[test]
fn load_names_the_file_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("customer.toml");
    std::fs::write(&path, "version = 3\n").unwrap();
    let message = Policy::load(&path).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "{}:1:1: version: unsupported version 3; this scopegate reads versions 1 to 2",
            path.display()
        )
    );

    std::fs::write(&path, CUSTOMER_SERVICE).unwrap();
    assert!(Policy::load(&path).is_ok());
}

#[test]
fn unreadable_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let err = Policy::load(&path).unwrap_err();
    assert!(matches!(err, PolicyError::Read { .. }));
    assert!(err.problems().is_empty());
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read", path.display()))
    );
}

// --- Loading: what is refused, and how it is reported -------------------------------------------

#[test]
fn duplicate_tool_rule_is_rejected_with_both_lines() {
    let source = r#"version = 1

[[tools]]
name = "get_customer_info"
scopes = ["customer:read"]

[[tools]]
name = "get_customer_info"
scopes = ["admin"]
"#;
    let err = Policy::parse(source, "customer.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "customer.toml:8:1: tools[1].name: duplicate rule for \"get_customer_info\" (first at line 4)"
    );
    let problem = &err.problems()[0];
    assert_eq!((problem.line, problem.column), (8, 1));
    assert_eq!(problem.key, "tools[1].name");
}

#[test]
fn duplicate_method_rule_is_rejected() {
    let source = r#"version = 1
[methods]
"resources/read" = { scopes = ["a"] }
'resources/read' = { scopes = ["b"] }
"#;
    assert_eq!(error(source), "p.toml:4:1: duplicate key 'resources/read'");
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let source = "version = 1\nowner = \"team\"\n\n[[tools]]\nname = \"a\"\nscopes = [\"s\"]\nscope = [\"s\"]\n";
    assert_eq!(
        error(source),
        "p.toml:2:1: owner: unknown key; expected one of: version, default, mode, tools, methods\n\
         p.toml:7:1: tools[0].scope: unknown key; did you mean `tools[0].scopes`?"
    );
}

#[test]
fn unknown_key_in_a_method_rule_is_named_with_its_method() {
    let source = "version = 1\n[methods]\n\"prompts/get\" = { scopes = [\"p\"], name = \"x\" }\n";
    assert_eq!(
        error(source),
        "p.toml:3:35: methods.\"prompts/get\".name: unknown key; expected one of: scopes, any_of, rate_limit, mode"
    );
}

#[test]
fn every_wrong_value_type_in_a_rule_is_reported_with_its_key() {
    let source = "version = \"1\"\n[[tools]]\nname = \"a\"\nscopes = [\"s\", 3]\nrate_limit = 10\n";
    assert_eq!(
        error(source),
        "p.toml:1:11: version: invalid type: string \"1\", expected i64\n\
         p.toml:4:16: tools[0].scopes[1]: invalid type: integer `3`, expected a string\n\
         p.toml:5:14: tools[0].rate_limit: invalid type: integer `10`, expected a string"
    );
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let source = "version = 1\n[[tools]\nname = \"a\"\n";
    let message = error(source);
    assert!(message.starts_with("p.toml:2:9: "), "{message}");
}

#[test]
fn missing_or_unsupported_version_is_rejected() {
    assert_eq!(
        error("default = \"deny\"\n"),
        "p.toml:1:1: version: missing; start the file with `version = 1`"
    );
    assert_eq!(
        error("version = 3\n"),
        "p.toml:1:1: version: unsupported version 3; this scopegate reads versions 1 to 2"
    );
}

#[test]
fn default_other_than_deny_is_rejected() {
    assert_eq!(
        error("version = 1\ndefault = \"allow\"\n"),
        "p.toml:2:1: default: \"allow\" is not supported; the only default is \"deny\""
    );
}

#[test]
fn unknown_mode_is_rejected() {
    assert_eq!(
        error(
            "version = 1\nmode = \"shadow\"\n[[tools]]\nname = \"a\"\nscopes = []\nmode = \"Audit\"\n"
        ),
        "p.toml:2:1: mode: \"shadow\" is not a mode; expected \"enforce\" or \"audit\"\n\
         p.toml:6:1: tools[0].mode: \"Audit\" is not a mode; expected \"enforce\" or \"audit\""
    );
}

#[test]
fn bad_glob_characters_are_rejected() {
    for name in ["admin_[ab]", "admin_{a,b}", "admin\\_x", "x]"] {
        let source = format!("version = 1\n[[tools]]\nname = {name:?}\nscopes = []\n");
        let message = error(&source);
        assert!(
            message.starts_with("p.toml:3:1: tools[0].name: ")
                && message.ends_with("which is not allowed; the only glob characters are * and ?"),
            "{message}"
        );
    }
}

#[test]
fn empty_or_missing_tool_name_is_rejected() {
    assert_eq!(
        error("version = 1\n[[tools]]\nname = \"\"\nscopes = []\n"),
        "p.toml:3:1: tools[0].name: empty name; name a tool, or use a glob such as \"admin_*\""
    );
    assert_eq!(
        error("version = 1\n[[tools]]\nscopes = []\n"),
        "p.toml:2:1: tools[0]: missing name: the tool's exact name, or a glob such as \"admin_*\""
    );
}

#[test]
fn rule_needs_exactly_one_of_scopes_and_any_of() {
    let source = r#"version = 1
[[tools]]
name = "both"
scopes = ["a"]
any_of = [["b"]]
[[tools]]
name = "neither"
"#;
    assert_eq!(
        error(source),
        "p.toml:5:1: tools[0]: has both scopes and any_of; keep one\n\
         p.toml:6:1: tools[1]: needs scopes = [...] or any_of = [[...], ...]; scopes = [] allows any valid token"
    );
}

#[test]
fn empty_any_of_and_empty_any_of_set_are_rejected() {
    let source = r#"version = 1
[[tools]]
name = "a"
any_of = []
[[tools]]
name = "b"
any_of = [["x"], []]
"#;
    assert_eq!(
        error(source),
        "p.toml:4:1: tools[0].any_of: needs at least one set of scopes\n\
         p.toml:7:18: tools[1].any_of[1]: empty set; to allow any valid token, use scopes = [] instead"
    );
}

#[test]
fn scope_unfit_for_the_challenge_header_is_rejected() {
    let source = r#"version = 1
[[tools]]
name = "a"
scopes = ["ok", "", "two words", "quo\"te", "back\\slash", "café"]
"#;
    let expected = [
        r#"p.toml:4:17: tools[0].scopes[1]: empty scope"#,
        r#"p.toml:4:21: tools[0].scopes[2]: "two words" is not a valid scope: printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)"#,
        r#"p.toml:4:34: tools[0].scopes[3]: "quo\"te" is not a valid scope: printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)"#,
        r#"p.toml:4:45: tools[0].scopes[4]: "back\\slash" is not a valid scope: printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)"#,
        r#"p.toml:4:60: tools[0].scopes[5]: "café" is not a valid scope: printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)"#,
    ];
    assert_eq!(error(source), expected.join("\n"));
}

#[test]
fn bad_rate_limit_is_rejected() {
    let source = "version = 1\n[[tools]]\nname = \"a\"\nscopes = []\nrate_limit = \"10/min\"\n[[tools]]\nname = \"b\"\nscopes = []\nrate_limit = \"0/s\"\n";
    assert_eq!(
        error(source),
        "p.toml:5:1: tools[0].rate_limit: \"10/min\" is not a rate such as \"10/s\", \"10/m\" or \"10/h\"\n\
         p.toml:9:1: tools[1].rate_limit: \"0/s\" allows no calls; to refuse a tool, remove its rule"
    );
}

#[test]
fn tools_call_under_methods_is_rejected() {
    let source = "version = 1\n[methods]\n\"tools/call\" = { scopes = [] }\n\"Tools/Call\" = { scopes = [] }\n";
    assert_eq!(
        error(source),
        "p.toml:3:1: methods.\"tools/call\": tools/call is ruled per tool by [[tools]] entries, not under [methods]\n\
         p.toml:4:1: methods.\"Tools/Call\": tools/call is ruled per tool by [[tools]] entries, not under [methods]"
    );
}

#[test]
fn method_rules_do_not_take_globs() {
    assert_eq!(
        error("version = 1\n[methods]\n\"resources/*\" = { scopes = [\"r\"] }\n"),
        "p.toml:3:1: methods.\"resources/*\": \"resources/*\": method rules name one method exactly; globs are for [[tools]] names"
    );
}

#[test]
fn every_problem_is_reported() {
    let source = r#"version = 3
default = "allow"
owner = "platform"

[[tools]]
name = "get_customer_info"
scopes = ["customer:read"]
rate_limit = "fast"

[[tools]]
name = "get_customer_info"
scopes = ["customer read"]

[[tools]]
name = "admin_[x]"
any_of = [[]]
colour = "red"

[methods]
"tools/call" = { scopes = [] }
"prompts/get" = { scopes = ["p"], mode = "loud" }
"#;
    let expected = [
        "p.toml:1:1: version: unsupported version 3; this scopegate reads versions 1 to 2",
        "p.toml:2:1: default: \"allow\" is not supported; the only default is \"deny\"",
        "p.toml:3:1: owner: unknown key; expected one of: version, default, mode, tools, methods",
        "p.toml:8:1: tools[0].rate_limit: \"fast\" is not a rate such as \"10/s\", \"10/m\" or \"10/h\"",
        "p.toml:11:1: tools[1].name: duplicate rule for \"get_customer_info\" (first at line 6)",
        "p.toml:12:11: tools[1].scopes[0]: \"customer read\" is not a valid scope: printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)",
        "p.toml:15:1: tools[2].name: \"admin_[x]\" contains '[', which is not allowed; the only glob characters are * and ?",
        "p.toml:16:11: tools[2].any_of[0]: empty set; to allow any valid token, use scopes = [] instead",
        "p.toml:17:1: tools[2].colour: unknown key; expected one of: name, scopes, any_of, rate_limit, mode",
        "p.toml:20:1: methods.\"tools/call\": tools/call is ruled per tool by [[tools]] entries, not under [methods]",
        "p.toml:21:35: methods.\"prompts/get\".mode: \"loud\" is not a mode; expected \"enforce\" or \"audit\"",
    ];
    let err = Policy::parse(source, "p.toml").unwrap_err();
    assert_eq!(err.to_string(), expected.join("\n"));
    assert_eq!(err.problems().len(), expected.len());
}

// --- Decisions ----------------------------------------------------------------------------------

const GLOBS: &str = r#"version = 1

[[tools]]
name = "admin_delete_*"
scopes = ["admin:delete"]

[[tools]]
name = "admin_*"
scopes = ["admin"]

[[tools]]
name = "admin_status"
scopes = []

[[tools]]
name = "report_v?"
scopes = ["reports"]
"#;

#[test]
fn glob_rule_matches_prefix() {
    let policy = policy(GLOBS);
    assert_eq!(
        allowed_by(policy.decide(&scopes(&["admin"]), &call("admin_reset_cache"))),
        Some("admin_*")
    );
    assert_eq!(
        allowed_by(policy.decide(&scopes(&["reports"]), &call("report_v2"))),
        Some("report_v?")
    );
    let denied = denial(policy.decide(&scopes(&["reports"]), &call("report_v10")));
    assert_eq!(denied.reason, Reason::NoRule);
    let denied = denial(policy.decide(&scopes(&["admin"]), &call("administer")));
    assert_eq!(denied.reason, Reason::NoRule);
}

#[test]
fn exact_rule_beats_glob() {
    let policy = policy(GLOBS);
    // admin_status is written after admin_*, and still wins.
    assert_eq!(
        allowed_by(policy.decide(&scopes(&[]), &call("admin_status"))),
        Some("admin_status")
    );
}

#[test]
fn first_glob_in_file_order_wins() {
    let policy = policy(GLOBS);
    let denied = denial(policy.decide(&scopes(&["admin"]), &call("admin_delete_user")));
    assert_eq!(denied.rule.map(|r| r.name), Some("admin_delete_*"));
    assert_eq!(denied.missing, ["admin:delete"]);
}

#[test]
fn insufficient_scope_lists_missing_and_required() {
    let policy =
        policy("version = 1\n[[tools]]\nname = \"t\"\nscopes = [\"a\", \"b\", \"c\", \"a\"]\n");
    let denied = denial(policy.decide(&scopes(&["b", "z"]), &call("t")));
    assert_eq!(denied.reason, Reason::InsufficientScope);
    assert_eq!(denied.reason.as_str(), "insufficient_scope");
    assert_eq!(denied.required, ["a", "b", "c"]);
    assert_eq!(denied.missing, ["a", "c"]);
    assert_eq!(denied.rule.map(|r| r.name), Some("t"));
}

#[test]
fn empty_scopes_allow_any_valid_token() {
    let policy = policy("version = 1\n[[tools]]\nname = \"t\"\nscopes = []\n");
    assert_eq!(
        allowed_by(policy.decide(&ScopeSet::default(), &call("t"))),
        Some("t")
    );
}

const ANY_OF: &str = r#"version = 1
[[tools]]
name = "refund"
any_of = [["billing:write", "refund:approve", "audit:write"], ["admin"], ["support:write", "refund:request"]]
"#;

#[test]
fn any_of_allows_with_any_one_set() {
    let policy = policy(ANY_OF);
    assert!(
        policy
            .decide(&scopes(&["admin"]), &call("refund"))
            .is_allow()
    );
    assert!(
        policy
            .decide(
                &scopes(&["refund:request", "support:write"]),
                &call("refund")
            )
            .is_allow()
    );
    assert!(
        !policy
            .decide(&scopes(&["refund:approve"]), &call("refund"))
            .is_allow()
    );
}

#[test]
fn any_of_reports_the_closest_set() {
    let policy = policy(ANY_OF);
    let denied = denial(policy.decide(
        &scopes(&["billing:write", "refund:approve"]),
        &call("refund"),
    ));
    assert_eq!(
        denied.required,
        ["billing:write", "refund:approve", "audit:write"]
    );
    assert_eq!(denied.missing, ["audit:write"]);

    let denied = denial(policy.decide(&scopes(&["support:write"]), &call("refund")));
    assert_eq!(denied.missing, ["admin"], "ties go to the first set");
    assert_eq!(denied.required, ["admin"]);
}

#[test]
fn tool_without_rule_is_denied() {
    let policy = policy(GLOBS);
    let denied = denial(policy.decide(&scopes(&["admin"]), &call("get_weather")));
    assert_eq!(denied.reason, Reason::NoRule);
    assert_eq!(denied.reason.as_str(), "no_rule");
    assert!(denied.rule.is_none() && denied.missing.is_empty() && denied.required.is_empty());
}

#[test]
fn tools_call_without_target_is_denied() {
    let policy = policy("version = 1\n[[tools]]\nname = \"*\"\nscopes = []\n");
    let denied = denial(policy.decide(&scopes(&[]), &method("tools/call")));
    assert_eq!(denied.reason, Reason::MissingTarget);
    assert_eq!(denied.reason.as_str(), "missing_target");
}

#[test]
fn protocol_methods_need_only_a_token() {
    let policy = policy(CUSTOMER_SERVICE);
    for name in [
        "initialize",
        "ping",
        "notifications/initialized",
        "notifications/cancelled",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    ] {
        assert_eq!(
            allowed_by(policy.decide(&ScopeSet::default(), &method(name))),
            None,
            "{name}"
        );
    }
}

#[test]
fn methods_on_one_task_handle_need_only_a_token_but_listing_tasks_needs_a_rule() {
    let policy = policy(CUSTOMER_SERVICE);
    for name in ["tasks/get", "tasks/update", "tasks/cancel", "tasks/result"] {
        assert_eq!(
            allowed_by(policy.decide(&ScopeSet::default(), &method(name))),
            None,
            "{name}"
        );
    }
    let denied = denial(policy.decide(&ScopeSet::default(), &method("tasks/list")));
    assert_eq!(denied.reason, Reason::NoRule);
}

#[test]
fn method_rule_applies_to_its_method_even_a_protocol_one() {
    let policy = policy(
        r#"version = 1
[methods]
"resources/read" = { scopes = ["resources:read"], rate_limit = "5/s" }
"tools/list" = { scopes = ["tools:list"] }
"#,
    );
    let read = Action {
        method: "resources/read",
        target: Some("file:///etc/passwd"),
    };
    let Decision::Allow { rule: Some(rule) } = policy.decide(&scopes(&["resources:read"]), &read)
    else {
        panic!("resources/read should be allowed by its rule");
    };
    assert_eq!(rule.name, "resources/read");
    assert_eq!(rule.rate_limit.map(|r| r.to_string()), Some("5/s".into()));

    let denied = denial(policy.decide(&scopes(&[]), &method("tools/list")));
    assert_eq!(denied.missing, ["tools:list"]);
    assert!(
        policy
            .decide(&scopes(&[]), &method("prompts/list"))
            .is_allow()
    );
}

#[test]
fn unknown_method_is_denied_by_default() {
    let policy = policy(CUSTOMER_SERVICE);
    for name in [
        "resources/read",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "resources/subscribe",
        "frobnicate",
        "",
    ] {
        let denied = denial(policy.decide(&scopes(&["customer:read"]), &method(name)));
        assert_eq!(denied.reason, Reason::NoRule, "{name}");
    }
}

#[test]
fn odd_case_method_is_denied() {
    let policy = policy("version = 1\n[[tools]]\nname = \"*\"\nscopes = []\n");
    for name in [
        "Tools/Call",
        "TOOLS/CALL",
        "tools/call ",
        "Initialize",
        "Notifications/initialized",
    ] {
        let action = Action {
            method: name,
            target: Some("anything"),
        };
        let denied = denial(policy.decide(&ScopeSet::default(), &action));
        assert_eq!(denied.reason, Reason::NoRule, "{name:?}");
    }
}

// --- Helpers for the rest of the proxy -----------------------------------------------------------

#[test]
fn knows_tool_matches_exact_names_and_globs() {
    let policy = policy(GLOBS);
    assert!(policy.knows_tool("admin_status"));
    assert!(policy.knows_tool("admin_anything"));
    assert!(policy.knows_tool("report_v1"));
    assert!(!policy.knows_tool("get_weather"));
}

#[test]
fn scopes_supported_covers_scopes_and_any_of_sorted_once() {
    let policy = policy(
        r#"version = 1
[[tools]]
name = "a"
scopes = ["z", "b"]
[[tools]]
name = "b"
any_of = [["b"], ["c", "a"]]
[methods]
"prompts/get" = { scopes = ["a"] }
"#,
    );
    assert_eq!(policy.scopes_supported(), ["a", "b", "c", "z"]);
}

#[test]
fn source_hash_is_fnv1a_of_the_text() {
    assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
    let one = policy("version = 1\n");
    let other = policy("version = 1\n# changed\n");
    assert_eq!(one.source_hash().len(), 16);
    assert_eq!(one.source_hash(), policy("version = 1\n").source_hash());
    assert_ne!(one.source_hash(), other.source_hash());
}

#[test]
fn scope_set_drops_duplicates_and_finds_members() {
    let set = ScopeSet::new(["b", "a", "b"]);
    assert_eq!(set.len(), 2);
    assert_eq!(set.iter().collect::<Vec<_>>(), ["a", "b"]);
    assert!(set.contains("a") && set.contains("b") && !set.contains("c"));
    let owned = ScopeSet::new(vec![String::from("x")]);
    assert!(owned.contains("x"));
}
