//! The tamper-evident audit trail end to end: a real `scopegate run` writes its log, and
//! `scopegate audit verify` accepts it as written and names the line where an edit, a deletion
//! or a reordering broke the chain.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Options, TestSystem, eventually};
use serde_json::Value;

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scopegate"))
}

/// `scopegate audit verify FILE`: exit success and the one line it prints.
fn verify(file: &Path) -> (bool, String) {
    let output = Command::new(binary())
        .args(["audit", "verify"])
        .arg(file)
        .env_remove(scopegate_core::audit_chain::KEY_ENV)
        .output()
        .expect("scopegate runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    )
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    path
}

fn is_audit(line: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| v["target"] == "audit")
}

#[tokio::test]
async fn audit_verify_accepts_a_real_log_and_names_each_edited_deleted_or_reordered_line() {
    let t = common::start_with(Options {
        proxy_binary: Some(binary()),
        ..Options::default()
    })
    .await;
    let reader = t.token(&["customer:read"]);
    for (id, (token, tool)) in [
        (Some(&reader), "get_customer_info"),
        (Some(&reader), "create_support_ticket"),
        (None, "get_customer_info"),
        (Some(&reader), "get_customer_info"),
        (Some(&reader), "create_support_ticket"),
    ]
    .into_iter()
    .enumerate()
    {
        let response = t
            .post(
                token.map(String::as_str),
                TestSystem::tool_call(tool, id as i64),
            )
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error() || response.status().is_success());
    }
    let process = t.system.process.as_ref().unwrap();
    let audit_count = |logs: &[String]| logs.iter().filter(|l| is_audit(l)).count();
    assert!(
        eventually(Duration::from_secs(5), async || audit_count(
            &process.logs()
        ) >= 5)
        .await,
        "five audit lines written"
    );
    let logs = process.logs();
    let audit: Vec<usize> = (0..logs.len()).filter(|&i| is_audit(&logs[i])).collect();
    let first: Value = serde_json::from_str(&logs[audit[0]]).unwrap();
    let second: Value = serde_json::from_str(&logs[audit[1]]).unwrap();
    assert_eq!(
        second["prev"], first["hash"],
        "each line names the previous one's hash"
    );
    let policy_hash = first["policy_hash"].as_str().unwrap();
    assert_eq!(policy_hash.len(), 16, "the policy in force: {first}");
    assert_eq!(first["decision"], "allow");
    assert_eq!(second["decision"], "deny");

    let dir = tempfile::tempdir().unwrap();
    let (ok, said) = verify(&write(dir.path(), "as-written.log", &logs));
    assert!(ok, "{said}");
    assert!(
        said.ends_with("ok: 5 audit lines in 1 chain(s), unkeyed"),
        "{said}"
    );

    // A denial turned into an allowance.
    let mut edited = logs.clone();
    edited[audit[1]] = edited[audit[1]].replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
    let (ok, said) = verify(&write(dir.path(), "edited.log", &edited));
    assert!(!ok);
    assert!(
        said.ends_with(&format!(
            ":{}: the line was altered: its hash does not match its content",
            audit[1] + 1
        )),
        "{said}"
    );

    // The refused call's line taken out.
    let mut deleted = logs.clone();
    deleted.remove(audit[2]);
    let (ok, said) = verify(&write(dir.path(), "deleted.log", &deleted));
    assert!(!ok);
    assert!(
        said.contains(&format!(
            ":{}: does not follow line {}",
            audit[2] + 1,
            audit[1] + 1
        )),
        "{said}"
    );

    // Two lines swapped.
    let mut reordered = logs.clone();
    reordered.swap(audit[3], audit[4]);
    let (ok, said) = verify(&write(dir.path(), "reordered.log", &reordered));
    assert!(!ok);
    assert!(
        said.contains(&format!(":{}: does not follow", audit[3] + 1)),
        "{said}"
    );

    // The start of the log cut off.
    let cut: Vec<String> = logs[audit[0] + 1..].to_vec();
    let (ok, said) = verify(&write(dir.path(), "cut.log", &cut));
    assert!(!ok);
    assert!(said.contains("the chain starts mid-way"), "{said}");
}
