//! A deployment rehearsal: the config and policy that `deploy/kubernetes/base` ships in its
//! ConfigMaps, run by the proxy in front of an MCP server on loopback, with an allowed and a
//! denied call. So the shipped files cannot rot: a renamed key, a policy that no longer loads or a
//! config that no longer names the paths the Deployment mounts fails here.
//!
//! The shipped config names the pod's mount paths (`/etc/scopegate/...`), the pod's ports and a
//! real IdP. The test rewrites only those, in a copy, and nothing else:
//! - `listen.address`, `admin.address`: `127.0.0.1:0` (the pod binds 0.0.0.0 on fixed ports);
//! - `listen.tls.cert`, `listen.tls.key`: a generated certificate (cert-manager's Secret in the pod);
//! - `upstream.url`: the sample server's loopback URL (the pod's server is on 127.0.0.1:8000, a
//!   port this machine may have taken);
//! - `auth.issuer`, `auth.jwks_uri`: the dev issuer on loopback (the pod reaches a real IdP);
//! - `policy.file`: the shipped policy file where it lies in the repository.
//!
//! The resource, audiences, algorithms, leeway, path and every default stay as shipped: the dev
//! issuer mints tokens for the shipped audience.

use std::path::{Path, PathBuf};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use scopegate_core::config::Config;
use scopegate_testkit::certs::DevCa;
use scopegate_testkit::issuer::{Issuer, IssuerConfig};
use scopegate_testkit::sample_server::{SampleServer, SampleServerOptions};
use serde_json::{Value, json};

fn shipped(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

const SHIPPED_CONFIG: &str = "deploy/kubernetes/base/scopegate.toml";
const SHIPPED_POLICY: &str = "deploy/kubernetes/base/policy.toml";
const SHIPPED_DEPLOYMENT: &str = "deploy/kubernetes/base/deployment.yaml";

/// Where the Dockerfile's default command and the Deployment's args read the config.
const CONFIG_MOUNT: &str = "/etc/scopegate/config.toml";

fn read(relative: &str) -> String {
    std::fs::read_to_string(shipped(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Sets `section.key` (dotted) in `table`, which must already hold it: a key renamed in the
/// shipped file must fail here, not be silently added.
fn rewrite(table: &mut toml::Table, dotted: &str, value: &str) {
    let (path, key) = dotted.rsplit_once('.').expect("section.key");
    let mut section = &mut *table;
    for part in path.split('.') {
        section = section
            .get_mut(part)
            .and_then(toml::Value::as_table_mut)
            .unwrap_or_else(|| panic!("shipped config has no [{path}]"));
    }
    let slot = section
        .get_mut(key)
        .unwrap_or_else(|| panic!("shipped config has no {dotted}"));
    *slot = toml::Value::String(value.to_string());
}

#[test]
fn shipped_config_loads_as_is_and_names_what_the_deployment_mounts() {
    let text = read(SHIPPED_CONFIG);
    let config = Config::parse(&text, Path::new(CONFIG_MOUNT)).unwrap_or_else(|e| panic!("{e}"));
    let deployment = read(SHIPPED_DEPLOYMENT);

    let tls = config
        .listen
        .tls
        .as_ref()
        .expect("the shipped config serves TLS");
    for file in [&tls.cert, &tls.key, &config.policy_file] {
        let dir = file.parent().expect("a folder").display().to_string();
        assert!(
            deployment.contains(&format!("mountPath: {dir}\n")),
            "{} is not under a directory the Deployment mounts ({dir})",
            file.display()
        );
    }
    assert!(deployment.contains(&format!("mountPath: {CONFIG_MOUNT}\n")));
    assert!(deployment.contains(&format!("\"--config\", \"{CONFIG_MOUNT}\"")));
    assert!(read("Dockerfile").contains(&format!("\"--config\", \"{CONFIG_MOUNT}\"")));
    for port in [config.listen.address.port(), config.admin_address.port()] {
        assert!(
            deployment.contains(&format!("containerPort: {port}\n")),
            "port {port} is not a containerPort of the Deployment"
        );
    }
    // The example the README points to stays loadable too.
    Config::parse(&read("deploy/config.example.toml"), Path::new(CONFIG_MOUNT))
        .unwrap_or_else(|e| panic!("deploy/config.example.toml: {e}"));
    // The design's premise: the MCP server is reachable on loopback only.
    assert_eq!(config.upstream.url.host(), Some("127.0.0.1"));
    assert!(config.issuers[0].issuer.starts_with("https://"));
}

#[tokio::test]
async fn shipped_config_and_policy_allow_and_deny_through_the_proxy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = DevCa::generate()
        .and_then(|ca| ca.write_server_files(dir.path()))
        .expect("certificates");

    let mut table: toml::Table = read(SHIPPED_CONFIG)
        .parse()
        .expect("shipped config is TOML");
    let resource = table["mcp"]["resource"]
        .as_str()
        .expect("mcp.resource")
        .to_string();
    let upstream = SampleServer::start(SampleServerOptions::default())
        .await
        .expect("sample MCP server");
    let issuer = Issuer::start(IssuerConfig::demo(&resource))
        .await
        .expect("dev issuer");

    rewrite(&mut table, "listen.address", "127.0.0.1:0");
    rewrite(&mut table, "admin.address", "127.0.0.1:0");
    rewrite(
        &mut table,
        "listen.tls.cert",
        &certs.cert.display().to_string(),
    );
    rewrite(
        &mut table,
        "listen.tls.key",
        &certs.key.display().to_string(),
    );
    rewrite(&mut table, "upstream.url", &upstream.url());
    rewrite(&mut table, "auth.issuer", issuer.issuer());
    rewrite(&mut table, "auth.jwks_uri", issuer.jwks_uri());
    rewrite(
        &mut table,
        "policy.file",
        &shipped(SHIPPED_POLICY).display().to_string(),
    );
    let config_file = dir.path().join("config.toml");
    std::fs::write(&config_file, toml::to_string(&table).expect("TOML")).expect("write config");
    let config = Config::load(&config_file).unwrap_or_else(|e| panic!("{e}"));
    let proxy = scopegate_core::server::start(&config)
        .await
        .expect("proxy starts");
    let url = format!("https://localhost:{}{}", proxy.addr.port(), config.mcp.path);

    let ca = std::fs::read(&certs.ca).expect("CA file");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .no_proxy()
        .build()
        .expect("client");
    let token = |scopes: &[&str]| issuer.mint(issuer.claims_for("rehearsal", scopes));

    // Allowed: an MCP session as a client would open it, and a tool the policy grants.
    let transport = StreamableHttpClientTransport::with_client(
        http.clone(),
        StreamableHttpClientTransportConfig::with_uri(url.clone())
            .auth_header(token(&["customer:read"])),
    );
    let client = ().serve(transport).await.expect("MCP session");
    let arguments = json!({ "customer_id": "C001" });
    let result = client
        .call_tool(
            CallToolRequestParams::new("get_customer_info")
                .with_arguments(arguments.as_object().cloned().unwrap_or_default()),
        )
        .await
        .expect("allowed call");
    let text = serde_json::to_string(&result.content).expect("JSON");
    assert!(text.contains("C001"), "{text}");
    client.cancel().await.ok();

    // Denied: a tool whose scope the token lacks never reaches the server.
    let before = upstream.requests();
    let body = json!({
        "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "create_support_ticket", "arguments": {
            "customer_id": "C001", "subject": "s", "description": "d" } }
    });
    let response = http
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .header(
            AUTHORIZATION,
            format!("Bearer {}", token(&["customer:read"])),
        )
        .body(body.to_string())
        .send()
        .await
        .expect("denied call answered");
    assert_eq!(response.status().as_u16(), 403);
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        challenge.contains("insufficient_scope"),
        "WWW-Authenticate: {challenge}"
    );
    let refused: Value = response.json().await.expect("JSON-RPC error body");
    assert_eq!(refused["id"], 7, "{refused}");
    assert!(
        refused.to_string().contains("ticket:create"),
        "the error names the missing scope: {refused}"
    );
    assert_eq!(
        upstream.requests(),
        before,
        "a denied call reached the server"
    );

    proxy.stop().await;
}

#[test]
fn shipped_policy_is_the_customer_service_example() {
    // kustomize cannot reach outside its folder, so the manifests carry a copy: it must not drift.
    // Apart from the `#:schema` line, whose relative path depends on where each file lives.
    let without_schema = |text: String| {
        let first = text.lines().next().unwrap_or("");
        assert!(first.starts_with("#:schema "), "no #:schema line: {first}");
        text[first.len() + 1..].to_string()
    };
    let shipped = without_schema(std::fs::read_to_string(SHIPPED_POLICY).unwrap());
    let example =
        without_schema(std::fs::read_to_string("policies/customer-service.toml").unwrap());
    assert_eq!(
        shipped, example,
        "{SHIPPED_POLICY} differs from policies/customer-service.toml"
    );
}

/// The `exec` probes of the Deployment's MCP server container, each as its command's arguments.
fn server_exec_probes(deployment: &str) -> Vec<(String, Vec<String>)> {
    let server = &deployment[deployment
        .find("- name: mcp-server\n")
        .expect("the mcp-server container")..];
    let mut probes = Vec::new();
    let mut lines = server.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(kind) = line.trim().strip_suffix("Probe:") else {
            continue;
        };
        assert_eq!(lines.next().map(str::trim), Some("exec:"), "{kind}Probe");
        assert_eq!(lines.next().map(str::trim), Some("command:"), "{kind}Probe");
        let mut command = Vec::new();
        while let Some(item) = lines.peek().and_then(|l| l.trim().strip_prefix("- ")) {
            command.push(item.to_owned());
            lines.next();
        }
        probes.push((kind.to_owned(), command));
    }
    probes
}

/// The server binds 127.0.0.1, where kubelet's network probes cannot reach it, so the Deployment
/// probes it with `exec`: the shipped command must pass while something listens on the server's
/// loopback port and fail while nothing does. Run here with this machine's Python against a port
/// of its own, since 8000 may be taken.
#[test]
fn shipped_server_probes_pass_with_a_loopback_listener_and_fail_without() {
    let deployment = read(SHIPPED_DEPLOYMENT);
    let probes = server_exec_probes(&deployment);
    let kinds: Vec<&str> = probes.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["readiness", "liveness"]);
    for (kind, command) in probes {
        assert!(
            command
                .iter()
                .any(|arg| arg.contains("\"127.0.0.1\", 8000")),
            "{kind}: {command:?}"
        );
        let run = |port: u16| {
            let args: Vec<String> = command[1..]
                .iter()
                .map(|arg| arg.replace(", 8000)", &format!(", {port})")))
                .collect();
            std::process::Command::new(&command[0])
                .args(&args)
                .output()
                .unwrap_or_else(|e| panic!("{kind}: {}: {e}", command[0]))
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = run(port);
        assert!(
            up.status.success(),
            "{kind} fails against a listening server: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        drop(listener);
        let down = run(port);
        assert!(
            !down.status.success(),
            "{kind} passes with nothing listening"
        );
    }
}

#[test]
fn shipped_gateway_config_shares_state_on_redis_and_names_what_its_deployment_mounts() {
    const GATEWAY: &str = "deploy/kubernetes/overlays/gateway";
    let text = read(&format!("{GATEWAY}/scopegate.toml"));
    let config = Config::parse(&text, Path::new(CONFIG_MOUNT)).unwrap_or_else(|e| panic!("{e}"));
    let scopegate_core::state::Backend::Redis(redis) = &config.state.backend else {
        panic!("the gateway's replicas would not share their state");
    };
    let deployment = read(&format!("{GATEWAY}/deployment.yaml"));
    let password = redis
        .password_env
        .as_deref()
        .expect("password from a Secret");
    assert!(
        deployment.contains(&format!("- name: {password}\n")),
        "the Deployment does not set {password}"
    );
    let tls = config.listen.tls.as_ref().expect("TLS");
    for file in [&tls.cert, &tls.key, &config.policy_file] {
        let dir = file.parent().expect("a folder").display().to_string();
        assert!(
            deployment.contains(&format!("mountPath: {dir}\n")),
            "{} is not under a directory the gateway mounts",
            file.display()
        );
    }
    scopegate_core::policy::Policy::load(&shipped(&format!("{GATEWAY}/policy.toml")))
        .unwrap_or_else(|e| panic!("{e}"));
}
