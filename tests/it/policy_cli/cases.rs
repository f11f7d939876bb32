//! `scopegate policy test`: a cases file run against a policy, its table and exit status.

use super::{AUDITED, Files, scopegate, shipped_policies};

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
fn unknown_key_in_a_cases_file_is_an_error_with_its_line() {
    let files = Files::new();
    let policy = files.write("p.toml", AUDITED);
    let cases = files.write(
        "c.toml",
        "[[cases]]\nname = \"x\"\ntool = \"get_customer_info\"\nexpected = \"allow\"\n",
    );
    let run = scopegate(&["policy", "test", &policy, "--cases", &cases]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with(&format!(
            "{cases}:4:1: error: cases[0].expected: unknown key; did you mean `cases[0].expect`?"
        )),
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
    let policy = files.write("p.toml", "version = 3\n");
    let cases = files.write("c.toml", "[[cases]]\nname = \"x\"\nexpect = \"allow\"\n");
    let run = scopegate(&["policy", "test", &policy, "--cases", &cases]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with(&format!(
            "{policy}:1:1: error: version: unsupported version 3"
        )),
        "{}",
        run.stdout
    );
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
