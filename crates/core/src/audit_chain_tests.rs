use super::*;

fn audit(n: usize, decision: &str) -> String {
    format!(
        "{{\"timestamp\":\"2026-01-01T00:00:0{n}Z\",\"level\":\"INFO\",\"message\":\"decision\",\"decision\":\"{decision}\",\"target\":\"audit\"}}\n"
    )
}

const OTHER: &str = "{\"timestamp\":\"2026-01-01T00:00:00Z\",\"level\":\"INFO\",\"message\":\"listening\",\"target\":\"scopegate::server\"}\n";

/// A log as the writer seals it: two audit lines, another line, two more audit lines.
fn sealed(key: Option<&[u8]>) -> String {
    let mut writer = ChainWriter::new(Vec::new(), key);
    for line in [
        audit(1, "allow"),
        audit(2, "deny"),
        OTHER.to_string(),
        audit(3, "allow"),
        audit(4, "would_deny"),
    ] {
        writer.write_all(line.as_bytes()).unwrap();
    }
    String::from_utf8(writer.inner).unwrap()
}

fn lines(log: &str) -> Vec<&str> {
    log.lines().collect()
}

fn joined(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn a_sealed_log_verifies_and_other_lines_pass_unchanged() {
    let log = sealed(None);
    assert_eq!(
        verify(&log, None),
        Verdict::Intact {
            lines: 4,
            chains: 1
        }
    );
    assert_eq!(lines(&log)[2], OTHER.trim_end());
    let first: serde_json::Value = serde_json::from_str(lines(&log)[0]).unwrap();
    assert_eq!(first["prev"], GENESIS);
    let second: serde_json::Value = serde_json::from_str(lines(&log)[1]).unwrap();
    assert_eq!(second["prev"], first["hash"]);
    assert_eq!(second["decision"], "deny");
}

#[test]
fn an_edited_line_is_named() {
    let log = sealed(None).replacen("\"deny\"", "\"allow\"", 1);
    assert!(matches!(
        verify(&log, None),
        Verdict::Broken { line: 2, problem } if problem.contains("altered")
    ));
}

#[test]
fn a_deleted_line_is_found_at_the_next_one() {
    let log = sealed(None);
    let mut kept = lines(&log);
    kept.remove(1);
    assert!(matches!(
        verify(&joined(&kept), None),
        Verdict::Broken { line: 3, problem } if problem.contains("does not follow line 1")
    ));
}

#[test]
fn reordered_lines_are_found() {
    let log = sealed(None);
    let mut kept = lines(&log);
    kept.swap(3, 4);
    assert!(matches!(
        verify(&joined(&kept), None),
        Verdict::Broken { line: 4, .. }
    ));
}

#[test]
fn a_log_missing_its_first_lines_is_found() {
    let log = sealed(None);
    let kept = &lines(&log)[1..];
    assert!(matches!(
        verify(&joined(kept), None),
        Verdict::Broken { line: 1, problem } if problem.contains("mid-way")
    ));
}

#[test]
fn an_audit_line_stripped_of_its_seal_is_found() {
    let log = sealed(None);
    let mut kept = lines(&log);
    let bare = audit(9, "allow");
    kept.insert(2, bare.trim_end());
    assert!(matches!(
        verify(&joined(&kept), None),
        Verdict::Broken { line: 3, problem } if problem.contains("without")
    ));
}

#[test]
fn each_process_start_begins_a_new_chain() {
    let log = sealed(None) + &sealed(None);
    assert_eq!(
        verify(&log, None),
        Verdict::Intact {
            lines: 8,
            chains: 2
        }
    );
}

#[test]
fn a_keyed_chain_verifies_only_with_its_key() {
    let log = sealed(Some(b"k3y"));
    assert_eq!(
        verify(&log, Some(b"k3y")),
        Verdict::Intact {
            lines: 4,
            chains: 1
        }
    );
    assert!(matches!(
        verify(&log, Some(b"other")),
        Verdict::Broken { line: 1, .. }
    ));
    assert!(matches!(
        verify(&log, None),
        Verdict::Broken { line: 1, .. }
    ));
    // Without the key, a rewritten chain does not verify either.
    let forged = sealed(None);
    assert!(matches!(
        verify(&forged, Some(b"k3y")),
        Verdict::Broken { line: 1, .. }
    ));
}

#[test]
fn a_line_written_in_parts_is_sealed_once() {
    let line = audit(1, "allow");
    let (head, tail) = line.split_at(20);
    let mut writer = ChainWriter::new(Vec::new(), None);
    writer.write_all(head.as_bytes()).unwrap();
    writer.write_all(tail.as_bytes()).unwrap();
    let log = String::from_utf8(writer.inner).unwrap();
    assert_eq!(log.lines().count(), 1);
    assert_eq!(
        verify(&log, None),
        Verdict::Intact {
            lines: 1,
            chains: 1
        }
    );
}
