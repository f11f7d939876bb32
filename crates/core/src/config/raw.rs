//! The config file as written: serde's model of its TOML, every key optional or spanned so the
//! validation in `config.rs` can place each problem. Owns the key names (`deny_unknown_fields`
//! makes any other key an error); not what the values mean.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) listen: RawListen,
    pub(super) upstream: RawUpstream,
    pub(super) mcp: RawMcp,
    #[cfg_attr(feature = "schema", schemars(with = "RawAuth"))]
    pub(super) auth: Spanned<RawAuth>,
    pub(super) policy: RawPolicy,
    pub(super) admin: Option<RawAdmin>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[cfg_attr(feature = "schema", schemars(with = "Option<RawState>"))]
    pub(super) state: Option<Spanned<RawState>>,
    pub(super) integrity: Option<RawIntegrity>,
    pub(super) telemetry: Option<RawTelemetry>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub(super) address: Spanned<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<RawTls>"))]
    pub(super) tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub(super) insecure_plaintext: bool,
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<String>"))]
    pub(super) allowed_origins: Vec<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) drain_period: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) runtime: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    #[cfg_attr(feature = "schema", schemars(with = "PathBuf"))]
    pub(super) cert: Spanned<PathBuf>,
    #[cfg_attr(feature = "schema", schemars(with = "PathBuf"))]
    pub(super) key: Spanned<PathBuf>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<PathBuf>"))]
    pub(super) client_ca: Option<Spanned<PathBuf>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<bool>"))]
    pub(super) require_client_cert: Option<Spanned<bool>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) watch_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub(super) url: Spanned<String>,
    #[serde(default)]
    pub(super) forward_token: bool,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<std::collections::BTreeMap<String, String>>")
    )]
    pub(super) identity_headers: Option<Spanned<toml::Table>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) connect_timeout: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) response_timeout: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<PathBuf>"))]
    pub(super) ca_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawMcp {
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) path: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub(super) resource: Spanned<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) max_body: Option<Spanned<String>>,
    pub(super) filter_lists: Option<bool>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) max_list_size: Option<Spanned<String>>,
    pub(super) bind_sessions: Option<bool>,
    pub(super) max_sessions: Option<u64>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) session_idle: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) header_read_timeout: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) body_read_timeout: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) max_header_size: Option<Spanned<String>>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_requests: Option<usize>,
    pub(super) max_h2_streams: Option<u32>,
}

/// `[auth]`: either one issuer's keys at the top (the original form), or `[[auth.issuers]]`
/// entries; the keys after `issuers` apply to every issuer.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) issuer: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub(super) audiences: Option<Spanned<Vec<String>>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) jwks_uri: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub(super) algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) leeway: Option<Spanned<String>>,
    pub(super) scope_claim: Option<String>,
    pub(super) require_typ: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) dpop: Option<Spanned<String>>,
    pub(super) dpop_nonce: Option<bool>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<RawIntrospection>"))]
    pub(super) introspection: Option<Spanned<RawIntrospection>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<RawIssuer>>"))]
    pub(super) issuers: Option<Spanned<Vec<RawIssuer>>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) max_token_size: Option<Spanned<String>>,
    pub(super) authorization_servers: Option<Vec<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<PathBuf>"))]
    pub(super) ca_file: Option<Spanned<PathBuf>>,
    pub(super) token_cache_entries: Option<u64>,
    pub(super) jwks: Option<RawJwks>,
}

// These keys repeat `RawAuth`'s on purpose rather than living in a shared struct pulled in
// with `#[serde(flatten)]`: serde does not honour `deny_unknown_fields` on a flattened struct
// (a misspelt key would pass silently), and a flattened field is read from serde's buffered
// form, which has no positions for `toml::Spanned` to take, so the problems would lose their
// line and column. Here `issuer` and `audiences` are also required, where `[auth]` may leave
// them to its entries. (A plain comment: doc comments become the editor schema's help text.)
/// One `[[auth.issuers]]` entry: the issuer keys of `[auth]`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub(super) issuer: Spanned<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Vec<String>"))]
    pub(super) audiences: Spanned<Vec<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) jwks_uri: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<Vec<String>>"))]
    pub(super) algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) leeway: Option<Spanned<String>>,
    pub(super) scope_claim: Option<String>,
    pub(super) require_typ: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) dpop: Option<Spanned<String>>,
    pub(super) dpop_nonce: Option<bool>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<RawIntrospection>"))]
    pub(super) introspection: Option<Spanned<RawIntrospection>>,
}

/// `[auth.issuers.introspection]` (RFC 7662), for an issuer's opaque tokens.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntrospection {
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) endpoint: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub(super) client_id: Spanned<String>,
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub(super) client_secret_env: Spanned<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) auth_method: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) cache_ttl: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawJwks {
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) default_ttl: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) min_ttl: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) max_ttl: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) refetch_interval: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) max_stale: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) fetch_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[cfg_attr(feature = "schema", schemars(with = "PathBuf"))]
    pub(super) file: Spanned<PathBuf>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) watch_interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntegrity {
    #[cfg_attr(feature = "schema", schemars(with = "Option<PathBuf>"))]
    pub(super) pins: Option<Spanned<PathBuf>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) on_change: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) address: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawState {
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) backend: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) url: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) url_env: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) password_env: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<PathBuf>"))]
    pub(super) ca_file: Option<Spanned<PathBuf>>,
    pub(super) key_prefix: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) timeout: Option<Spanned<String>>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) on_error: Option<Spanned<String>>,
}

/// `[telemetry]`: traces over OTLP.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub(super) otlp_endpoint: Option<Spanned<String>>,
    pub(super) service_name: Option<String>,
    #[cfg_attr(feature = "schema", schemars(with = "Option<f64>"))]
    pub(super) sample_ratio: Option<Spanned<f64>>,
}
