use std::time::Duration;

use serde_json::json;

use super::*;
use scopegate_testkit::keys::{SigningKey, now, raw_token};

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
        assert_eq!(err.reason().as_str(), "malformed", "{token}: {err}");
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
fn signed_token_verifies_and_duplicate_claims_are_refused() {
    let key = SigningKey::generate_es256("k").unwrap();
    let good = key.mint(base_claims());
    assert_eq!(unverified_claims(&good).unwrap()["aud"], "mcp");
    verify_signature(&good, &key.decoding_key().unwrap(), Algorithm::ES256).unwrap();

    let wrong_key = SigningKey::generate_es256("k")
        .unwrap()
        .decoding_key()
        .unwrap();
    assert_eq!(
        verify_signature(&good, &wrong_key, Algorithm::ES256).unwrap_err(),
        AuthError::BadSignature
    );

    let exp = now() + 60;
    let dup_payload = format!(r#"{{"iss":"https://idp","aud":"mcp","exp":{exp},"aud":"mcp2"}}"#);
    let dup = key.sign_raw(br#"{"alg":"ES256","kid":"k"}"#, dup_payload.as_bytes());
    assert_eq!(
        unverified_claims(&dup).unwrap_err().to_string(),
        "claims has a duplicate key"
    );
}

#[test]
fn a_key_of_another_family_is_a_key_mismatch_and_a_bad_segment_is_malformed() {
    let es = SigningKey::generate_es256("k").unwrap();
    let rsa = SigningKey::generate_rs256("r").unwrap();
    let token = es.mint(base_claims());
    assert_eq!(
        verify_signature(&token, &rsa.decoding_key().unwrap(), Algorithm::ES256).unwrap_err(),
        AuthError::KeyMismatch
    );
    let (message, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        verify_signature(
            &format!("{message}.%%"),
            &es.decoding_key().unwrap(),
            Algorithm::ES256
        )
        .unwrap_err()
        .reason()
        .as_str(),
        "malformed"
    );
}

#[test]
fn the_unverified_issuer_is_a_string_or_a_refusal() {
    assert_eq!(unverified_issuer(&with(json!({}))).unwrap(), "https://idp");
    assert_eq!(
        unverified_issuer(&claims(json!({"aud": "mcp"}))).unwrap_err(),
        AuthError::MissingClaim("iss")
    );
    assert_eq!(
        unverified_issuer(&with(json!({"iss": ["https://idp"]})))
            .unwrap_err()
            .to_string(),
        "claim `iss` must be a string"
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
            .as_str()
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
        s(json!({"scope": ["a"]})).unwrap_err().reason().as_str(),
        "malformed"
    );
    assert_eq!(
        s(json!({"scp": [1]})).unwrap_err().reason().as_str(),
        "malformed"
    );
    assert_eq!(
        s(json!({"scp": {"a": 1}})).unwrap_err().reason().as_str(),
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
