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
    let own = row("tenant reads its own customer");
    assert!(
        own.contains(" 200 ") && own.contains(r#""id":"acme-7""#),
        "{own}"
    );
    let other = row("tenant reads another tenant's");
    assert!(
        other.contains(" 403 ") && other.contains("condition_failed"),
        "{other}"
    );
    assert!(!other.contains("allowed:"), "{other}");
    assert!(
        stdout.contains("all 9 scenarios ended as expected"),
        "{stdout}"
    );
    assert!(!stdout.contains("UNEXPECTED"));
}

/// `demo --serve` as a newcomer drives it: the printed session, step by step, really works, and
/// the demo's private files are gone once it is stopped.
#[tokio::test]
async fn demo_serve_prints_a_session_that_works_and_removes_its_private_files_on_sigterm() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::time::{Duration, Instant};

    use scopegate::demo::walkthrough::{self, Endpoints, WALKTHROUGH_CLIENT};
    use scopegate_testkit::issuer::IssuerConfig;

    let scratch = tempfile::tempdir().expect("temp dir");
    let endpoints_file = scratch.path().join("endpoints.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .arg("demo")
        .arg("--serve")
        .arg("--endpoints-file")
        .arg(&endpoints_file)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("scopegate demo --serve starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let printed = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).expect("stdout is text");
        text
    });

    // The endpoints file is written once the walkthrough has been printed.
    let deadline = Instant::now() + Duration::from_secs(120);
    let endpoints: Endpoints = loop {
        if let Some(endpoints) = std::fs::read_to_string(&endpoints_file)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
        {
            break endpoints;
        }
        assert!(Instant::now() < deadline, "no endpoints file");
        assert!(child.try_wait().expect("wait").is_none(), "demo exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // The TLS key and its neighbours are the user's alone.
    let dir = endpoints.ca_file.parent().expect("demo folder").to_owned();
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("demo folder") {
        let path = entry.expect("entry").path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    assert_eq!(
        files, 5,
        "ca.crt, tls.crt, tls.key, policy.toml, config.toml"
    );

    // Every printed step, sent as printed.
    let ca = std::fs::read(&endpoints.ca_file).expect("CA");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .no_proxy()
        .build()
        .expect("client");
    // The form the printed token command sends, encoded as curl's --data-urlencode does.
    let mut form = reqwest::Url::parse("http://form.invalid/").expect("URL");
    form.query_pairs_mut()
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", WALKTHROUGH_CLIENT)
        .append_pair("client_secret", &endpoints.client_secret)
        .append_pair("resource", &endpoints.resource);
    let token: serde_json::Value = http
        .post(&endpoints.token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.query().unwrap_or_default().to_owned())
        .send()
        .await
        .expect("token endpoint")
        .json()
        .await
        .expect("token JSON");
    let token = token["access_token"].as_str().expect("access_token");
    let mut session = String::new();
    let mut bodies = Vec::new();
    for (i, step) in walkthrough::steps().iter().enumerate() {
        let mut request = http
            .post(&endpoints.mcp_url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(step.body.clone());
        if i > 0 {
            request = request
                .header("mcp-session-id", &session)
                .header("mcp-protocol-version", walkthrough::PROTOCOL_VERSION);
        }
        let response = request.send().await.expect("proxy answers");
        let status = response.status().as_u16();
        if i == 0 {
            session = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .expect("initialize hands out a session id")
                .to_owned();
        }
        let body = response.text().await.expect("body");
        assert_eq!(status, step.status, "{}: {body}", step.title);
        bodies.push(body);
    }
    assert!(bodies[2].contains("get_customer_info"), "{}", bodies[2]);
    assert!(
        !bodies[2].contains("create_support_ticket"),
        "{}",
        bodies[2]
    );
    assert!(bodies[4].contains("ticket:create"), "{}", bodies[4]);
    let metrics = http
        .get(&endpoints.metrics_url)
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status().as_u16(), 200);
    let metrics = metrics.text().await.expect("metrics text");
    assert!(metrics.contains("scopegate_"), "{metrics}");

    // SIGTERM: a clean exit, and no file left behind.
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "demo still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit {status:?}");
    assert!(!dir.exists(), "{} left behind", dir.display());

    // What was printed is what was sent.
    let printed = printed.join().expect("reader");
    let clients = IssuerConfig::demo(&endpoints.resource).clients;
    assert!(
        printed.contains(&walkthrough::render(&endpoints, &clients)),
        "{printed}"
    );
    assert!(
        printed.contains("readonly-agent   customer:read\n"),
        "{printed}"
    );
    assert!(
        printed.contains("support-agent    customer:read ticket:create account:calculate\n"),
        "{printed}"
    );
    assert!(
        printed.contains("acme-agent       customer:read (tenant acme)\n"),
        "{printed}"
    );
}
