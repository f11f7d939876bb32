//! `scopegate demo`: the whole system on one machine. A dev issuer (keys, JWKS, client-credentials
//! token endpoint), a sample MCP server with the customer-service tools, and the proxy on TLS;
//! then the scenarios, played by real clients. The issuer and sample server also serve the
//! integration tests as their real peers. None of it is meant for production.

pub mod certs;
pub mod dpop_key;
pub mod issuer;
mod issuer_opaque;
pub mod private_dir;
pub mod process;
pub mod sample_server;
pub mod scenarios;
pub mod scripted_model;
mod serve;
pub mod system;
pub mod walkthrough;

use std::path::Path;

use anyhow::{Context as _, bail};

use issuer::IssuerConfig;
use private_dir::PrivateDir;
use system::DemoSystem;
use walkthrough::Endpoints;

/// Runs the demo; with `serve`, keeps everything up until Ctrl-C or SIGTERM and prints how to
/// connect. With `endpoints_file`, writes the endpoints there as JSON once everything is up (and,
/// with `serve`, once the walkthrough is printed). The generated files live in a private folder
/// that is removed however the demo ends.
pub async fn run(serve: bool, endpoints_file: Option<&Path>) -> anyhow::Result<()> {
    let dir = PrivateDir::create().context("cannot create the demo's folder")?;
    tokio::select! {
        result = run_in(dir.path(), serve, endpoints_file) => result,
        // Returning drops `dir`, which removes the files; the servers go with the process.
        signal = crate::shutdown_signal() => signal,
    }
}

async fn run_in(dir: &Path, serve: bool, endpoints_file: Option<&Path>) -> anyhow::Result<()> {
    let system = DemoSystem::start(dir).await?;
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

    let endpoints = Endpoints {
        mcp_url: system.mcp_url.clone(),
        ca_file: system.certs.ca.clone(),
        token_url: system.issuer.token_url().to_owned(),
        resource: system.resource.clone(),
        client_secret: issuer::DEMO_CLIENT_SECRET.to_owned(),
        metrics_url: format!("{}/metrics", system.admin_url),
        metadata_url: crate::metadata::url_for(&system.resource),
        config_file: system.config_file.clone(),
    };
    if serve {
        let clients = IssuerConfig::demo(&system.resource).clients;
        print!("{}", walkthrough::render(&endpoints, &clients));
    }
    if let Some(path) = endpoints_file {
        // Written aside and renamed, so a script that waits for the file never reads half of it.
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        std::fs::write(&partial, serde_json::to_string(&endpoints)?)?;
        std::fs::rename(&partial, path)?;
    }
    if serve {
        std::future::pending::<()>().await;
    }
    system.stop().await;
    if unexpected > 0 {
        bail!("{unexpected} scenario(s) did not end as expected");
    }
    println!("\nall {} scenarios ended as expected", outcomes.len());
    Ok(())
}
