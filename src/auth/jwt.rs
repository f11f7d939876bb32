//! JWT checks: the protected header (before any key lookup), signature and registered claims
//! (through `jsonwebtoken`, configured explicitly), then our own claim-type checks and the
//! [`Principal`]. Owns what a token must say; not where keys come from (`jwks.rs`).
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
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
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

/// The `Validation` for one algorithm, every field set on purpose rather than left at the crate's
/// defaults (whose leeway is 60 s and whose `nbf` check is off).
pub(super) fn validation(alg: Algorithm, settings: &AuthSettings) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.set_issuer(&[&settings.issuer]);
    v.set_audience(&settings.audiences);
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = true;
    v.leeway = settings.leeway.as_secs();
    v.reject_tokens_expiring_in_less_than = 0;
    v.sub = None;
    v
}

/// Verifies signature and registered claims; returns every claim.
pub(super) fn verify(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<Map<String, Value>, AuthError> {
    jsonwebtoken::decode::<UniqueKeyObject>(token, key, validation)
        .map(|data| data.claims.0)
        .map_err(|e| match map_error(e.kind()) {
            AuthError::MissingClaim(name) => {
                present_but_unreadable(token, name).unwrap_or(AuthError::MissingClaim(name))
            }
            other => other,
        })
}

/// jsonwebtoken reports a registered claim it cannot read (`"exp": "soon"`, `"aud": 443`) as
/// missing. When the claim is there, the client is told what is wrong with it instead. The
/// signature was checked before the claims, so this parse is reached only for signed tokens.
fn present_but_unreadable(token: &str, name: &'static str) -> Option<AuthError> {
    let payload = token.split('.').nth(1)?;
    let claims = parse_object(&URL_SAFE_NO_PAD.decode(payload).ok()?, "claims").ok()?;
    claims.contains_key(name).then(|| match name {
        "aud" => AuthError::malformed(AUD_WRONG_TYPE),
        "iss" => AuthError::malformed(ISS_WRONG_TYPE),
        _ => AuthError::Malformed(Cow::Owned(format!("claim `{name}` must be a number"))),
    })
}

const AUD_WRONG_TYPE: &str = "claim `aud` must be a string or an array of strings";
const ISS_WRONG_TYPE: &str = "claim `iss` must be a string";

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(match claim.as_str() {
            "exp" => "exp",
            "iss" => "iss",
            "aud" => "aud",
            "nbf" => "nbf",
            _ => "sub",
        }),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::Malformed(Cow::Owned(format!(
            "claim `{}` has the wrong type",
            if claim == "nbf" { "nbf" } else { "exp" }
        ))),
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::UnsupportedAlgorithm => AuthError::KeyMismatch,
        ErrorKind::Base64(_) => AuthError::malformed("token segment is not base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            AuthError::malformed("header or claims are not a JSON object without duplicate keys")
        }
        _ => AuthError::malformed("token could not be decoded"),
    }
}

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
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::super::test_support::{TestKey, now, raw_token};
    use super::*;

    const ALLOWED: &[Algorithm] = &[Algorithm::ES256, Algorithm::RS256, Algorithm::HS256];

    fn header_of(header: Value) -> Result<TokenHeader, AuthError> {
        check_header(&raw_token(&header, &json!({})), ALLOWED, None)
    }

    fn settings() -> AuthSettings {
        let mut s = AuthSettings::new("https://idp", vec!["mcp".into(), "mcp2".into()]);
        s.leeway = Duration::from_secs(30);
        s
    }

    fn claims(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else { panic!() };
        m
    }

    fn base_claims() -> Value {
        json!({"iss": "https://idp", "aud": "mcp", "exp": now() + 60})
    }

    fn with(extra: Value) -> Map<String, Value> {
        let mut m = claims(base_claims());
        m.extend(claims(extra));
        m
    }

    #[test]
    fn header_yields_alg_and_kid() {
        let h = header_of(json!({"alg": "ES256", "kid": "k1", "typ": "JWT"})).unwrap();
        assert_eq!(
            h,
            TokenHeader {
                alg: Algorithm::ES256,
                kid: Some("k1".into())
            }
        );
        assert_eq!(header_of(json!({"alg": "RS256"})).unwrap().kid, None);
    }

    #[test]
    fn none_unknown_and_unlisted_algorithms_are_refused() {
        for alg in ["none", "None", "ES512", "RS1", "PS256", ""] {
            assert_eq!(
                header_of(json!({"alg": alg})).unwrap_err(),
                AuthError::AlgorithmNotAllowed,
                "{alg}"
            );
        }
    }

    #[test]
    fn hmac_is_refused_even_when_allow_listed() {
        for alg in ["HS256", "HS384", "HS512"] {
            assert_eq!(
                header_of(json!({"alg": alg})).unwrap_err(),
                AuthError::AlgorithmNotAllowed
            );
        }
    }

    #[test]
    fn crit_header_is_refused() {
        let err = header_of(json!({"alg": "ES256", "crit": ["b64"], "b64": false})).unwrap_err();
        assert_eq!(err, AuthError::CritHeader);
    }

    #[test]
    fn embedded_or_remote_keys_are_refused() {
        for param in ["jwk", "jku", "x5u"] {
            let mut h = json!({"alg": "ES256"});
            h[param] = json!("https://attacker/keys");
            let err = header_of(h).unwrap_err();
            assert_eq!(err.to_string(), "embedded key not accepted");
        }
        // x5c is ignored, never used.
        assert!(header_of(json!({"alg": "ES256", "x5c": ["MIIB"]})).is_ok());
    }

    #[test]
    fn typ_is_checked_case_insensitively_when_required() {
        let check = |typ: Value| {
            check_header(
                &raw_token(&json!({"alg": "ES256", "typ": typ}), &json!({})),
                ALLOWED,
                Some("at+jwt"),
            )
        };
        assert!(check(json!("at+jwt")).is_ok());
        assert!(check(json!("AT+JWT")).is_ok());
        assert!(check(json!("application/at+jwt")).is_ok());
        assert!(check(json!("Application/AT+jwt")).is_ok());
        assert_eq!(check(json!("JWT")).unwrap_err(), AuthError::BadTyp);
        assert_eq!(check(json!(1)).unwrap_err(), AuthError::BadTyp);
        assert_eq!(check(json!("application/")).unwrap_err(), AuthError::BadTyp);
        let no_typ = raw_token(&json!({"alg": "ES256"}), &json!({}));
        assert_eq!(
            check_header(&no_typ, ALLOWED, Some("at+jwt")).unwrap_err(),
            AuthError::BadTyp
        );
        assert!(check_header(&no_typ, ALLOWED, None).is_ok());
    }

    #[test]
    fn header_structure_errors_are_malformed() {
        let cases = [
            "eyJhbGciOiJFUzI1NiJ9=.e30.c2ln".to_owned(),
            format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(b"[1,2]")),
            format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(b"not json")),
            format!(
                "{}.e30.c2ln",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","alg":"HS256"}"#)
            ),
            raw_token(&json!({"kid": "k"}), &json!({})),
            raw_token(&json!({"alg": 256}), &json!({})),
            raw_token(&json!({"alg": "ES256", "kid": 7}), &json!({})),
        ];
        for token in cases {
            let err = check_header(&token, ALLOWED, None).unwrap_err();
            assert_eq!(err.reason(), "malformed", "{token}: {err}");
        }
        let dup = format!(
            "{}.e30.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","alg":"HS256"}"#)
        );
        assert_eq!(
            check_header(&dup, ALLOWED, None).unwrap_err().to_string(),
            "header has a duplicate key"
        );
    }

    #[test]
    fn validation_is_set_explicitly() {
        let v = validation(Algorithm::ES256, &settings());
        assert_eq!(v.algorithms, vec![Algorithm::ES256]);
        assert_eq!(v.leeway, 30);
        assert!(v.validate_nbf && v.validate_exp && v.validate_aud);
        assert_eq!(v.required_spec_claims.len(), 3);
        assert!(v.iss.unwrap().contains("https://idp"));
        assert_eq!(v.aud.unwrap().len(), 2);
    }

    #[test]
    fn signed_token_verifies_and_duplicate_claims_are_refused() {
        let key = TestKey::es256("k");
        let v = validation(Algorithm::ES256, &settings());
        let good = key.mint(base_claims());
        assert_eq!(
            verify(&good, &key.decoding_key(), &v).unwrap()["aud"],
            "mcp"
        );

        let wrong_key = TestKey::es256("k").decoding_key();
        assert_eq!(
            verify(&good, &wrong_key, &v).unwrap_err(),
            AuthError::BadSignature
        );

        let exp = now() + 60;
        let dup_payload =
            format!(r#"{{"iss":"https://idp","aud":"mcp","exp":{exp},"aud":"mcp2"}}"#);
        let dup = key.sign_raw(br#"{"alg":"ES256","kid":"k"}"#, dup_payload.as_bytes());
        assert_eq!(
            verify(&dup, &key.decoding_key(), &v).unwrap_err().reason(),
            "malformed"
        );
    }

    #[test]
    fn principal_takes_subject_client_and_expiry() {
        let p = principal(
            with(json!({"sub": "alice", "client_id": "c", "azp": "z"})),
            &settings(),
            now(),
        )
        .unwrap();
        assert_eq!(p.subject.as_deref(), Some("alice"));
        assert_eq!(p.client_id.as_deref(), Some("c"));
        assert_eq!(p.expires_at, now() + 60);
        let p = principal(with(json!({"azp": "z"})), &settings(), now()).unwrap();
        assert_eq!(p.client_id.as_deref(), Some("z"));
        assert_eq!(p.subject, None);
    }

    #[test]
    fn claim_types_are_checked() {
        let reason = |extra: Value| {
            principal(with(extra), &settings(), now())
                .unwrap_err()
                .reason()
        };
        assert_eq!(reason(json!({"iss": ["https://idp"]})), "malformed");
        assert_eq!(reason(json!({"iss": "https://other"})), "wrong_issuer");
        assert_eq!(reason(json!({"aud": {"mcp": true}})), "malformed");
        assert_eq!(reason(json!({"aud": ["mcp", 1]})), "malformed");
        assert_eq!(reason(json!({"aud": []})), "wrong_audience");
        assert_eq!(reason(json!({"aud": ["x", "y"]})), "wrong_audience");
        assert_eq!(reason(json!({"exp": "tomorrow"})), "malformed");
        assert_eq!(reason(json!({"exp": -5})), "malformed");
        assert_eq!(reason(json!({"nbf": "now"})), "malformed");
        assert_eq!(reason(json!({"iat": true})), "malformed");
        assert_eq!(reason(json!({"sub": 42})), "malformed");
        assert_eq!(reason(json!({"client_id": ["c"]})), "malformed");
        assert!(principal(with(json!({"aud": ["x", "mcp2"]})), &settings(), now()).is_ok());
        assert!(
            principal(
                with(json!({"exp": (now() + 60) as f64 + 0.5})),
                &settings(),
                now()
            )
            .is_ok()
        );

        let mut no_aud = claims(base_claims());
        no_aud.remove("aud");
        assert_eq!(
            principal(no_aud, &settings(), now()).unwrap_err(),
            AuthError::MissingClaim("aud")
        );
    }

    #[test]
    fn time_claims_honour_leeway() {
        let t = now();
        let at = |extra: Value| principal(with(extra), &settings(), t);
        assert!(at(json!({"exp": t - 29})).is_ok());
        assert_eq!(at(json!({"exp": t - 31})).unwrap_err(), AuthError::Expired);
        assert!(at(json!({"nbf": t + 29})).is_ok());
        assert_eq!(
            at(json!({"nbf": t + 31})).unwrap_err(),
            AuthError::NotYetValid
        );
    }

    #[test]
    fn scopes_come_from_scope_string_or_scp() {
        let s = |v: Value| scopes(&claims(v), "scope");
        assert_eq!(s(json!({"scope": "a  b a"})).unwrap(), vec!["a", "b"]);
        assert_eq!(s(json!({"scp": ["a", "b"]})).unwrap(), vec!["a", "b"]);
        assert_eq!(s(json!({"scp": "a b"})).unwrap(), vec!["a", "b"]);
        assert_eq!(s(json!({"scope": "a", "scp": ["b"]})).unwrap(), vec!["a"]);
        assert!(s(json!({})).unwrap().is_empty());
        assert_eq!(
            s(json!({"scope": ["a"]})).unwrap_err().reason(),
            "malformed"
        );
        assert_eq!(s(json!({"scp": [1]})).unwrap_err().reason(), "malformed");
        assert_eq!(
            s(json!({"scp": {"a": 1}})).unwrap_err().reason(),
            "malformed"
        );
        let custom = scopes(&claims(json!({"perms": "x y"})), "perms").unwrap();
        assert_eq!(custom, vec!["x", "y"]);
        let err = scopes(&claims(json!({"perms": 3})), "perms").unwrap_err();
        assert_eq!(
            err.to_string(),
            "claim `perms` must be a space-delimited string"
        );
    }

    #[test]
    fn library_errors_map_to_specific_reasons() {
        assert_eq!(map_error(&ErrorKind::ExpiredSignature), AuthError::Expired);
        assert_eq!(
            map_error(&ErrorKind::ImmatureSignature),
            AuthError::NotYetValid
        );
        assert_eq!(
            map_error(&ErrorKind::InvalidAudience),
            AuthError::WrongAudience
        );
        assert_eq!(map_error(&ErrorKind::InvalidIssuer), AuthError::WrongIssuer);
        assert_eq!(
            map_error(&ErrorKind::MissingRequiredClaim("aud".into())),
            AuthError::MissingClaim("aud")
        );
        assert_eq!(
            map_error(&ErrorKind::InvalidClaimFormat("nbf".into())).reason(),
            "malformed"
        );
        assert_eq!(
            map_error(&ErrorKind::InvalidAlgorithm),
            AuthError::KeyMismatch
        );
    }
}
