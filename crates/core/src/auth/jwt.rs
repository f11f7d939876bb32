//! JWT checks: the protected header (before any key lookup), the signature (through
//! `jsonwebtoken`'s crypto), then every claim check ourselves (registered claims, their JSON
//! types) and the [`Principal`]. Owns what a token must say; not where keys come from
//! (`jwks.rs`).
//!
//! Header parameters that carry or point to keys (`jwk`, `jku`, `x5u`) are refused outright: keys
//! come only from the configured key set, and a token that offers its own key was built either
//! for a different verifier or for a key-injection attack. `x5c` is ignored rather than refused,
//! since some IdPs include the signing certificate; it is never read.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::{AuthError, AuthSettings, Principal};
use crate::policy::ScopeSet;

/// What the header says that the rest of verification needs.
#[derive(Debug, PartialEq)]
pub(super) struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Header parameters that embed or point to a key.
const EMBEDDED_KEY_PARAMS: [&str; 3] = ["jwk", "jku", "x5u"];

/// Decodes and checks the protected header. `token` has already passed the bearer shape check.
pub(super) fn check_header(
    token: &str,
    allowed: &[Algorithm],
    require_typ: Option<&str>,
) -> Result<TokenHeader, AuthError> {
    let encoded = token.split('.').next().unwrap_or_default();
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| AuthError::malformed("header is not base64url"))?;
    let header = parse_object(&json, "header")?;

    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(AuthError::malformed("header `alg` must be a string")),
        None => return Err(AuthError::malformed("header has no `alg`")),
    };
    // `none` and unknown names fail to parse. HMAC is refused whatever the allow-list says: with
    // a JWKS, the "secret" would be a public key anyone can fetch.
    let alg: Algorithm = alg.parse().map_err(|_| AuthError::AlgorithmNotAllowed)?;
    if alg.family() == AlgorithmFamily::Hmac || !allowed.contains(&alg) {
        return Err(AuthError::AlgorithmNotAllowed);
    }
    // We implement no extension, so by RFC 7515 §4.1.11 any `crit` makes the token unusable
    // (this also covers `b64: false`, which must be listed in `crit`).
    if header.contains_key("crit") {
        return Err(AuthError::CritHeader);
    }
    if EMBEDDED_KEY_PARAMS.iter().any(|p| header.contains_key(*p)) {
        return Err(AuthError::malformed("embedded key not accepted"));
    }
    if let Some(want) = require_typ {
        match header.get("typ") {
            Some(Value::String(typ)) if typ_matches(typ, want) => {}
            _ => return Err(AuthError::BadTyp),
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::malformed("header `kid` must be a string")),
    };
    Ok(TokenHeader { alg, kid })
}

/// `typ` is a media type: compared case-insensitively, with or without `application/`
/// (RFC 7515 §4.1.9).
fn typ_matches(typ: &str, want: &str) -> bool {
    const PREFIX: &[u8] = b"application/";
    let typ = typ.as_bytes();
    let bare = match typ.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => &typ[PREFIX.len()..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case(want.as_bytes())
}

/// The unverified claims of a compact JWS, decoded once: the issuer is picked from them before
/// any key is looked up, and after the signature check the same map becomes the principal, so
/// the payload is never decoded twice. Refuses a payload that is not a JSON object with unique
/// keys.
pub(super) fn unverified_claims(token: &str) -> Result<Map<String, Value>, AuthError> {
    let payload = token.split('.').nth(1).unwrap_or_default();
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::malformed("claims are not base64url"))?;
    parse_object(&json, "claims")
}

/// The `iss` of claims not yet verified, to choose whose keys verify them. Refusals only: a
/// missing or non-string `iss` is refused here as [`principal`] would refuse it.
pub(super) fn unverified_issuer(claims: &Map<String, Value>) -> Result<&str, AuthError> {
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss),
        Some(_) => Err(AuthError::malformed(ISS_WRONG_TYPE)),
        None => Err(AuthError::MissingClaim("iss")),
    }
}

/// Checks the signature over `header.payload` with `key`, for the `alg` the header named (and
/// [`check_header`] allowed). The claims are checked afterwards by [`principal`], on the map
/// [`unverified_claims`] decoded.
pub(super) fn verify_signature(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<(), AuthError> {
    let (message, signature) = token
        .rsplit_once('.')
        .ok_or(AuthError::malformed("token is not three segments"))?;
    match jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, alg) {
        Ok(true) => Ok(()),
        Ok(false) => Err(AuthError::BadSignature),
        Err(error) => Err(match error.kind() {
            ErrorKind::Base64(_) => AuthError::malformed("token segment is not base64url"),
            // The key cannot verify this algorithm (another family, or a key the crypto
            // library refuses).
            _ => AuthError::KeyMismatch,
        }),
    }
}

const AUD_WRONG_TYPE: &str = "claim `aud` must be a string or an array of strings";
const ISS_WRONG_TYPE: &str = "claim `iss` must be a string";

/// Checks the claims' JSON types ourselves (the crate accepts e.g. an `iss` array) and builds the
/// principal. `now` is seconds since the epoch.
pub(super) fn principal(
    claims: Map<String, Value>,
    settings: &AuthSettings,
    now: u64,
) -> Result<Principal, AuthError> {
    match claims.get("iss") {
        None => return Err(AuthError::MissingClaim("iss")),
        Some(Value::String(iss)) if *iss == settings.issuer => {}
        Some(Value::String(_)) => return Err(AuthError::WrongIssuer),
        Some(_) => return Err(AuthError::malformed(ISS_WRONG_TYPE)),
    }
    check_audience(claims.get("aud"), &settings.audiences)?;

    let leeway = settings.leeway.as_secs();
    let expires_at = numeric_date(&claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
    if expires_at.saturating_add(leeway) < now {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(AuthError::NotYetValid);
    }
    numeric_date(&claims, "iat")?;

    let subject = optional_string(&claims, "sub")?;
    let client_id = match optional_string(&claims, "client_id")? {
        Some(id) => Some(id),
        None => optional_string(&claims, "azp")?,
    };
    let scopes = scopes(&claims, &settings.scope_claim)?;
    Ok(Principal {
        subject,
        client_id,
        granted: ScopeSet::new(scopes.iter().map(String::as_str)),
        scopes,
        expires_at,
        claims,
        claims_cache: Default::default(),
        granted_cache: Default::default(),
    })
}

fn check_audience(aud: Option<&Value>, accepted: &[String]) -> Result<(), AuthError> {
    let accepted_one = |a: &str| accepted.iter().any(|x| x == a);
    let ok = match aud {
        None => return Err(AuthError::MissingClaim("aud")),
        Some(Value::String(a)) => accepted_one(a),
        Some(Value::Array(items)) => {
            let mut ok = false;
            for item in items {
                let Value::String(a) = item else {
                    return Err(AuthError::malformed(AUD_WRONG_TYPE));
                };
                ok |= accepted_one(a);
            }
            ok
        }
        Some(_) => return Err(AuthError::malformed(AUD_WRONG_TYPE)),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::WrongAudience)
    }
}

/// A NumericDate (RFC 7519 §2): a non-negative JSON number; fractions are truncated.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    let wrong = || AuthError::Malformed(Cow::Owned(format!("claim `{name}` must be a number")));
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(wrong()),
        },
        Some(_) => Err(wrong()),
    }
}

fn optional_string(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::Malformed(Cow::Owned(format!(
            "claim `{name}` must be a string"
        )))),
    }
}

/// Scopes from `scope_claim` (a space-delimited string) or, when that claim is absent, from `scp`
/// (an array of strings, or a space-delimited string). The two are not merged: a token that has
/// the configured claim is read from it alone.
pub(super) fn scopes(
    claims: &Map<String, Value>,
    scope_claim: &str,
) -> Result<Vec<String>, AuthError> {
    let (name, value) = match claims.get(scope_claim) {
        Some(v) => (scope_claim, v),
        None => match claims.get("scp") {
            Some(v) => ("scp", v),
            None => return Ok(Vec::new()),
        },
    };
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        if !out.iter().any(|have| have == s) {
            out.push(s.to_owned());
        }
    };
    match value {
        Value::String(s) => s.split(' ').filter(|s| !s.is_empty()).for_each(&mut push),
        Value::Array(items) if name == "scp" => {
            for item in items {
                match item {
                    Value::String(s) if !s.is_empty() => push(s),
                    _ => return Err(scope_type_error(name)),
                }
            }
        }
        _ => return Err(scope_type_error(name)),
    }
    Ok(out)
}

fn scope_type_error(name: &str) -> AuthError {
    let expected = if name == "scp" {
        "an array of strings or a space-delimited string"
    } else {
        "a space-delimited string"
    };
    AuthError::Malformed(Cow::Owned(format!("claim `{name}` must be {expected}")))
}

pub(super) fn parse_object(
    json: &[u8],
    what: &'static str,
) -> Result<Map<String, Value>, AuthError> {
    serde_json::from_slice::<UniqueKeyObject>(json)
        .map(|o| o.0)
        .map_err(|e| {
            if e.to_string().starts_with(DUPLICATE_KEY) {
                AuthError::Malformed(Cow::Owned(format!("{what} has a duplicate key")))
            } else {
                AuthError::Malformed(Cow::Owned(format!("{what} is not a JSON object")))
            }
        })
}

const DUPLICATE_KEY: &str = "duplicate key";

/// A JSON object whose top-level keys are unique. Parsers disagree on duplicates (first wins,
/// last wins); refusing them means no other component can read a different `alg` or `aud`.
pub(super) struct UniqueKeyObject(pub Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueKeyObject;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = Map::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if map.insert(key, value).is_some() {
                        return Err(serde::de::Error::custom(DUPLICATE_KEY));
                    }
                }
                Ok(UniqueKeyObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
