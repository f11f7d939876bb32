//! Operating the proxy: metrics after known traffic, the audit trail, probes, hot reload of
//! policy and certificate, graceful shutdown, shadow mode, rate limits, config checks.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Options, TestSystem, eventually, header, read, sample, scrape, session_call};
use serde_json::{Value, json};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scopegate"))
}

async fn call_status(t: &TestSystem, token: &str, tool: &str) -> u16 {
    let response = t
        .post(Some(token), TestSystem::tool_call(tool, 1))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

fn policy_file(t: &TestSystem) -> PathBuf {
    t.system.config_file.with_file_name("policy.toml")
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let t = common::start().await;
    let reader = t.token(&["customer:read"]);
    let client = t.mcp_client(&reader).await;
    let call = rmcp::model::CallToolRequestParams::new("get_customer_info").with_arguments(
        json!({ "customer_id": "C001" })
            .as_object()
            .cloned()
            .unwrap(),
    );
    client.call_tool(call).await.expect("allowed");
    assert_eq!(call_status(&t, &reader, "create_support_ticket").await, 403);
    assert_eq!(call_status(&t, &reader, "create_support_ticket").await, 403);
    let response = t
        .post(None, TestSystem::tool_call("get_customer_info", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let metrics = scrape(&t).await;
    let value = |series: &str| {
        sample(&metrics, series).unwrap_or_else(|| panic!("{series} missing:\n{metrics}"))
    };
    assert_eq!(
        value(r#"scopegate_tool_calls_total{decision="allow",tool="get_customer_info"}"#),
        1.0
    );
    assert_eq!(
        value(r#"scopegate_tool_calls_total{decision="deny",tool="create_support_ticket"}"#),
        2.0
    );
    assert_eq!(
        value(r#"scopegate_requests_total{decision="allow",method="initialize"}"#),
        1.0
    );
    assert_eq!(
        value(r#"scopegate_requests_total{decision="deny",method="_none"}"#),
        1.0
    );
    assert_eq!(
        value(r#"scopegate_auth_failures_total{reason="missing_token"}"#),
        1.0
    );
    assert_eq!(
        value(r#"scopegate_denials_total{reason="insufficient_scope"}"#),
        2.0
    );
    assert_eq!(value("scopegate_jwks_keys"), 3.0);
    assert!(value(r#"scopegate_jwks_fetch_total{result="success"}"#) >= 1.0);
    assert!(value("scopegate_request_duration_seconds_count") >= 5.0);
    assert!(value("scopegate_upstream_duration_seconds_count") >= 3.0);
    let hash = t
        .system
        .proxy
        .as_ref()
        .unwrap()
        .proxy
        .policy()
        .policy
        .source_hash()
        .to_string();
    assert_eq!(
        value(&format!("scopegate_policy_info{{hash=\"{hash}\"}}")),
        1.0
    );
    let expiry = value("scopegate_tls_cert_expiry_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // The test certificate's own end of validity (to the second, as the metric gives it).
    let days = scopegate_testkit::certs::SERVER_CERT_DAYS as f64;
    assert!(
        (expiry - (now + days * 86_400.0)).abs() < 120.0,
        "certificate expiry {expiry}, now {now}"
    );
    assert!(!metrics.contains(&reader), "a token in the metrics");
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_tool_unknown_to_the_policy_is_counted_as_other() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    for tool in ["random_1", "random_2", "random_3"] {
        assert_eq!(call_status(&t, &token, tool).await, 403);
    }
    let metrics = scrape(&t).await;
    assert_eq!(
        sample(
            &metrics,
            r#"scopegate_tool_calls_total{decision="deny",tool="_other"}"#
        ),
        Some(3.0)
    );
    assert!(!metrics.contains("random_"));
}

#[tokio::test]
async fn probes_answer_on_the_admin_port_only() {
    let t = common::start().await;
    for path in ["/healthz", "/readyz"] {
        let response = t
            .http
            .get(format!("{}{path}", t.system.admin_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let public = t.url().trim_end_matches("/mcp").to_string();
    for path in ["/metrics", "/healthz", "/readyz"] {
        let response = t.http.get(format!("{public}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path} on the public port");
    }
}

#[tokio::test]
async fn audit_lines_match_decisions_under_concurrent_load_and_never_hold_the_token() {
    let t = common::start_with(Options {
        proxy_binary: Some(binary()),
        ..Options::default()
    })
    .await;
    let reader = t.token(&["customer:read"]);
    let mut load = tokio::task::JoinSet::new();
    let mut tokens = vec![reader.clone()];
    for i in 0..60 {
        let (token, tool) = match i % 3 {
            0 => (Some(reader.clone()), "get_customer_info"),
            1 => (Some(reader.clone()), "create_support_ticket"),
            _ => (None, "get_customer_info"),
        };
        let request = t.post(token.as_deref(), TestSystem::tool_call(tool, i));
        load.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let bad = t.token_with(&["customer:read"], |c| {
        c["aud"] = json!("https://elsewhere")
    });
    tokens.push(bad.clone());
    let response = t
        .post(Some(&bad), TestSystem::tool_call("get_customer_info", 99))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let mut statuses = Vec::new();
    while let Some(status) = load.join_next().await {
        statuses.push(status.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 20);
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 20);

    let process = t.system.process.as_ref().unwrap();
    let audit = |logs: &[String]| -> Vec<Value> {
        logs.iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["target"] == "audit")
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(5), async || audit(&process.logs())
            .len()
            >= 61)
        .await,
        "audit lines: {}",
        audit(&process.logs()).len()
    );
    let logs = process.logs();
    let lines = audit(&logs);
    assert_eq!(lines.len(), 61, "one audit line per decision");
    for token in &tokens {
        assert!(
            !logs.iter().any(|line| line.contains(token.as_str())),
            "a token in the logs"
        );
    }
    let denied: Vec<&Value> = lines
        .iter()
        .filter(|l| l["reason"] == "insufficient_scope")
        .collect();
    assert_eq!(denied.len(), 20);
    let line = denied[0];
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["subject"], "tester");
    assert_eq!(line["method"], "tools/call");
    assert_eq!(line["tool"], "create_support_ticket");
    assert_eq!(line["missing_scopes"], "ticket:create");
    assert_eq!(line["status"], 403);
    assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(line["duration_ms"].as_f64().is_some());
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["reason"] == "wrong_audience")
            .count(),
        1
    );
    assert_eq!(
        lines.iter().filter(|l| l["decision"] == "allow").count(),
        20
    );
}

fn policy_with(ticket_scopes: &str) -> String {
    format!(
        "version = 1\n[[tools]]\nname = \"get_customer_info\"\nscopes = [\"customer:read\"]\n[[tools]]\nname = \"create_support_ticket\"\nscopes = {ticket_scopes}\n"
    )
}

#[tokio::test]
async fn rewritten_policy_changes_decisions_without_a_restart() {
    let t = common::start_with(Options {
        policy: Some(policy_with("[\"ticket:create\"]")),
        ..Options::default()
    })
    .await;
    let token = t.token(&["customer:read"]);
    assert_eq!(call_status(&t, &token, "create_support_ticket").await, 403);
    // Editors write a new file and rename it over the old one.
    let path = policy_file(&t);
    let staged = path.with_extension("toml.tmp");
    std::fs::write(&staged, policy_with("[\"customer:read\"]")).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || call_status(
            &t,
            &token,
            "create_support_ticket"
        )
        .await
            != 403)
        .await,
        "the new policy never took effect"
    );
    let metrics = scrape(&t).await;
    assert_eq!(
        sample(
            &metrics,
            r#"scopegate_policy_reload_total{result="success"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn configmap_symlink_swap_is_picked_up() {
    let t = common::start_with(Options {
        policy: Some(policy_with("[\"ticket:create\"]")),
        ..Options::default()
    })
    .await;
    let token = t.token(&["customer:read"]);
    let path = policy_file(&t);
    let dir = path.parent().unwrap();
    // Lay the file out as the kubelet does: policy.toml -> ..data/policy.toml, ..data -> ..v1.
    configmap_version(dir, "..v1", &policy_with("[\"ticket:create\"]"));
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("..data/policy.toml", &path).unwrap();
    assert_eq!(call_status(&t, &token, "create_support_ticket").await, 403);

    configmap_version(dir, "..v2", &policy_with("[\"customer:read\"]"));
    assert!(
        eventually(Duration::from_secs(10), async || call_status(
            &t,
            &token,
            "create_support_ticket"
        )
        .await
            != 403)
        .await,
        "the swapped policy never took effect"
    );
}

/// Writes `name/policy.toml` and points `..data` at it with an atomic rename, as the kubelet
/// updates a mounted ConfigMap.
fn configmap_version(dir: &Path, name: &str, policy: &str) {
    std::fs::create_dir_all(dir.join(name)).unwrap();
    std::fs::write(dir.join(name).join("policy.toml"), policy).unwrap();
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(name, &staged).unwrap();
    std::fs::rename(&staged, dir.join("..data")).unwrap();
}

#[tokio::test]
async fn broken_policy_is_refused_and_the_old_one_keeps_serving() {
    let t = common::start().await;
    let token = t.token(&["customer:read"]);
    std::fs::write(
        policy_file(&t),
        "version = 1\n[[tools]]\nname = \"x\"\nscopes = [\"a\"]\nbogus = 1\n",
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || {
            sample(
                &scrape(&t).await,
                r#"scopegate_policy_reload_total{result="failure"}"#,
            ) == Some(1.0)
        })
        .await,
        "the failure was never counted"
    );
    assert_eq!(call_status(&t, &token, "create_support_ticket").await, 403);
    let (status, body) = session_call(&t, &token, "get_customer_info", 1).await;
    assert_eq!(
        status, 200,
        "the old policy still allows the lookup: {body}"
    );
}

#[tokio::test]
async fn sighup_rereads_the_policy_and_a_broken_one_is_logged_with_its_place() {
    let t = common::start_with(Options {
        proxy_binary: Some(binary()),
        policy: Some(policy_with("[\"ticket:create\"]")),
        ..Options::default()
    })
    .await;
    let process = t.system.process.as_ref().unwrap();
    let token = t.token(&["customer:read"]);
    std::fs::write(
        policy_file(&t),
        "version = 1\n[[tools]]\nname = \"a[\"\nscopes = []\n",
    )
    .unwrap();
    process.signal("HUP").unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || {
            process
                .logs()
                .iter()
                .any(|l| l.contains("policy reload refused") && l.contains("policy.toml:3:"))
        })
        .await,
        "{:?}",
        process.logs()
    );
    std::fs::write(policy_file(&t), policy_with("[\"customer:read\"]")).unwrap();
    process.signal("HUP").unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || call_status(
            &t,
            &token,
            "create_support_ticket"
        )
        .await
            != 403)
        .await
    );
}

#[tokio::test]
async fn renewed_certificate_serves_new_handshakes_and_a_broken_pair_is_refused() {
    let t = common::start_with(Options {
        listen_settings: String::new(),
        ..Options::default()
    })
    .await;
    let files = t.system.certs.clone();
    // A broken pair: the new certificate with the old key.
    let renewed_ca = scopegate_testkit::certs::DevCa::generate().unwrap();
    let (cert, key) = renewed_ca.server_cert().unwrap();
    std::fs::write(&files.cert, &cert).unwrap();
    assert!(
        eventually(Duration::from_secs(20), async || {
            sample(
                &scrape(&t).await,
                r#"scopegate_tls_reload_total{result="failure"}"#,
            )
            .is_some_and(|v| v >= 1.0)
        })
        .await
    );
    assert_eq!(
        call_status(&t, &t.token(&[]), "get_customer_info").await / 100,
        4,
        "old certificate still serves"
    );

    std::fs::write(&files.key, &key).unwrap();
    let renewed_ca_file = files.ca.with_file_name("renewed-ca.crt");
    std::fs::write(&renewed_ca_file, renewed_ca.ca_pem()).unwrap();
    let trusting_new = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(renewed_ca.ca_pem().as_bytes()).unwrap(),
        )
        .no_proxy()
        .build()
        .unwrap();
    let url = t.url().to_string();
    assert!(
        eventually(Duration::from_secs(20), async || {
            trusting_new
                .post(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 401)
        })
        .await,
        "a new handshake never got the renewed certificate"
    );
    let fresh_old_client = common::https_client(&t.system);
    assert!(
        fresh_old_client.post(&url).send().await.is_err(),
        "the old CA no longer verifies"
    );
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_and_exits_zero() {
    let t = common::start_with(Options {
        proxy_binary: Some(binary()),
        ..common::slow_tool_options()
    })
    .await;
    let mut response = common::start_slow_call(&t, 7, 5, 200).await;
    let first = response.chunk().await.unwrap().unwrap_or_default();
    assert!(!first.is_empty());

    let process = t.system.process.as_ref().unwrap();
    process.signal("TERM").unwrap();
    let admin = t.system.admin_url.clone();
    assert!(
        eventually(Duration::from_secs(2), async || {
            t.http
                .get(format!("{admin}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 503)
        })
        .await,
        "not reported unready while draining"
    );
    let mut rest = String::from_utf8_lossy(&first).to_string();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        rest.contains("\"id\":7") && rest.contains("result"),
        "the request in flight finished: {rest}"
    );
    let mut process = t.system.process.unwrap();
    let status = process.wait_exit(Duration::from_secs(25)).await.unwrap();
    assert!(status.success(), "exit {status}");
    assert!(
        process
            .logs()
            .iter()
            .any(|l| l.contains("draining connections"))
    );
}

#[tokio::test]
async fn shadow_mode_lets_a_denied_call_through_and_says_so() {
    let t = common::start_with(Options {
        proxy_binary: Some(binary()),
        policy: Some(
            "version = 1\n[[tools]]\nname = \"create_support_ticket\"\nscopes = [\"ticket:create\"]\nmode = \"audit\"\n".into(),
        ),
        ..Options::default()
    })
    .await;
    let before = t.upstream_requests();
    let (status, body) =
        session_call(&t, &t.token(&["customer:read"]), "create_support_ticket", 1).await;
    assert_eq!(status, 200, "{body}");
    // initialize, initialized, and the shadowed call.
    assert_eq!(
        t.upstream_requests(),
        before + 3,
        "the shadowed call reached the upstream"
    );
    let metrics = scrape(&t).await;
    assert_eq!(
        sample(
            &metrics,
            r#"scopegate_tool_calls_total{decision="would_deny",tool="create_support_ticket"}"#
        ),
        Some(1.0)
    );
    let process = t.system.process.as_ref().unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || process
            .logs()
            .iter()
            .any(|l| l.contains("\"decision\":\"would_deny\"")
                && l.contains("\"missing_scopes\":\"ticket:create\"")))
        .await
    );
}

#[tokio::test]
async fn rate_limit_trips_at_the_stated_rate_and_recovers() {
    let t = common::start_with(Options {
        policy: Some(
            "version = 1\n[[tools]]\nname = \"get_customer_info\"\nscopes = []\nrate_limit = \"2/s\"\n".into(),
        ),
        ..Options::default()
    })
    .await;
    let token = t.token(&[]);
    assert_eq!(
        session_call(&t, &token, "get_customer_info", 1).await.0,
        200
    );
    assert_eq!(
        session_call(&t, &token, "get_customer_info", 2).await.0,
        200
    );
    let before = t.upstream_requests();
    let response = t
        .post(Some(&token), TestSystem::tool_call("get_customer_info", 31))
        .send()
        .await
        .unwrap();
    let (status, headers, body) = read(response).await;
    assert_eq!(status, 429);
    assert_eq!(header(&headers, "retry-after"), "1");
    assert_eq!(body["id"], 31);
    assert_eq!(body["error"]["data"]["reason"], "rate_limited");
    assert_eq!(t.upstream_requests(), before);
    // Another subject has a bucket of its own.
    let other = t
        .system
        .issuer
        .mint(t.system.issuer.claims_for("someone-else", &[]));
    assert_eq!(
        session_call(&t, &other, "get_customer_info", 3).await.0,
        200
    );
    let mut refused = 1;
    assert!(
        eventually(Duration::from_secs(3), async || {
            let limited = call_status(&t, &token, "get_customer_info").await == 429;
            refused += usize::from(limited);
            !limited
        })
        .await
    );
    let metrics = scrape(&t).await;
    assert_eq!(
        sample(
            &metrics,
            r#"scopegate_rate_limited_total{tool="get_customer_info"}"#
        ),
        Some(refused as f64)
    );
}

/// A batch refused by the rate limit of its second call is counted under that call's rule, not
/// the first message's.
#[tokio::test]
async fn a_batch_refused_by_a_later_calls_limit_is_counted_under_that_rule() {
    let t = common::start_with(Options {
        policy: Some(
            "version = 1\n[[tools]]\nname = \"get_customer_info\"\nscopes = []\n\
             [[tools]]\nname = \"create_support_ticket\"\nscopes = []\nrate_limit = \"1/h\"\n"
                .into(),
        ),
        ..Options::default()
    })
    .await;
    let token = t.token(&[]);
    let batch = |first: u64| {
        json!([
            { "jsonrpc": "2.0", "id": first, "method": "tools/call", "params": { "name": "get_customer_info", "arguments": {} } },
            { "jsonrpc": "2.0", "id": first + 1, "method": "tools/call", "params": { "name": "create_support_ticket", "arguments": {} } }
        ])
        .to_string()
    };
    // Allowed, and forwarded (what the test server makes of a batch is its own affair).
    let before = t.upstream_requests();
    t.post(Some(&token), batch(1)).send().await.unwrap();
    assert_eq!(t.upstream_requests(), before + 1);
    let before = t.upstream_requests();
    let (status, _, body) = read(t.post(Some(&token), batch(3)).send().await.unwrap()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["data"]["reason"], "rate_limited");
    assert_eq!(body["id"], 4, "the refused call's id");
    assert_eq!(t.upstream_requests(), before);
    let metrics = scrape(&t).await;
    assert_eq!(
        sample(
            &metrics,
            r#"scopegate_rate_limited_total{tool="create_support_ticket"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, r#"scopegate_rate_limited_total{tool="_other"}"#),
        Some(0.0),
        "not under the first message's rule, which has no limit"
    );
}

#[tokio::test]
async fn check_config_validates_with_environment_overrides() {
    let t = common::start().await;
    let output = std::process::Command::new(binary())
        .args(["run", "--check-config", "--config"])
        .arg(&t.system.config_file)
        .env("SCOPEGATE_UPSTREAM_URL", "http://127.0.0.1:1/mcp")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(": ok (policy") && stdout.contains("upstream http://127.0.0.1:1/mcp"),
        "{stdout}"
    );

    let output = std::process::Command::new(binary())
        .args(["run", "--check-config", "--config"])
        .arg(&t.system.config_file)
        .env("SCOPEGATE_AUTH_LEEWAY", "forever")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("auth.leeway: \"forever\""), "{stderr}");
}

#[tokio::test]
async fn check_config_names_the_key_of_an_unreadable_file_and_a_misspelt_variable() {
    let t = common::start().await;
    let check = |name: &str, value: &str| {
        let output = std::process::Command::new(binary())
            .args(["run", "--check-config", "--config"])
            .arg(&t.system.config_file)
            .env(name, value)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let missing = t.system.config_file.with_file_name("no-such.crt");
    let stderr = check("SCOPEGATE_LISTEN_TLS_CERT", missing.to_str().unwrap());
    assert!(
        stderr.contains(&format!(
            "listen.tls.cert: {}: cannot read",
            missing.display()
        )),
        "{stderr}"
    );
    let missing_ca = t.system.config_file.with_file_name("no-such-ca.pem");
    let stderr = check("SCOPEGATE_UPSTREAM_CA_FILE", missing_ca.to_str().unwrap());
    assert!(
        stderr.contains(&format!(
            "upstream.ca_file: {}: cannot read CA bundle",
            missing_ca.display()
        )),
        "{stderr}"
    );
    let stderr = check("SCOPEGATE_AUHT_ISSUER", "https://idp.example.com");
    assert!(
        stderr.contains(
            "SCOPEGATE_AUHT_ISSUER: names no config key; did you mean SCOPEGATE_AUTH_ISSUER (`auth.issuer`)?"
        ),
        "{stderr}"
    );
}
