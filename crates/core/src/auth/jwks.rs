//! The issuer's signing keys: fetching the JWKS, turning each JWK into a verifying key, and the
//! cache that decides when to fetch again. Owns which key may verify which algorithm; not the
//! token checks (`jwt.rs`).
//!
//! Two pieces of state:
//! - the last good [`KeySet`] in an `ArcSwapOption`, read without locks or awaits on the hot path;
//! - a moka entry whose lifetime is `refetch_interval`: the single-flight gate and rate limit.
//!   `get_with` coalesces concurrent callers into one fetch, and the stored outcome, success or
//!   failure, answers every caller until it expires, so at most one fetch runs per interval.
//!
//! A failed fetch (network, status, garbage, no usable key) never replaces the last good set.
//!
//! [`KeySource::keep_fresh`] refetches in the background when the set's freshness ends, so an
//! idle proxy holds current keys and a failing IdP shows in the metrics before any request
//! needs a key; lookups never wait for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::CACHE_CONTROL;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::{AuthError, JwksSettings, discovery, fetch};
use crate::client::HttpClient;

/// Smallest RSA modulus accepted (NIST SP 800-131A); aws-lc-rs refuses to verify with less too.
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus aws-lc-rs verifies with.
const MAX_RSA_BITS: usize = 8192;
/// The background refresher's shortest pause after a fetch, whatever `refetch_interval` says: an
/// interval of 0 (allowed, for on-demand fetching) must not make it spin.
const MIN_REFRESH_PAUSE: Duration = Duration::from_millis(100);

/// Key type and, for curves, the curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// What the JWK's `alg` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyAlg {
    /// No `alg`: any algorithm of the key's type.
    Any,
    Only(Algorithm),
    /// An algorithm we do not verify with (e.g. `RSA-OAEP`): the key never fits.
    Other,
}

/// One usable public key from the set.
#[derive(Debug)]
pub(super) struct VerifyingKey {
    pub kid: Option<String>,
    pub kind: KeyKind,
    pub alg: KeyAlg,
    /// `use` absent or `sig`, and `key_ops` absent or containing `verify`.
    pub for_signatures: bool,
    pub key: DecodingKey,
}

impl VerifyingKey {
    /// Whether this key may verify a token signed with `alg` (RFC 7517 §4, RFC 7518 §3).
    pub(super) fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        let kind_fits = match self.kind {
            KeyKind::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyKind::P256 => alg == ES256,
            KeyKind::P384 => alg == ES384,
            KeyKind::Ed25519 => alg == EdDSA,
        };
        let alg_fits = match self.alg {
            KeyAlg::Any => true,
            KeyAlg::Only(only) => only == alg,
            KeyAlg::Other => false,
        };
        kind_fits && alg_fits && self.for_signatures
    }
}

/// A fetched key set and how long it may be used.
#[derive(Debug)]
pub(super) struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
    fetched_at: SystemTime,
    fresh_until: Instant,
    /// `fresh_until + max_stale`: past this the set verifies nothing.
    usable_until: Instant,
}

pub(super) enum Lookup {
    Found(Arc<VerifyingKey>),
    /// A key has this `kid`, but none with it fits the algorithm.
    Mismatch,
    Unknown,
}

impl KeySet {
    fn new(keys: Vec<Arc<VerifyingKey>>, ttl: Duration, max_stale: Duration) -> Self {
        let now = Instant::now();
        let far = || now + Duration::from_secs(100 * 365 * 24 * 60 * 60);
        let fresh_until = now.checked_add(ttl).unwrap_or_else(far);
        let usable_until = fresh_until.checked_add(max_stale).unwrap_or_else(far);
        Self {
            keys,
            fetched_at: SystemTime::now(),
            fresh_until,
            usable_until,
        }
    }

    /// The key for `kid`; without a `kid`, the one key that fits `alg`, if there is exactly one.
    pub(super) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        match kid {
            Some(kid) => {
                let mut seen = false;
                for key in &self.keys {
                    if key.kid.as_deref() == Some(kid) {
                        if key.fits(alg) {
                            return Lookup::Found(key.clone());
                        }
                        seen = true;
                    }
                }
                if seen {
                    Lookup::Mismatch
                } else {
                    Lookup::Unknown
                }
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Lookup::Found(key.clone()),
                    _ => Lookup::Unknown,
                }
            }
        }
    }
}

/// Parses a JWKS document. Unusable keys are skipped with a warning; a document that is not a
/// JWKS, or has no key usable for signatures, is an error (the caller keeps its last good set).
pub(super) fn parse_jwks(body: &[u8]) -> Result<Vec<Arc<VerifyingKey>>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let Some(Value::Array(entries)) = doc.get("keys") else {
        return Err("not a JWKS document (no `keys` array)".to_owned());
    };
    let mut keys = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        match parse_jwk(entry) {
            Ok(key) => keys.push(Arc::new(key)),
            Err(why) => {
                let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("");
                tracing::warn!(index, kid, %why, "skipping unusable key in JWKS");
            }
        }
    }
    if !keys.iter().any(|k| k.for_signatures) {
        return Err(format!(
            "no usable signing key among {} entries",
            entries.len()
        ));
    }
    Ok(keys)
}

fn parse_jwk(jwk: &Value) -> Result<VerifyingKey, String> {
    let Value::Object(jwk) = jwk else {
        return Err("not a JSON object".to_owned());
    };
    let text = |name: &str| -> Result<Option<&str>, String> {
        match jwk.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    };
    let required = |name: &str| text(name)?.ok_or_else(|| format!("no `{name}`"));
    let bytes = |name: &str, len: Option<usize>| -> Result<Vec<u8>, String> {
        let b = URL_SAFE_NO_PAD
            .decode(required(name)?)
            .map_err(|_| format!("`{name}` is not base64url"))?;
        match len {
            Some(len) if b.len() != len => Err(format!("`{name}` is not {len} bytes")),
            _ => Ok(b),
        }
    };

    let kid = text("kid")?.map(str::to_owned);
    let alg = match text("alg")? {
        None => KeyAlg::Any,
        Some(name) => name.parse().map(KeyAlg::Only).unwrap_or(KeyAlg::Other),
    };
    let use_sig = text("use")?.is_none_or(|u| u == "sig");
    let ops_verify = match jwk.get("key_ops") {
        None => true,
        Some(Value::Array(ops)) => ops.iter().any(|op| op == "verify"),
        Some(_) => return Err("`key_ops` is not an array".to_owned()),
    };

    let (kind, key) = match required("kty")? {
        "RSA" => {
            let n = bytes("n", None)?;
            let e = bytes("e", None)?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            let bits = bit_len(n);
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(format!("RSA modulus of {bits} bits"));
            }
            if e.is_empty() || e.len() > 8 {
                return Err("RSA exponent out of range".to_owned());
            }
            (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(n, e))
        }
        "EC" => {
            let (kind, len) = match required("crv")? {
                "P-256" => (KeyKind::P256, 32),
                "P-384" => (KeyKind::P384, 48),
                other => return Err(format!("unsupported curve {other:?}")),
            };
            let x = bytes("x", Some(len))?;
            let y = bytes("y", Some(len))?;
            // Uncompressed SEC1 point, what aws-lc-rs verifies with. Whether it is on the curve
            // is checked at verification (a bad point verifies nothing).
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (kind, DecodingKey::from_ec_der(&point))
        }
        "OKP" => {
            match required("crv")? {
                "Ed25519" => {}
                other => return Err(format!("unsupported curve {other:?}")),
            }
            (
                KeyKind::Ed25519,
                DecodingKey::from_ed_der(&bytes("x", Some(32))?),
            )
        }
        "oct" => return Err("symmetric key: never used for verification".to_owned()),
        other => return Err(format!("unsupported key type {other:?}")),
    };
    Ok(VerifyingKey {
        kid,
        kind,
        alg,
        for_signatures: use_sig && ops_verify,
        key,
    })
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn bit_len(b: &[u8]) -> usize {
    match b.first() {
        None => 0,
        Some(&top) => b.len() * 8 - top.leading_zeros() as usize,
    }
}

/// How long a response stays fresh: `Cache-Control: max-age` clamped to `[min_ttl, max_ttl]`
/// (`no-cache`/`no-store` count as 0, so `min_ttl`), else `default_ttl`. `Expires` is ignored.
pub(super) fn freshness(headers: &HeaderMap, settings: &JwksSettings) -> Duration {
    let mut max_age = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                max_age = Some(0);
            } else if name.eq_ignore_ascii_case("max-age")
                && let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok())
            {
                max_age = Some(max_age.map_or(secs, |m: u64| m.min(secs)));
            }
        }
    }
    match max_age {
        // max() then min() rather than clamp(): never panics, even if min_ttl > max_ttl.
        Some(secs) => Duration::from_secs(secs)
            .max(settings.min_ttl)
            .min(settings.max_ttl),
        None => settings.default_ttl,
    }
}

/// Key set state for metrics and readiness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwksStatus {
    /// Keys in the current set (0 before the first successful fetch).
    pub keys: usize,
    /// When the current set was fetched.
    pub last_success: Option<SystemTime>,
    /// Whether the current set is within its freshness.
    pub fresh: bool,
    /// Fetches that produced a new set, since start.
    pub fetch_successes: u64,
    /// Fetches that failed (network, status, garbage, discovery), since start.
    pub fetch_failures: u64,
    /// Fetches that failed since the last successful one: above 0 while the IdP is failing.
    pub consecutive_failures: u64,
}

impl JwksStatus {
    /// Two issuers' figures as one: keys and fetches added up, the oldest last success (the
    /// age alert fires for the stalest set), fresh only if both are, the longer failure streak.
    pub fn combine(self, other: JwksStatus) -> JwksStatus {
        let last_success = match (self.last_success, other.last_success) {
            (Some(a), Some(b)) => Some(a.min(b)),
            // One issuer never fetched: as a whole, the sets are not all loaded.
            _ => None,
        };
        JwksStatus {
            keys: self.keys + other.keys,
            last_success,
            fresh: self.fresh && other.fresh,
            fetch_successes: self.fetch_successes + other.fetch_successes,
            fetch_failures: self.fetch_failures + other.fetch_failures,
            consecutive_failures: self.consecutive_failures.max(other.consecutive_failures),
        }
    }
}

type FetchOutcome = Result<usize, String>;

/// The key source: configured or discovered URL, last good set, fetch gate.
pub(super) struct KeySource {
    client: HttpClient,
    issuer: String,
    settings: JwksSettings,
    /// Configured `jwks_uri`, or the discovered one once discovery succeeded.
    jwks_uri: ArcSwapOption<String>,
    current: ArcSwapOption<KeySet>,
    gate: moka::future::Cache<(), Arc<FetchOutcome>>,
    /// A background refresh task is running; stops stale-path requests from spawning more.
    refreshing: AtomicBool,
    successes: AtomicU64,
    failures: AtomicU64,
    /// Failures since the last success.
    failing: AtomicU64,
}

impl KeySource {
    pub(super) fn new(
        client: HttpClient,
        issuer: String,
        jwks_uri: Option<String>,
        settings: JwksSettings,
    ) -> Self {
        let gate = moka::future::Cache::builder()
            .max_capacity(1)
            .time_to_live(settings.refetch_interval)
            .build();
        Self {
            client,
            issuer,
            jwks_uri: ArcSwapOption::new(jwks_uri.map(Arc::new)),
            current: ArcSwapOption::empty(),
            gate,
            settings,
            refreshing: AtomicBool::new(false),
            successes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            failing: AtomicU64::new(0),
        }
    }

    /// The key to verify a token with `kid` and `alg`.
    ///
    /// Hot path: the set is fresh and has the key; no await, no allocation. A stale set (past its
    /// freshness, within `max_stale`) still answers at once and starts one background refresh, so a
    /// slow IdP never holds up a request the cached keys can verify. Otherwise (unknown `kid`, no
    /// set, set too old) the request waits for a fetch through the gate, then looks again.
    pub(super) async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        {
            let current = self.current.load();
            if let Some(set) = current.as_ref() {
                let now = Instant::now();
                if now < set.usable_until {
                    match set.find(kid, alg) {
                        Lookup::Found(key) => {
                            if now >= set.fresh_until {
                                self.spawn_refresh();
                            }
                            return Ok(key);
                        }
                        Lookup::Mismatch => return Err(AuthError::KeyMismatch),
                        Lookup::Unknown => {}
                    }
                }
            }
        }
        // The outcome is not needed: whatever the fetch did, the answer is in `current`.
        let _ = self.refresh().await;
        let current = self.current.load();
        let Some(set) = current.as_ref().filter(|s| Instant::now() < s.usable_until) else {
            return Err(AuthError::KeysUnavailable);
        };
        match set.find(kid, alg) {
            Lookup::Found(key) => Ok(key),
            Lookup::Mismatch => Err(AuthError::KeyMismatch),
            Lookup::Unknown if kid.is_some() => Err(AuthError::UnknownKey("no key with this kid")),
            Lookup::Unknown => Err(AuthError::UnknownKey(
                "token has no kid and no single key fits its algorithm",
            )),
        }
    }

    /// Whether `key` is still in the current, usable key set: a cached verification stays good
    /// only as long as the very key that made it. A set past its freshness still answers (and
    /// starts one background refresh), as in [`Self::key_for`]. A refetched set holds new keys,
    /// so every cached verification is redone once per refetch; that is the price of never
    /// trusting a key the IdP has rotated out.
    pub(super) fn still_verifies(self: &Arc<Self>, key: &Arc<VerifyingKey>) -> bool {
        let current = self.current.load();
        let Some(set) = current.as_ref() else {
            return false;
        };
        let now = Instant::now();
        if now >= set.usable_until || !set.keys.iter().any(|k| Arc::ptr_eq(k, key)) {
            return false;
        }
        if now >= set.fresh_until {
            self.spawn_refresh();
        }
        true
    }

    /// Fetches through the gate and waits for the outcome. The fetch runs in its own task, so a
    /// caller that goes away (client disconnect) does not cancel it for the others.
    pub(super) async fn refresh(self: &Arc<Self>) -> FetchOutcome {
        let this = Arc::clone(self);
        match tokio::spawn(async move { this.fetch_through_gate().await }).await {
            Ok(outcome) => (*outcome).clone(),
            Err(e) => Err(format!("key set fetch task failed: {e}")),
        }
    }

    /// Keeps the set fresh without waiting for a request to need it; runs until its task is
    /// aborted. It fetches when the set's freshness ends (the TTL from `Cache-Control: max-age`
    /// within `[min_ttl, max_ttl]`, else `default_ttl`), at once when there is no set, and after
    /// a failed fetch (its own or a request's) again every `refetch_interval` until one succeeds,
    /// the last good set serving meanwhile until `max_stale`. Fetches go through the gate like
    /// every other, and each is followed by at least one interval's pause, so a failing IdP, or a
    /// TTL shorter than the interval, is asked at most once per interval.
    pub(super) async fn keep_fresh(self: Arc<Self>) {
        let pause = self.settings.refetch_interval.max(MIN_REFRESH_PAUSE);
        loop {
            let due = self.refresh_due();
            if Instant::now() < due {
                tokio::time::sleep_until(due.into()).await;
                // Looked at again: a lookup may have refreshed the set meanwhile.
                continue;
            }
            // The outcome is in `current` and the counters; a failure was logged.
            let _ = self.refresh().await;
            tokio::time::sleep(pause).await;
        }
    }

    /// When the background refresher fetches next: at once with no set or after a failed fetch,
    /// else when the set's freshness ends.
    fn refresh_due(&self) -> Instant {
        match self.current.load().as_ref() {
            Some(set) if self.failing.load(Ordering::Relaxed) == 0 => set.fresh_until,
            _ => Instant::now(),
        }
    }

    /// Starts one background refresh unless one ran within the interval or is running now.
    fn spawn_refresh(self: &Arc<Self>) {
        if self.gate.contains_key(&()) || self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.fetch_through_gate().await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    async fn fetch_through_gate(&self) -> Arc<FetchOutcome> {
        self.gate
            .get_with((), async { Arc::new(self.fetch_and_store().await) })
            .await
    }

    async fn fetch_and_store(&self) -> FetchOutcome {
        match self.fetch().await {
            Ok((uri, set)) => {
                let keys = set.keys.len();
                self.current.store(Some(Arc::new(set)));
                self.successes.fetch_add(1, Ordering::Relaxed);
                self.failing.store(0, Ordering::Relaxed);
                tracing::info!(jwks_uri = %uri, keys, "fetched key set");
                Ok(keys)
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.failing.fetch_add(1, Ordering::Relaxed);
                let has_set = self.current.load().is_some();
                tracing::warn!(error = %e, keeping_last_good_set = has_set, "key set fetch failed");
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<(Arc<String>, KeySet), String> {
        let uri = match self.jwks_uri.load_full() {
            Some(uri) => uri,
            None => {
                let found = discovery::discover_jwks_uri(
                    &self.client,
                    &self.issuer,
                    self.settings.fetch_timeout,
                )
                .await?;
                let found = Arc::new(found);
                self.jwks_uri.store(Some(found.clone()));
                found
            }
        };
        let (headers, body) =
            fetch::get_json(&self.client, &uri, self.settings.fetch_timeout).await?;
        let keys = parse_jwks(&body).map_err(|e| format!("{uri}: {e}"))?;
        let ttl = freshness(&headers, &self.settings);
        Ok((uri, KeySet::new(keys, ttl, self.settings.max_stale)))
    }

    pub(super) fn has_usable_keys(&self) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|s| Instant::now() < s.usable_until)
    }

    pub(super) fn status(&self) -> JwksStatus {
        let current = self.current.load();
        let set = current.as_ref();
        JwksStatus {
            keys: set.map_or(0, |s| s.keys.len()),
            last_success: set.map(|s| s.fetched_at),
            fresh: set.is_some_and(|s| Instant::now() < s.fresh_until),
            fetch_successes: self.successes.load(Ordering::Relaxed),
            fetch_failures: self.failures.load(Ordering::Relaxed),
            consecutive_failures: self.failing.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
#[path = "jwks_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "jwks_refresh_tests.rs"]
mod refresh_tests;
