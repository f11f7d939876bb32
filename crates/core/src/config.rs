//! The config file of `scopegate run`: its defaults and the validation of the raw model
//! (`config/raw.rs`) into a [`Config`] whose every value is usable as is, every problem reported
//! with `file:line:col` (`config/problems.rs`). Not the policy file (see `policy`), not what the
//! values do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;

use crate::auth::AuthSettings;
use crate::env::Env;
use crate::units::parse_size;
pub use integrity::{IntegrityConfig, OnChange};
use raw::{RawConfig, RawLimits, RawListen, RawMcp, RawUpstream};

mod auth;
mod integrity;
mod overrides;
mod raw;
pub use crate::diagnostics::ConfigError;
use crate::diagnostics::Problems;
mod state;
pub use overrides::ENV_PREFIX;
#[cfg(feature = "schema")]
mod schema;
mod telemetry;
#[cfg(feature = "schema")]
pub use schema::json_schema;
pub use telemetry::{DEFAULT_SAMPLE_RATIO, DEFAULT_SERVICE_NAME, TelemetryConfig};

/// The MCP endpoint path when `[mcp] path` is not set: the path the MCP SDKs use in their examples.
pub const DEFAULT_MCP_PATH: &str = "/mcp";
/// Largest POST body read for inspection; MCP requests are small, and a bound keeps a client from
/// making the proxy buffer without end.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Clock skew tolerated on `exp`/`nbf`: enough for unsynchronised pods, short enough to matter.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Largest bearer token accepted; real access tokens are 1–2 KiB, and the cap bounds the work an
/// attacker can make the verifier do.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Time allowed to open a connection to the upstream before answering `502`.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for the upstream's response head before answering `504`. Generous, because a
/// tool may work for a while before its first byte; the body (an SSE stream) is not bounded.
pub const DEFAULT_UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// The admin listener's address when `[admin]` is absent: Prometheus' conventional exporter range.
pub const DEFAULT_ADMIN_ADDRESS: &str = "0.0.0.0:9464";
/// Time given to in-flight requests and open streams after SIGTERM: inside Kubernetes' default
/// 30 s grace period, with room for the endpoints update to stop new traffic first.
pub const DEFAULT_DRAIN_PERIOD: Duration = Duration::from_secs(20);
/// How often the policy file is checked for changes: a ConfigMap update shows within seconds.
pub const DEFAULT_POLICY_WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// Sessions remembered at most for session binding; the least recently used go first (their
/// clients re-initialize, as after a server restart).
pub const DEFAULT_MAX_SESSIONS: u64 = 100_000;
/// A session unused this long is forgotten.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(3600);
/// Time for a request's head to arrive, and for an idle keep-alive connection to send its next
/// one (HTTP/1.1): the slowloris bound.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a POST body to arrive once its head has.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head; real MCP requests carry a few hundred bytes of headers plus a token.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Open client connections at most; past it a new connection is answered `503` and closed.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Requests in flight at most; past it `503` with `Retry-After`, never a hang.
pub const DEFAULT_MAX_REQUESTS: usize = 4_096;
/// Concurrent HTTP/2 streams per connection.
pub const DEFAULT_MAX_H2_STREAMS: u32 = 128;
/// Largest listing (`tools/list` …) buffered for filtering.
pub const DEFAULT_MAX_LIST_BYTES: usize = 8 * 1024 * 1024;

/// How often the certificate files are checked: renewals come days ahead, so no hurry.
pub const DEFAULT_TLS_WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: ListenConfig,
    pub upstream: UpstreamConfig,
    pub mcp: McpConfig,
    /// Every accepted issuer, in config order: one for the single-issuer `[auth]`. They share
    /// the token size limit and the key cache settings.
    pub issuers: Vec<AuthSettings>,
    /// Extra CA bundle for reaching the IdP (JWKS, discovery) over TLS.
    pub auth_ca_file: Option<PathBuf>,
    /// `authorization_servers` for the protected-resource metadata.
    pub authorization_servers: Vec<String>,
    /// Verified tokens remembered (0: verify every request).
    pub token_cache_entries: u64,
    pub policy_file: PathBuf,
    pub policy_watch_interval: Duration,
    pub admin_address: SocketAddr,
    pub limits: Limits,
    /// Where rate limits and handle bindings live (`[state]`): this process, or Redis.
    pub state: crate::state::StateSettings,
    /// `[integrity]`: tool pins; `None` when the table is absent (definitions are not checked).
    pub integrity: Option<IntegrityConfig>,
    /// `[telemetry]`: `None` (no exporter) keeps tracing out of the request path entirely.
    pub telemetry: Option<TelemetryConfig>,
}

/// Bounds on what a client can make the proxy hold.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub max_requests: usize,
    pub max_h2_streams: u32,
}

#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub address: SocketAddr,
    /// `None` only when `insecure_plaintext = true`.
    pub tls: Option<TlsFiles>,
    pub allowed_origins: Vec<String>,
    pub drain_period: Duration,
    pub runtime: RuntimeShape,
}

impl ListenConfig {
    /// Whether connections are asked for a client certificate (`listen.tls.client_ca`): only
    /// then can a certificate-bound token (RFC 8705) be checked.
    pub fn asks_client_certificates(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.client_ca.is_some())
    }
}

/// How connections are spread over the cores (`listen.runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeShape {
    /// One single-threaded runtime per core, each handed the new connections when it has the
    /// fewest open: a connection, its requests and the upstream connections they use stay on one
    /// core, with no wake-ups across threads. The default: measured as fast or faster at 4 and 32 connections
    /// (BENCHMARKS.md).
    PerCore,
    /// One multi-threaded runtime whose idle threads steal work from busy ones: for a client
    /// that sends everything over one or two HTTP/2 connections, whose streams would otherwise
    /// all be served by one core.
    WorkStealing,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: whether a client without a certificate is refused at the handshake.
    /// Default `true` (mutual TLS for everyone); `false` lets such a client in with unbound
    /// tokens, while certificate-bound ones still need their certificate (RFC 8705 §3).
    pub require_client_cert: bool,
    pub watch_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub url: Uri,
    pub forward_token: bool,
    /// Verified claim name → request header that carries it upstream.
    pub identity_headers: Vec<(String, http::HeaderName)>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct McpConfig {
    pub path: String,
    pub resource: String,
    pub max_body_bytes: usize,
    /// Filter `tools/list` and the other listings down to what the caller may use.
    pub filter_lists: bool,
    pub max_list_bytes: usize,
    /// Bind each `Mcp-Session-Id` to the principal that created it.
    pub bind_sessions: bool,
    pub max_sessions: u64,
    pub session_idle: Duration,
}

/// The claim-to-header map when none is configured: the verified subject and client reach the
/// upstream, which can no longer see the token.
const DEFAULT_IDENTITY_HEADERS: [(&str, &str); 2] = [
    ("sub", "x-scopegate-subject"),
    ("client_id", "x-scopegate-client-id"),
];

// ---- loading --------------------------------------------------------------------------------

/// Overrides given as (variable, value) pairs, as the environment they stand for: in the order
/// given, each value as set (an empty one too, as a key's value may be).
struct Overrides<'a>(&'a [(String, String)]);

impl Env for Overrides<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find_map(|(n, value)| (n == name).then(|| value.clone()))
    }

    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Config {
    /// Reads and validates a config file with the process's `SCOPEGATE_*` overrides applied.
    /// Relative paths inside it are taken from the file's directory, so a config and its policy
    /// can travel together.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{}: cannot read: {e}", path.display())],
        })?;
        Config::parse_with_env(&source, path, &crate::env::ProcessEnv)
    }

    /// Validates config text; `path` names it in messages and anchors relative paths.
    pub fn parse(source: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_with_overrides(source, path, &[])
    }

    /// Validates config text with environment overrides, given as (variable, value) pairs so
    /// tests need not touch the process environment. `SCOPEGATE_AUTH_ISSUER` sets
    /// `auth.issuer`, `SCOPEGATE_LISTEN_TLS_CERT` sets `listen.tls.cert`, and so on for every
    /// key. Variables that name no key are ignored (Kubernetes itself injects
    /// `SCOPEGATE_SERVICE_HOST` and friends when a Service is called `scopegate`), unless one is
    /// a slip from a key's variable (`SCOPEGATE_AUHT_ISSUER`): that is an error naming it.
    pub fn parse_with_overrides(
        source: &str,
        path: &Path,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        Config::parse_with_env(source, path, &Overrides(overrides))
    }

    /// As [`Self::parse_with_overrides`], with the overrides (every `SCOPEGATE_*` variable) and
    /// the secrets the file names by variable (such as `client_secret_env`) read from `env`.
    pub fn parse_with_env(source: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let overrides = env.vars_with_prefix(ENV_PREFIX);
        let applied = overrides::apply(source, &overrides).map_err(|problems| ConfigError {
            problems: problems
                .into_iter()
                .map(|p| format!("{}: {p}", path.display()))
                .collect(),
        })?;
        match applied {
            None => Config::validate_text(source, path, true, env),
            // Positions in the merged text would not match the file, so problems then name
            // only the key.
            Some(merged) => Config::validate_text(&merged, path, false, env),
        }
    }

    fn validate_text(
        source: &str,
        path: &Path,
        positions: bool,
        env: &dyn Env,
    ) -> Result<Config, ConfigError> {
        let mut problems = Problems::new(source, path);
        if !positions {
            problems.file = format!("{} (with {ENV_PREFIX}* overrides)", path.display());
            problems.positions = false;
        }
        let Some(raw) = problems.parse::<RawConfig>() else {
            return Err(problems.into_error());
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let config = validate(raw, base, env, &mut problems);
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(problems.into_error()),
        }
    }
}

fn validate(raw: RawConfig, base: &Path, env: &dyn Env, problems: &mut Problems) -> Option<Config> {
    let listen = validate_listen(raw.listen, base, problems);
    let upstream = validate_upstream(raw.upstream, base, problems);
    let mcp = validate_mcp(raw.mcp, problems);
    let auth_span = raw.auth.span();
    let raw_auth = raw.auth.into_inner();
    let auth = auth::validate_auth(&raw_auth, auth_span, env, problems);
    let auth_ca_file = raw_auth.ca_file.map(|p| resolve(base, p.into_inner()));
    let policy_watch_interval = problems.duration(
        raw.policy.watch_interval.as_ref(),
        "policy.watch_interval",
        DEFAULT_POLICY_WATCH_INTERVAL,
    );
    let limits = validate_limits(&raw.limits, problems);
    let state = state::validate_state(raw.state, base, problems);
    let integrity = raw
        .integrity
        .map(|raw| integrity::validate_integrity(raw, base, problems));
    let telemetry = telemetry::validate(raw.telemetry, problems);
    let admin_address = match raw.admin.and_then(|a| a.address) {
        Some(address) => problems.value(&address, "admin.address", |s| {
            s.parse::<SocketAddr>().map_err(|e| e.to_string())
        }),
        None => DEFAULT_ADMIN_ADDRESS.parse().ok(),
    };
    let auth = auth?;
    Some(Config {
        listen: listen?,
        upstream: upstream?,
        mcp: mcp?,
        issuers: auth.issuers,
        auth_ca_file,
        authorization_servers: auth.authorization_servers,
        token_cache_entries: raw_auth
            .token_cache_entries
            .unwrap_or(crate::auth::DEFAULT_TOKEN_CACHE_ENTRIES),
        policy_file: resolve(base, raw.policy.file.into_inner()),
        policy_watch_interval: policy_watch_interval?,
        admin_address: admin_address?,
        limits: limits?,
        state: state?,
        integrity: match integrity {
            Some(integrity) => Some(integrity?),
            None => None,
        },
        telemetry: telemetry?,
    })
}

fn validate_limits(raw: &RawLimits, problems: &mut Problems) -> Option<Limits> {
    let header_read_timeout = problems.duration(
        raw.header_read_timeout.as_ref(),
        "limits.header_read_timeout",
        DEFAULT_HEADER_READ_TIMEOUT,
    );
    let body_read_timeout = problems.duration(
        raw.body_read_timeout.as_ref(),
        "limits.body_read_timeout",
        DEFAULT_BODY_READ_TIMEOUT,
    );
    let max_header_bytes = match &raw.max_header_size {
        Some(size) => problems.value(size, "limits.max_header_size", |s| parse_size(s)),
        None => Some(DEFAULT_MAX_HEADER_BYTES),
    };
    Some(Limits {
        header_read_timeout: header_read_timeout?,
        body_read_timeout: body_read_timeout?,
        max_header_bytes: max_header_bytes?,
        max_connections: raw
            .max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS)
            .max(1),
        max_requests: raw.max_requests.unwrap_or(DEFAULT_MAX_REQUESTS).max(1),
        max_h2_streams: raw.max_h2_streams.unwrap_or(DEFAULT_MAX_H2_STREAMS).max(1),
    })
}

fn validate_listen(raw: RawListen, base: &Path, problems: &mut Problems) -> Option<ListenConfig> {
    let address = problems.value(&raw.address, "listen.address", |s| {
        s.parse::<SocketAddr>().map_err(|e| e.to_string())
    });
    let drain_period = problems.duration(
        raw.drain_period.as_ref(),
        "listen.drain_period",
        DEFAULT_DRAIN_PERIOD,
    );
    let tls = match (raw.tls, raw.insecure_plaintext) {
        (Some(tls), _) => {
            let tls = tls.into_inner();
            let watch_interval = problems.duration(
                tls.watch_interval.as_ref(),
                "listen.tls.watch_interval",
                DEFAULT_TLS_WATCH_INTERVAL,
            );
            if let (Some(require), None) = (&tls.require_client_cert, &tls.client_ca) {
                problems.at(
                    Some(require.span()),
                    "listen.tls.require_client_cert",
                    "needs listen.tls.client_ca: without it no client certificate is asked for",
                );
            }
            Some(TlsFiles {
                cert: resolve(base, tls.cert.into_inner()),
                key: resolve(base, tls.key.into_inner()),
                client_ca: tls.client_ca.map(|p| resolve(base, p.into_inner())),
                require_client_cert: tls.require_client_cert.is_none_or(|r| *r.get_ref()),
                watch_interval: watch_interval.unwrap_or(DEFAULT_TLS_WATCH_INTERVAL),
            })
        }
        (None, true) => None,
        (None, false) => {
            problems.at(
                Some(raw.address.span()),
                "listen.tls",
                "missing: a [listen.tls] cert and key are required unless insecure_plaintext = true",
            );
            None
        }
    };
    let runtime = match &raw.runtime {
        None => Some(RuntimeShape::PerCore),
        Some(value) => problems.value(value, "listen.runtime", |s| match s.as_str() {
            "work-stealing" => Ok(RuntimeShape::WorkStealing),
            "per-core" => Ok(RuntimeShape::PerCore),
            _ => Err("must be \"work-stealing\" or \"per-core\"".to_string()),
        }),
    };
    let mut allowed_origins = Vec::with_capacity(raw.allowed_origins.len());
    for origin in &raw.allowed_origins {
        if let Some(origin) = problems.value(origin, "listen.allowed_origins", |s| parse_origin(s))
        {
            allowed_origins.push(origin);
        }
    }
    Some(ListenConfig {
        address: address?,
        tls,
        allowed_origins,
        drain_period: drain_period?,
        runtime: runtime?,
    })
}

/// An origin is `scheme://host[:port]`, compared as the browser sends it.
fn parse_origin(s: &str) -> Result<String, String> {
    let uri: Uri = s.parse().map_err(|_| "not a URL".to_string())?;
    match (uri.scheme_str(), uri.authority(), uri.path()) {
        (Some("http" | "https"), Some(_), "" | "/") if uri.query().is_none() => {
            Ok(s.trim_end_matches('/').to_ascii_lowercase())
        }
        _ => Err("an origin is scheme://host[:port], with no path".into()),
    }
}

fn validate_upstream(
    raw: RawUpstream,
    base: &Path,
    problems: &mut Problems,
) -> Option<UpstreamConfig> {
    let url = problems.value(&raw.url, "upstream.url", |s| parse_http_url(s));
    let connect_timeout = problems.duration(
        raw.connect_timeout.as_ref(),
        "upstream.connect_timeout",
        DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
    );
    let response_timeout = problems.duration(
        raw.response_timeout.as_ref(),
        "upstream.response_timeout",
        DEFAULT_UPSTREAM_RESPONSE_TIMEOUT,
    );
    let identity_headers = match &raw.identity_headers {
        None => DEFAULT_IDENTITY_HEADERS
            .iter()
            .map(|(claim, header)| (claim.to_string(), http::HeaderName::from_static(header)))
            .collect(),
        Some(table) => {
            let mut headers = Vec::new();
            for (claim, header) in table.get_ref() {
                let parsed = header
                    .as_str()
                    .ok_or_else(|| "must be a header name string".to_string())
                    .and_then(parse_identity_header);
                match parsed {
                    Ok(name) => headers.push((claim.clone(), name)),
                    Err(msg) => problems.at(
                        Some(table.span()),
                        &format!("upstream.identity_headers.{claim}"),
                        &msg,
                    ),
                }
            }
            headers
        }
    };
    Some(UpstreamConfig {
        url: url?,
        forward_token: raw.forward_token,
        identity_headers,
        connect_timeout: connect_timeout?,
        response_timeout: response_timeout?,
        ca_file: raw.ca_file.map(|p| resolve(base, p.into_inner())),
    })
}

/// Identity headers may not name a header the proxy itself manages, or the client could not be
/// kept from sending it.
fn parse_identity_header(name: &str) -> Result<http::HeaderName, String> {
    let header =
        http::HeaderName::try_from(name).map_err(|_| format!("{name:?} is not a header name"))?;
    let reserved = [
        http::header::AUTHORIZATION,
        http::header::HOST,
        http::header::CONTENT_LENGTH,
        http::header::CONTENT_TYPE,
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
    ];
    // `_` reads as `-` to CGI/WSGI-style servers, so `mcp_session_id` is `Mcp-Session-Id` there.
    let dashed = header.as_str().replace('_', "-");
    if reserved.iter().any(|r| r.as_str() == dashed)
        || dashed.starts_with("mcp-")
        || dashed.starts_with("x-forwarded-")
        || matches!(dashed.as_str(), "forwarded" | "x-real-ip" | "x-request-id")
    {
        return Err(format!(
            "{name:?} is managed by the proxy and cannot carry a claim"
        ));
    }
    if header.as_str().contains('_') {
        return Err(format!(
            "{name:?}: write header names with `-`; many servers drop or merge names with `_`"
        ));
    }
    Ok(header)
}

fn parse_http_url(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|e| format!("not a URL: {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err("must be an absolute http:// or https:// URL".into()),
    }
}

fn validate_mcp(raw: RawMcp, problems: &mut Problems) -> Option<McpConfig> {
    let path = match &raw.path {
        Some(path) => problems.value(path, "mcp.path", |p| {
            if p.starts_with('/') && !p.contains(['?', '#', ' ']) && p.len() > 1 {
                Ok(p.trim_end_matches('/').to_string())
            } else {
                Err("must be an absolute path such as \"/mcp\"".into())
            }
        }),
        None => Some(DEFAULT_MCP_PATH.to_string()),
    };
    let resource = problems.value(&raw.resource, "mcp.resource", |s| {
        parse_http_url(s)?;
        if s.contains('#') {
            return Err("a resource identifier has no fragment (RFC 8707)".into());
        }
        Ok(s.to_string())
    });
    let max_body_bytes = match &raw.max_body {
        Some(size) => problems.value(size, "mcp.max_body", |s| parse_size(s)),
        None => Some(DEFAULT_MAX_BODY_BYTES),
    };
    let max_list_bytes = match &raw.max_list_size {
        Some(size) => problems.value(size, "mcp.max_list_size", |s| parse_size(s)),
        None => Some(DEFAULT_MAX_LIST_BYTES),
    };
    let session_idle = problems.duration(
        raw.session_idle.as_ref(),
        "mcp.session_idle",
        DEFAULT_SESSION_IDLE,
    );
    Some(McpConfig {
        path: path?,
        resource: resource?,
        max_body_bytes: max_body_bytes?,
        filter_lists: raw.filter_lists.unwrap_or(true),
        max_list_bytes: max_list_bytes?,
        bind_sessions: raw.bind_sessions.unwrap_or(true),
        max_sessions: raw.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS),
        session_idle: session_idle?,
    })
}

fn resolve(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

#[cfg(test)]
#[path = "config/tests.rs"]
mod tests;
