//! Authentication: bearer extraction, JWT verification, the JWKS source and cache.
//!
//! Owns turning a request's headers into a verified [`Principal`], or an [`AuthError`] that says
//! why not. Does not own what the principal may do (the policy), nor how a failure becomes a
//! response (the proxy's error type renders it, using [`AuthError::reason`] and its `Display`).

mod bearer;
mod discovery;
mod dpop;
mod fetch;
mod introspect;
mod issuers;
mod jwks;
mod jwt;
mod mtls;
mod request;
mod token_cache;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::client::HttpClient;
use crate::policy::{ClaimsCache, GrantedCache, ScopeSet};
use crate::reason::Reason;
use crate::state::{OnceKeys, SharedState};

pub use dpop::{DPOP_ALGS, DpopMode, PROOF_MAX_AGE, REPLAY_ENTRIES, ReplayCache, jwk_thumbprint};
pub use introspect::{
    ClientAuth, DEFAULT_INTROSPECTION_CACHE_TTL, IntrospectionSettings, REFUSED_TTL, Secret, sha256,
};
pub use jwks::JwksStatus;
pub use mtls::CertThumbprint;
pub use request::{Attempt, RequestView};

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
    /// RFC 7662 introspection of this issuer's opaque tokens. Default `None`: only JWTs.
    pub introspection: Option<IntrospectionSettings>,
    /// DPoP (RFC 9449) for this issuer's tokens. Default [`DpopMode::Allowed`]: a token bound by
    /// `cnf.jkt` needs a proof, an unbound one is a bearer token.
    pub dpop: DpopMode,
    /// Whether DPoP proofs must carry a nonce this proxy issued (RFC 9449 §8). Default `false`.
    pub dpop_nonce: bool,
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
            introspection: None,
            dpop: DpopMode::Allowed,
            dpop_nonce: false,
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
    /// A principal with these scopes and nothing else, for tests and benchmarks of what reads
    /// one (never built from a request: a request's principal comes from a verified token).
    pub fn with_scopes(scopes: &[&str]) -> Principal {
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
    /// The issuer's introspection endpoint says the token is not active (unknown, revoked,
    /// expired): RFC 7662 §2.2 gives no reason, so neither do we.
    #[error("token is not active")]
    Inactive,
    /// The introspection endpoint could not be asked or did not answer usably: the token may be
    /// fine, so this is a 503, never an allow and never a 401.
    #[error("token introspection unavailable")]
    IntrospectionUnavailable,
    /// The `DPoP` header's proof is missing or fails a check (RFC 9449 §4.3).
    #[error("{0}")]
    InvalidDpopProof(Cow<'static, str>),
    #[error("token is not DPoP-bound")]
    NotDpopBound,
    #[error("a DPoP-bound token must be sent with the DPoP scheme and a proof")]
    BoundTokenAsBearer,
    #[error("this issuer's tokens must be DPoP-bound")]
    DpopRequired,
    #[error("DPoP is not accepted for this issuer's tokens")]
    DpopNotAccepted,
    #[error("token is bound to its holder in a way this proxy does not check")]
    UnsupportedBinding,
    /// The token is bound to a client certificate (RFC 8705 §3) and the connection presented
    /// none: the listener asks for none (no `client_ca`), or is not TLS.
    #[error("token is bound to a client certificate; this connection presented none")]
    NoClientCertificate,
    /// The token is bound to a client certificate other than the connection's.
    #[error("token is bound to another client certificate")]
    CertificateMismatch,
    /// The proof lacks a nonce, or its nonce is not one this proxy issued within its lifetime:
    /// the client retries with the fresh one carried here (sent as `DPoP-Nonce`).
    #[error("a fresh DPoP nonce is required")]
    UseDpopNonce(String),
    /// A DPoP proof's `jti` could not be checked against the shared state (`[state]`, Redis)
    /// and `on_error = "deny"`: the proof may be fresh, so this is a 503, never an allow.
    #[error("shared state unavailable; try again")]
    StateUnavailable,
    /// Any failure of a token sent with the `DPoP` scheme: answered with a `DPoP` challenge
    /// (RFC 9449 §7.1); reason and description are the inner failure's.
    #[error("{0}")]
    ViaDpop(Box<AuthError>),
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
            Self::Inactive => Reason::Inactive,
            Self::IntrospectionUnavailable => Reason::IntrospectionUnavailable,
            Self::InvalidDpopProof(_) => Reason::InvalidDpopProof,
            Self::NotDpopBound => Reason::NotDpopBound,
            Self::BoundTokenAsBearer => Reason::BoundTokenAsBearer,
            Self::DpopRequired => Reason::DpopRequired,
            Self::DpopNotAccepted => Reason::DpopNotAccepted,
            Self::UnsupportedBinding => Reason::UnsupportedBinding,
            Self::NoClientCertificate => Reason::NoClientCertificate,
            Self::CertificateMismatch => Reason::CertificateMismatch,
            Self::UseDpopNonce(_) => Reason::UseDpopNonce,
            Self::StateUnavailable => Reason::StateUnavailable,
            Self::ViaDpop(inner) => inner.reason(),
        }
    }

    /// Whether the client sent a token at all. When not, the 401 carries no `error="invalid_token"`
    /// (RFC 6750 §3.1).
    pub fn token_presented(&self) -> bool {
        !matches!(self, Self::MissingToken)
    }

    /// Whether the answer is a `DPoP` challenge (RFC 9449 §7.1) rather than a `Bearer` one: the
    /// token came with the `DPoP` scheme, or the failure is that it should have.
    pub fn dpop_challenge(&self) -> bool {
        matches!(
            self,
            Self::ViaDpop(_) | Self::BoundTokenAsBearer | Self::DpopRequired
        )
    }

    /// The `error` of the challenge: `invalid_dpop_proof` for a proof's failure, else
    /// `invalid_token`.
    pub fn challenge_error(&self) -> &'static str {
        match self {
            Self::InvalidDpopProof(_) => "invalid_dpop_proof",
            Self::UseDpopNonce(_) => "use_dpop_nonce",
            Self::ViaDpop(inner) => inner.challenge_error(),
            _ => "invalid_token",
        }
    }

    /// The nonce to send as `DPoP-Nonce`, when the refusal asks for one.
    pub fn dpop_nonce(&self) -> Option<&str> {
        match self {
            Self::UseDpopNonce(nonce) => Some(nonce),
            Self::ViaDpop(inner) => inner.dpop_nonce(),
            _ => None,
        }
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
    /// In config order; never empty.
    issuers: Vec<issuers::IssuerVerifier>,
    /// Largest token accepted, whichever issuer it names (the check runs before one is known).
    max_token_bytes: usize,
    /// `None` when disabled (0 entries).
    tokens: Option<token_cache::TokenCache>,
    /// The one issuer that introspects opaque tokens (an opaque token names no issuer, so the
    /// config allows one), with its index.
    introspector: Option<(usize, introspect::Introspector)>,
    /// The `jti`s of DPoP proofs already used: here, or in the shared state.
    replay: Arc<dyn ReplayCache>,
    /// Issues and checks DPoP nonces, for the issuers that ask for them.
    nonces: dpop::NonceKey,
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
        settings: AuthSettings,
        client: HttpClient,
        token_cache_entries: u64,
    ) -> Self {
        Self::for_issuers(vec![settings], client, token_cache_entries)
    }

    /// Accepts tokens of every issuer in `issuers` (at least one; the first issuer's
    /// `max_token_bytes` applies to all, as the config layer sets it for all alike), remembering
    /// DPoP proofs' `jti`s in this process.
    ///
    /// # Panics
    /// When `issuers` is empty: the config layer never builds such a list.
    pub fn for_issuers(
        issuers: Vec<AuthSettings>,
        client: HttpClient,
        token_cache_entries: u64,
    ) -> Self {
        Self::with_shared_state(issuers, client, token_cache_entries, None)
    }

    /// As [`Self::for_issuers`], with DPoP proofs' `jti`s recorded in `shared` when there is
    /// one (`[state] backend = "redis"`), so a proof is used once across all replicas; its
    /// `on_error` says what a failing store means.
    pub fn with_shared_state(
        issuers: Vec<AuthSettings>,
        client: HttpClient,
        token_cache_entries: u64,
        shared: Option<Arc<SharedState>>,
    ) -> Self {
        assert!(!issuers.is_empty(), "at least one issuer");
        let max_token_bytes = issuers[0].max_token_bytes;
        let introspector = issuers.iter().enumerate().find_map(|(index, settings)| {
            let introspection = settings.introspection.clone()?;
            let introspector =
                introspect::Introspector::new(settings.clone(), introspection, client.clone());
            Some((index, introspector))
        });
        let issuers = issuers
            .into_iter()
            .map(|settings| issuers::IssuerVerifier::new(settings, client.clone()))
            .collect();
        Self {
            inner: Arc::new(Inner {
                issuers,
                max_token_bytes,
                tokens: token_cache::TokenCache::new(token_cache_entries),
                introspector,
                // Each `jti` for its proof's window (PROOF_MAX_AGE plus the issuer's leeway
                // either side of now), set where it is recorded.
                replay: Arc::new(OnceKeys::bounded(shared, REPLAY_ENTRIES)),
                nonces: dpop::NonceKey::generate(),
            }),
        }
    }

    /// Authenticates a request from its headers: the bearer token must be well formed, signed by a
    /// key from its issuer's key set, and carry acceptable claims. A token verified before is
    /// answered from the cache while it is unexpired and its key is still in the set.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Arc<Principal>, AuthError> {
        self.attempt(&RequestView::headers_only(headers))
            .await
            .result
    }

    /// As [`Self::authenticate`] for a whole request (so DPoP proofs can be checked), also
    /// saying which issuer the token named.
    pub async fn attempt(&self, request: &RequestView<'_>) -> Attempt {
        let mut issuer = None;
        let result = self.verify(request, &mut issuer).await;
        Attempt { issuer, result }
    }

    async fn verify(
        &self,
        request: &RequestView<'_>,
        issuer: &mut Option<usize>,
    ) -> Result<Arc<Principal>, AuthError> {
        let (scheme, token) = bearer::token_bytes(request.headers, self.inner.max_token_bytes)?;
        let dpop = scheme == bearer::Scheme::Dpop;
        let result = async {
            let principal = self.principal(token, issuer).await?;
            // Checked on every request, cached token or not: a proof holds for one request.
            let settings = &self.inner.issuers[issuer.unwrap_or(0)].settings;
            let proof = dpop::ProofRules {
                leeway: settings.leeway,
                replay: &*self.inner.replay,
                nonces: settings.dpop_nonce.then_some(&self.inner.nonces),
            };
            dpop::check_binding(&principal, settings.dpop, dpop, token, request, &proof).await?;
            Ok(principal)
        }
        .await;
        match result {
            Err(error) if dpop => Err(AuthError::ViaDpop(Box::new(error))),
            result => result,
        }
    }

    /// The verified principal a token stands for: from the cache, by introspection, or by
    /// verifying it as a JWT of the issuer it names. Sets `issuer` once that is known.
    async fn principal(
        &self,
        token: &[u8],
        issuer: &mut Option<usize>,
    ) -> Result<Arc<Principal>, AuthError> {
        let inner = &*self.inner;
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(cache) = &inner.tokens
            && let Some(entry) = cache.get(token, now)
        {
            *issuer = Some(entry.issuer);
            if inner.issuers[entry.issuer].keys.still_verifies(&entry.key) {
                return Ok(entry.principal.clone());
            }
            cache.remove(token);
        }
        if !bearer::is_compact_jws(token)
            && let Some((index, introspector)) = &inner.introspector
        {
            bearer::check_b64token(token)?;
            *issuer = Some(*index);
            return introspector.principal(token, now).await;
        }
        let token = bearer::compact_jws(token)?;
        // Decoded once: the issuer is chosen from these claims, and they become the principal.
        let claims = jwt::unverified_claims(token)?;
        let index = issuers::select(&inner.issuers, &claims)?;
        *issuer = Some(index);
        let (principal, key) = inner.issuers[index].verify(token, claims, now).await?;
        let principal = Arc::new(principal);
        if let Some(cache) = &inner.tokens {
            cache.insert(token.as_bytes(), principal.clone(), key, index);
        }
        Ok(principal)
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
    let token = bearer::compact_jws(bearer::token_bytes(headers, settings.max_token_bytes)?.1)?;
    jwt::check_header(token, &settings.algorithms, settings.require_typ.as_deref())?;
    let claims = jwt::unverified_claims(token)?;
    jwt::principal(claims, settings, jsonwebtoken::get_current_timestamp()).map(|_| ())
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(|i| &i.settings)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
#[path = "authenticator_tests.rs"]
mod tests;
