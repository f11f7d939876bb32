//! `scopegate demo`: the whole system on one machine. A dev issuer (keys, JWKS, client-credentials
//! token endpoint), a sample MCP server with the customer-service tools, and the proxy on TLS;
//! then the scenarios, played by real clients. The issuer and sample server also serve the
//! integration tests as their real peers. None of it is meant for production.

pub mod certs;
pub mod issuer;
pub mod process;
pub mod sample_server;
pub mod scenarios;
pub mod scripted_model;
mod serve;
pub mod system;

use std::path::{Path, PathBuf};

use anyhow::bail;

use system::DemoSystem;

/// Runs the demo; with `serve`, keeps everything up until Ctrl-C and prints how to connect. With
/// `endpoints_file`, writes the endpoints there as JSON once the scenarios have run.
pub async fn run(serve: bool, endpoints_file: Option<&Path>) -> anyhow::Result<()> {
    let dir = demo_dir();
    let system = DemoSystem::start(&dir).await?;
    println!(
        "scopegate demo: proxy {} -> sample MCP server {}",
        system.mcp_url,
        system.upstream.url()
    );
    println!(
        "issuer {} (JWKS {}), policy policies/customer-service.toml\n",
        system.issuer.issuer(),
        system.issuer.jwks_uri()
    );

    let outcomes = scenarios::play(&system).await?;
    print!("{}", scenarios::table(&outcomes));
    let unexpected = outcomes.iter().filter(|o| !o.as_expected()).count();

    if let Some(path) = endpoints_file {
        let endpoints = serde_json::json!({
            "mcp_url": system.mcp_url,
            "ca_file": system.certs.ca,
            "token_url": system.issuer.token_url(),
            "resource": system.resource,
            "client_secret": issuer::DEMO_CLIENT_SECRET,
        });
        std::fs::write(path, endpoints.to_string())?;
    }
    if serve {
        print_connection_help(&system);
        tokio::signal::ctrl_c().await?;
    }
    system.stop().await;
    if unexpected > 0 {
        bail!("{unexpected} scenario(s) did not end as expected");
    }
    println!("\nall {} scenarios ended as expected", outcomes.len());
    Ok(())
}

fn print_connection_help(system: &DemoSystem) {
    println!(
        r#"
Everything keeps running until Ctrl-C.
  MCP endpoint (through scopegate): {mcp}
  CA certificate to trust:          {ca}
  proxy config:                     {config}
  protected-resource metadata:      {metadata}

Get a token (clients: support-agent, readonly-agent; secret {secret}):
  TOKEN=$(curl -s {token_url} -d grant_type=client_credentials -d client_id=support-agent \
    -d client_secret={secret} --data-urlencode resource={resource} | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
Call the proxy:
  curl --cacert {ca} -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -H 'Accept: application/json, text/event-stream' {mcp} \
    -d '{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"curl","version":"1"}}}}}}'"#,
        mcp = system.mcp_url,
        ca = system.certs.ca.display(),
        config = system.config_file.display(),
        metadata = crate::metadata::url_for(&system.resource),
        secret = issuer::DEMO_CLIENT_SECRET,
        token_url = system.issuer.token_url(),
        resource = system.resource,
    );
}

/// Where the demo writes its certificates, policy and config: a fresh folder per run.
fn demo_dir() -> PathBuf {
    std::env::temp_dir().join(format!("scopegate-demo-{}", std::process::id()))
}
