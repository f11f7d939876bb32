//! The whole system on one machine: dev issuer, sample MCP server and the proxy on TLS, wired
//! together with files written the way an operator would write them.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::certs::{CertFiles, DevCa};
use crate::issuer::{Issuer, IssuerConfig, IssuerHandle};
use crate::private_dir::write_private;
use crate::process::ProxyProcess;
use crate::sample_server::{SampleServer, SampleServerHandle, SampleServerOptions};
use scopegate_core::config::Config;
use scopegate_core::server::{self, Running};

/// The shipped customer-service policy: the demo enforces the very file platform teams start from.
pub const CUSTOMER_SERVICE_POLICY: &str = include_str!("../../../policies/customer-service.toml");
/// The shipped tenant-isolation policy (version 2: a condition on the token's `tenant` claim).
pub const TENANT_ISOLATION_POLICY: &str = include_str!("../../../policies/tenant-isolation.toml");

pub struct DemoSystem {
    pub issuer: IssuerHandle,
    /// A second, independent issuer beside the first, when [`SystemOptions::second_issuer`]
    /// asked for one: its own keys (with the same `kid`s as the first's), its own URL.
    pub second_issuer: Option<IssuerHandle>,
    pub upstream: SampleServerHandle,
    /// The proxy, when it runs in this process.
    pub proxy: Option<Running>,
    /// The proxy, when it runs as `scopegate run` (see [`SystemOptions::proxy_binary`]).
    pub process: Option<ProxyProcess>,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin_url: String,
    pub certs: CertFiles,
    /// The CA that signed the proxy's certificate: it also signs client certificates, which the
    /// proxy accepts when [`SystemOptions::client_ca`] is set.
    pub ca: DevCa,
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
    /// Extra `[listen]` keys; `{proxy_port}` in them stands for the proxy's port, which is
    /// picked at start (an `allowed_origins` entry names it).
    pub listen_settings: String,
    pub upstream_settings: String,
    pub mcp_settings: String,
    pub auth_settings: String,
    /// Whole tables appended to the config (`[state]`, `[integrity]` …).
    pub extra_tables: String,
    /// Leave `jwks_uri` out, so the proxy discovers it from the issuer.
    pub discover_jwks: bool,
    /// Run the proxy as this `scopegate` binary in its own process instead of in this one.
    pub proxy_binary: Option<PathBuf>,
    /// Send the proxy to this upstream URL instead of the sample server (which still starts).
    pub upstream_url: Option<String>,
    /// Start with the issuer's JWKS answering 503, as an IdP that is down.
    pub jwks_down_at_start: bool,
    /// Start a second issuer and list both as `[[auth.issuers]]`; `auth_settings` then holds
    /// only the keys all issuers share, and each issuer's own extra lines are in
    /// `issuer_settings`.
    pub second_issuer: bool,
    /// Extra lines for the first and second `[[auth.issuers]]` entry.
    pub issuer_settings: [String; 2],
    /// The whole `[auth]` table instead of the dev issuer's, for an identity provider of
    /// another ecosystem; `{resource}` in it stands for the resource identifier, which names
    /// the proxy's port picked at start. The dev issuer still starts, unused by the proxy.
    pub auth_table: Option<String>,
    /// The environment the config is read with (overrides and secrets such as
    /// `client_secret_env`), as (variable, value) pairs: the test process's own is left alone.
    pub env: Vec<(String, String)>,
    /// Ask clients for a certificate signed by the system's CA (`listen.tls.client_ca`), as
    /// mutual TLS; [`DemoSystem::ca`] makes them.
    pub client_ca: bool,
    /// Extra `[listen.tls]` keys (`require_client_cert = false` …).
    pub tls_settings: String,
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
        let ca = DevCa::generate()?;
        let certs = ca.write_server_files(dir)?;

        // The resource identifier names the proxy's own URL, so its port is chosen first.
        let proxy_addr = free_loopback_port()?;
        let admin_addr = free_loopback_port()?;
        let mcp_url = format!("https://localhost:{}/mcp", proxy_addr.port());
        let resource = mcp_url.clone();

        let upstream = SampleServer::start(options.upstream.clone()).await?;
        let issuer = Issuer::start(IssuerConfig::demo(&resource)).await?;
        issuer.set_jwks_down(options.jwks_down_at_start);
        let second_issuer = match options.second_issuer {
            true => Some(Issuer::start(IssuerConfig::demo(&resource)).await?),
            false => None,
        };

        let policy_file = dir.join("policy.toml");
        let policy = options.policy.as_deref().unwrap_or(CUSTOMER_SERVICE_POLICY);
        write_private(&policy_file, policy)?;
        let jwks_line = |issuer: &IssuerHandle| {
            if options.discover_jwks {
                String::new()
            } else {
                format!("jwks_uri = \"{}\"", issuer.jwks_uri())
            }
        };
        let issuer_lines = |issuer: &IssuerHandle| {
            format!(
                "issuer = \"{}\"\naudiences = [\"{resource}\"]\n{}\nalgorithms = [\"ES256\", \"RS256\", \"EdDSA\"]\n",
                issuer.issuer(),
                jwks_line(issuer)
            )
        };
        let auth_table = match (&options.auth_table, &second_issuer) {
            (Some(table), _) => table.replace("{resource}", &resource),
            (None, None) => format!("{}{}", issuer_lines(&issuer), options.auth_settings),
            (None, Some(second)) => format!(
                "{}\n[[auth.issuers]]\n{}{}\n[[auth.issuers]]\n{}{}",
                options.auth_settings,
                issuer_lines(&issuer),
                options.issuer_settings[0],
                issuer_lines(second),
                options.issuer_settings[1],
            ),
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
{client_ca}
{tls_settings}

[upstream]
url = "{upstream}"
{upstream_settings}

[mcp]
path = "/mcp"
resource = "{resource}"
{mcp_settings}

[auth]
{auth_table}

[policy]
file = "policy.toml"

[admin]
address = "{admin_addr}"
{extra_tables}
"#,
            upstream = options
                .upstream_url
                .clone()
                .unwrap_or_else(|| upstream.url()),
            listen_settings = options
                .listen_settings
                .replace("{proxy_port}", &proxy_addr.port().to_string()),
            client_ca = if options.client_ca {
                "client_ca = \"ca.crt\""
            } else {
                ""
            },
            tls_settings = &options.tls_settings,
            upstream_settings = &options.upstream_settings,
            mcp_settings = &options.mcp_settings,
            extra_tables = &options.extra_tables,
        );
        write_private(&config_file, &config_text)?;
        let admin_url = format!("http://{admin_addr}");
        let (proxy, process) = match &options.proxy_binary {
            Some(binary) => {
                let process = ProxyProcess::start(binary, &config_file, &admin_url).await?;
                (None, Some(process))
            }
            None => {
                let config = Config::parse_with_overrides(&config_text, &config_file, &options.env)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                (Some(server::start(&config).await?), None)
            }
        };
        Ok(DemoSystem {
            issuer,
            second_issuer,
            upstream,
            proxy,
            process,
            admin_url,
            certs,
            ca,
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
    ) -> anyhow::Result<scopegate_adapter::Running> {
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
            model = crate::scripted_model::SCRIPTED_MODEL,
        );
        let env = std::collections::BTreeMap::from([(
            "DEMO_CLIENT_SECRET".to_owned(),
            crate::issuer::DEMO_CLIENT_SECRET.to_owned(),
        )]);
        let config = scopegate_adapter::config::AdapterConfig::parse(
            &text,
            &self.config_file.with_file_name("adapter.toml"),
            &env,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        scopegate_adapter::start(config).await
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
