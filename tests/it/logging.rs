//! Log output as a reader of a file or a pipe sees it: the real binary, its stderr captured.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scopegate"))
}

/// Runs `scopegate --log-format text run` on a config that logs warnings at start-up (an IdP that
/// cannot be reached, a listener without TLS) and then fails, because its port is taken: the
/// process ends by itself, its log written.
fn run_text_logs() -> Output {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("policy.toml"),
        "version = 1\ndefault = \"deny\"\n",
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[listen]
address = "127.0.0.1:{port}"
insecure_plaintext = true
[upstream]
url = "http://127.0.0.1:1/mcp"
[mcp]
path = "/mcp"
resource = "http://127.0.0.1:{port}/mcp"
[auth]
issuer = "http://127.0.0.1:1"
audiences = ["http://127.0.0.1:{port}/mcp"]
jwks_uri = "http://127.0.0.1:1/jwks"
[policy]
file = "policy.toml"
[admin]
address = "127.0.0.1:0"
"#
        ),
    )
    .unwrap();
    // `output()` gives the child pipes, not a terminal; NO_COLOR is unset, so only the terminal
    // check can keep the colours out.
    let output = Command::new(binary())
        .args(["--log-format", "text", "run", "--config"])
        .arg(&config)
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    drop(taken);
    output
}

#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let output = run_text_logs();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    // The lines are there, with their level and fields, as plain text.
    assert!(
        stderr.contains(" WARN scopegate_core::server: listening WITHOUT TLS"),
        "{stderr}"
    );
    assert!(stderr.contains("address=127.0.0.1:"), "{stderr}");
    assert!(
        !output.stderr.contains(&0x1b),
        "escape codes in piped logs: {stderr:?}"
    );
}
