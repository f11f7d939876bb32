//! The accepted issuers: each one's settings and key set, which of them a JWT belongs to, and the authenticator's key-set figures over all of them (refresh, readiness,
//! metrics). Owns the rule that a token is verified only with the keys of the
//! issuer its `iss` names; not the token checks themselves (`jwt.rs`) nor the key cache
//! (`jwks.rs`).
//!
//! Keys are looked up in the named issuer's set alone, so two IdPs whose `kid`s collide (both
//! call their key `key-1`) cannot vouch for each other's tokens: a token naming issuer B but
//! signed by A's `key-1` meets B's `key-1`, and its signature does not verify.

use std::sync::Arc;

use jsonwebtoken::AlgorithmFamily;
use serde_json::{Map, Value};

use super::jwks::{KeySource, VerifyingKey};
use super::{AuthError, AuthSettings, JwksStatus, Principal, jwt};
use crate::client::HttpClient;

/// One accepted issuer, ready to verify its tokens.
pub(super) struct IssuerVerifier {
    pub settings: AuthSettings,
    /// The issuer as a metric label and audit field: shared, not copied per request.
    pub label: Arc<str>,
    pub keys: Arc<KeySource>,
}

impl IssuerVerifier {
    pub(super) fn new(mut settings: AuthSettings, client: HttpClient) -> Self {
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
        let keys = Arc::new(KeySource::new(
            client,
            settings.issuer.clone(),
            settings.jwks_uri.clone(),
            settings.jwks.clone(),
        ));
        Self {
            label: Arc::from(settings.issuer.as_str()),
            settings,
            keys,
        }
    }

    /// Verifies a compact JWS against this issuer: header, key from this issuer's set alone,
    /// signature, then `claims` (the token's payload, decoded once by [`jwt::unverified_claims`]).
    /// Returns the principal and the key that verified it.
    pub(super) async fn verify(
        &self,
        token: &str,
        claims: Map<String, Value>,
        now: u64,
    ) -> Result<(Principal, Arc<VerifyingKey>), AuthError> {
        let settings = &self.settings;
        // Every header check runs before any key lookup, so a token we would refuse anyway never
        // causes a key set fetch.
        let header =
            jwt::check_header(token, &settings.algorithms, settings.require_typ.as_deref())?;
        let key = self.keys.key_for(header.kid.as_deref(), header.alg).await?;
        jwt::verify_signature(token, &key.key, header.alg)?;
        Ok((jwt::principal(claims, settings, now)?, key))
    }
}

/// The issuers' key sets, as the server and the admin endpoints see them.
impl super::Authenticator {
    /// The accepted issuers' identifiers, in config order: the bounded values of the `issuer`
    /// metric label.
    pub fn issuer_labels(&self) -> impl Iterator<Item = &str> {
        self.inner.issuers.iter().map(|i| &*i.label)
    }

    /// Fetches every issuer's key set now (through the same rate limit as every fetch: within
    /// the refetch interval of the last fetch, that fetch's outcome is returned). Returns the
    /// key count over all issuers, or the first failure.
    pub async fn refresh_keys(&self) -> Result<usize, String> {
        let mut total = 0;
        let mut first_error = None;
        for issuer in &self.inner.issuers {
            match issuer.keys.refresh().await {
                Ok(count) => total += count,
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(total), Err)
    }

    /// The task that keeps every issuer's key set fresh in the background: each refetches when
    /// its set's lifetime ends and retries failed fetches every `refetch_interval`, so an idle
    /// proxy holds current keys and a failing IdP is counted before a request needs a key. Runs
    /// until its task is aborted (which aborts every issuer's refresher with it); requests never
    /// wait for it.
    pub fn keep_keys_fresh(&self) -> impl Future<Output = ()> + Send + 'static {
        let sources: Vec<_> = self
            .inner
            .issuers
            .iter()
            .map(|i| Arc::clone(&i.keys))
            .collect();
        async move {
            let mut set = tokio::task::JoinSet::new();
            for source in sources {
                set.spawn(source.keep_fresh());
            }
            while set.join_next().await.is_some() {}
        }
    }

    /// Whether every issuer has a key set loaded that may still verify tokens (fresh, or stale
    /// within `max_stale`); an issuer that introspects opaque tokens can serve without one.
    pub fn has_keys(&self) -> bool {
        self.inner
            .issuers
            .iter()
            .all(|i| i.settings.introspection.is_some() || i.keys.has_usable_keys())
    }

    /// Key count, last successful fetch and fetch counters over all issuers, for metrics.
    pub fn jwks_status(&self) -> JwksStatus {
        let mut statuses = self.inner.issuers.iter().map(|i| i.keys.status());
        let first = statuses.next().unwrap_or_default();
        statuses.fold(first, JwksStatus::combine)
    }
}

/// Which issuer a JWT belongs to, by the `iss` of its claims, not yet verified: the signature
/// check that follows uses that issuer's keys only, and the claim checks compare `iss` again.
/// With one issuer too, a token naming another is refused here as `wrong_issuer`, before any
/// key lookup or signature work (an IdP whose `kid` collides with ours would otherwise be told
/// `bad_signature`). Only ever a refusal: nothing is accepted on unverified claims.
pub(super) fn select(
    issuers: &[IssuerVerifier],
    claims: &Map<String, Value>,
) -> Result<usize, AuthError> {
    let iss = jwt::unverified_issuer(claims)?;
    issuers
        .iter()
        .position(|i| i.settings.issuer == iss)
        .ok_or(AuthError::WrongIssuer)
}
