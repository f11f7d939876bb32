//! `scopegate policy check`: policy files, folders and cases files; findings and exit status.

use std::path::Path;

use super::{AUDITED, Files, SHADOWED, scopegate, shipped_policies};

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
fn check_passes_the_shipped_policies_folder_with_its_cases_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let files = std::fs::read_dir(&dir).unwrap().count();
    let run = scopegate(&["policy", "check", "--deny-warnings", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        format!("ok: {files} files checked, 0 errors, 0 warnings\n")
    );
}

#[test]
fn check_on_a_folder_checks_its_toml_files_in_name_order_and_not_its_subfolders() {
    let files = Files::new();
    let broken = "version = 1\n[[tools]]\nname = \"a[\"\nscopes = []\n";
    files.write("b.toml", broken);
    files.write("a.toml", broken);
    files.write("notes.txt", "not a policy");
    files.write(
        "a.cases.toml",
        "[[cases]]\nname = \"x\"\ntool = \"t\"\nexpect = \"allow\"\n",
    );
    files.write("old/broken.toml", "this is not toml");
    let run = scopegate(&["policy", "check", &files.path("")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(
        lines[0].starts_with(&format!(
            "{}:3:1: error: tools[0].name",
            files.path("a.toml")
        )),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}:3:1: error: tools[0].name",
            files.path("b.toml")
        )),
        "{}",
        run.stdout
    );
    // a.cases.toml names no policy: its shape is valid, so it passes.
    assert_eq!(lines[2], "failed: 3 files checked, 2 errors, 0 warnings");
}

#[test]
fn check_on_an_empty_folder_is_an_error() {
    let files = Files::new();
    files.write("README.md", "policies go here");
    let dir = files.path("");
    let run = scopegate(&["policy", "check", &dir]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!(
            "{dir}: error: no *.toml files in this folder (subfolders are not searched)\n\
             failed: 0 files checked, 1 error, 0 warnings\n"
        )
    );
}

#[test]
fn check_validates_a_cases_file_as_cases_not_as_a_policy() {
    let files = Files::new();
    let cases = files.write(
        "p.cases.toml",
        "[[cases]]\nname = \"x\"\ntool = \"get_customer_info\"\nexpected = \"allow\"\n",
    );
    let run = scopegate(&["policy", "check", &cases]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with(&format!(
            "{cases}:4:1: error: cases[0].expected: unknown key; did you mean `cases[0].expect`?"
        )),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("version"), "{}", run.stdout);
}

#[test]
fn check_runs_a_cases_file_against_the_policy_it_names() {
    let files = Files::new();
    files.write("p.toml", AUDITED);
    let passing = "policy = \"p.toml\"

[[cases]]
name = \"reader reads\"
scopes = [\"customer:read\"]
tool = \"get_customer_info\"
expect = \"allow\"
";
    files.write("p.cases.toml", passing);
    let run = scopegate(&["policy", "check", &files.path("")]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(run.stdout, "ok: 2 files checked, 0 errors, 0 warnings\n");

    let failing = format!(
        "{passing}
[[cases]]
name = \"reader deletes\"
scopes = [\"customer:read\"]
tool = \"delete_customer\"
expect = \"allow\"
"
    );
    let cases = files.write("p.cases.toml", &failing);
    let run = scopegate(&["policy", "check", &files.path("")]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!(
            "{cases}:10:8: error: cases[1]: \"reader deletes\" against {}: expected allow, got \
             would_deny (insufficient_scope; missing customer:delete)\n\
             failed: 2 files checked, 1 error, 0 warnings\n",
            files.path("p.toml")
        )
    );
}

#[test]
fn a_cases_file_naming_a_missing_policy_is_an_error_at_its_policy_key() {
    let files = Files::new();
    let cases = files.write(
        "p.cases.toml",
        "policy = \"gone.toml\"\n[[cases]]\nname = \"x\"\ntool = \"t\"\nexpect = \"allow\"\n",
    );
    let gone = files.path("gone.toml");
    let run = scopegate(&["policy", "check", &cases]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .starts_with(&format!("{gone}: error: cannot read the policy file: ")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "{cases}:1:10: error: policy: the cases cannot be run: {gone} does not load\n"
        )),
        "{}",
        run.stdout
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
fn scopes_on_a_task_method_warn_that_a_caller_could_not_follow_its_own_tasks() {
    let files = Files::new();
    let policy = files.write(
        "p.toml",
        "version = 1\n[methods]\n\"tasks/get\" = { scopes = [\"tasks:read\"] }\n",
    );
    let run = scopegate(&["policy", "check", &policy]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        run.stdout,
        format!(
            "{policy}:3:1: warning: methods.\"tasks/get\": \"tasks/get\" is a protocol method, \
             which needs only a valid token by default; this rule makes it need scopes, so a \
             token without them cannot follow the tasks its own calls created\n\
             ok: 1 file checked, 0 errors, 1 warning\n"
        )
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
