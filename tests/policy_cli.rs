//! `scopegate policy check|test|explain` through the real binary, on files written to a temporary
//! directory: what each prints and how it exits.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn scopegate(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        code: output.status.code().expect("exited, not signalled"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A temporary directory holding the files of one test.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

fn shipped_policies() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut policies: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.ends_with(".toml") && !name.ends_with(".cases.toml")
        })
        .collect();
    policies.sort();
    policies
}

const SHADOWED: &str = r#"version = 1
default = "deny"

[[tools]]
name = "*"
scopes = ["tools:any"]

[[tools]]
name = "admin_*"
scopes = ["admin"]

[[tools]]
name = "admin_reset"
scopes = ["admin"]
"#;

// --- check --------------------------------------------------------------------------------------

#[test]
fn check_passes_every_shipped_policy() {
    let policies = shipped_policies();
    assert!(policies.len() >= 2, "{policies:?}");
    let mut args = vec!["policy", "check", "--deny-warnings"];
    args.extend(policies.iter().map(|p| p.to_str().unwrap()));
    let run = scopegate(&args);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        format!(
            "ok: {} files checked, 0 errors, 0 warnings\n",
            policies.len()
        )
    );
}

#[test]
fn glob_after_a_glob_that_covers_it_is_an_error_at_its_name() {
    let files = Files::new();
    let policy = files.write("p.toml", SHADOWED);
    let run = scopegate(&["policy", "check", &policy]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.stdout,
        format!(
            "{policy}:9:1: error: tools[1].name: \"admin_*\" can never match: the earlier glob \
             \"*\" (line 5) matches every name it matches; move this rule above it, or remove \
             it\nfailed: 1 file checked, 1 error, 0 warnings\n"
        )
    );
    // The exact `admin_reset` after `*` is not reported: exact names beat globs.
    assert!(!run.stdout.contains("admin_reset"));
}

#[test]
fn narrow_glob_before_broad_glob_is_clean() {
    let files = Files::new();
    let policy = files.write(
        "p.toml",
        r#"version = 1
[[tools]]
name = "get_customer_*"
scopes = ["customer:read"]
[[tools]]
name = "get_*"
scopes = ["read"]
[[tools]]
name = "*_info"
scopes = ["read"]
"#,
    );
    let run = scopegate(&["policy", "check", &policy]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.stdout, "ok: 1 file checked, 0 errors, 0 warnings\n");
}

#[test]
fn load_errors_are_reported_with_file_line_and_column() {
    let files = Files::new();
    let policy = files.write(
        "bad.toml",
        r#"version = 1
[[tools]]
name = "get_[x]"
scopes = ["a"]
colour = "blue"
"#,
    );
    let run = scopegate(&["policy", "check", &policy]);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{policy}:3:1: error: tools[0].name: ")),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines[1],
        format!(
            "{policy}:5:1: error: tools[0].colour: unknown key; expected one of: name, scopes, \
             any_of, rate_limit, mode"
        )
    );
    assert_eq!(lines[2], "failed: 1 file checked, 2 errors, 0 warnings");
}

#[test]
fn unreadable_file_is_an_error_and_other_files_are_still_checked() {
    let files = Files::new();
    let good = files.write("good.toml", "version = 1\n");
    let missing = files.0.path().join("missing.toml").display().to_string();
    let run = scopegate(&["policy", "check", &missing, &good]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .starts_with(&format!("{missing}: error: cannot read the policy file: ")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .ends_with("failed: 2 files checked, 1 error, 0 warnings\n")
    );
}

#[test]
fn scopes_on_a_protocol_method_warn_and_fail_only_with_deny_warnings() {
    let files = Files::new();
    let policy = files.write(
        "p.toml",
        r#"version = 1
[methods]
"tools/list" = { scopes = ["tools:list"] }
"ping" = { scopes = [] }
"#,
    );
    let run = scopegate(&["policy", "check", &policy]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        run.stdout,
        format!(
            "{policy}:3:1: warning: methods.\"tools/list\": \"tools/list\" is a protocol method, \
             which needs only a valid token by default; this rule makes it need scopes, so a \
             token without them cannot list what the server offers\n\
             ok: 1 file checked, 0 errors, 1 warning\n"
        )
    );
    let strict = scopegate(&["policy", "check", "--deny-warnings", &policy]);
    assert_eq!(strict.code, 1);
    assert!(
        strict
            .stdout
            .ends_with("failed: 1 file checked, 0 errors, 1 warning\n")
    );
}

#[test]
fn a_method_rule_for_no_mcp_method_warns() {
    let files = Files::new();
    let policy = files.write(
        "p.toml",
        "version = 1\n[methods]\n\"resource/read\" = { scopes = [\"r\"] }\n",
    );
    let run = scopegate(&["policy", "check", &policy]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.starts_with(&format!(
            "{policy}:3:1: warning: methods.\"resource/read\": \"resource/read\" is not an MCP \
             request method"
        )),
        "{}",
        run.stdout
    );
}

#[test]
fn known_scopes_flag_scopes_outside_them_and_scopes_no_rule_uses() {
    let files = Files::new();
    let policy = files.write(
        "p.toml",
        r#"version = 1
[[tools]]
name = "get_customer_info"
scopes = ["customer:raed"]
[[tools]]
name = "admin_*"
any_of = [["admin"], ["ops", "breakglas"]]
"#,
    );
    let run = scopegate(&[
        "policy",
        "check",
        "--known-scopes",
        "customer:read admin ops breakglass",
        &policy,
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let expected = [
        format!("{policy}: warning: known scope \"breakglass\" is used by no rule"),
        format!("{policy}: warning: known scope \"customer:read\" is used by no rule"),
        format!(
            "{policy}:4:11: warning: tools[0].scopes[0]: scope \"customer:raed\" is not among \
             the known scopes; no token will carry it"
        ),
        format!(
            "{policy}:7:30: warning: tools[1].any_of[1][1]: scope \"breakglas\" is not among the \
             known scopes; no token will carry it"
        ),
        "ok: 1 file checked, 0 errors, 4 warnings".to_owned(),
    ];
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), expected);
}

// --- test ---------------------------------------------------------------------------------------

#[test]
fn every_shipped_policy_passes_its_cases() {
    for policy in shipped_policies() {
        let cases = policy.with_extension("cases.toml");
        assert!(cases.exists(), "{} has no cases file", policy.display());
        let run = scopegate(&[
            "policy",
            "test",
            policy.to_str().unwrap(),
            "--cases",
            cases.to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{}", run.stdout);
        assert!(
            run.stdout.ends_with(" passed, 0 failed\n"),
            "{}",
            run.stdout
        );
    }
}

const AUDITED: &str = r#"version = 1
[[tools]]
name = "get_customer_info"
scopes = ["customer:read"]
[[tools]]
name = "delete_*"
scopes = ["customer:delete"]
mode = "audit"
"#;

#[test]
fn cases_print_a_table_and_a_final_count_and_a_failure_exits_1() {
    let files = Files::new();
    let policy = files.write("p.toml", AUDITED);
    let cases = files.write(
        "p.cases.toml",
        r#"[[cases]]
name = "reader reads"
scopes = ["customer:read"]
tool = "get_customer_info"
expect = "allow"

[[cases]]
name = "delete is only shadowed"
tool = "delete_customer"
expect = "would_deny"
expect_missing = ["customer:delete"]

[[cases]]
name = "wrong expectation"
scopes = ["customer:read"]
tool = "get_customer_info"
expect = "deny"
"#,
    );
    let run = scopegate(&["policy", "test", &policy, "--cases", &cases]);
    assert_eq!(run.code, 1);
    let expected = "\
CASE                     EXPECTED                            GOT                                                     RESULT
reader reads             allow                               allow                                                   PASS
delete is only shadowed  would_deny (missing customer:delete)  would_deny (insufficient_scope; missing customer:delete)  PASS
wrong expectation        deny                                allow                                                   FAIL
2 passed, 1 failed
";
    // Column widths come from the longest cell, so compare cell by cell.
    let cells = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| {
                l.split("  ")
                    .filter(|c| !c.is_empty())
                    .map(|c| c.trim().to_owned())
                    .collect()
            })
            .collect()
    };
    assert_eq!(cells(&run.stdout), cells(expected), "{}", run.stdout);
    assert_eq!(run.stdout.lines().last(), Some("2 passed, 1 failed"));
}

#[test]
fn a_wrong_missing_set_or_reason_fails_the_case() {
    let files = Files::new();
    let policy = files.write("p.toml", AUDITED);
    let cases = files.write(
        "c.toml",
        r#"[[cases]]
name = "missing differs"
tool = "get_customer_info"
expect = "deny"
expect_missing = ["customer:write"]

[[cases]]
name = "reason differs"
tool = "get_customer_info"
expect = "deny"
expect_reason = "no_rule"
"#,
    );
    let run = scopegate(&["policy", "test", &policy, "--cases", &cases]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout.lines().filter(|l| l.ends_with("FAIL")).count(),
        2
    );
    assert!(run.stdout.ends_with("\n0 passed, 2 failed\n"));
}

#[test]
fn every_problem_in_a_cases_file_is_reported_with_its_line_and_key() {
    let files = Files::new();
    let policy = files.write("p.toml", AUDITED);
    let cases = files.write(
        "c.toml",
        "[[cases]]\nname = \"x\"\ntool = \"get_customer_info\"\nexpected = \"allow\"\n\n\
         [[cases]]\nname = \"y\"\nscopes = \"customer:read\"\nexpect = \"allow\"\n\n\
         [[cases]]\nname = \"z\"\nexpect = \"maybe\"\n",
    );
    let run = scopegate(&["policy", "test", &policy, "--cases", &cases]);
    assert_eq!(run.code, 1);
    let expected = [
        format!(
            "{cases}:4:1: error: cases[0].expected: unknown key; did you mean `cases[0].expect`?"
        ),
        format!(
            "{cases}:8:10: error: cases[1].scopes: invalid type: string \"customer:read\", expected a sequence"
        ),
        format!(
            "{cases}:13:10: error: cases[2].expect: unknown variant `maybe`, expected one of `allow`, `deny`, `would_deny`"
        ),
    ];
    assert!(
        run.stdout.starts_with(&expected.join("\n")),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("passed"));
}

#[test]
fn inconsistent_cases_are_errors_with_their_lines() {
    let files = Files::new();
    let policy = files.write("p.toml", AUDITED);
    let cases = files.write(
        "c.toml",
        r#"[[cases]]
name = "a"
method = "prompts/get"
tool = "get_customer_info"
expect = "deny"

[[cases]]
name = "a"
expect = "allow"
expect_reason = "no_rule"
"#,
    );
    let run = scopegate(&["policy", "test", &policy, "--cases", &cases]);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{cases}:4:8: error: cases[0].tool: a tool only applies to tools/call, not \
                 \"prompts/get\""
            ),
            format!("{cases}:8:8: error: cases[1].name: duplicate case name \"a\""),
            format!(
                "{cases}:10:17: error: cases[1].expect_reason: expect_reason only applies to a \
                 denial"
            ),
        ]
    );
}

#[test]
fn an_invalid_policy_fails_the_test_run_with_its_problems() {
    let files = Files::new();
    let policy = files.write("p.toml", "version = 2\n");
    let cases = files.write("c.toml", "[[cases]]\nname = \"x\"\nexpect = \"allow\"\n");
    let run = scopegate(&["policy", "test", &policy, "--cases", &cases]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with(&format!(
            "{policy}:1:1: error: version: unsupported version 2"
        )),
        "{}",
        run.stdout
    );
}

// --- explain ------------------------------------------------------------------------------------

#[test]
fn explain_names_the_glob_that_decided_and_what_is_missing() {
    let files = Files::new();
    let policy = files.write("p.toml", SHADOWED);
    let run = scopegate(&[
        "policy",
        "explain",
        &policy,
        "--scopes",
        "admin",
        "--tool",
        "admin_reset",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&format!(
        "rule:      tools[2] \"admin_reset\" (exact, {policy}:13)\n"
    )));
    assert!(
        run.stdout
            .ends_with("mode:      enforce\ndecision:  allow\n")
    );

    let run = scopegate(&[
        "policy",
        "explain",
        &policy,
        "--scopes",
        "admin",
        "--tool",
        "admin_list",
    ]);
    let expected = format!(
        "call:      tools/call admin_list
rule:      tools[0] \"*\" (glob, {policy}:5)
why:       no exact rule names \"admin_list\"; \"*\" is the first glob in file order that matches it
requires:  all of: tools:any
held:      admin
missing:   tools:any
mode:      enforce
decision:  deny (insufficient_scope)
"
    );
    assert_eq!(run.stdout, expected);
}

#[test]
fn explain_shows_shadow_mode_and_protocol_and_default_decisions() {
    let files = Files::new();
    let policy = files.write("p.toml", AUDITED);
    let run = scopegate(&["policy", "explain", &policy, "--tool", "delete_customer"]);
    assert!(run.stdout.contains("mode:      audit\n"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("decision:  would_deny (insufficient_scope): audit mode")
    );

    let run = scopegate(&["policy", "explain", &policy, "--method", "ping"]);
    assert!(run.stdout.contains("rule:      (none: protocol method)\n"));
    assert!(run.stdout.ends_with("decision:  allow\n"));

    let run = scopegate(&[
        "policy",
        "explain",
        &policy,
        "--scopes",
        "customer:read",
        "--method",
        "resources/read",
    ]);
    assert!(run.stdout.contains("rule:      (none: default deny)\n"));
    assert!(run.stdout.ends_with("decision:  deny (no_rule)\n"));
}

#[test]
fn explain_needs_a_tool_or_a_method() {
    let run = scopegate(&["policy", "explain", "p.toml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--method"), "{}", run.stderr);
}
