//! Policy version 2 through the real proxy with real tokens: conditions on claims and arguments,
//! argument-dependent step-up, deny rules, the scope hierarchy, shadow mode, hot reload and
//! filtered listings. Every refusal is checked to have reached nothing upstream.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Options, TestSystem, eventually, header, read};
use serde_json::{Value, json};

const POLICY: &str = r#"version = 2
[scopes]
"customer:admin" = ["customer:read", "ticket:create"]

[[tools]]
name = "get_customer_info"
scopes = ["customer:read"]
when = 'args.customer_id.startsWith(jwt.tenant)'

[[tools]]
name = "get_recent_customers"
scopes = ["customer:read"]

[[tools]]
name = "create_support_ticket"
scopes = ["ticket:create"]
[[tools.require]]
when = 'has(args.priority) && args.priority == "urgent"'
scopes = ["ticket:urgent"]

[[tools]]
name = "calculate_account_value"
scopes = []
when = 'has(jwt.groups) && "billing" in jwt.groups'

[[deny]]
when = 'has(jwt.client_id) && jwt.client_id == "blocked-bot"'
reason = "this client is blocked"
"#;

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scopegate"))
}

async fn start(policy: &str) -> TestSystem {
    common::start_with(Options {
        policy: Some(policy.into()),
        ..Options::default()
    })
    .await
}

/// A token with these scopes and extra claims.
fn token(t: &TestSystem, scopes: &[&str], claims: Value) -> String {
    t.token_with(scopes, |all| {
        for (name, value) in claims.as_object().unwrap() {
            all[name] = value.clone();
        }
    })
}

fn call(tool: &str, arguments: Value) -> String {
    json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": tool, "arguments": arguments }
    })
    .to_string()
}

/// Posts a call that must be refused with 403 before the upstream sees it; returns the
/// `WWW-Authenticate` header and the JSON-RPC error.
async fn refused(t: &TestSystem, token: &str, body: String) -> (String, Value) {
    let before = t.upstream_requests();
    let response = t.post(Some(token), body).send().await.unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        t.upstream_requests(),
        before,
        "a refused call reached the upstream"
    );
    assert_eq!(body["id"], 7);
    (
        header(&headers, "www-authenticate").to_string(),
        body["error"].clone(),
    )
}

/// Calls a tool through an MCP session; `Ok` when the server answered.
async fn call_tool(t: &TestSystem, token: &str, tool: &str, arguments: Value) -> bool {
    let client = t.mcp_client(token).await;
    let params = rmcp::model::CallToolRequestParams::new(tool.to_string())
        .with_arguments(arguments.as_object().cloned().unwrap());
    let result = client.call_tool(params).await;
    client.cancel().await.ok();
    result.is_ok()
}

async fn scrape(t: &TestSystem) -> String {
    let response = t
        .http
        .get(format!("{}/metrics", t.system.admin_url))
        .send()
        .await;
    response.unwrap().text().await.unwrap()
}

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn a_call_within_the_callers_tenant_is_allowed_and_another_tenants_is_refused() {
    let t = start(POLICY).await;
    let acme = token(&t, &["customer:read"], json!({ "tenant": "C00" }));
    let before = t.upstream_requests();
    assert!(
        call_tool(
            &t,
            &acme,
            "get_customer_info",
            json!({ "customer_id": "C001" })
        )
        .await
    );
    assert!(
        t.upstream_requests() > before,
        "the allowed call reached the upstream"
    );

    let other = token(&t, &["customer:read"], json!({ "tenant": "C1" }));
    let (challenge, error) = refused(
        &t,
        &other,
        call("get_customer_info", json!({ "customer_id": "C001" })),
    )
    .await;
    assert_eq!(error["data"]["reason"], "condition_failed");
    assert_eq!(error["data"]["missing_scopes"], json!([]));
    assert_eq!(
        challenge, "",
        "no scope fixes a failed condition: no step-up challenge"
    );
    let message = error["message"].as_str().unwrap();
    assert!(
        !message.contains("startsWith"),
        "the caller is not told the rule: {message}"
    );
}

#[tokio::test]
async fn a_missing_claim_or_a_type_error_fails_closed_and_is_counted() {
    let t = common::start_with(Options {
        policy: Some(POLICY.into()),
        proxy_binary: Some(binary()),
        ..Options::default()
    })
    .await;
    let no_tenant = t.token(&["customer:read"]);
    let (_, error) = refused(
        &t,
        &no_tenant,
        call("get_customer_info", json!({ "customer_id": "C001" })),
    )
    .await;
    assert_eq!(error["data"]["reason"], "condition_error");
    let numeric_id = token(&t, &["customer:read"], json!({ "tenant": "C00" }));
    let (_, error) = refused(
        &t,
        &numeric_id,
        call("get_customer_info", json!({ "customer_id": 1 })),
    )
    .await;
    assert_eq!(error["data"]["reason"], "condition_error");

    let metrics = scrape(&t).await;
    assert_eq!(
        sample(
            &metrics,
            r#"scopegate_denials_total{reason="condition_error"}"#
        ),
        Some(2.0)
    );
    let process = t.system.process.as_ref().unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || process.logs().iter().any(
            |l| l.contains("\"reason\":\"condition_error\"")
                && l.contains("\"rule\":\"get_customer_info\"")
                && l.contains("args.customer_id.startsWith(jwt.tenant)")
        ))
        .await,
        "the audit line names the rule and the expression"
    );
    assert!(
        !process.logs().iter().any(|l| l.contains(&no_tenant)),
        "a token in the logs"
    );
}

#[tokio::test]
async fn an_urgent_ticket_asks_for_the_extra_scope_and_names_every_scope_the_call_needs() {
    let t = start(POLICY).await;
    let agent = t.token(&["ticket:create", "customer:read"]);
    let urgent = json!({
        "customer_id": "C001", "subject": "s", "description": "d", "priority": "urgent"
    });
    let (challenge, error) =
        refused(&t, &agent, call("create_support_ticket", urgent.clone())).await;
    assert_eq!(error["data"]["reason"], "insufficient_scope");
    assert_eq!(error["data"]["missing_scopes"], json!(["ticket:urgent"]));
    assert!(
        challenge.starts_with(
            "Bearer error=\"insufficient_scope\", scope=\"ticket:create ticket:urgent customer:read\""
        ),
        "{challenge}"
    );

    let normal = json!({ "customer_id": "C001", "subject": "s", "description": "d" });
    assert!(call_tool(&t, &agent, "create_support_ticket", normal).await);
    let stepped_up = t.token(&["ticket:create", "ticket:urgent"]);
    assert!(call_tool(&t, &stepped_up, "create_support_ticket", urgent).await);
}

#[tokio::test]
async fn a_deny_rule_refuses_a_blocked_client_whatever_its_scopes() {
    let t = start(POLICY).await;
    let bot = token(
        &t,
        &["customer:read", "customer:admin"],
        json!({ "client_id": "blocked-bot" }),
    );
    let (challenge, error) = refused(&t, &bot, call("get_recent_customers", json!({}))).await;
    assert_eq!(error["data"]["reason"], "denied_by_rule");
    assert_eq!(error["data"]["detail"], "this client is blocked");
    assert_eq!(challenge, "");
    let listing = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/list" }).to_string();
    let (_, error) = refused(&t, &bot, listing).await;
    assert_eq!(error["data"]["reason"], "denied_by_rule", "methods too");
    let other = t.token(&["customer:read"]);
    assert!(call_tool(&t, &other, "get_recent_customers", json!({})).await);
}

#[tokio::test]
async fn a_broad_scope_grants_the_narrower_ones_and_the_metadata_lists_narrowest_first() {
    let t = start(POLICY).await;
    let admin = token(&t, &["customer:admin"], json!({ "tenant": "C00" }));
    assert!(
        call_tool(
            &t,
            &admin,
            "get_customer_info",
            json!({ "customer_id": "C001" })
        )
        .await
    );
    let ticket = json!({ "customer_id": "C001", "subject": "s", "description": "d" });
    assert!(call_tool(&t, &admin, "create_support_ticket", ticket).await);
    // The narrow scope does not imply the broad one.
    let reader = t.token(&["customer:read", "ticket:create"]);
    let urgent =
        json!({ "customer_id": "C001", "subject": "s", "description": "d", "priority": "urgent" });
    let (_, error) = refused(&t, &reader, call("create_support_ticket", urgent)).await;
    assert_eq!(error["data"]["missing_scopes"], json!(["ticket:urgent"]));

    let base = t.url().trim_end_matches("/mcp").to_string();
    let response = t
        .http
        .get(format!("{base}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap();
    let (_, _, body) = read(response).await;
    assert_eq!(
        body["scopes_supported"],
        json!([
            "customer:read",
            "ticket:create",
            "ticket:urgent",
            "customer:admin"
        ])
    );
}

#[tokio::test]
async fn shadow_mode_lets_a_failed_condition_and_a_deny_rule_through() {
    let t = start(&POLICY.replace("version = 2\n", "version = 2\nmode = \"audit\"\n")).await;
    let other = token(
        &t,
        &["customer:read"],
        json!({ "tenant": "C1", "client_id": "blocked-bot" }),
    );
    let before = t.upstream_requests();
    assert!(
        call_tool(
            &t,
            &other,
            "get_customer_info",
            json!({ "customer_id": "C001" })
        )
        .await
    );
    assert!(
        t.upstream_requests() > before,
        "the shadowed call reached the upstream"
    );
    let metrics = scrape(&t).await;
    assert!(
        sample(
            &metrics,
            r#"scopegate_denials_total{reason="denied_by_rule"}"#
        ) >= Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_edited_condition_applies_after_a_hot_reload() {
    let t = start(POLICY).await;
    let acme = token(&t, &["customer:read"], json!({ "tenant": "C00" }));
    let body = || call("get_customer_info", json!({ "customer_id": "C001" }));
    assert!(
        call_tool(
            &t,
            &acme,
            "get_customer_info",
            json!({ "customer_id": "C001" })
        )
        .await
    );

    let path = t.system.config_file.with_file_name("policy.toml");
    let staged = path.with_extension("toml.tmp");
    let edited = POLICY.replace(
        "args.customer_id.startsWith(jwt.tenant)",
        "args.customer_id == jwt.tenant",
    );
    std::fs::write(&staged, edited).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || {
            let metrics = scrape(&t).await;
            sample(
                &metrics,
                r#"scopegate_policy_reload_total{result="success"}"#,
            ) == Some(1.0)
        })
        .await,
        "the policy was never reloaded"
    );
    let (_, error) = refused(&t, &acme, body()).await;
    assert_eq!(error["data"]["reason"], "condition_failed");
}

#[tokio::test]
async fn listings_hide_a_tool_whose_claim_condition_fails_and_keep_one_that_depends_on_arguments() {
    let t = start(POLICY).await;
    let listed = async |token: &str| -> Vec<String> {
        let client = t.mcp_client(token).await;
        let tools = client.list_all_tools().await.expect("listing");
        client.cancel().await.ok();
        let mut names: Vec<String> = tools
            .into_iter()
            .map(|tool| tool.name.to_string())
            .collect();
        names.sort();
        names
    };
    let support = token(&t, &["customer:read"], json!({ "groups": ["support"] }));
    assert_eq!(
        listed(&support).await,
        ["get_customer_info", "get_recent_customers"],
        "get_customer_info reads args, so it is listed; calculate_account_value needs billing"
    );
    let billing = token(&t, &["customer:read"], json!({ "groups": ["billing"] }));
    assert_eq!(
        listed(&billing).await,
        [
            "calculate_account_value",
            "get_customer_info",
            "get_recent_customers"
        ]
    );
}

#[tokio::test]
async fn the_shipped_tenant_policy_checks_clean_against_the_servers_real_schemas() {
    let t = start("version = 1\n[[tools]]\nname = \"*\"\nscopes = []\n").await;
    let client = t.mcp_client(&t.token(&[])).await;
    let tools = client.list_all_tools().await.expect("listing");
    client.cancel().await.ok();
    let dir = tempfile::tempdir().unwrap();
    let listing = dir.path().join("tools.json");
    std::fs::write(&listing, json!({ "tools": tools }).to_string()).unwrap();

    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/tenant-isolation.toml"
    );
    let check = |policy: &str| {
        std::process::Command::new(binary())
            .args(["policy", "check", "--deny-warnings", "--tools"])
            .arg(&listing)
            .arg(policy)
            .output()
            .unwrap()
    };
    let output = check(shipped);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");

    let misspelt = dir.path().join("misspelt.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    std::fs::write(
        &misspelt,
        text.replace("args.customer_id", "args.customerId"),
    )
    .unwrap();
    let output = check(misspelt.to_str().unwrap());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success());
    assert!(
        stdout.contains(
            "get_customer_info takes no argument \"customerId\" (its arguments: customer_id)"
        ),
        "{stdout}"
    );
}

/// `policy check --url`: the listing fetched from a running server, straight from the sample
/// server and through the proxy with a real token read from the environment.
#[tokio::test]
async fn check_url_fetches_the_tools_from_a_running_server_and_catches_a_misspelt_argument() {
    let t = start("version = 1\n[[tools]]\nname = \"*\"\nscopes = []\n").await;
    let dir = tempfile::tempdir().unwrap();
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/tenant-isolation.toml"
    );
    let misspelt = dir.path().join("misspelt.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    std::fs::write(
        &misspelt,
        text.replace("args.customer_id", "args.customerId"),
    )
    .unwrap();
    let misspelt = misspelt.display().to_string();
    let token = t.token(&[]);
    let ca = t.system.certs.ca.display().to_string();
    // The binary talks to this process's proxy: run it off the runtime's thread.
    let check = |args: Vec<String>, token: Option<String>| {
        tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(binary());
            command
                .args(["policy", "check", "--deny-warnings"])
                .args(args);
            if let Some(token) = token {
                command.env("CHECK_TOKEN", token);
            }
            let output = command.output().unwrap();
            let stdout = String::from_utf8(output.stdout).unwrap();
            (output.status.code(), stdout)
        })
    };

    let upstream = t.system.upstream.url();
    let before = t.upstream_requests();
    let (code, stdout) = check(vec!["--url".into(), upstream.clone(), shipped.into()], None)
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(stdout, "ok: 1 file checked, 0 errors, 0 warnings\n");
    assert!(t.upstream_requests() > before, "the server was asked");
    let (code, stdout) = check(vec!["--url".into(), upstream, misspelt.clone()], None)
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "get_customer_info takes no argument \"customerId\" (its arguments: customer_id)"
        ),
        "{stdout}"
    );

    // Through scopegate: the token comes from the environment and the CA from --ca-file.
    let through = |policy: &str| {
        [
            "--url",
            t.url(),
            "--ca-file",
            &ca,
            "--token-env",
            "CHECK_TOKEN",
            policy,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let (code, stdout) = check(through(shipped), Some(token.clone())).await.unwrap();
    assert_eq!(code, Some(0), "{stdout}");
    let (code, stdout) = check(through(&misspelt), Some(token.clone()))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("takes no argument \"customerId\""),
        "{stdout}"
    );

    // No token: scopegate's 401 is the finding, and the check fails rather than passing blind.
    let (code, stdout) = check(through(shipped), None).await.unwrap();
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "{}: error: cannot fetch tools/list: the environment variable CHECK_TOKEN holds no token\n",
            t.url()
        )),
        "{stdout}"
    );
    let mut without = through(shipped);
    without.drain(4..6);
    let (code, stdout) = check(without, Some(token.clone())).await.unwrap();
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.starts_with(&format!(
            "{}: error: cannot fetch tools/list: the upstream answered 401 Unauthorized",
            t.url()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains(&token));
}
