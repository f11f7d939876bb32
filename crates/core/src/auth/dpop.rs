//! DPoP (RFC 9449): whether a token must, may or must not come with a proof of possession, and
//! the proof's checks. Owns the binding between a token's `cnf.jkt` and the key that signed the
//! request's `DPoP` header, and reading `cnf` (a certificate binding is checked by `mtls.rs`);
//! not the token's own verification (`jwt.rs`, `introspect.rs`).
//!
//! A proof is checked on every request, cached token or not: a proof proves possession for one
//! request (`htm`, `htu`, `ath`, a fresh `iat`, a `jti` never seen before), so it cannot be cached.
//! That is one signature verification per request; BENCHMARKS.md gives its cost.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::{Map, Value};

use super::introspect::sha256;
use super::{AuthError, Principal, RequestView, bearer, jwt, mtls};
use crate::state::{OnceKeys, Unavailable};

/// The proof algorithms accepted, as the `algs` of a `DPoP` challenge and the metadata's
/// `dpop_signing_alg_values_supported`: every asymmetric JWS algorithm the verifier has.
pub const DPOP_ALGS: &str = "ES256 ES384 EdDSA PS256 PS384 PS512 RS256 RS384 RS512";
/// How old a proof's `iat` may be (plus the issuer's leeway): RFC 9449 §11.1 asks for a short
/// window; a minute covers a slow client without making a captured proof useful for long.
pub const PROOF_MAX_AGE: Duration = Duration::from_secs(60);
/// Largest proof accepted: an RSA-4096 `jwk` and the claims fit in well under 4 KiB.
const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Longest `jti` accepted: RFC 9449 asks for 96 random bits; 256 bytes allows any encoding.
const MAX_JTI_BYTES: usize = 256;

/// `dpop` of an issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpopMode {
    /// DPoP refused: a `DPoP` scheme, and a token bound by `cnf.jkt`, are refused (a binding the
    /// proxy will not check must not pass as a bearer token).
    Off,
    /// The default: a token bound by `cnf.jkt` needs a proof; an unbound one is a bearer token.
    Allowed,
    /// Every token must be DPoP-bound and come with a proof.
    Required,
}

/// Remembers the `jti`s of proofs seen within their window, so each proof is used once. The seam
/// between the proof's checks and where the `jti`s live: this process's memory, or the store that
/// replicas share (`[state]`), so a proof replayed to another replica is refused too.
pub trait ReplayCache: Send + Sync {
    /// Records `jti` for `ttl`: `Ok(false)` when it was already recorded (a replay);
    /// `Err(Unavailable)` when the shared store cannot say and `[state] on_error = "deny"`.
    fn insert_if_absent<'a>(
        &'a self,
        jti: &'a str,
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<bool, Unavailable>> + Send + 'a>>;
}

/// `jti`s remembered at most in this process. At 100 bytes an entry, about 10 MiB; past it the
/// least used go, so an attacker who floods proofs can at worst make an old proof replayable
/// inside its minute.
pub const REPLAY_ENTRIES: u64 = 100_000;

/// The shared store when `[state]` has one (keys under its prefix, each for its own `ttl`), and
/// this process's memory otherwise or, with `on_error = "local"`, while the store fails.
impl ReplayCache for OnceKeys {
    fn insert_if_absent<'a>(
        &'a self,
        jti: &'a str,
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<bool, Unavailable>> + Send + 'a>> {
        Box::pin(self.set_if_absent(jti, ttl))
    }
}

impl super::Authenticator {
    /// Whether any issuer accepts DPoP: then a `Bearer` challenge comes with a `DPoP` one.
    pub fn accepts_dpop(&self) -> bool {
        self.inner
            .issuers
            .iter()
            .any(|i| i.settings.dpop != DpopMode::Off)
    }

    /// Whether every issuer requires DPoP-bound tokens (the metadata's
    /// `dpop_bound_access_tokens_required`).
    pub fn requires_dpop(&self) -> bool {
        self.inner
            .issuers
            .iter()
            .all(|i| i.settings.dpop == DpopMode::Required)
    }
}

/// How long a nonce this proxy issued is accepted: long enough for a client's session of
/// requests, short enough that a nonce seen once is not a ticket for long.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Stateless server nonces (RFC 9449 §8): the issue time and an HMAC-SHA256 of it under a key
/// made at start-up, so any nonce this process issued within [`NONCE_LIFETIME`] is recognised
/// without remembering it. Each process has its own key: behind several replicas a client may be
/// asked for a new nonce when it reaches another one.
pub(super) struct NonceKey {
    key: aws_lc_rs::hmac::Key,
}

impl NonceKey {
    pub(super) fn generate() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng)
            .expect("the system's random source works");
        NonceKey { key }
    }

    /// A nonce for `now` (seconds since the epoch).
    pub(super) fn issue(&self, now: u64) -> String {
        let stamp = now.to_be_bytes();
        let tag = aws_lc_rs::hmac::sign(&self.key, &stamp);
        let mut bytes = stamp.to_vec();
        bytes.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` was issued by this key within its lifetime (the tag compared in constant
    /// time).
    pub(super) fn accepts(&self, nonce: &str, now: u64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Some((stamp, tag)) = bytes.split_first_chunk::<8>() else {
            return false;
        };
        if aws_lc_rs::hmac::verify(&self.key, stamp, tag).is_err() {
            return false;
        }
        let issued = u64::from_be_bytes(*stamp);
        issued <= now && now - issued <= NONCE_LIFETIME.as_secs()
    }
}

/// How proofs are checked for one issuer.
pub(super) struct ProofRules<'a> {
    pub leeway: Duration,
    pub replay: &'a dyn ReplayCache,
    /// `Some` when the issuer asks for server nonces.
    pub nonces: Option<&'a NonceKey>,
}

/// The token's sender constraints, checked against the request: a client certificate
/// (`cnf["x5t#S256"]`, RFC 8705) and a DPoP key (`cnf.jkt`), each when the token names one, both
/// when it names both. `dpop` says whether the token came with the `DPoP` scheme.
pub(super) async fn check_binding(
    principal: &Principal,
    mode: DpopMode,
    dpop: bool,
    token: &[u8],
    request: &RequestView<'_>,
    rules: &ProofRules<'_>,
) -> Result<(), AuthError> {
    let (jkt, x5t) = match principal.claims.get("cnf") {
        None => (None, None),
        Some(Value::Object(cnf)) => confirmations(cnf)?,
        Some(_) => return Err(AuthError::malformed("claim `cnf` must be an object")),
    };
    // The certificate first: it costs a comparison, and a refused request then uses up no
    // proof `jti`.
    if let Some(x5t) = x5t {
        mtls::check(x5t, request.client_cert)?;
    }
    match (dpop, jkt, mode) {
        (_, Some(_), DpopMode::Off) | (true, _, DpopMode::Off) => Err(AuthError::DpopNotAccepted),
        (true, None, _) => Err(AuthError::NotDpopBound),
        (true, Some(jkt), _) => check_proof(jkt, token, request, rules).await,
        (false, Some(_), _) => Err(AuthError::BoundTokenAsBearer),
        (false, None, DpopMode::Required) => Err(AuthError::DpopRequired),
        (false, None, _) => Ok(()),
    }
}

/// The confirmation methods of a `cnf` claim (RFC 7800) this proxy checks: `jkt` and
/// `x5t#S256`. Any other member (`jwk`, `kid`, `jku`, …) binds the token in a way this proxy
/// does not check, and such a binding must not pass as a bearer token; so must not an empty
/// `cnf`.
fn confirmations(cnf: &Map<String, Value>) -> Result<(Option<&str>, Option<&str>), AuthError> {
    let (mut jkt, mut x5t) = (None, None);
    for (name, value) in cnf {
        match (name.as_str(), value) {
            ("jkt", Value::String(value)) => jkt = Some(value.as_str()),
            ("x5t#S256", Value::String(value)) => x5t = Some(value.as_str()),
            ("jkt", _) => return Err(AuthError::malformed("claim `cnf.jkt` must be a string")),
            ("x5t#S256", _) => {
                return Err(AuthError::malformed(
                    "claim `cnf.x5t#S256` must be a string",
                ));
            }
            _ => return Err(AuthError::UnsupportedBinding),
        }
    }
    if jkt.is_none() && x5t.is_none() {
        return Err(AuthError::UnsupportedBinding);
    }
    Ok((jkt, x5t))
}

fn invalid(why: &'static str) -> AuthError {
    AuthError::InvalidDpopProof(Cow::Borrowed(why))
}

/// The `DPoP` header's proof for this request and this token, signed by the key `jkt` names.
async fn check_proof(
    jkt: &str,
    token: &[u8],
    request: &RequestView<'_>,
    rules: &ProofRules<'_>,
) -> Result<(), AuthError> {
    let leeway = rules.leeway;
    let mut proofs = request.headers.get_all("dpop").iter();
    let proof = proofs.next().ok_or(invalid("no DPoP proof"))?;
    if proofs.next().is_some() {
        return Err(invalid("more than one DPoP proof"));
    }
    if proof.len() > MAX_PROOF_BYTES {
        return Err(invalid("proof too large"));
    }
    let proof =
        bearer::compact_jws(proof.as_bytes()).map_err(|_| invalid("proof is not a compact JWS"))?;
    let (alg, key) = proof_key(proof, jkt)?;
    // The header was read once above; the signature is checked over the raw segments and the
    // claims parsed once, rather than decoding the whole proof again.
    let (message, signature) = proof.rsplit_once('.').unwrap_or_default();
    let verified = jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, alg)
        .map_err(|_| invalid("proof signature does not verify"))?;
    if !verified {
        return Err(invalid("proof signature does not verify"));
    }
    let payload = message.split('.').nth(1).unwrap_or_default();
    let claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|json| jwt::parse_object(&json, "proof claims").ok())
        .ok_or(invalid("proof claims are not a JSON object"))?;
    let jti = check_claims(&claims, token, request, leeway)?;
    if let Some(nonces) = rules.nonces {
        let now = jsonwebtoken::get_current_timestamp();
        let fresh = match claims.get("nonce") {
            Some(Value::String(nonce)) => nonces.accepts(nonce, now),
            _ => false,
        };
        if !fresh {
            return Err(AuthError::UseDpopNonce(nonces.issue(now)));
        }
    }
    // Scoped to the key, so nobody can use up another client's `jti`s in advance.
    let key = URL_SAFE_NO_PAD.encode(sha256(format!("{jkt}.{jti}").as_bytes()));
    let first = rules
        .replay
        .insert_if_absent(&key, PROOF_MAX_AGE + 2 * leeway)
        .await
        .map_err(|Unavailable| AuthError::StateUnavailable)?;
    if !first {
        return Err(invalid("proof already used"));
    }
    Ok(())
}

/// The proof's header: `typ`, an asymmetric `alg` we verify, a public `jwk` whose thumbprint is
/// the token's `cnf.jkt`. Returns the algorithm and the key.
fn proof_key(proof: &str, jkt: &str) -> Result<(Algorithm, DecodingKey), AuthError> {
    let encoded = proof.split('.').next().unwrap_or_default();
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| invalid("proof header is not base64url"))?;
    let header = jwt::parse_object(&json, "proof header")
        .map_err(|_| invalid("proof header is not a JSON object"))?;
    match header.get("typ") {
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("dpop+jwt") => {}
        _ => return Err(invalid("proof typ must be dpop+jwt")),
    }
    let alg: Algorithm = match header.get("alg") {
        Some(Value::String(alg)) => alg.parse().map_err(|_| invalid("proof alg not accepted"))?,
        _ => return Err(invalid("proof has no alg")),
    };
    if alg.family() == AlgorithmFamily::Hmac || !DPOP_ALGS.split(' ').any(|a| header["alg"] == a) {
        return Err(invalid("proof alg not accepted"));
    }
    if header.contains_key("crit") {
        return Err(invalid("proof has critical header parameters"));
    }
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(invalid("proof has no jwk"));
    };
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|private| jwk.contains_key(*private))
    {
        return Err(invalid("proof jwk holds a private key"));
    }
    if jwk_thumbprint(jwk).as_deref() != Some(jkt) {
        return Err(invalid("proof key is not the key the token is bound to"));
    }
    let parsed: Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .map_err(|_| invalid("proof jwk is not a usable public key"))?;
    let key = DecodingKey::from_jwk(&parsed)
        .map_err(|_| invalid("proof jwk is not a usable public key"))?;
    Ok((alg, key))
}

/// `jti`, `htm`, `htu`, `iat`, `ath`; returns the `jti`.
fn check_claims<'c>(
    claims: &'c Map<String, Value>,
    token: &[u8],
    request: &RequestView<'_>,
    leeway: Duration,
) -> Result<&'c str, AuthError> {
    let jti = match claims.get("jti") {
        Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_BYTES => jti,
        _ => return Err(invalid("proof has no usable jti")),
    };
    match claims.get("htm") {
        Some(Value::String(htm)) if htm == request.method.as_str() => {}
        _ => return Err(invalid("proof htm is not this request's method")),
    }
    let htu = match claims.get("htu") {
        Some(Value::String(htu)) => normalize_url(htu),
        _ => None,
    };
    let addressed = htu.is_some_and(|htu| {
        request.addressed_url().and_then(|url| normalize_url(&url)) == Some(htu.clone())
            || normalize_url(request.resource) == Some(htu)
    });
    if !addressed {
        return Err(invalid("proof htu is not this resource"));
    }
    let now = jsonwebtoken::get_current_timestamp();
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite() && *f >= 0.0),
        _ => None,
    }
    .ok_or(invalid("proof has no iat"))? as u64;
    let leeway = leeway.as_secs();
    if iat > now + leeway || iat + PROOF_MAX_AGE.as_secs() + leeway < now {
        return Err(invalid("proof iat is outside the accepted window"));
    }
    let ath = URL_SAFE_NO_PAD.encode(sha256(token));
    match claims.get("ath") {
        Some(Value::String(sent)) if *sent == ath => {}
        _ => return Err(invalid("proof ath is not this token's hash")),
    }
    Ok(jti)
}

/// A URL compared as RFC 9449 §4.3 asks: without query and fragment, scheme and host in lower
/// case, the default port dropped, an empty path as `/`.
fn normalize_url(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next()?;
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    let host = authority.host().to_ascii_lowercase();
    let port = match (scheme.as_str(), authority.port_u16()) {
        ("https", Some(443)) | ("http", Some(80)) | (_, None) => String::new(),
        (_, Some(port)) => format!(":{port}"),
    };
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// The RFC 7638 thumbprint of a public JWK: base64url of the SHA-256 of its required members,
/// in lexicographic order, as compact JSON. `None` for a key type without one.
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, name) in members.iter().enumerate() {
        let value = jwk.get(*name)?.as_str()?;
        if i > 0 {
            canonical.push(',');
        }
        canonical.push_str(&format!(
            "\"{name}\":{}",
            serde_json::to_string(value).ok()?
        ));
    }
    canonical.push('}');
    Some(URL_SAFE_NO_PAD.encode(sha256(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thumbprint_matches_the_rfc_7638_example() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn urls_compare_without_query_fragment_default_port_or_case() {
        assert_eq!(
            normalize_url("HTTPS://MCP.example.com:443/mcp?x=1#f").as_deref(),
            Some("https://mcp.example.com/mcp")
        );
        assert_eq!(
            normalize_url("https://localhost:8443/mcp").as_deref(),
            Some("https://localhost:8443/mcp")
        );
        assert_ne!(
            normalize_url("https://h/mcp"),
            normalize_url("https://h/MCP")
        );
    }

    #[test]
    fn a_nonce_is_accepted_from_its_own_key_within_its_lifetime_only() {
        let key = NonceKey::generate();
        let now = 1_800_000_000;
        let nonce = key.issue(now);
        assert!(key.accepts(&nonce, now));
        assert!(key.accepts(&nonce, now + NONCE_LIFETIME.as_secs()));
        assert!(!key.accepts(&nonce, now + NONCE_LIFETIME.as_secs() + 1));
        assert!(!key.accepts(&nonce, now - 1), "not from the future");
        assert!(
            !NonceKey::generate().accepts(&nonce, now),
            "another process's key"
        );
        let mut forged = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        forged[7] ^= 1; // another time stamp under the same tag
        assert!(!key.accepts(&URL_SAFE_NO_PAD.encode(forged), now));
        assert!(!key.accepts("garbage", now));
    }

    #[test]
    fn cnf_yields_the_bindings_checked_and_refuses_any_other() {
        let cnf = |v: Value| v.as_object().unwrap().clone();
        let both = cnf(json!({ "jkt": "k", "x5t#S256": "c" }));
        assert_eq!(confirmations(&both), Ok((Some("k"), Some("c"))));
        let cert = cnf(json!({ "x5t#S256": "c" }));
        assert_eq!(confirmations(&cert), Ok((None, Some("c"))));
        for unchecked in [
            json!({}),
            json!({ "jkt": "k", "kid": "x" }),
            json!({ "x5t#S256": "c", "jwk": { "kty": "EC" } }),
        ] {
            assert_eq!(
                confirmations(&cnf(unchecked.clone())),
                Err(AuthError::UnsupportedBinding),
                "{unchecked}"
            );
        }
        assert_eq!(
            confirmations(&cnf(json!({ "x5t#S256": 1 })))
                .unwrap_err()
                .reason(),
            crate::reason::Reason::Malformed
        );
    }

    #[tokio::test]
    async fn a_jti_is_accepted_once_within_its_window() {
        let cache: &dyn ReplayCache = &OnceKeys::bounded(None, REPLAY_ENTRIES);
        let ttl = Duration::from_secs(60);
        assert_eq!(cache.insert_if_absent("a", ttl).await, Ok(true));
        assert_eq!(cache.insert_if_absent("a", ttl).await, Ok(false));
        assert_eq!(cache.insert_if_absent("b", ttl).await, Ok(true));
    }
}
