//! `scopegate demo` as a newcomer runs it: the binary, its table, its exit code.

use std::process::Command;

#[test]
fn demo_plays_every_scenario_with_the_expected_outcome() {
    let output = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .arg("demo")
        .env("RUST_LOG", "warn")
        .output()
        .expect("scopegate demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    let rows: Vec<&str> = stdout.lines().collect();
    let row = |scenario: &str| {
        rows.iter()
            .find(|line| line.starts_with(scenario))
            .unwrap_or_else(|| panic!("no row for {scenario}:\n{stdout}"))
            .to_string()
    };
    assert!(row("allowed customer lookup").contains(" 200 "));
    assert!(row("allowed customer lookup").contains("allowed:"));
    assert!(row("account calculation").contains(" 200 "));
    let denied = row("ticket by a read-only client");
    assert!(denied.contains(" 403 "), "{denied}");
    assert!(denied.contains("insufficient_scope"), "{denied}");
    assert!(denied.contains("ticket:create"), "{denied}");
    assert!(row("no token").contains(" 401 "));
    let expired = row("expired token");
    assert!(
        expired.contains(" 401 ") && expired.contains("expired"),
        "{expired}"
    );
    let allowed = row("chat via adapter, allowed");
    assert!(
        allowed.contains(" 200 ") && allowed.contains("tool call allowed"),
        "{allowed}"
    );
    let refused = row("chat via adapter, refused");
    assert!(
        refused.contains(" 200 ")
            && refused.contains("tool call refused, model told missing scope ticket:create"),
        "{refused}"
    );
    assert!(
        stdout.contains("all 7 scenarios ended as expected"),
        "{stdout}"
    );
    assert!(!stdout.contains("UNEXPECTED"));
}
