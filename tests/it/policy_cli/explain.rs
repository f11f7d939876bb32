//! `scopegate policy explain`: the deciding rule, why, and what it needs.

use super::{AUDITED, Files, SHADOWED, scopegate};

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
limit:     (none)
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
fn explain_shows_the_deciding_rules_rate_limit() {
    let files = Files::new();
    let policy = files.write(
        "p.toml",
        "version = 1\n[[tools]]\nname = \"export_*\"\nscopes = [\"export\"]\nrate_limit = \"10/m\"\n",
    );
    let run = scopegate(&[
        "policy",
        "explain",
        &policy,
        "--scopes",
        "export",
        "--tool",
        "export_orders",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("requires:  all of: export\nlimit:     10/m per token subject\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn explain_needs_a_tool_or_a_method() {
    let run = scopegate(&["policy", "explain", "p.toml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("--method"), "{}", run.stderr);
}
