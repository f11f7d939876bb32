use std::time::{Duration, Instant};

use http::HeaderValue;
use serde_json::json;

use super::*;
use scopegate_testkit::jwks_server::JwksServer;
use scopegate_testkit::keys::SigningKey;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A syntactically fine RSA JWK with a modulus of `bits` bits (not a real key: parsing only).
fn rsa_jwk(kid: &str, bits: usize) -> Value {
    let mut n = vec![0xA5u8; bits / 8];
    n[0] = 0xC1;
    json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
}

fn key(kind: KeyKind, alg: KeyAlg, for_signatures: bool) -> VerifyingKey {
    VerifyingKey {
        kid: None,
        kind,
        alg,
        for_signatures,
        key: DecodingKey::from_ed_der(&[0; 32]),
    }
}

fn set(keys: Vec<Value>) -> KeySet {
    let parsed = parse_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap();
    KeySet::new(parsed, Duration::from_secs(60), Duration::from_secs(60))
}

fn settings() -> JwksSettings {
    JwksSettings::default()
}

#[test]
fn garbage_and_empty_documents_are_errors() {
    for body in [
        "garbage",
        "",
        "[]",
        "{}",
        r#"{"keys": {}}"#,
        r#"{"keys": []}"#,
        r#"{"keys": [1, "x", null]}"#,
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
    ] {
        assert!(parse_jwks(body.as_bytes()).is_err(), "{body:?}");
    }
}

#[test]
fn unusable_keys_are_skipped_and_the_rest_kept() {
    let ec = SigningKey::generate_es256("ec").unwrap().jwk();
    let ed = SigningKey::generate_ed25519("ed").unwrap().jwk();
    let doc = json!({"keys": [
        ec,
        {"kty": "XYZ", "kid": "unknown-kty"},
        rsa_jwk("rsa-1024", 1024),
        rsa_jwk("rsa-2048", 2048),
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "EC", "kid": "short-x", "crv": "P-256", "x": b64(&[1; 31]), "y": b64(&[1; 32])},
        {"kty": "OKP", "kid": "x448", "crv": "X448", "x": b64(&[1; 56])},
        {"kty": "RSA", "kid": "no-e", "n": b64(&[0xC1; 256])},
        {"kty": "RSA", "kid": 7, "n": b64(&[0xC1; 256]), "e": "AQAB"},
        ed,
    ]});
    let keys = parse_jwks(doc.to_string().as_bytes()).unwrap();
    let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
    assert_eq!(kids, ["ec", "rsa-2048", "ed"]);
    assert_eq!(keys[0].kind, KeyKind::P256);
    assert_eq!(keys[1].kind, KeyKind::Rsa);
    assert_eq!(keys[2].kind, KeyKind::Ed25519);
}

#[test]
fn rsa_modulus_size_is_counted_without_leading_zeros() {
    let mut n = vec![0u8; 257];
    n[1] = 0x01; // 2041 bits after the leading zero byte
    let jwk = json!({"kty": "RSA", "n": b64(&n), "e": "AQAB"});
    assert!(parse_jwk(&jwk).unwrap_err().contains("2041 bits"));
    n[1] = 0x80;
    let jwk = json!({"kty": "RSA", "n": b64(&n), "e": "AQAB"});
    assert!(parse_jwk(&jwk).is_ok());
}

#[test]
fn a_set_with_only_encryption_keys_is_an_error() {
    let mut enc = rsa_jwk("enc", 2048);
    enc["use"] = json!("enc");
    assert!(parse_jwks(json!({"keys": [enc]}).to_string().as_bytes()).is_err());
}

#[test]
fn key_fits_only_its_algorithm_family_and_curve() {
    use Algorithm::*;
    let rsa = key(KeyKind::Rsa, KeyAlg::Any, true);
    assert!(
        [RS256, RS384, RS512, PS256, PS384, PS512]
            .iter()
            .all(|&a| rsa.fits(a))
    );
    assert!(![ES256, ES384, EdDSA, HS256].iter().any(|&a| rsa.fits(a)));
    let p256 = key(KeyKind::P256, KeyAlg::Any, true);
    assert!(p256.fits(ES256) && !p256.fits(ES384) && !p256.fits(RS256));
    let p384 = key(KeyKind::P384, KeyAlg::Any, true);
    assert!(p384.fits(ES384) && !p384.fits(ES256));
    let ed = key(KeyKind::Ed25519, KeyAlg::Any, true);
    assert!(ed.fits(EdDSA) && !ed.fits(ES256));
}

#[test]
fn jwk_alg_use_and_key_ops_restrict_the_fit() {
    use Algorithm::*;
    assert!(key(KeyKind::Rsa, KeyAlg::Only(RS256), true).fits(RS256));
    assert!(!key(KeyKind::Rsa, KeyAlg::Only(RS256), true).fits(PS256));
    assert!(!key(KeyKind::Rsa, KeyAlg::Other, true).fits(RS256));
    assert!(!key(KeyKind::Rsa, KeyAlg::Any, false).fits(RS256));

    let parsed = |extra: Value| {
        let mut jwk = rsa_jwk("k", 2048);
        jwk.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        parse_jwk(&jwk).unwrap()
    };
    assert_eq!(parsed(json!({"alg": "RSA-OAEP"})).alg, KeyAlg::Other);
    assert_eq!(parsed(json!({"alg": "PS384"})).alg, KeyAlg::Only(PS384));
    assert!(parsed(json!({"use": "sig", "key_ops": ["verify"]})).for_signatures);
    assert!(!parsed(json!({"use": "enc"})).for_signatures);
    assert!(!parsed(json!({"key_ops": ["encrypt"]})).for_signatures);
}

#[test]
fn lookup_by_kid_reports_mismatch_and_unknown() {
    let s = set(vec![
        SigningKey::generate_es256("a").unwrap().jwk(),
        SigningKey::generate_es256("b").unwrap().jwk(),
    ]);
    assert!(
        matches!(s.find(Some("a"), Algorithm::ES256), Lookup::Found(k) if k.kid.as_deref() == Some("a"))
    );
    assert!(matches!(
        s.find(Some("a"), Algorithm::ES384),
        Lookup::Mismatch
    ));
    assert!(matches!(
        s.find(Some("c"), Algorithm::ES256),
        Lookup::Unknown
    ));
    // No kid and two candidate keys: ambiguous, so unknown.
    assert!(matches!(s.find(None, Algorithm::ES256), Lookup::Unknown));
}

#[test]
fn lookup_without_kid_uses_the_single_fitting_key() {
    let s = set(vec![
        SigningKey::generate_es256("a").unwrap().jwk(),
        rsa_jwk("r", 2048),
    ]);
    assert!(
        matches!(s.find(None, Algorithm::ES256), Lookup::Found(k) if k.kid.as_deref() == Some("a"))
    );
    assert!(
        matches!(s.find(None, Algorithm::RS256), Lookup::Found(k) if k.kid.as_deref() == Some("r"))
    );
    assert!(matches!(s.find(None, Algorithm::EdDSA), Lookup::Unknown));
}

#[test]
fn max_age_is_clamped_to_ttl_bounds() {
    let ttl = |cc: &[&str]| {
        let mut h = HeaderMap::new();
        for v in cc {
            h.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
        }
        freshness(&h, &settings())
    };
    assert_eq!(ttl(&[]), DEFAULT_JWKS_TTL_FOR_TEST);
    assert_eq!(ttl(&["max-age=600"]), Duration::from_secs(600));
    assert_eq!(
        ttl(&["public, MAX-AGE=120, must-revalidate"]),
        Duration::from_secs(120)
    );
    assert_eq!(ttl(&["max-age=\"90\""]), Duration::from_secs(90));
    assert_eq!(ttl(&["max-age=1"]), Duration::from_secs(30));
    assert_eq!(ttl(&["max-age=0"]), Duration::from_secs(30));
    assert_eq!(ttl(&["no-cache"]), Duration::from_secs(30));
    assert_eq!(
        ttl(&["max-age=999999999"]),
        Duration::from_secs(24 * 60 * 60)
    );
    assert_eq!(ttl(&["max-age=abc"]), DEFAULT_JWKS_TTL_FOR_TEST);
    assert_eq!(
        ttl(&["max-age=600", "max-age=300"]),
        Duration::from_secs(300)
    );
}

const DEFAULT_JWKS_TTL_FOR_TEST: Duration = super::super::DEFAULT_JWKS_TTL;

// ---- fetch and cache behaviour against a real HTTP server ----

pub(super) fn fast_settings() -> JwksSettings {
    JwksSettings {
        default_ttl: Duration::from_secs(60),
        min_ttl: Duration::from_millis(10),
        max_ttl: Duration::from_secs(60),
        refetch_interval: Duration::from_millis(100),
        max_stale: Duration::from_secs(60),
        fetch_timeout: Duration::from_secs(2),
    }
}

pub(super) fn source(server: &JwksServer, settings: JwksSettings) -> Arc<KeySource> {
    Arc::new(KeySource::new(
        client(),
        server.issuer(),
        Some(server.jwks_uri()),
        settings,
    ))
}

/// Polls `cond` every few milliseconds until it holds; panics after two seconds.
pub(super) async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn gate_expired(source: &KeySource) {
    wait_until("refetch interval", || !source.gate.contains_key(&())).await;
}

#[tokio::test]
async fn fresh_set_answers_without_refetching() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    let src = source(&server, fast_settings());
    assert_eq!(src.refresh().await, Ok(1));
    for _ in 0..10 {
        assert!(src.key_for(Some("k1"), Algorithm::ES256).await.is_ok());
    }
    assert_eq!(server.jwks_hits(), 1);
    let status = src.status();
    assert_eq!(
        (status.keys, status.fresh, status.fetch_successes),
        (1, true, 1)
    );
    assert!(status.last_success.is_some());
}

#[tokio::test]
async fn first_lookup_fetches_when_no_set_is_loaded() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    let src = source(&server, fast_settings());
    assert!(!src.has_usable_keys());
    assert!(src.key_for(Some("k1"), Algorithm::ES256).await.is_ok());
    assert!(src.has_usable_keys());
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kids_are_coalesced_and_rate_limited() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    let src = source(&server, fast_settings());
    src.refresh().await.unwrap();

    // Within the interval of the last fetch: no fetch at all.
    let err = src
        .key_for(Some("nope"), Algorithm::ES256)
        .await
        .unwrap_err();
    assert_eq!(err.reason().as_str(), "unknown_key");
    assert_eq!(server.jwks_hits(), 1);

    // After it: many concurrent unknown kids share one slow fetch.
    gate_expired(&src).await;
    server.set_delay(Duration::from_millis(50));
    let lookups: Vec<_> = (0..50)
        .map(|i| {
            let src = Arc::clone(&src);
            tokio::spawn(async move { src.key_for(Some(&format!("x{i}")), Algorithm::ES256).await })
        })
        .collect();
    for lookup in lookups {
        assert_eq!(
            lookup.await.unwrap().unwrap_err().reason().as_str(),
            "unknown_key"
        );
    }
    assert_eq!(server.jwks_hits(), 2);
    // And the next burst right after is answered from the gate.
    for i in 0..20 {
        assert!(
            src.key_for(Some(&format!("y{i}")), Algorithm::ES256)
                .await
                .is_err()
        );
    }
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn rotated_in_key_is_found_by_refetch_on_unknown_kid() {
    let (k1, k2) = (
        SigningKey::generate_es256("k1").unwrap(),
        SigningKey::generate_es256("k2").unwrap(),
    );
    let server = JwksServer::start(vec![k1.jwk()]).await;
    let src = source(&server, fast_settings());
    src.refresh().await.unwrap();
    server.set_keys(vec![k1.jwk(), k2.jwk()]);
    gate_expired(&src).await;
    let found = src.key_for(Some("k2"), Algorithm::ES256).await.unwrap();
    assert_eq!(found.kid.as_deref(), Some("k2"));
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn kid_with_wrong_algorithm_is_key_mismatch_without_refetch() {
    let server = JwksServer::start(vec![SigningKey::generate_es256("k1").unwrap().jwk()]).await;
    let src = source(&server, fast_settings());
    src.refresh().await.unwrap();
    gate_expired(&src).await;
    let err = src.key_for(Some("k1"), Algorithm::ES384).await.unwrap_err();
    assert_eq!(err, AuthError::KeyMismatch);
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn stale_set_answers_at_once_and_refreshes_in_background() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    server.set_cache_control(Some("max-age=0"));
    let src = source(
        &server,
        JwksSettings {
            min_ttl: Duration::from_millis(50),
            ..fast_settings()
        },
    );
    src.refresh().await.unwrap();
    wait_until("set to go stale", || !src.status().fresh).await;
    gate_expired(&src).await;

    server.set_delay(Duration::from_millis(500));
    let started = Instant::now();
    assert!(src.key_for(Some("k1"), Algorithm::ES256).await.is_ok());
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "stale hit waited for the IdP"
    );
    // Further stale hits while the refresh is in flight start no second one.
    for _ in 0..10 {
        assert!(src.key_for(Some("k1"), Algorithm::ES256).await.is_ok());
    }
    wait_until("background refresh", || src.status().fetch_successes == 2).await;
    assert_eq!(server.jwks_hits(), 2);
    assert!(src.status().fresh);
}

#[tokio::test]
async fn stale_set_serves_while_idp_down_then_fails_closed_after_max_stale() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    let settings = JwksSettings {
        default_ttl: Duration::from_millis(50),
        min_ttl: Duration::from_millis(10),
        refetch_interval: Duration::from_millis(30),
        max_stale: Duration::from_millis(200),
        ..fast_settings()
    };
    let src = source(&server, settings);
    let fetched = Instant::now();
    src.refresh().await.unwrap();
    server.set_status(503);

    wait_until("set to go stale", || !src.status().fresh).await;
    let closed = loop {
        match src.key_for(Some("k1"), Algorithm::ES256).await {
            Ok(_) => {
                assert!(
                    fetched.elapsed() < Duration::from_secs(2),
                    "never failed closed"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(closed, AuthError::KeysUnavailable);
    assert!(fetched.elapsed() >= Duration::from_millis(250));
    assert!(!src.has_usable_keys());
    assert!(src.status().fetch_failures >= 1);
    assert_eq!(
        src.status().keys,
        1,
        "the last good set is kept, only not used"
    );

    // The IdP comes back: the next lookup fetches and succeeds.
    server.set_status(200);
    gate_expired(&src).await;
    assert!(src.key_for(Some("k1"), Algorithm::ES256).await.is_ok());
}

#[tokio::test]
async fn garbage_or_empty_set_keeps_the_last_good_set() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    let src = source(&server, fast_settings());
    src.refresh().await.unwrap();

    for body in ["<html>oops</html>", r#"{"keys": []}"#] {
        server.set_body(body);
        gate_expired(&src).await;
        assert!(src.refresh().await.is_err());
        assert!(src.key_for(Some("k1"), Algorithm::ES256).await.is_ok());
    }
    let status = src.status();
    assert_eq!(
        (status.keys, status.fetch_successes, status.fetch_failures),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn failed_fetch_is_remembered_for_the_interval() {
    let server = JwksServer::start(vec![]).await;
    server.set_status(503);
    let src = source(
        &server,
        JwksSettings {
            refetch_interval: Duration::from_secs(60),
            ..fast_settings()
        },
    );
    for _ in 0..5 {
        let err = src.key_for(Some("k1"), Algorithm::ES256).await.unwrap_err();
        assert_eq!(err, AuthError::KeysUnavailable);
    }
    assert!(src.refresh().await.unwrap_err().contains("503"));
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn jwks_uri_is_discovered_once() {
    let k = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![k.jwk()]).await;
    let src = Arc::new(KeySource::new(
        client(),
        server.issuer(),
        None,
        fast_settings(),
    ));
    assert!(src.key_for(Some("k1"), Algorithm::ES256).await.is_ok());
    gate_expired(&src).await;
    assert!(src.refresh().await.is_ok());
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 2));
}

#[tokio::test]
async fn every_supported_key_type_verifies_through_the_set() {
    let keys = [
        SigningKey::generate_es256("es256").unwrap(),
        SigningKey::generate_es384("es384").unwrap(),
        SigningKey::generate_ed25519("ed").unwrap(),
        SigningKey::shared_rs256("rs").unwrap(),
    ];
    let server = JwksServer::start(keys.iter().map(SigningKey::jwk).collect()).await;
    let src = source(&server, fast_settings());
    assert_eq!(src.refresh().await, Ok(4));
    for k in &keys {
        let found = src.key_for(Some(&k.kid), k.alg).await.unwrap();
        let token = k.mint(json!({"sub": "x"}));
        let (message, signature) = token.rsplit_once('.').unwrap();
        assert!(
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &found.key, k.alg).unwrap(),
            "{}",
            k.kid
        );
    }
}

fn client() -> crate::client::HttpClient {
    crate::client::build(None, std::time::Duration::from_secs(2)).unwrap()
}
