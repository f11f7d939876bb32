//! RFC 7662 token introspection, for an issuer's opaque (non-JWT) access tokens: the call to the
//! issuer's introspection endpoint, the checks on its answer, and the cache of answers. Owns
//! what an opaque token is worth; not the bearer syntax (`bearer.rs`) nor JWTs (`jwt.rs`).
//!
//! - Cache key: SHA-256 of the token, so the cache holds no usable token, and a lookup costs one
//!   hash (as a cached JWT costs one keyed hash).
//! - An active answer is reused until the token's `exp` or `cache_ttl`, whichever comes first;
//!   an inactive or refused one for [`REFUSED_TTL`] only, so a token the IdP has not yet
//!   replicated is not refused for long, while a flood of made-up tokens still hits the cache.
//! - Single flight: concurrent requests with one new token share one call (moka's
//!   `try_get_with`); at most [`MAX_CONCURRENT_CALLS`] calls run at once over all tokens.
//! - The IdP's failure (unreachable, slow, a non-2xx answer, garbage) is never cached and never
//!   an allow: the request gets 503 with `Retry-After`.
//! - The token appears only in the form sent to the IdP: never in a log, error or metric.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};

use super::{AuthError, AuthSettings, Principal, discovery, fetch, jwt};
use crate::client::HttpClient;

/// How long an active answer is reused at most, unless configured: a revoked token keeps
/// working this long at worst, and a busy caller costs the IdP one call per minute.
pub const DEFAULT_INTROSPECTION_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long an inactive answer (or a refused active one) is reused: long enough to absorb a
/// burst of requests carrying a bad token, short enough that a token the IdP had not yet seen
/// when first asked works a few seconds later.
pub const REFUSED_TTL: Duration = Duration::from_secs(5);
/// Introspection calls in flight at once, over all tokens: a flood of made-up opaque tokens
/// costs the IdP at most this many concurrent requests (the rest wait within the fetch timeout,
/// then get 503).
pub const MAX_CONCURRENT_CALLS: usize = 32;
/// Answers remembered at most (each well under 1 KiB).
const CACHE_ENTRIES: u64 = 10_000;

/// How the proxy authenticates itself to the introspection endpoint (RFC 7662 §2.1 asks for
/// client authentication; RFC 6749 §2.3.1 names the two ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-urlencoded id and secret: the default, and the one
    /// every IdP must support.
    Basic,
    /// `client_id` and `client_secret` in the form.
    Post,
}

/// A client secret; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `[auth.issuers.introspection]`, checked.
#[derive(Debug, Clone)]
pub struct IntrospectionSettings {
    /// `None`: `introspection_endpoint` from the issuer's metadata, found on first need.
    pub endpoint: Option<String>,
    pub client_id: String,
    /// Read from the environment variable `client_secret_env` names, when the config loads.
    pub client_secret: Secret,
    /// Default [`ClientAuth::Basic`].
    pub client_auth: ClientAuth,
    /// Default [`DEFAULT_INTROSPECTION_CACHE_TTL`].
    pub cache_ttl: Duration,
}

/// One issuer's introspection: endpoint, credentials, answers.
pub(super) struct Introspector {
    client: HttpClient,
    settings: IntrospectionSettings,
    /// The issuer's checks (audiences, leeway, scope claim) apply to its answers too.
    issuer: AuthSettings,
    endpoint: OnceCell<String>,
    /// `Authorization: Basic …` for [`ClientAuth::Basic`], built once.
    basic: Option<HeaderValue>,
    answers: moka::future::Cache<[u8; 32], Arc<Answer>>,
    calls: Semaphore,
}

/// A cached answer: the principal until `until`, or the refusal.
pub(super) enum Answer {
    Active {
        principal: Arc<Principal>,
        until: Instant,
    },
    Refused(AuthError),
}

struct AnswerExpiry;

impl moka::Expiry<[u8; 32], Arc<Answer>> for AnswerExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        answer: &Arc<Answer>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(match &**answer {
            Answer::Active { until, .. } => until.saturating_duration_since(created_at),
            Answer::Refused(_) => REFUSED_TTL,
        })
    }
}

impl Introspector {
    pub(super) fn new(
        issuer: AuthSettings,
        settings: IntrospectionSettings,
        client: HttpClient,
    ) -> Self {
        let basic = (settings.client_auth == ClientAuth::Basic).then(|| {
            let pair = format!(
                "{}:{}",
                form_encode(&settings.client_id),
                form_encode(&settings.client_secret.0)
            );
            let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(pair)))
                .expect("base64 is a valid header value");
            value.set_sensitive(true);
            value
        });
        let endpoint = OnceCell::new_with(settings.endpoint.clone());
        Self {
            client,
            issuer,
            basic,
            endpoint,
            answers: moka::future::Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .expire_after(AnswerExpiry)
                .build(),
            calls: Semaphore::new(MAX_CONCURRENT_CALLS),
            settings,
        }
    }

    /// The principal an opaque token stands for, from the cache or from one call to the IdP.
    pub(super) async fn principal(
        &self,
        token: &[u8],
        now: u64,
    ) -> Result<Arc<Principal>, AuthError> {
        let key = sha256(token);
        let answer = self
            .answers
            .try_get_with(key, self.ask(token))
            .await
            .map_err(|error| (*error).clone())?;
        match &*answer {
            // `until` is within `exp`; moka expires lazily, so the second is checked here.
            Answer::Active { principal, .. } if now < principal.expires_at => Ok(principal.clone()),
            Answer::Active { .. } => Err(AuthError::Expired),
            Answer::Refused(error) => Err(error.clone()),
        }
    }

    /// One introspection call. `Err` is the IdP failing (not cached); an inactive or refused
    /// token is an `Ok(Refused)` (cached briefly).
    async fn ask(&self, token: &[u8]) -> Result<Arc<Answer>, AuthError> {
        let timeout = self.issuer.jwks.fetch_timeout;
        let unavailable = || AuthError::IntrospectionUnavailable;
        let _permit = tokio::time::timeout(timeout, self.calls.acquire())
            .await
            .map_err(|_| unavailable())?
            .map_err(|_| unavailable())?;
        let endpoint = self
            .endpoint
            .get_or_try_init(|| {
                discovery::discover_member(
                    &self.client,
                    &self.issuer.issuer,
                    timeout,
                    "introspection_endpoint",
                )
            })
            .await
            .map_err(|error| {
                tracing::warn!(issuer = %self.issuer.issuer, %error, "no introspection endpoint");
                unavailable()
            })?;
        // The bearer syntax check passed, so the token is visible ASCII.
        let token =
            std::str::from_utf8(token).map_err(|_| AuthError::malformed("token is not text"))?;
        let mut form = format!("token={}&token_type_hint=access_token", form_encode(token));
        if self.settings.client_auth == ClientAuth::Post {
            form.push_str("&client_id=");
            form.push_str(&form_encode(&self.settings.client_id));
            form.push_str("&client_secret=");
            form.push_str(&form_encode(&self.settings.client_secret.0));
        }
        let (_, body) =
            fetch::post_form(&self.client, endpoint, self.basic.as_ref(), form, timeout)
                .await
                .map_err(|error| {
                    tracing::warn!(issuer = %self.issuer.issuer, %error, "introspection failed");
                    unavailable()
                })?;
        let answer = jwt::parse_object(&body, "introspection answer").map_err(|error| {
            tracing::warn!(issuer = %self.issuer.issuer, %error, "introspection answer unreadable");
            unavailable()
        })?;
        let now = jsonwebtoken::get_current_timestamp();
        Ok(Arc::new(match self.check(answer, now) {
            Ok(principal) => {
                let left = Duration::from_secs(principal.expires_at.saturating_sub(now));
                Answer::Active {
                    until: Instant::now() + left.min(self.settings.cache_ttl),
                    principal: Arc::new(principal),
                }
            }
            Err(error) => Answer::Refused(error),
        }))
    }

    /// An answer's checks: `active` exactly `true`, then the issuer's own claim checks (`exp`
    /// and `aud` required: an answer that does not say for whom and until when the token holds
    /// is refused; `iss`, when absent, is the issuer whose endpoint answered).
    fn check(
        &self,
        mut answer: serde_json::Map<String, Value>,
        now: u64,
    ) -> Result<Principal, AuthError> {
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(AuthError::Inactive);
        }
        answer
            .entry("iss")
            .or_insert_with(|| Value::String(self.issuer.issuer.clone()));
        jwt::principal(answer, &self.issuer, now)
    }
}

/// SHA-256 of `bytes` (cache keys, DPoP `ath`, thumbprints).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// `application/x-www-form-urlencoded` encoding of one value: unreserved characters as they are,
/// everything else percent-encoded (so `+` and `/` in a token survive).
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_keeps_unreserved_characters_and_escapes_the_rest() {
        assert_eq!(form_encode("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(form_encode("a+b/c=d e&"), "a%2Bb%2Fc%3Dd%20e%26");
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(..)");
    }
}
