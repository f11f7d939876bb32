//! Authentication: bearer extraction, JWT verification, the JWKS source and cache.
//!
//! Owns turning a request's headers into a verified [`Principal`], or an [`AuthError`] that says
//! why not. Does not own what the principal may do (the policy), nor how a failure becomes a
//! response (the proxy's error type renders it, using [`AuthError::reason`] and its `Display`).

mod bearer;
mod discovery;
mod fetch;
mod jwks;
mod jwt;
mod token_cache;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};

use crate::client::HttpClient;
use crate::policy::{ClaimsCache, GrantedCache, ScopeSet};
use crate::reason::Reason;

pub use jwks::JwksStatus;

/// Clock skew tolerated on `exp` and `nbf`: IdPs and sidecars run on different hosts, and 30 s
/// covers ordinary NTP drift without keeping an expired token alive for long.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The claim scopes are read from: RFC 9068 and RFC 8693 name `scope`, a space-delimited string.
pub const DEFAULT_SCOPE_CLAIM: &str = "scope";
/// Largest token accepted. Access tokens with a few dozen scopes stay well under 4 KiB; 8 KiB leaves
/// room for rich claims while bounding the work an unauthenticated caller can cause.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
/// The algorithms most IdPs sign access tokens with (Keycloak, Auth0, Okta, Entra: RS256; many
/// newer set-ups: ES256). Never HMAC: a shared secret has no place in a JWKS.
pub const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

/// How long a fetched key set is fresh when the IdP sends no `Cache-Control: max-age`: short enough
/// that a rotated-in key is picked up within minutes even without an unknown `kid` forcing it.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(5 * 60);
/// Lower bound for `max-age`: an IdP that says `no-cache` or `max-age=0` would otherwise make
/// every request a fetch.
pub const DEFAULT_JWKS_MIN_TTL: Duration = Duration::from_secs(30);
/// Upper bound for `max-age`: a revoked key must stop verifying within a day at the latest.
pub const DEFAULT_JWKS_MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// At most one fetch per this interval when tokens name unknown keys or fetches fail, so that
/// tokens with made-up `kid`s cannot turn the proxy into a load generator against the IdP.
pub const DEFAULT_JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// How long the last good key set keeps verifying past its freshness while the IdP is failing: an
/// IdP outage should not take every protected MCP server down with it, but a day is the limit.
pub const DEFAULT_JWKS_MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);
/// Per-request budget for a key set or discovery fetch; a request waiting on a fetch (unknown
/// `kid`) waits at most this long.
pub const DEFAULT_JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Verified tokens remembered so that a token's next request skips the signature check (an RS256
/// verification costs tens of microseconds, a cache hit well under one). 10,000 entries hold every
/// live token of a busy sidecar at about 2-3 KiB each (token, claims): some 25 MiB at the very
/// worst, and a sidecar sees far fewer distinct callers. 0 disables the cache.
pub const DEFAULT_TOKEN_CACHE_ENTRIES: u64 = 10_000;

/// What the authenticator accepts. Built and validated by the config layer.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The `iss` every token must carry, compared as an exact string. Required.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one. Required.
    pub audiences: Vec<String>,
    /// Where the signing keys are. `None`: discovered from the issuer's metadata on first need.
    pub jwks_uri: Option<String>,
    /// Accepted `alg` values. Default [`DEFAULT_ALGORITHMS`]. The config layer refuses `none` and
    /// `HS*`; they are refused here again, so a mistake there cannot open the key-confusion attack.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp`/`nbf`. Default [`DEFAULT_LEEWAY`].
    pub leeway: Duration,
    /// The claim scopes are read from. Default [`DEFAULT_SCOPE_CLAIM`]; `scp` is read when it is absent.
    pub scope_claim: String,
    /// If set, the header `typ` must equal it (case-insensitive, `application/` prefix allowed),
    /// e.g. `at+jwt` for RFC 9068 access tokens, so ID tokens cannot be replayed as access tokens.
    /// Default `None`: not checked, because many IdPs still send `JWT`.
    pub require_typ: Option<String>,
    /// Largest token accepted. Default [`DEFAULT_MAX_TOKEN_BYTES`].
    pub max_token_bytes: usize,
    /// Key set fetching and caching.
    pub jwks: JwksSettings,
}

impl AuthSettings {
    /// Settings for `issuer` and `audiences` with every other field at its default.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            jwks_uri: None,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: DEFAULT_LEEWAY,
            scope_claim: DEFAULT_SCOPE_CLAIM.to_owned(),
            require_typ: None,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            jwks: JwksSettings::default(),
        }
    }
}

/// How the key set is fetched and cached. See the `DEFAULT_JWKS_*` consts for each default's reason.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// Freshness when the response has no `Cache-Control: max-age`.
    pub default_ttl: Duration,
    /// `max-age` is clamped to at least this.
    pub min_ttl: Duration,
    /// `max-age` is clamped to at most this.
    pub max_ttl: Duration,
    /// At most one fetch per interval on unknown `kid`s and after failures.
    pub refetch_interval: Duration,
    /// How long past freshness the last good set keeps verifying while fetches fail.
    pub max_stale: Duration,
    /// Budget for one fetch (discovery and key set each).
    pub fetch_timeout: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            default_ttl: DEFAULT_JWKS_TTL,
            min_ttl: DEFAULT_JWKS_MIN_TTL,
            max_ttl: DEFAULT_JWKS_MAX_TTL,
            refetch_interval: DEFAULT_JWKS_REFETCH_INTERVAL,
            max_stale: DEFAULT_JWKS_MAX_STALE,
            fetch_timeout: DEFAULT_JWKS_FETCH_TIMEOUT,
        }
    }
}

/// What the rest of the proxy knows about the caller, taken from a verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// `sub`, if the token has one (client-credentials tokens sometimes do not).
    pub subject: Option<String>,
    /// `client_id` (RFC 9068), else `azp` (OIDC).
    pub client_id: Option<String>,
    /// Granted scopes, in token order, without duplicates.
    pub scopes: Vec<String>,
    /// The same scopes as the policy looks them up, built once per verified token rather than
    /// at every request.
    pub granted: ScopeSet,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Every verified claim, for forwarding chosen ones upstream as headers and for policy
    /// conditions (`jwt`).
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The claims as policy conditions read them, built on first use, once per token.
    pub claims_cache: ClaimsCache,
    /// The scopes after the policy's `[scopes]` hierarchy, expanded once per token and policy.
    pub granted_cache: GrantedCache,
}

impl Principal {
    /// A principal with these scopes and nothing else, for unit tests of what reads one.
    #[cfg(test)]
    pub(crate) fn with_scopes(scopes: &[&str]) -> Principal {
        Principal {
            subject: None,
            client_id: None,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            granted: ScopeSet::new(scopes.iter().copied()),
            expires_at: 0,
            claims: serde_json::Map::new(),
            claims_cache: ClaimsCache::default(),
            granted_cache: GrantedCache::default(),
        }
    }
}

/// Every way authentication can fail. `Display` is the `error_description` a client sees: specific
/// enough to fix a client, but never any part of the token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    MissingToken,
    #[error("{0}")]
    Malformed(Cow<'static, str>),
    #[error("more than one Authorization header")]
    MultipleAuthorization,
    #[error("token larger than {limit} bytes")]
    TokenTooLarge { limit: usize },
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("signature does not verify")]
    BadSignature,
    #[error("issuer not accepted")]
    WrongIssuer,
    #[error("audience not accepted")]
    WrongAudience,
    #[error("missing required claim `{0}`")]
    MissingClaim(&'static str),
    #[error("{0}")]
    UnknownKey(&'static str),
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    #[error("key with this kid does not fit the token's algorithm")]
    KeyMismatch,
    #[error("critical header parameters are not supported")]
    CritHeader,
    #[error("token type not accepted")]
    BadTyp,
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

impl AuthError {
    /// Why the request is refused, for the body, the metrics and the audit line.
    pub fn reason(&self) -> Reason {
        match self {
            Self::MissingToken => Reason::MissingToken,
            Self::Malformed(_) => Reason::Malformed,
            Self::MultipleAuthorization => Reason::MultipleAuthorization,
            Self::TokenTooLarge { .. } => Reason::TokenTooLarge,
            Self::Expired => Reason::Expired,
            Self::NotYetValid => Reason::NotYetValid,
            Self::BadSignature => Reason::BadSignature,
            Self::WrongIssuer => Reason::WrongIssuer,
            Self::WrongAudience => Reason::WrongAudience,
            Self::MissingClaim(_) => Reason::MissingClaim,
            Self::UnknownKey(_) => Reason::UnknownKey,
            Self::AlgorithmNotAllowed => Reason::AlgorithmNotAllowed,
            Self::KeyMismatch => Reason::KeyMismatch,
            Self::CritHeader => Reason::CritHeader,
            Self::BadTyp => Reason::BadTyp,
            Self::KeysUnavailable => Reason::KeysUnavailable,
        }
    }

    /// Whether the client sent a token at all. When not, the 401 carries no `error="invalid_token"`
    /// (RFC 6750 §3.1).
    pub fn token_presented(&self) -> bool {
        !matches!(self, Self::MissingToken)
    }

    pub(crate) fn malformed(why: &'static str) -> Self {
        Self::Malformed(Cow::Borrowed(why))
    }
}

/// Verifies bearer tokens. Cheap to clone: the state is shared.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AuthSettings,
    /// One prepared `Validation` per allowed algorithm, so the hot path builds none.
    validations: Vec<(Algorithm, Validation)>,
    keys: Arc<jwks::KeySource>,
    /// `None` when disabled (0 entries).
    tokens: Option<token_cache::TokenCache>,
}

impl Authenticator {
    /// Builds the authenticator. Fetches nothing: call [`Self::refresh_keys`] at start-up to load
    /// the keys early; otherwise the first request does.
    pub fn new(settings: AuthSettings, client: HttpClient) -> Self {
        Self::with_token_cache(settings, client, DEFAULT_TOKEN_CACHE_ENTRIES)
    }

    /// As [`Self::new`], caching up to `token_cache_entries` verified tokens (each until its `exp`,
    /// or until the key that verified it leaves the key set); 0 disables the cache.
    pub fn with_token_cache(
        mut settings: AuthSettings,
        client: HttpClient,
        token_cache_entries: u64,
    ) -> Self {
        settings.algorithms.retain(|alg| {
            let hmac = alg.family() == AlgorithmFamily::Hmac;
            if hmac {
                tracing::warn!(
                    ?alg,
                    "HMAC algorithms are never accepted; dropped from the allow-list"
                );
            }
            !hmac
        });
        settings.algorithms.dedup();
        let validations = settings
            .algorithms
            .iter()
            .map(|&alg| (alg, jwt::validation(alg, &settings)))
            .collect();
        let keys = Arc::new(jwks::KeySource::new(
            client,
            settings.issuer.clone(),
            settings.jwks_uri.clone(),
            settings.jwks.clone(),
        ));
        let tokens = token_cache::TokenCache::new(token_cache_entries);
        Self {
            inner: Arc::new(Inner {
                settings,
                validations,
                keys,
                tokens,
            }),
        }
    }

    /// Authenticates a request from its headers: the bearer token must be well formed, signed by a
    /// key from the issuer's key set, and carry acceptable claims. A token verified before is
    /// answered from the cache while it is unexpired and its key is still in the set.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Arc<Principal>, AuthError> {
        let inner = &*self.inner;
        let settings = &inner.settings;
        let token = bearer::token_bytes(headers, settings.max_token_bytes)?;
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(cache) = &inner.tokens
            && let Some(entry) = cache.get(token, now)
        {
            if inner.keys.still_verifies(&entry.key) {
                return Ok(entry.principal.clone());
            }
            cache.remove(token);
        }
        let token = bearer::compact_jws(token)?;
        // Every header check runs before any key lookup, so a token we would refuse anyway never
        // causes a key set fetch.
        let header =
            jwt::check_header(token, &settings.algorithms, settings.require_typ.as_deref())?;
        let key = inner
            .keys
            .key_for(header.kid.as_deref(), header.alg)
            .await?;
        let validation = inner
            .validations
            .iter()
            .find_map(|(alg, v)| (*alg == header.alg).then_some(v))
            .ok_or(AuthError::AlgorithmNotAllowed)?;
        let claims = jwt::verify(token, &key.key, validation)?;
        let principal = Arc::new(jwt::principal(claims, settings, now)?);
        if let Some(cache) = &inner.tokens {
            cache.insert(token.as_bytes(), principal.clone(), key);
        }
        Ok(principal)
    }

    /// Fetches the key set now (through the same rate limit as every fetch: within the refetch
    /// interval of the last fetch, that fetch's outcome is returned). Returns the key count.
    pub async fn refresh_keys(&self) -> Result<usize, String> {
        self.inner.keys.refresh().await
    }

    /// The task that keeps the key set fresh in the background: it refetches when the set's
    /// lifetime ends and retries failed fetches every `refetch_interval`, so an idle proxy holds
    /// current keys and a failing IdP is counted before a request needs a key. Runs until its
    /// task is aborted; requests never wait for it.
    pub fn keep_keys_fresh(&self) -> impl Future<Output = ()> + Send + 'static {
        Arc::clone(&self.inner.keys).keep_fresh()
    }

    /// Whether a key set is loaded that may still verify tokens (fresh, or stale within `max_stale`).
    pub fn has_keys(&self) -> bool {
        self.inner.keys.has_usable_keys()
    }

    /// Key count, last successful fetch and fetch counters, for metrics.
    pub fn jwks_status(&self) -> JwksStatus {
        self.inner.keys.status()
    }
}

/// What `authenticate` checks on untrusted bytes before a key is looked up (bearer syntax, the
/// protected header), then the claim checks on the unverified payload. For the fuzz targets
/// only: it proves nothing about a token, so it exists only with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
pub fn fuzz_unverified(
    headers: &http::HeaderMap,
    settings: &AuthSettings,
) -> Result<(), AuthError> {
    use base64::Engine as _;
    let token = bearer::compact_jws(bearer::token_bytes(headers, settings.max_token_bytes)?)?;
    jwt::check_header(token, &settings.algorithms, settings.require_typ.as_deref())?;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::malformed("claims are not base64url"))?;
    let claims = jwt::parse_object(&json, "claims")?;
    jwt::principal(claims, settings, jsonwebtoken::get_current_timestamp()).map(|_| ())
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

#[cfg(test)]
#[path = "authenticator_tests.rs"]
mod tests;
