//! Interop with the official MCP Python SDK 2.x through the real proxy: a dual-era SDK server as
//! the upstream, the SDK client in `auto`, pinned `2026-07-28` and `legacy` modes. `auto` must
//! negotiate 2026-07-28 through the proxy (it probes `server/discover`, which a proxy that denied
//! it would turn into a silent fall-back to the 2025 handshake).
//!
//! Needs the SDK: `.ci/python-sdk.sh` installs it into a venv and runs this with `--ignored`,
//! `SCOPEGATE_PYTHON` naming that venv's interpreter.

use crate::common;

use std::process::Command;

use common::Options;
use common::python::{python, start_server};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the MCP Python SDK 2.x: .ci/python-sdk.sh"]
async fn the_python_sdk_speaks_each_era_through_the_proxy_and_auto_negotiates_2026_07_28() {
    let (_server, base) = start_server();
    let upstream = format!("{base}/mcp");
    let t = common::start_with(Options {
        upstream_url: Some(upstream),
        ..Options::default()
    })
    .await;
    let token = t.token(&["customer:read"]);
    for (mode, version) in [
        ("auto", "2026-07-28"),
        ("2026-07-28", "2026-07-28"),
        ("legacy", "2025-11-25"),
    ] {
        let (url, ca, token) = (
            t.url().to_string(),
            t.system.certs.ca.clone(),
            token.clone(),
        );
        let output = tokio::task::spawn_blocking(move || {
            Command::new(python())
                .arg("tests/python/mcp_sdk_client.py")
                .arg(url)
                .arg(ca)
                .arg(mode)
                .env("SCOPEGATE_TOKEN", token)
                .output()
                .expect("python runs")
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
        assert_eq!(seen["protocol_version"], version, "{mode}: {seen}");
        // The listing is filtered to what this token may call, and the call it may not make is
        // refused by the proxy.
        assert_eq!(
            seen["tools"],
            serde_json::json!(["get_customer_info"]),
            "{mode}"
        );
        assert_eq!(seen["allowed_is_error"], false, "{mode}: {seen}");
        assert!(
            seen["allowed"][0]
                .as_str()
                .unwrap_or("")
                .contains("Ada Lovelace"),
            "{mode}: {seen}"
        );
        assert_ne!(seen["denied"], "not refused", "{mode}");
        println!("{mode}: {seen}");
    }
}
