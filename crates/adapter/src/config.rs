//! The config file of `scopegate adapter`: the raw TOML model, its defaults, and its validation
//! into an [`AdapterConfig`] whose every value is usable as is, secrets already read from the
//! environment. Owns parsing and problem reporting with `file:line:col`; not what the values do.

use scopegate_core::diagnostics::{ConfigError, Problems};
pub use scopegate_core::env::{Env, ProcessEnv};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use toml::Spanned;

/// The admin listener when `[admin]` is absent: next to the proxy's 9464, so both fit on one host.
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9465";
/// Model → tools → model rounds before the adapter stops a conversation: enough for a lookup
/// followed by an action, few enough that a looping model cannot run up a large bill.
pub const DEFAULT_MAX_TOOL_ROUNDS: u32 = 5;
/// Retries on one target before falling back to the next: one retry rides out a blip, more only
/// delays the fallback that the alias exists for.
pub const DEFAULT_MAX_RETRIES: u32 = 1;
/// First backoff; doubled per retry, with full jitter.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(250);
/// Upper bound of one backoff, also of a `Retry-After` the adapter is willing to wait for; a
/// longer one sends the request to the next target instead.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Time allowed for one provider answer: the whole completion when the caller does not stream;
/// when it streams, the wait for the provider's response head and the longest silence between two
/// pieces of the answer (a long answer may take longer in all, as long as it keeps coming).
pub const DEFAULT_PROVIDER_TIMEOUT: Duration = Duration::from_secs(120);
/// Time allowed to open a connection to a provider, the token endpoint or scopegate.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one MCP request through scopegate (a tool may work a while).
pub const DEFAULT_MCP_TIMEOUT: Duration = Duration::from_secs(60);
/// `max_tokens` sent to Anthropic when the caller gives none; the Messages API requires one.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u64 = 4096;
/// The Messages API version header; the one every current Anthropic model accepts.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone)]
pub struct AdapterConfig {
    pub listen: SocketAddr,
    /// Callers must send this as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    pub tools: Option<ToolsConfig>,
    pub providers: Vec<ProviderConfig>,
    /// Alias → ordered targets.
    pub models: BTreeMap<String, Vec<Target>>,
    pub routing: RoutingConfig,
    pub admin: SocketAddr,
}

/// `[mcp]` and `[oauth]`: the tools and the credentials they are called with.
#[derive(Debug, Clone)]
pub struct ToolsConfig {
    pub mcp_url: Uri,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    pub max_tool_rounds: u32,
    pub oauth: OAuthConfig,
}

#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub token_url: Uri,
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    OpenAiCompatible,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    /// Without a trailing slash.
    pub base_url: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub anthropic_version: String,
    pub max_tokens: u64,
}

/// One place a request can go: a configured provider and the model name it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: String,
    pub model: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

impl Target {
    /// `provider/model`; the model part may itself hold slashes (`openrouter/meta/llama`).
    pub fn parse(s: &str) -> Option<Target> {
        let (provider, model) = s.split_once('/')?;
        (!provider.is_empty() && !model.is_empty()).then(|| Target {
            provider: provider.to_owned(),
            model: model.to_owned(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct RoutingConfig {
    pub max_retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            max_retries: DEFAULT_MAX_RETRIES,
            backoff: DEFAULT_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }
}

// ---- the raw file model -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: RawListen,
    mcp: Option<Spanned<RawMcp>>,
    oauth: Option<RawOAuth>,
    #[serde(default)]
    providers: Vec<Spanned<RawProvider>>,
    #[serde(default)]
    models: BTreeMap<String, Spanned<RawModel>>,
    routing: Option<RawRouting>,
    admin: Option<RawAdmin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    address: Spanned<String>,
    api_key_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMcp {
    url: Spanned<String>,
    ca_file: Option<PathBuf>,
    timeout: Option<Spanned<String>>,
    max_tool_rounds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    token_url: Spanned<String>,
    client_id: String,
    client_secret_env: Spanned<String>,
    #[serde(default)]
    scopes: Vec<String>,
    resource: Option<String>,
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: Spanned<String>,
    kind: Spanned<String>,
    base_url: Spanned<String>,
    api_key_env: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    ca_file: Option<PathBuf>,
    anthropic_version: Option<String>,
    max_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    targets: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    max_retries: Option<u32>,
    backoff: Option<Spanned<String>>,
    max_backoff: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    address: Spanned<String>,
}

// ---- loading --------------------------------------------------------------------------------

impl AdapterConfig {
    /// Reads and validates a config file, secrets from the process environment. Relative paths
    /// are taken from the file's directory.
    pub fn load(path: &Path) -> Result<AdapterConfig, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{}: cannot read: {e}", path.display())],
        })?;
        AdapterConfig::parse(&source, path, &ProcessEnv)
    }

    /// Validates config text; `path` names it in messages and anchors relative paths.
    pub fn parse(source: &str, path: &Path, env: &dyn Env) -> Result<AdapterConfig, ConfigError> {
        let mut problems = Problems::new(source, path);
        let Some(raw) = problems.parse::<RawConfig>() else {
            return Err(problems.into_error());
        };
        let base = path.parent().unwrap_or(Path::new("."));
        match validate(raw, base, env, &mut problems) {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(problems.into_error()),
        }
    }
}

fn validate(
    raw: RawConfig,
    base: &Path,
    env: &dyn Env,
    problems: &mut Problems,
) -> Option<AdapterConfig> {
    let listen = problems.value(&raw.listen.address, "listen.address", |s| parse_addr(s));
    let api_key = raw
        .listen
        .api_key_env
        .as_ref()
        .and_then(|name| secret(problems, env, name, "listen.api_key_env"));
    let tools = validate_tools(raw.mcp, raw.oauth, base, env, problems);
    let providers = validate_providers(&raw.providers, base, env, problems);
    let mut models = BTreeMap::new();
    for (alias, model) in &raw.models {
        let key = format!("models.{alias}.targets");
        if model.get_ref().targets.is_empty() {
            problems.at(
                Some(model.span()),
                &key,
                "an alias needs at least one target",
            );
        }
        let mut targets = Vec::new();
        for target in &model.get_ref().targets {
            let parsed = problems.value(target, &key, |s| {
                let t =
                    Target::parse(s).ok_or_else(|| format!("{s:?} is not \"provider/model\""))?;
                if providers.iter().any(|p| p.name == t.provider) {
                    Ok(t)
                } else {
                    Err(format!("no provider is named {:?}", t.provider))
                }
            });
            targets.extend(parsed);
        }
        if alias.contains('/') {
            problems.at(Some(model.span()), &key, "an alias may not hold '/'");
        }
        models.insert(alias.clone(), targets);
    }
    let routing = match raw.routing {
        None => RoutingConfig::default(),
        Some(r) => RoutingConfig {
            max_retries: r.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            backoff: problems.duration(r.backoff.as_ref(), "routing.backoff", DEFAULT_BACKOFF)?,
            max_backoff: problems.duration(
                r.max_backoff.as_ref(),
                "routing.max_backoff",
                DEFAULT_MAX_BACKOFF,
            )?,
        },
    };
    let admin = match raw.admin {
        Some(admin) => problems.value(&admin.address, "admin.address", |s| parse_addr(s)),
        None => DEFAULT_ADMIN_ADDRESS.parse().ok(),
    };
    Some(AdapterConfig {
        listen: listen?,
        api_key,
        tools,
        providers,
        models,
        routing,
        admin: admin?,
    })
}

fn validate_tools(
    mcp: Option<Spanned<RawMcp>>,
    oauth: Option<RawOAuth>,
    base: &Path,
    env: &dyn Env,
    problems: &mut Problems,
) -> Option<ToolsConfig> {
    let mcp = mcp?;
    let span = mcp.span();
    let mcp = mcp.into_inner();
    let Some(oauth) = oauth else {
        problems.at(
            Some(span),
            "oauth",
            "missing: tools are called through scopegate with a token from [oauth]",
        );
        return None;
    };
    let mcp_url = problems.value(&mcp.url, "mcp.url", |s| parse_http_url(s));
    let timeout = problems.duration(mcp.timeout.as_ref(), "mcp.timeout", DEFAULT_MCP_TIMEOUT);
    let token_url = problems.value(&oauth.token_url, "oauth.token_url", |s| parse_http_url(s));
    let client_secret = secret(
        problems,
        env,
        &oauth.client_secret_env,
        "oauth.client_secret_env",
    );
    Some(ToolsConfig {
        mcp_url: mcp_url?,
        ca_file: mcp.ca_file.map(|p| resolve(base, p)),
        timeout: timeout?,
        max_tool_rounds: mcp.max_tool_rounds.unwrap_or(DEFAULT_MAX_TOOL_ROUNDS),
        oauth: OAuthConfig {
            token_url: token_url?,
            client_id: oauth.client_id,
            client_secret: client_secret?,
            scopes: oauth.scopes,
            resource: oauth.resource,
            ca_file: oauth.ca_file.map(|p| resolve(base, p)),
        },
    })
}

fn validate_providers(
    raw: &[Spanned<RawProvider>],
    base: &Path,
    env: &dyn Env,
    problems: &mut Problems,
) -> Vec<ProviderConfig> {
    let mut providers: Vec<ProviderConfig> = Vec::new();
    for spanned in raw {
        let p = spanned.get_ref();
        let name = p.name.get_ref().clone();
        if name.is_empty() || name.contains('/') {
            problems.at(
                Some(p.name.span()),
                "providers.name",
                "must be non-empty without '/'",
            );
        }
        if providers.iter().any(|other| other.name == name) {
            problems.at(
                Some(p.name.span()),
                "providers.name",
                &format!("{name:?} is defined twice"),
            );
        }
        let kind = problems.value(&p.kind, "providers.kind", |s| match s.as_str() {
            "openai" => Ok(ProviderKind::OpenAi),
            "anthropic" => Ok(ProviderKind::Anthropic),
            "openai-compatible" => Ok(ProviderKind::OpenAiCompatible),
            other => Err(format!(
                "{other:?} is not a provider kind (openai, anthropic, openai-compatible)"
            )),
        });
        let base_url = problems.value(&p.base_url, "providers.base_url", |s| {
            parse_http_url(s).map(|_| s.trim_end_matches('/').to_owned())
        });
        let api_key = match &p.api_key_env {
            Some(name) => secret(problems, env, name, "providers.api_key_env"),
            None => None,
        };
        if p.api_key_env.is_none() && kind.is_some_and(|k| k != ProviderKind::OpenAiCompatible) {
            problems.at(
                Some(spanned.span()),
                "providers.api_key_env",
                "missing: openai and anthropic providers need an API key",
            );
        }
        let timeout = problems.duration(
            p.timeout.as_ref(),
            "providers.timeout",
            DEFAULT_PROVIDER_TIMEOUT,
        );
        if let (Some(kind), Some(base_url), Some(timeout)) = (kind, base_url, timeout) {
            providers.push(ProviderConfig {
                name,
                kind,
                base_url,
                api_key,
                timeout,
                ca_file: p.ca_file.clone().map(|f| resolve(base, f)),
                anthropic_version: p
                    .anthropic_version
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_owned()),
                max_tokens: p.max_tokens.unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS),
            });
        }
    }
    providers
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|e| e.to_string())
}

fn parse_http_url(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(format!("{s:?} is not an http(s) URL")),
    }
}

fn resolve(base: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// The value of the environment variable that `name` names: secrets never sit in the file.
fn secret(
    problems: &mut Problems,
    env: &dyn Env,
    name: &Spanned<String>,
    key: &str,
) -> Option<String> {
    problems.value(name, key, |var| {
        env.var(var)
            .ok_or_else(|| format!("environment variable {var} is not set"))
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
