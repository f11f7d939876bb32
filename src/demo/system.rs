//! The whole system on one machine: dev issuer, sample MCP server and the proxy on TLS, wired
//! together with files written the way an operator would write them.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::certs::{CertFiles, DevCa};
use super::issuer::{Issuer, IssuerConfig, IssuerHandle};
use super::private_dir::write_private;
use super::process::ProxyProcess;
use super::sample_server::{SampleServer, SampleServerHandle, SampleServerOptions};
use crate::config::Config;
use crate::server::{self, Running};

/// The shipped customer-service policy: the demo enforces the very file platform teams start from.
pub const CUSTOMER_SERVICE_POLICY: &str = include_str!("../../policies/customer-service.toml");

pub struct DemoSystem {
    pub issuer: IssuerHandle,
    pub upstream: SampleServerHandle,
    /// The proxy, when it runs in this process.
    pub proxy: Option<Running>,
    /// The proxy, when it runs as `scopegate run` (see [`SystemOptions::proxy_binary`]).
    pub process: Option<ProxyProcess>,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin_url: String,
    pub certs: CertFiles,
    pub config_file: PathBuf,
    /// The MCP endpoint clients use: `https://localhost:PORT/mcp`.
    pub mcp_url: String,
    pub resource: String,
}

/// What may differ from the demo's own set-up; the tests start the same system with their own
/// policy and settings. Each `*_settings` string is extra TOML lines for that config table.
#[derive(Default)]
pub struct SystemOptions {
    /// Policy text; the customer-service policy when `None`.
    pub policy: Option<String>,
    pub upstream: SampleServerOptions,
    pub listen_settings: String,
    pub upstream_settings: String,
    pub mcp_settings: String,
    pub auth_settings: String,
    /// Leave `jwks_uri` out, so the proxy discovers it from the issuer.
    pub discover_jwks: bool,
    /// Run the proxy as this `scopegate` binary in its own process instead of in this one.
    pub proxy_binary: Option<PathBuf>,
    /// Send the proxy to this upstream URL instead of the sample server (which still starts).
    pub upstream_url: Option<String>,
    /// Start with the issuer's JWKS answering 503, as an IdP that is down.
    pub jwks_down_at_start: bool,
    /// Whole tables appended to the config (`[telemetry]` …).
    pub tables: String,
}

impl DemoSystem {
    /// Starts the demo's system, writing the certificates, policy and config into `dir`.
    pub async fn start(dir: &Path) -> anyhow::Result<DemoSystem> {
        DemoSystem::start_with(dir, SystemOptions::default()).await
    }

    /// Starts the system with `options` applied. The proxy's ports are picked before it binds
    /// them (the resource identifier names one), so another process may take one in between:
    /// then everything starts again on new ports.
    pub async fn start_with(dir: &Path, options: SystemOptions) -> anyhow::Result<DemoSystem> {
        let mut attempt = 1;
        loop {
            match DemoSystem::start_once(dir, &options).await {
                Err(error)
                    if attempt < START_ATTEMPTS && format!("{error:#}").contains(PORT_TAKEN) =>
                {
                    tracing::debug!(attempt, "a picked port was taken; starting again");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(dir: &Path, options: &SystemOptions) -> anyhow::Result<DemoSystem> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let certs = DevCa::generate()?.write_server_files(dir)?;

        // The resource identifier names the proxy's own URL, so its port is chosen first.
        let proxy_addr = free_loopback_port()?;
        let admin_addr = free_loopback_port()?;
        let mcp_url = format!("https://localhost:{}/mcp", proxy_addr.port());
        let resource = mcp_url.clone();

        let upstream = SampleServer::start(options.upstream.clone()).await?;
        let issuer = Issuer::start(IssuerConfig::demo(&resource)).await?;
        issuer.set_jwks_down(options.jwks_down_at_start);

        let policy_file = dir.join("policy.toml");
        let policy = options.policy.as_deref().unwrap_or(CUSTOMER_SERVICE_POLICY);
        write_private(&policy_file, policy)?;
        let jwks_line = if options.discover_jwks {
            String::new()
        } else {
            format!("jwks_uri = \"{}\"", issuer.jwks_uri())
        };
        let config_file = dir.join("config.toml");
        let config_text = format!(
            r#"# Written by `scopegate demo`.
[listen]
address = "{proxy_addr}"
{listen_settings}
[listen.tls]
cert = "tls.crt"
key = "tls.key"

[upstream]
url = "{upstream}"
{upstream_settings}

[mcp]
path = "/mcp"
resource = "{resource}"
{mcp_settings}

[auth]
issuer = "{issuer}"
audiences = ["{resource}"]
{jwks_line}
algorithms = ["ES256", "RS256", "EdDSA"]
{auth_settings}

[policy]
file = "policy.toml"

[admin]
address = "{admin_addr}"
{tables}
"#,
            tables = &options.tables,
            upstream = options
                .upstream_url
                .clone()
                .unwrap_or_else(|| upstream.url()),
            issuer = issuer.issuer(),
            listen_settings = &options.listen_settings,
            upstream_settings = &options.upstream_settings,
            mcp_settings = &options.mcp_settings,
            auth_settings = &options.auth_settings,
        );
        write_private(&config_file, &config_text)?;
        let admin_url = format!("http://{admin_addr}");
        let (proxy, process) = match &options.proxy_binary {
            Some(binary) => {
                let process = ProxyProcess::start(binary, &config_file, &admin_url).await?;
                (None, Some(process))
            }
            None => {
                let config = Config::parse(&config_text, &config_file)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                (Some(server::start(&config).await?), None)
            }
        };
        Ok(DemoSystem {
            issuer,
            upstream,
            proxy,
            process,
            admin_url,
            certs,
            config_file,
            mcp_url,
            resource,
        })
    }
}

impl DemoSystem {
    /// Starts `scopegate adapter` in this process for OAuth client `client_id`, its tools
    /// called through this system's proxy and its one provider the scripted model at
    /// `model_base_url` (alias `support`), both listeners on loopback ports of their own.
    pub async fn start_adapter(
        &self,
        client_id: &str,
        model_base_url: &str,
    ) -> anyhow::Result<crate::adapter::Running> {
        let text = format!(
            r#"[listen]
address = "127.0.0.1:0"

[mcp]
url = "{mcp}"
ca_file = "{ca}"

[oauth]
token_url = "{token_url}"
client_id = "{client_id}"
client_secret_env = "DEMO_CLIENT_SECRET"
resource = "{resource}"

[[providers]]
name = "scripted"
kind = "openai-compatible"
base_url = "{model_base_url}"

[models.support]
targets = ["scripted/{model}"]

[admin]
address = "127.0.0.1:0"
"#,
            mcp = self.mcp_url,
            ca = self.certs.ca.display(),
            token_url = self.issuer.token_url(),
            resource = self.resource,
            model = super::scripted_model::SCRIPTED_MODEL,
        );
        let env = std::collections::BTreeMap::from([(
            "DEMO_CLIENT_SECRET".to_owned(),
            super::issuer::DEMO_CLIENT_SECRET.to_owned(),
        )]);
        let config = crate::adapter::config::AdapterConfig::parse(
            &text,
            &self.config_file.with_file_name("adapter.toml"),
            &env,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        crate::adapter::start(config).await
    }

    /// Stops the proxy, draining as on SIGTERM.
    pub async fn stop(self) {
        if let Some(proxy) = self.proxy {
            proxy.stop().await;
        }
    }
}

/// Starts of the whole system tried when a picked port turns out taken.
const START_ATTEMPTS: usize = 5;
/// How a bind failure reads, in-process or in the proxy process's log.
const PORT_TAKEN: &str = "cannot listen on";

/// A loopback port that was free a moment ago. The demo needs the port before the proxy binds
/// it (the resource identifier names it); a race with another process only costs a retry.
fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?)
}
