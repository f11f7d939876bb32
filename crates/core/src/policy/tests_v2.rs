//! Policy version 2: the `[scopes]` hierarchy, `when` conditions, `[[tools.require]]` and
//! `[[deny]]`, loaded and decided.

use super::*;
use crate::reason::Reason;
use serde_json::json;
use serde_json::value::RawValue;

// The version 1 tests' helpers: loading, refusing, scopes and a tool call.
use super::tests::{call, error, policy, scopes};

/// Claims and arguments for one decision.
struct Input {
    claims: serde_json::Map<String, serde_json::Value>,
    cache: ClaimsCache,
    arguments: Option<Box<RawValue>>,
}

impl Input {
    fn new(claims: serde_json::Value, arguments: Option<serde_json::Value>) -> Input {
        let serde_json::Value::Object(claims) = claims else {
            panic!("claims are an object")
        };
        Input {
            claims,
            cache: ClaimsCache::default(),
            arguments: arguments.map(|a| RawValue::from_string(a.to_string()).unwrap()),
        }
    }

    fn facts(&self) -> Facts<'_> {
        Facts {
            claims: &self.claims,
            claims_cache: &self.cache,
            arguments: Arguments::Raw(self.arguments.as_deref()),
        }
    }
}

fn reason(decision: &Decision<'_>) -> &'static str {
    match decision {
        Decision::Allow { .. } => "allow",
        Decision::Deny(denial) => denial.reason.as_str(),
    }
}

const TENANT: &str = r#"version = 2
[[tools]]
name = "get_customer_info"
scopes = ["customer:read"]
when = 'args.customer_id.startsWith(jwt.tenant)'
"#;

#[test]
fn a_condition_allows_only_where_it_holds() {
    let policy = policy(TENANT);
    let held = scopes(&["customer:read"]);
    let own = Input::new(
        json!({"tenant": "acme"}),
        Some(json!({"customer_id": "acme-7"})),
    );
    let other = Input::new(
        json!({"tenant": "acme"}),
        Some(json!({"customer_id": "globex-1"})),
    );
    assert_eq!(
        reason(&policy.decide_with(&held, &call("get_customer_info"), &own.facts())),
        "allow"
    );
    let denied = policy.decide_with(&held, &call("get_customer_info"), &other.facts());
    let Decision::Deny(denial) = denied else {
        panic!()
    };
    assert_eq!(denial.reason, Reason::ConditionFailed);
    assert_eq!(
        denial.condition,
        Some("args.customer_id.startsWith(jwt.tenant)")
    );
    assert!(
        denial.missing.is_empty(),
        "no scope fixes a failed condition"
    );
}

#[test]
fn scopes_are_checked_before_the_condition() {
    let policy = policy(TENANT);
    let other = Input::new(
        json!({"tenant": "acme"}),
        Some(json!({"customer_id": "globex-1"})),
    );
    let decision = policy.decide_with(&scopes(&[]), &call("get_customer_info"), &other.facts());
    assert_eq!(reason(&decision), "insufficient_scope");
}

#[test]
fn a_missing_claim_or_a_type_error_denies() {
    let policy = policy(TENANT);
    let held = scopes(&["customer:read"]);
    let no_claim = Input::new(json!({}), Some(json!({"customer_id": "acme-7"})));
    let wrong_type = Input::new(json!({"tenant": "acme"}), Some(json!({"customer_id": 7})));
    let no_args = Input::new(json!({"tenant": "acme"}), None);
    for input in [&no_claim, &wrong_type, &no_args] {
        let decision = policy.decide_with(&held, &call("get_customer_info"), &input.facts());
        let Decision::Deny(denial) = decision else {
            panic!("should fail closed")
        };
        assert_eq!(denial.reason, Reason::ConditionError);
        assert!(
            denial
                .audited_condition()
                .unwrap()
                .starts_with("args.customer_id")
        );
    }
}

#[test]
fn a_condition_that_is_not_a_bool_denies() {
    let policy = policy("version = 2\n[[tools]]\nname = \"t\"\nscopes = []\nwhen = 'jwt.tenant'\n");
    let input = Input::new(json!({"tenant": "acme"}), None);
    assert_eq!(
        reason(&policy.decide_with(&scopes(&[]), &call("t"), &input.facts())),
        "condition_error"
    );
}

const REFUNDS: &str = r#"version = 2
[[tools]]
name = "refund"
scopes = ["refund:create"]
[[tools.require]]
when = 'args.amount > 1000'
scopes = ["refund:large"]
"#;

#[test]
fn require_blocks_add_scopes_for_the_calls_they_match() {
    let policy = policy(REFUNDS);
    let small = Input::new(json!({}), Some(json!({"amount": 5})));
    let large = Input::new(json!({}), Some(json!({"amount": 50000})));
    let held = scopes(&["refund:create"]);
    assert_eq!(
        reason(&policy.decide_with(&held, &call("refund"), &small.facts())),
        "allow"
    );
    let Decision::Deny(denial) = policy.decide_with(&held, &call("refund"), &large.facts()) else {
        panic!("a large refund needs the extra scope")
    };
    assert_eq!(denial.reason, Reason::InsufficientScope);
    assert_eq!(denial.required, ["refund:create", "refund:large"]);
    assert_eq!(denial.missing, ["refund:large"]);
    let both = scopes(&["refund:create", "refund:large"]);
    assert_eq!(
        reason(&policy.decide_with(&both, &call("refund"), &large.facts())),
        "allow"
    );
    // Without either scope, the challenge names every scope this call needs.
    let Decision::Deny(denial) = policy.decide_with(&scopes(&[]), &call("refund"), &large.facts())
    else {
        panic!()
    };
    assert_eq!(denial.missing, ["refund:create", "refund:large"]);
}

const BLOCKING: &str = r#"version = 2
mode = "enforce"
[[deny]]
when = 'jwt.client_id == "blocked-bot"'
reason = "this client is blocked"
[[tools]]
name = "t"
scopes = []
[methods]
"prompts/get" = { scopes = [] }
"#;

#[test]
fn a_deny_rule_wins_over_every_allow_for_tools_and_methods() {
    let policy = policy(BLOCKING);
    let bot = Input::new(json!({"client_id": "blocked-bot"}), None);
    let other = Input::new(json!({"client_id": "good"}), None);
    let prompt = Action {
        method: "prompts/get",
        target: Some("p"),
    };
    for action in [call("t"), prompt] {
        let Decision::Deny(denial) = policy.decide_with(&scopes(&[]), &action, &bot.facts()) else {
            panic!("{action:?} should be denied")
        };
        assert_eq!(denial.reason, Reason::DeniedByRule);
        assert_eq!(denial.note.as_deref(), Some("this client is blocked"));
        assert_eq!(
            reason(&policy.decide_with(&scopes(&[]), &action, &other.facts())),
            "allow"
        );
    }
}

#[test]
fn audit_mode_covers_conditions_and_deny_rules() {
    let blocking = policy(&BLOCKING.replace("mode = \"enforce\"", "mode = \"audit\""));
    let bot = Input::new(json!({"client_id": "blocked-bot"}), None);
    let Decision::Deny(denial) = blocking.decide_with(&scopes(&[]), &call("t"), &bot.facts())
    else {
        panic!()
    };
    assert_eq!(denial.mode, Mode::Audit);
    let tenant = policy(&TENANT.replace("version = 2", "version = 2\nmode = \"audit\""));
    let other = Input::new(
        json!({"tenant": "acme"}),
        Some(json!({"customer_id": "globex-1"})),
    );
    let Decision::Deny(denial) = tenant.decide_with(
        &scopes(&["customer:read"]),
        &call("get_customer_info"),
        &other.facts(),
    ) else {
        panic!()
    };
    assert_eq!(
        (denial.reason, denial.mode),
        (Reason::ConditionFailed, Mode::Audit)
    );
}

#[test]
fn a_shadowed_deny_rule_does_not_hide_an_enforced_refusal() {
    let policy = policy(
        r#"version = 2
[[deny]]
when = 'jwt.client_id == "bot"'
reason = "watching this client"
mode = "audit"
[[tools]]
name = "t"
scopes = ["s"]
"#,
    );
    let bot = Input::new(json!({"client_id": "bot"}), None);
    let Decision::Deny(denial) = policy.decide_with(&scopes(&[]), &call("t"), &bot.facts()) else {
        panic!()
    };
    assert_eq!(
        (denial.reason, denial.mode),
        (Reason::InsufficientScope, Mode::Enforce)
    );
    let Decision::Deny(denial) = policy.decide_with(&scopes(&["s"]), &call("t"), &bot.facts())
    else {
        panic!("the shadowed deny is still reported")
    };
    assert_eq!(
        (denial.reason, denial.mode),
        (Reason::DeniedByRule, Mode::Audit)
    );
}

#[test]
fn listings_assume_conditions_on_arguments_and_check_the_others() {
    let policy = policy(
        r#"version = 2
[[tools]]
name = "by_args"
scopes = []
when = 'args.x == 1'
[[tools]]
name = "billing_only"
scopes = []
when = '"billing" in jwt.groups'
"#,
    );
    let claims = serde_json::Map::from_iter([("groups".to_string(), json!(["support"]))]);
    let cache = ClaimsCache::default();
    let facts = Facts {
        claims: &claims,
        claims_cache: &cache,
        arguments: Arguments::Unknown,
    };
    assert_eq!(
        reason(&policy.decide_with(&scopes(&[]), &call("by_args"), &facts)),
        "allow"
    );
    assert_eq!(
        reason(&policy.decide_with(&scopes(&[]), &call("billing_only"), &facts)),
        "condition_failed"
    );
}

const HIERARCHY: &str = r#"version = 2
[scopes]
"customer:admin" = ["customer:write"]
"customer:write" = ["customer:read"]
[[tools]]
name = "get_customer_info"
scopes = ["customer:read"]
[[tools]]
name = "delete_customer"
scopes = ["customer:admin"]
"#;

#[test]
fn a_broad_scope_implies_the_narrower_ones_transitively() {
    let policy = policy(HIERARCHY);
    let issued = scopes(&["customer:admin"]);
    let cache = GrantedCache::default();
    let granted = policy.granted(&issued, &cache);
    assert!(matches!(granted, Granted::Expanded(_)));
    assert_eq!(
        granted.iter().collect::<Vec<_>>(),
        ["customer:admin", "customer:read", "customer:write"]
    );
    assert!(
        policy
            .decide(&granted, &call("get_customer_info"))
            .is_allow()
    );
    // Once per token: the second look-up is the cached set itself.
    let (Granted::Expanded(first), Granted::Expanded(second)) =
        (granted, policy.granted(&issued, &cache))
    else {
        panic!()
    };
    assert!(std::sync::Arc::ptr_eq(&first, &second));
    // The narrow scope does not imply the broad one.
    let narrow = scopes(&["customer:read"]);
    let granted = policy.granted(&narrow, &cache);
    assert!(!policy.decide(&granted, &call("delete_customer")).is_allow());
}

#[test]
fn scopes_supported_lists_the_narrowest_first() {
    assert_eq!(
        policy(HIERARCHY).scopes_supported(),
        ["customer:read", "customer:write", "customer:admin"]
    );
    assert_eq!(
        policy(REFUNDS).scopes_supported(),
        ["refund:create", "refund:large"]
    );
}

#[test]
fn a_cycle_in_the_hierarchy_is_a_load_error_with_its_line() {
    let message = error("version = 2\n[scopes]\na = [\"b\"]\nb = [\"c\"]\nc = [\"a\"]\n");
    assert!(message.starts_with("p.toml:3:"), "{message}");
    assert!(message.contains("cycle: a -> b -> c -> a"), "{message}");
}

#[test]
fn version_2_keys_in_a_version_1_file_say_they_need_version_2() {
    let message = error("version = 1\n[[tools]]\nname = \"t\"\nscopes = []\nwhen = 'true'\n");
    assert!(message.starts_with("p.toml:5:"), "{message}");
    assert!(message.contains("needs version = 2"), "{message}");
    let message = error("version = 1\n[[deny]]\nwhen = 'true'\nreason = \"no\"\n");
    assert!(
        message.contains("[[deny]] rule needs version = 2"),
        "{message}"
    );
    let message = error("version = 1\n[scopes]\na = [\"b\"]\n");
    assert!(
        message.contains("[scopes] hierarchy needs version = 2"),
        "{message}"
    );
}

#[test]
fn expressions_compile_at_load_with_file_and_line() {
    let message =
        error("version = 2\n[[tools]]\nname = \"t\"\nscopes = []\nwhen = 'jwt.tenant =='\n");
    assert!(message.starts_with("p.toml:5:"), "{message}");
    assert!(
        message.contains("tools[0].when: invalid condition"),
        "{message}"
    );
    let message = error(
        "version = 2\n[[tools]]\nname = \"t\"\nscopes = []\n[[tools.require]]\nwhen = 'request.x > 1'\nscopes = [\"s\"]\n",
    );
    assert!(message.starts_with("p.toml:6:"), "{message}");
    assert!(message.contains("unknown variable request"), "{message}");
}

#[test]
fn comprehension_variables_are_not_unknown() {
    let policy = policy(
        "version = 2\n[[tools]]\nname = \"t\"\nscopes = []\nwhen = 'jwt.groups.exists(g, g == \"billing\")'\n",
    );
    let member = Input::new(json!({"groups": ["billing"]}), None);
    assert!(
        policy
            .decide_with(&scopes(&[]), &call("t"), &member.facts())
            .is_allow()
    );
}

#[test]
fn method_and_tool_and_scopes_are_readable() {
    let policy = policy(
        "version = 2\n[[tools]]\nname = \"admin_*\"\nscopes = []\nwhen = 'method == \"tools/call\" && tool.startsWith(\"admin_\") && \"x\" in scopes'\n",
    );
    let input = Input::new(json!({}), None);
    assert!(
        policy
            .decide_with(&scopes(&["x"]), &call("admin_reset"), &input.facts())
            .is_allow()
    );
    assert!(
        !policy
            .decide_with(&scopes(&["y"]), &call("admin_reset"), &input.facts())
            .is_allow()
    );
}

#[test]
fn arguments_no_condition_reads_are_left_out_but_a_whole_read_sees_them_all() {
    // The rule reads one field; the deny rule reads the whole object, so every field is built.
    let policy = policy(
        r#"version = 2
[[tools]]
name = "t"
scopes = []
when = 'args.customer_id == "acme-7"'

[[deny]]
when = 'size(args) > 2'
reason = "too many arguments"
"#,
    );
    let held = scopes(&[]);
    let two = Input::new(json!({}), Some(json!({"customer_id": "acme-7", "x": [1]})));
    assert_eq!(
        reason(&policy.decide_with(&held, &call("t"), &two.facts())),
        "allow"
    );
    let three = Input::new(
        json!({}),
        Some(json!({"customer_id": "acme-7", "x": [1], "y": {"z": 2}})),
    );
    assert_eq!(
        reason(&policy.decide_with(&held, &call("t"), &three.facts())),
        "denied_by_rule"
    );

    // Without the whole read, `has()` still sees a field it names, and only those are kept.
    let policy = policy_fields();
    let with = Input::new(
        json!({}),
        Some(json!({"priority": "urgent", "big": [1, 2]})),
    );
    assert_eq!(
        reason(&policy.decide_with(&held, &call("t"), &with.facts())),
        "allow"
    );
    let without = Input::new(json!({}), Some(json!({"big": [1, 2]})));
    assert_eq!(
        reason(&policy.decide_with(&held, &call("t"), &without.facts())),
        "condition_failed"
    );
}

fn policy_fields() -> Policy {
    policy(
        r#"version = 2
[[tools]]
name = "t"
scopes = []
when = 'has(args.priority) && args.priority == "urgent"'
"#,
    )
}
