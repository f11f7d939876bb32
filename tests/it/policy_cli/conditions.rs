//! Policy version 2 in the policy tools: cases with claims and arguments, `explain` showing each
//! condition's value, `check` compiling expressions and warning on untested claims.

use super::{Files, scopegate};

const TENANT: &str = r#"version = 2
[scopes]
"customer:admin" = ["customer:read"]

[[deny]]
when = 'has(jwt.client_id) && jwt.client_id == "bot"'
reason = "blocked"

[[tools]]
name = "get_customer_info"
scopes = ["customer:read"]
when = 'has(jwt.tenant) && args.customer_id.startsWith(jwt.tenant)'
[[tools.require]]
when = 'has(args.full) && args.full'
scopes = ["customer:full"]
"#;

#[test]
fn cases_with_claims_and_arguments_pass_and_fail_on_the_condition() {
    let files = Files::new();
    let policy = files.write("p.toml", TENANT);
    let cases = files.write(
        "p.cases.toml",
        r#"[[cases]]
name = "own tenant"
scopes = ["customer:admin"]
claims = { tenant = "acme" }
tool = "get_customer_info"
arguments = { customer_id = "acme-1" }
expect = "allow"

[[cases]]
name = "other tenant, wrongly expected to pass"
scopes = ["customer:read"]
claims = { tenant = "acme" }
tool = "get_customer_info"
arguments = { customer_id = "globex-1" }
expect = "allow"

[[cases]]
name = "full record needs its scope"
scopes = ["customer:read"]
claims = { tenant = "acme" }
tool = "get_customer_info"
arguments = { customer_id = "acme-1", full = true }
expect = "deny"
expect_reason = "insufficient_scope"
expect_missing = ["customer:full"]
"#,
    );
    let run = scopegate(&["policy", "test", &policy, "--cases", &cases]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let row = |name: &str| {
        run.stdout
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name:?}:\n{}", run.stdout))
            .to_string()
    };
    assert!(row("own tenant").ends_with("PASS"));
    let failed = row("other tenant");
    assert!(
        failed.contains("deny (condition_failed)") && failed.ends_with("FAIL"),
        "{failed}"
    );
    assert!(row("full record").ends_with("PASS"));
    assert!(
        run.stdout.ends_with("2 passed, 1 failed\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn explain_shows_each_conditions_value_and_the_decision() {
    let files = Files::new();
    let policy = files.write("p.toml", TENANT);
    let run = scopegate(&[
        "policy",
        "explain",
        &policy,
        "--scopes",
        "customer:read",
        "--tool",
        "get_customer_info",
        "--claims",
        r#"{"tenant":"acme","client_id":"web"}"#,
        "--args",
        r#"{"customer_id":"acme-1","full":"yes"}"#,
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in [
        "condition: [[deny]] (blocked) 'has(jwt.client_id) && jwt.client_id == \"bot\"' = false\n",
        "condition: require customer:full 'has(args.full) && args.full' = error: ",
        "condition: when 'has(jwt.tenant) && args.customer_id.startsWith(jwt.tenant)' = true\n",
        "decision:  deny (condition_error)\n",
    ] {
        assert!(
            run.stdout.contains(line),
            "{line:?} missing from:\n{}",
            run.stdout
        );
    }
    let run = scopegate(&[
        "policy",
        "explain",
        &policy,
        "--tool",
        "get_customer_info",
        "--claims",
        "[1]",
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("--claims is not a JSON object"),
        "{}",
        run.stdout
    );
}

#[test]
fn check_reports_a_bad_expression_with_its_line_and_warns_on_an_untested_claim() {
    let files = Files::new();
    let broken = files.write(
        "broken.toml",
        "version = 2\n[[tools]]\nname = \"t\"\nscopes = []\nwhen = 'args.x >'\n",
    );
    let run = scopegate(&["policy", "check", &broken]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with(&format!(
            "{broken}:5:8: error: tools[0].when: invalid condition"
        )),
        "{}",
        run.stdout
    );
    let untested = files.write(
        "untested.toml",
        "version = 2\n[[tools]]\nname = \"t\"\nscopes = []\nwhen = 'jwt.tenant == \"a\" && has(jwt.sub) && jwt.sub != \"\"'\n",
    );
    let run = scopegate(&["policy", "check", "--deny-warnings", &untested]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with(&format!(
            "{untested}:5:8: warning: tools[0].when: reads jwt.tenant without has(jwt.tenant)"
        )),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("jwt.sub"),
        "sub is tested: {}",
        run.stdout
    );
    let tested = files.write("tested.toml", TENANT);
    let run = scopegate(&["policy", "check", "--deny-warnings", &tested]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

/// A saved `tools/list` answer of the sample customer-service server, trimmed to two tools.
const TOOLS: &str = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[
  {"name":"get_customer_info","inputSchema":{"type":"object",
    "properties":{"customer_id":{"type":"string"}},"required":["customer_id"]}},
  {"name":"create_support_ticket","inputSchema":{"type":"object",
    "properties":{"customer_id":{"type":"string"},"subject":{"type":"string"},
      "description":{"type":"string"},"priority":{"type":["string","null"]}},
    "required":["customer_id","subject","description"]}}
]}}"#;

#[test]
fn check_with_tools_catches_an_unknown_argument_a_type_mismatch_and_an_untested_optional_one() {
    let files = Files::new();
    let tools = files.write("tools.json", TOOLS);
    let policy = files.write(
        "p.toml",
        r#"version = 2
[[tools]]
name = "get_customer_info"
scopes = []
when = 'args.customerId.startsWith("acme-")'

[[tools]]
name = "create_support_ticket"
scopes = []
when = 'args.customer_id == 7'
[[tools.require]]
when = 'args.priority == "urgent"'
scopes = ["ticket:urgent"]
"#,
    );
    let run = scopegate(&["policy", "check", "--tools", &tools, &policy]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let expected = format!(
        "{policy}:5:8: error: tools[0].when: args.customerId: get_customer_info takes no argument \"customerId\" (its arguments: customer_id); the condition would fail closed on every call
{policy}:10:8: error: tools[1].when: args.customer_id is string for create_support_ticket but used as a number: this can never hold
{policy}:12:8: warning: tools[1].require[0].when: args.priority is optional for create_support_ticket but read without has(args.priority): a call without it is denied as a condition error
failed: 1 file checked, 2 errors, 1 warning
"
    );
    assert_eq!(run.stdout, expected);

    // The same policy written against the schema passes, and without --tools nothing is said.
    let fixed = files.write(
        "fixed.toml",
        r#"version = 2
[[tools]]
name = "get_customer_info"
scopes = []
when = 'args.customer_id.startsWith("acme-")'

[[tools]]
name = "create_support_ticket"
scopes = []
[[tools.require]]
when = 'has(args.priority) && args.priority == "urgent"'
scopes = ["ticket:urgent"]
"#,
    );
    let run = scopegate(&[
        "policy",
        "check",
        "--deny-warnings",
        "--tools",
        &tools,
        &fixed,
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let run = scopegate(&["policy", "check", "--deny-warnings", &policy]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}
