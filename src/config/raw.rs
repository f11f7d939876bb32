//! The config file as written: serde's model of its TOML, every key optional or spanned so the
//! validation in `config.rs` can place each problem. Owns the key names (`deny_unknown_fields`
//! makes any other key an error); not what the values mean.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: RawListen,
    pub(super) upstream: RawUpstream,
    pub(super) mcp: RawMcp,
    pub(super) auth: RawAuth,
    pub(super) policy: RawPolicy,
    pub(super) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    pub(super) telemetry: Option<RawTelemetry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    pub(super) address: Spanned<String>,
    pub(super) tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub(super) insecure_plaintext: bool,
    #[serde(default)]
    pub(super) allowed_origins: Vec<Spanned<String>>,
    pub(super) drain_period: Option<Spanned<String>>,
    pub(super) runtime: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: Spanned<PathBuf>,
    pub(super) key: Spanned<PathBuf>,
    pub(super) client_ca: Option<Spanned<PathBuf>>,
    pub(super) watch_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) url: Spanned<String>,
    #[serde(default)]
    pub(super) forward_token: bool,
    pub(super) identity_headers: Option<Spanned<toml::Table>>,
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) response_timeout: Option<Spanned<String>>,
    pub(super) ca_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMcp {
    pub(super) path: Option<Spanned<String>>,
    pub(super) resource: Spanned<String>,
    pub(super) max_body: Option<Spanned<String>>,
    pub(super) filter_lists: Option<bool>,
    pub(super) max_list_size: Option<Spanned<String>>,
    pub(super) bind_sessions: Option<bool>,
    pub(super) max_sessions: Option<u64>,
    pub(super) session_idle: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) header_read_timeout: Option<Spanned<String>>,
    pub(super) body_read_timeout: Option<Spanned<String>>,
    pub(super) max_header_size: Option<Spanned<String>>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_requests: Option<usize>,
    pub(super) max_h2_streams: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) issuer: Spanned<String>,
    pub(super) audiences: Spanned<Vec<String>>,
    pub(super) jwks_uri: Option<Spanned<String>>,
    pub(super) algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) leeway: Option<Spanned<String>>,
    pub(super) scope_claim: Option<String>,
    pub(super) require_typ: Option<String>,
    pub(super) max_token_size: Option<Spanned<String>>,
    pub(super) authorization_servers: Option<Vec<String>>,
    pub(super) ca_file: Option<Spanned<PathBuf>>,
    pub(super) token_cache_entries: Option<u64>,
    pub(super) jwks: Option<RawJwks>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwks {
    pub(super) default_ttl: Option<Spanned<String>>,
    pub(super) min_ttl: Option<Spanned<String>>,
    pub(super) max_ttl: Option<Spanned<String>>,
    pub(super) refetch_interval: Option<Spanned<String>>,
    pub(super) max_stale: Option<Spanned<String>>,
    pub(super) fetch_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub(super) file: Spanned<PathBuf>,
    pub(super) watch_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) address: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    pub(super) otlp_endpoint: Option<Spanned<String>>,
    pub(super) service_name: Option<String>,
    pub(super) sample_ratio: Option<Spanned<f64>>,
}
