//! `scopegate adapter`: the companion for application teams. One OpenAI-compatible endpoint routed
//! to OpenAI, Anthropic and OpenAI-compatible providers with ordered fallback, and MCP tools called
//! through scopegate with the adapter's own client-credentials token, so whatever model answers,
//! every tool call meets the same policy.
//!
//! A request reads top to bottom in [`chat::Engine::chat`]; the wire formats live in `openai` and
//! `anthropic`, the exchange with a provider in `provider`, the fallback walk in `routing`, the
//! token in `token`, the MCP session in `mcp_client`, the listeners in `server`.

pub mod anthropic;
pub mod chat;
pub mod config;
pub mod mcp_client;
pub mod metrics;
pub mod openai;
pub mod provider;
pub mod relay;
pub mod routing;
pub mod server;
pub mod stream;
pub mod token;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use chat::{Engine, Tools};
use config::{AdapterConfig, DEFAULT_CONNECT_TIMEOUT};
use mcp_client::McpClient;
use metrics::Metrics;
use provider::Provider;
use token::TokenManager;

pub use server::Addrs;

/// A started adapter: its addresses, its engine (for its metrics) and a way to stop it.
pub struct Running {
    pub addrs: Addrs,
    pub engine: Arc<Engine>,
    stop: watch::Sender<bool>,
}

impl Running {
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// `scopegate adapter --config FILE`: loads the config and serves until stopped.
pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = AdapterConfig::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let running = start(config).await?;
    tracing::info!(api = %running.addrs.api, admin = %running.addrs.admin, "adapter listening");
    scopegate_core::shutdown_signal().await?;
    tracing::info!("stopping");
    running.stop();
    Ok(())
}

/// Builds the clients and binds both listeners.
pub async fn start(config: AdapterConfig) -> anyhow::Result<Running> {
    let mut providers = BTreeMap::new();
    for provider in &config.providers {
        let client =
            scopegate_core::client::build(provider.ca_file.as_deref(), DEFAULT_CONNECT_TIMEOUT)
                .with_context(|| format!("provider {}", provider.name))?;
        providers.insert(
            provider.name.clone(),
            Provider::new(provider.clone(), client),
        );
    }
    let tools = match &config.tools {
        None => None,
        Some(tools) => {
            let token_client = scopegate_core::client::build(
                tools.oauth.ca_file.as_deref(),
                DEFAULT_CONNECT_TIMEOUT,
            )
            .context("token endpoint client")?;
            let tokens = Arc::new(TokenManager::new(tools.oauth.clone(), token_client));
            let mcp_client =
                scopegate_core::client::build(tools.ca_file.as_deref(), DEFAULT_CONNECT_TIMEOUT)
                    .context("MCP client")?;
            Some(Tools {
                mcp: McpClient::new(tools.mcp_url.clone(), mcp_client, tokens, tools.timeout),
                max_rounds: tools.max_tool_rounds,
                client_id: tools.oauth.client_id.clone(),
            })
        }
    };
    let api_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin)
        .await
        .with_context(|| format!("cannot listen on {}", config.admin))?;
    let addrs = Addrs {
        api: api_listener.local_addr()?,
        admin: admin_listener.local_addr()?,
    };
    let engine = Arc::new(Engine {
        providers,
        metrics: Arc::new(Metrics::new(&config)),
        config,
        tools,
    });
    let (stop, stopped) = watch::channel(false);
    let api_engine = engine.clone();
    server::serve(api_listener, stopped.clone(), move |req| {
        server::api(api_engine.clone(), req)
    });
    let admin_engine = engine.clone();
    server::serve(admin_listener, stopped, move |req| {
        server::admin(admin_engine.clone(), req)
    });
    Ok(Running {
        addrs,
        engine,
        stop,
    })
}
