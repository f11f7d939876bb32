//! The `[auth]` table: one issuer at its top or several in `[[auth.issuers]]`, each with its
//! audiences, keys and token checks, and the key cache they share, checked into the settings
//! the authenticator takes. Part of reading the config file (see the parent module).

use jsonwebtoken::Algorithm;
use toml::Spanned;

use super::raw::{RawAuth, RawIntrospection, RawIssuer, RawJwks};
use super::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, parse_http_url};
use crate::auth::{
    AuthSettings, ClientAuth, DEFAULT_INTROSPECTION_CACHE_TTL, DpopMode, IntrospectionSettings,
    JwksSettings, Secret,
};
use crate::diagnostics::Problems;
use crate::units::parse_size;

/// Algorithms accepted when `auth.algorithms` is absent: the two that IdPs issue by default.
const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// `[auth]` checked: every issuer's settings, and what all issuers share.
pub(super) struct AuthTable {
    /// In config order; one for the single-issuer form.
    pub(super) issuers: Vec<AuthSettings>,
    /// `authorization_servers` as written, else every issuer.
    pub(super) authorization_servers: Vec<String>,
}

/// The issuer keys, wherever they were written: at the top of `[auth]` or in an entry of
/// `[[auth.issuers]]`. `key` is the prefix problems are named with.
struct IssuerKeys<'a> {
    key: String,
    issuer: &'a Spanned<String>,
    audiences: &'a Spanned<Vec<String>>,
    jwks_uri: Option<&'a Spanned<String>>,
    algorithms: Option<&'a Spanned<Vec<Spanned<String>>>>,
    leeway: Option<&'a Spanned<String>>,
    scope_claim: Option<&'a String>,
    require_typ: Option<&'a String>,
    dpop: Option<&'a Spanned<String>>,
    dpop_nonce: Option<bool>,
    introspection: Option<&'a Spanned<RawIntrospection>>,
}

impl<'a> IssuerKeys<'a> {
    fn of_entry(index: usize, raw: &'a RawIssuer) -> Self {
        Self {
            key: format!("auth.issuers[{index}]"),
            issuer: &raw.issuer,
            audiences: &raw.audiences,
            jwks_uri: raw.jwks_uri.as_ref(),
            algorithms: raw.algorithms.as_ref(),
            leeway: raw.leeway.as_ref(),
            scope_claim: raw.scope_claim.as_ref(),
            require_typ: raw.require_typ.as_ref(),
            dpop: raw.dpop.as_ref(),
            dpop_nonce: raw.dpop_nonce,
            introspection: raw.introspection.as_ref(),
        }
    }
}

/// The names of the issuer keys that may stand at the top of `[auth]`, for the problem that
/// says they cannot be mixed with `[[auth.issuers]]`.
fn top_level_issuer_keys(raw: &RawAuth) -> Vec<&'static str> {
    [
        ("issuer", raw.issuer.is_some()),
        ("audiences", raw.audiences.is_some()),
        ("jwks_uri", raw.jwks_uri.is_some()),
        ("algorithms", raw.algorithms.is_some()),
        ("leeway", raw.leeway.is_some()),
        ("scope_claim", raw.scope_claim.is_some()),
        ("require_typ", raw.require_typ.is_some()),
        ("dpop", raw.dpop.is_some()),
        ("dpop_nonce", raw.dpop_nonce.is_some()),
        ("introspection", raw.introspection.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, present)| present.then_some(key))
    .collect()
}

/// `span` is the `[auth]` table's, where a missing issuer is reported; `env` looks up the
/// variables that hold secrets.
pub(super) fn validate_auth(
    raw: &RawAuth,
    span: std::ops::Range<usize>,
    env: &dyn crate::env::Env,
    problems: &mut Problems,
) -> Option<AuthTable> {
    let max_token_bytes = match &raw.max_token_size {
        Some(size) => problems.value(size, "auth.max_token_size", |s| parse_size(s)),
        None => Some(DEFAULT_MAX_TOKEN_BYTES),
    };
    let jwks = validate_jwks(raw.jwks.as_ref(), problems);
    let mut keys = Vec::new();
    match &raw.issuers {
        Some(entries) => {
            // Either form, never both: an issuer key at the top next to a list would read as
            // a default for the entries to one reader and as an issuer of its own to another.
            let mixed = top_level_issuer_keys(raw);
            if !mixed.is_empty() {
                problems.at(
                    Some(entries.span()),
                    "auth.issuers",
                    &format!(
                        "cannot be combined with issuer keys at the top of [auth] ({}): move them into an [[auth.issuers]] entry",
                        mixed.join(", ")
                    ),
                );
            }
            if entries.get_ref().is_empty() {
                problems.at(
                    Some(entries.span()),
                    "auth.issuers",
                    "must list at least one issuer",
                );
            }
            keys.extend(
                entries
                    .get_ref()
                    .iter()
                    .enumerate()
                    .map(|(i, entry)| IssuerKeys::of_entry(i, entry)),
            );
        }
        None => match (&raw.issuer, &raw.audiences) {
            (Some(issuer), Some(audiences)) => keys.push(IssuerKeys {
                key: "auth".into(),
                issuer,
                audiences,
                jwks_uri: raw.jwks_uri.as_ref(),
                algorithms: raw.algorithms.as_ref(),
                leeway: raw.leeway.as_ref(),
                scope_claim: raw.scope_claim.as_ref(),
                require_typ: raw.require_typ.as_ref(),
                dpop: raw.dpop.as_ref(),
                dpop_nonce: raw.dpop_nonce,
                introspection: raw.introspection.as_ref(),
            }),
            (issuer, _) => {
                let missing = if issuer.is_none() {
                    "auth.issuer"
                } else {
                    "auth.audiences"
                };
                problems.at(
                    Some(span),
                    missing,
                    "missing: [auth] names its issuer and audiences, or lists [[auth.issuers]]",
                );
                return None;
            }
        },
    }
    let mut issuers = Vec::with_capacity(keys.len());
    for (i, entry) in keys.iter().enumerate() {
        let name = entry.issuer.get_ref();
        if keys[..i]
            .iter()
            .any(|earlier| earlier.issuer.get_ref() == name)
        {
            problems.at(
                Some(entry.issuer.span()),
                &format!("{}.issuer", entry.key),
                "is listed twice: a token is matched to its issuer by `iss`",
            );
        }
    }
    let introspecting: Vec<_> = keys.iter().filter(|k| k.introspection.is_some()).collect();
    if let [_, second, ..] = &introspecting[..] {
        problems.at(
            second.introspection.map(Spanned::span),
            &format!("{}.introspection", second.key),
            "only one issuer may introspect opaque tokens: such a token names no issuer, and \
             sending it to every IdP would show one IdP's tokens to another",
        );
    }
    for entry in &keys {
        if let (Some(settings), Some(max), Some(jwks)) = (
            validate_issuer(entry, env, problems),
            max_token_bytes,
            jwks.as_ref(),
        ) {
            issuers.push(AuthSettings {
                max_token_bytes: max,
                jwks: jwks.clone(),
                ..settings
            });
        }
    }
    let authorization_servers = raw
        .authorization_servers
        .clone()
        .unwrap_or_else(|| keys.iter().map(|k| k.issuer.get_ref().clone()).collect());
    (issuers.len() == keys.len()).then_some(AuthTable {
        issuers,
        authorization_servers,
    })
}

fn validate_issuer(
    raw: &IssuerKeys<'_>,
    env: &dyn crate::env::Env,
    problems: &mut Problems,
) -> Option<AuthSettings> {
    let key = |name: &str| format!("{}.{name}", raw.key);
    let issuer = problems.value(raw.issuer, &key("issuer"), |s| {
        parse_http_url(s)?;
        Ok(s.to_string())
    });
    if raw.audiences.get_ref().is_empty() {
        problems.at(
            Some(raw.audiences.span()),
            &key("audiences"),
            "must name at least one audience (usually mcp.resource)",
        );
    }
    let jwks_uri = match raw.jwks_uri {
        Some(uri) => problems
            .value(uri, &key("jwks_uri"), |s| {
                parse_http_url(s).map(|_| s.to_string())
            })
            .map(Some),
        None => Some(None),
    };
    let algorithms = match raw.algorithms {
        None => Some(DEFAULT_ALGORITHMS.to_vec()),
        Some(list) if list.get_ref().is_empty() => {
            problems.at(
                Some(list.span()),
                &key("algorithms"),
                "must name at least one algorithm",
            );
            None
        }
        Some(list) => {
            let parsed: Vec<_> = list
                .get_ref()
                .iter()
                .map(|alg| problems.value(alg, &key("algorithms"), |s| parse_algorithm(s)))
                .collect();
            parsed.into_iter().collect::<Option<Vec<_>>>()
        }
    };
    let leeway = problems.duration(raw.leeway, &key("leeway"), DEFAULT_LEEWAY);
    let dpop = match raw.dpop {
        None => Some(DpopMode::Allowed),
        Some(mode) => problems.value(mode, &key("dpop"), |s| match s.as_str() {
            "allowed" => Ok(DpopMode::Allowed),
            "required" => Ok(DpopMode::Required),
            "off" => Ok(DpopMode::Off),
            _ => Err("must be \"allowed\", \"required\" or \"off\"".into()),
        }),
    };
    let introspection = match raw.introspection {
        None => Some(None),
        Some(table) => {
            validate_introspection(table.get_ref(), &key("introspection"), env, problems).map(Some)
        }
    };
    if raw.audiences.get_ref().is_empty() {
        return None;
    }
    Some(AuthSettings {
        issuer: issuer?,
        audiences: raw.audiences.get_ref().clone(),
        jwks_uri: jwks_uri?,
        algorithms: algorithms?,
        leeway: leeway?,
        scope_claim: raw.scope_claim.cloned().unwrap_or_else(|| "scope".into()),
        require_typ: raw.require_typ.cloned(),
        max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        jwks: JwksSettings::default(),
        introspection: introspection?,
        dpop: dpop?,
        dpop_nonce: raw.dpop_nonce.unwrap_or(false),
    })
}

fn validate_introspection(
    raw: &RawIntrospection,
    key: &str,
    env: &dyn crate::env::Env,
    problems: &mut Problems,
) -> Option<IntrospectionSettings> {
    let endpoint = match &raw.endpoint {
        Some(url) => problems
            .value(url, &format!("{key}.endpoint"), |s| {
                parse_http_url(s).map(|_| s.to_string())
            })
            .map(Some),
        None => Some(None),
    };
    let client_auth = match &raw.auth_method {
        None => Some(ClientAuth::Basic),
        Some(method) => problems.value(method, &format!("{key}.auth_method"), |s| {
            match s.as_str() {
                "client_secret_basic" => Ok(ClientAuth::Basic),
                "client_secret_post" => Ok(ClientAuth::Post),
                _ => Err("must be \"client_secret_basic\" or \"client_secret_post\"".into()),
            }
        }),
    };
    let cache_ttl = problems.duration(
        raw.cache_ttl.as_ref(),
        &format!("{key}.cache_ttl"),
        DEFAULT_INTROSPECTION_CACHE_TTL,
    );
    // Read when the config loads, so a missing secret stops the start rather than failing every
    // opaque token later.
    let client_secret = problems.value(
        &raw.client_secret_env,
        &format!("{key}.client_secret_env"),
        |name| match env.var(name) {
            Some(secret) if !secret.is_empty() => Ok(Secret(secret)),
            _ => Err(format!("the variable {name} is not set")),
        },
    );
    Some(IntrospectionSettings {
        endpoint: endpoint?,
        client_id: raw.client_id.get_ref().clone(),
        client_secret: client_secret?,
        client_auth: client_auth?,
        cache_ttl: cache_ttl?,
    })
}

fn validate_jwks(raw: Option<&RawJwks>, problems: &mut Problems) -> Option<JwksSettings> {
    let defaults = JwksSettings::default();
    let Some(raw) = raw else {
        return Some(defaults);
    };
    let default_ttl = problems.duration(
        raw.default_ttl.as_ref(),
        "auth.jwks.default_ttl",
        defaults.default_ttl,
    );
    let min_ttl = problems.duration(raw.min_ttl.as_ref(), "auth.jwks.min_ttl", defaults.min_ttl);
    let max_ttl = problems.duration(raw.max_ttl.as_ref(), "auth.jwks.max_ttl", defaults.max_ttl);
    let refetch_interval = problems.duration(
        raw.refetch_interval.as_ref(),
        "auth.jwks.refetch_interval",
        defaults.refetch_interval,
    );
    let max_stale = problems.duration(
        raw.max_stale.as_ref(),
        "auth.jwks.max_stale",
        defaults.max_stale,
    );
    let fetch_timeout = problems.duration(
        raw.fetch_timeout.as_ref(),
        "auth.jwks.fetch_timeout",
        defaults.fetch_timeout,
    );
    let settings = JwksSettings {
        default_ttl: default_ttl?,
        min_ttl: min_ttl?,
        max_ttl: max_ttl?,
        refetch_interval: refetch_interval?,
        max_stale: max_stale?,
        fetch_timeout: fetch_timeout?,
    };
    if settings.min_ttl > settings.max_ttl {
        problems.at(
            raw.min_ttl.as_ref().map(Spanned::span),
            "auth.jwks.min_ttl",
            "must not exceed auth.jwks.max_ttl",
        );
        return None;
    }
    Some(settings)
}

/// Only asymmetric algorithms: a JWKS holds public keys, and HMAC with a public key as its secret
/// is the classic key-confusion attack.
fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    match s {
        "RS256" => Ok(Algorithm::RS256),
        "RS384" => Ok(Algorithm::RS384),
        "RS512" => Ok(Algorithm::RS512),
        "PS256" => Ok(Algorithm::PS256),
        "PS384" => Ok(Algorithm::PS384),
        "PS512" => Ok(Algorithm::PS512),
        "ES256" => Ok(Algorithm::ES256),
        "ES384" => Ok(Algorithm::ES384),
        "EdDSA" => Ok(Algorithm::EdDSA),
        "HS256" | "HS384" | "HS512" => Err(format!(
            "{s:?} is refused: HMAC cannot be verified with an IdP's public keys"
        )),
        other => Err(format!(
            "{other:?} is not supported (RS256/384/512, PS256/384/512, ES256/384, EdDSA)"
        )),
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
