//! The `[auth]` table: issuer, audiences, keys and their cache, checked into the settings the
//! authenticator takes. Part of reading the config file (see the parent module).

use jsonwebtoken::Algorithm;
use toml::Spanned;

use super::raw::{RawAuth, RawJwks};
use super::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, parse_http_url};
use crate::auth::{AuthSettings, JwksSettings};
use crate::diagnostics::Problems;
use crate::units::parse_size;

/// Algorithms accepted when `auth.algorithms` is absent: the two that IdPs issue by default.
const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

pub(super) fn validate_auth(raw: &RawAuth, problems: &mut Problems) -> Option<AuthSettings> {
    let issuer = problems.value(&raw.issuer, "auth.issuer", |s| {
        parse_http_url(s)?;
        Ok(s.to_string())
    });
    if raw.audiences.get_ref().is_empty() {
        problems.at(
            Some(raw.audiences.span()),
            "auth.audiences",
            "must name at least one audience (usually mcp.resource)",
        );
    }
    let jwks_uri = match &raw.jwks_uri {
        Some(uri) => problems
            .value(uri, "auth.jwks_uri", |s| {
                parse_http_url(s).map(|_| s.to_string())
            })
            .map(Some),
        None => Some(None),
    };
    let algorithms = match &raw.algorithms {
        None => Some(DEFAULT_ALGORITHMS.to_vec()),
        Some(list) if list.get_ref().is_empty() => {
            problems.at(
                Some(list.span()),
                "auth.algorithms",
                "must name at least one algorithm",
            );
            None
        }
        Some(list) => {
            let parsed: Vec<_> = list
                .get_ref()
                .iter()
                .map(|alg| problems.value(alg, "auth.algorithms", |s| parse_algorithm(s)))
                .collect();
            parsed.into_iter().collect::<Option<Vec<_>>>()
        }
    };
    let leeway = problems.duration(raw.leeway.as_ref(), "auth.leeway", DEFAULT_LEEWAY);
    let max_token_bytes = match &raw.max_token_size {
        Some(size) => problems.value(size, "auth.max_token_size", |s| parse_size(s)),
        None => Some(DEFAULT_MAX_TOKEN_BYTES),
    };
    let jwks = validate_jwks(raw.jwks.as_ref(), problems);
    Some(AuthSettings {
        issuer: issuer?,
        audiences: raw.audiences.get_ref().clone(),
        jwks_uri: jwks_uri?,
        algorithms: algorithms?,
        leeway: leeway?,
        scope_claim: raw.scope_claim.clone().unwrap_or_else(|| "scope".into()),
        require_typ: raw.require_typ.clone(),
        max_token_bytes: max_token_bytes?,
        jwks: jwks?,
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
