#![forbid(unsafe_code)]
//! scopegate's proxy: an authorization sidecar for MCP servers. The `scopegate` binary wires the
//! subcommands; everything the proxy is lives here, so the integration tests can start the real
//! pieces and the sidecar build carries nothing else.

pub mod accept;
pub mod admin;
pub mod answer;
pub mod audit;
pub mod audit_chain;
pub mod auth;
pub mod client;
pub mod config;
pub mod ctx;
pub mod denial;
pub mod der;
pub mod diagnostics;
pub mod env;
pub mod error;
pub mod http_checks;
pub mod integrity;
pub mod limit;
pub mod listfilter;
pub mod logging;
pub mod mcp;
pub mod mcp_params;
pub mod metadata;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod ratelimit;
pub mod reason;
pub mod reload;
pub mod server;
pub mod session;
pub mod sse;
pub mod state;
pub mod suggest;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod units;
pub mod upstream;
pub mod workers;

use std::path::Path;

/// `scopegate run`: loads the config and serves until the process is stopped.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = config::Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let running = server::start(&config).await?;
    shutdown_signal().await?;
    tracing::info!("stopping");
    running.stop().await;
    Ok(())
}

/// `scopegate run --check-config`: everything `run` would load before listening, without
/// listening or reaching the IdP. Returns a one-line summary.
pub fn check_config(config_path: &Path) -> anyhow::Result<String> {
    let config = config::Config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let policy = policy::Policy::load(&config.policy_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(pins) = config.integrity.as_ref().and_then(|i| i.pins.as_deref()) {
        integrity::PinSet::load(pins).map_err(|e| anyhow::anyhow!("integrity.pins: {e}"))?;
    }
    if let Some(files) = &config.listen.tls {
        tls::load_certified_key(&files.cert, &files.key)?;
    }
    // The extra CA bundles, as `run` loads them.
    server::upstream_client(&config)?;
    server::auth_client(&config)?;
    state::check_settings(&config.state)?;
    Ok(format!(
        "{}: ok (policy {} hash {}, listen {}, upstream {})",
        config_path.display(),
        config.policy_file.display(),
        policy.source_hash(),
        config.listen.address,
        config.upstream.url
    ))
}

/// SIGTERM (what Kubernetes sends) or Ctrl-C.
pub async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
