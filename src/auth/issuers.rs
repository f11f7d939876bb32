//! The accepted issuers: each one's settings, prepared validations and key set, and which of
//! them a JWT belongs to. Owns the rule that a token is verified only with the keys of the
//! issuer its `iss` names; not the token checks themselves (`jwt.rs`) nor the key cache
//! (`jwks.rs`).
//!
//! Keys are looked up in the named issuer's set alone, so two IdPs whose `kid`s collide (both
//! call their key `key-1`) cannot vouch for each other's tokens: a token naming issuer B but
//! signed by A's `key-1` meets B's `key-1`, and its signature does not verify.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde::Deserialize;

use super::jwks::{KeySource, VerifyingKey};
use super::{AuthError, AuthSettings, Principal, jwt};
use crate::client::HttpClient;

/// One accepted issuer, ready to verify its tokens.
pub(super) struct IssuerVerifier {
    pub settings: AuthSettings,
    /// The issuer as a metric label and audit field: shared, not copied per request.
    pub label: Arc<str>,
    /// One prepared `Validation` per allowed algorithm, so the hot path builds none.
    validations: Vec<(Algorithm, Validation)>,
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
        let validations = settings
            .algorithms
            .iter()
            .map(|&alg| (alg, jwt::validation(alg, &settings)))
            .collect();
        let keys = Arc::new(KeySource::new(
            client,
            settings.issuer.clone(),
            settings.jwks_uri.clone(),
            settings.jwks.clone(),
        ));
        Self {
            label: Arc::from(settings.issuer.as_str()),
            settings,
            validations,
            keys,
        }
    }

    /// Verifies a compact JWS against this issuer: header, key from this issuer's set alone,
    /// signature, claims. Returns the principal and the key that verified it.
    pub(super) async fn verify(
        &self,
        token: &str,
        now: u64,
    ) -> Result<(Principal, Arc<VerifyingKey>), AuthError> {
        let settings = &self.settings;
        // Every header check runs before any key lookup, so a token we would refuse anyway never
        // causes a key set fetch.
        let header =
            jwt::check_header(token, &settings.algorithms, settings.require_typ.as_deref())?;
        let key = self.keys.key_for(header.kid.as_deref(), header.alg).await?;
        let validation = self
            .validations
            .iter()
            .find_map(|(alg, v)| (*alg == header.alg).then_some(v))
            .ok_or(AuthError::AlgorithmNotAllowed)?;
        let claims = jwt::verify(token, &key.key, validation)?;
        Ok((jwt::principal(claims, settings, now)?, key))
    }
}

/// Which issuer a compact JWS belongs to, by its `iss`, read from the unverified payload; the
/// signature check that follows uses that issuer's keys only, and checks `iss` again. With one
/// issuer there is nothing to choose, and the payload is not read here at all.
pub(super) fn select(issuers: &[IssuerVerifier], token: &str) -> Result<usize, AuthError> {
    if issuers.len() == 1 {
        return Ok(0);
    }
    let iss = unverified_issuer(token)?;
    issuers
        .iter()
        .position(|i| i.settings.issuer == iss)
        .ok_or(AuthError::WrongIssuer)
}

/// Only `iss`; every other member is skipped without being kept. A duplicate `iss` is an error
/// (serde refuses a repeated field), so no two readers can pick different issuers.
#[derive(Deserialize)]
struct IssOnly {
    iss: Option<serde_json::Value>,
}

fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    let payload = token.split('.').nth(1).unwrap_or_default();
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::malformed("claims are not base64url"))?;
    let claims: IssOnly = serde_json::from_slice(&json)
        .map_err(|_| AuthError::malformed("claims are not a JSON object without duplicate keys"))?;
    match claims.iss {
        Some(serde_json::Value::String(iss)) => Ok(iss),
        Some(_) => Err(AuthError::malformed("claim `iss` must be a string")),
        None => Err(AuthError::MissingClaim("iss")),
    }
}
