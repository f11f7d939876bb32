use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use serde_json::json;

use super::*;
use crate::reason::Reason;
use scopegate_testkit::jwks_server::JwksServer;
use scopegate_testkit::keys::{SigningKey, now};

fn settings(server: &JwksServer, audience: &str) -> AuthSettings {
    let mut s = AuthSettings::new(server.issuer(), vec![audience.to_owned()]);
    s.algorithms = vec![Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256];
    s.jwks.refetch_interval = Duration::from_millis(200);
    s
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    h
}

#[tokio::test]
async fn valid_token_yields_principal_with_keys_found_by_discovery() {
    let key = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![key.jwk()]).await;
    let auth = Authenticator::new(settings(&server, "mcp"), client());
    let token = key.mint(json!({
        "iss": server.issuer(), "aud": ["other", "mcp"], "exp": now() + 60,
        "sub": "alice", "azp": "agent", "scope": "a b a", "tenant": "t1",
    }));
    let p = auth.authenticate(&bearer(&token)).await.unwrap();
    assert_eq!(p.subject.as_deref(), Some("alice"));
    assert_eq!(p.client_id.as_deref(), Some("agent"));
    assert_eq!(p.scopes, vec!["a", "b"]);
    assert_eq!(p.expires_at, now() + 60);
    assert_eq!(p.claims["tenant"], "t1");
    assert!(auth.has_keys());
    assert_eq!(auth.jwks_status().keys, 1);
    assert_eq!(server.discovery_hits(), 1);
}

#[tokio::test]
async fn token_failures_map_to_specific_reasons() {
    let key = SigningKey::generate_es256("k1").unwrap();
    let other = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![key.jwk()]).await;
    let auth = Authenticator::new(settings(&server, "mcp"), client());
    let iss = server.issuer();
    let cases = [
        (
            key.mint(json!({"iss": iss, "aud": "mcp", "exp": now() - 120})),
            "expired",
        ),
        (
            key.mint(json!({"iss": iss, "aud": "mcp", "exp": now() + 60, "nbf": now() + 600})),
            "not_yet_valid",
        ),
        (
            key.mint(json!({"iss": "https://evil", "aud": "mcp", "exp": now() + 60})),
            "wrong_issuer",
        ),
        (
            key.mint(json!({"iss": iss, "aud": "else", "exp": now() + 60})),
            "wrong_audience",
        ),
        (
            key.mint(json!({"iss": iss, "exp": now() + 60})),
            "missing_claim",
        ),
        (key.mint(json!({"iss": iss, "aud": "mcp"})), "missing_claim"),
        (
            key.mint(json!({"iss": [iss], "aud": "mcp", "exp": now() + 60})),
            "malformed",
        ),
        (
            other.mint(json!({"iss": iss, "aud": "mcp", "exp": now() + 60})),
            "bad_signature",
        ),
        (
            SigningKey::generate_es256("nope")
                .unwrap()
                .mint(json!({"iss": iss, "aud": "mcp", "exp": now() + 60})),
            "unknown_key",
        ),
    ];
    for (token, reason) in cases {
        let err = auth.authenticate(&bearer(&token)).await.unwrap_err();
        assert_eq!(err.reason().as_str(), reason, "{err}");
        assert!(!err.to_string().contains(&token[..20]));
    }
    let missing = auth.authenticate(&HeaderMap::new()).await.unwrap_err();
    assert_eq!(missing.reason().as_str(), "missing_token");
    assert!(!missing.token_presented());
}

#[tokio::test]
async fn refused_header_never_triggers_a_key_fetch() {
    let key = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![key.jwk()]).await;
    let auth = Authenticator::new(settings(&server, "mcp"), client());
    let token = key.mint_with_header(
        json!({"alg": "ES256", "kid": "k1", "crit": ["exp"]}),
        json!({"iss": server.issuer(), "aud": "mcp", "exp": now() + 60}),
    );
    let err = auth.authenticate(&bearer(&token)).await.unwrap_err();
    assert_eq!(err, AuthError::CritHeader);
    assert_eq!(server.jwks_hits(), 0);
}

#[tokio::test]
async fn verified_token_is_served_from_cache_until_its_key_rotates_out() {
    let key = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![key.jwk()]).await;
    let auth = Authenticator::new(settings(&server, "mcp"), client());
    let token = key.mint(json!({"iss": server.issuer(), "aud": "mcp", "exp": now() + 60}));
    let first = auth.authenticate(&bearer(&token)).await.unwrap();
    let second = auth.authenticate(&bearer(&token)).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(auth.inner.tokens.as_ref().unwrap().len(), 1);

    // The IdP rotates k1 out: the cached verification must not outlive it.
    server.set_keys(vec![SigningKey::generate_es256("k2").unwrap().jwk()]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    auth.refresh_keys().await.unwrap();
    let err = auth.authenticate(&bearer(&token)).await.unwrap_err();
    assert_eq!(err.reason().as_str(), "unknown_key");
}

#[tokio::test]
async fn cached_token_is_not_served_at_or_past_its_exp() {
    let key = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![key.jwk()]).await;
    let auth = Authenticator::new(settings(&server, "mcp"), client());
    let token = key.mint(json!({"iss": server.issuer(), "aud": "mcp", "exp": now() + 5}));
    let p = auth.authenticate(&bearer(&token)).await.unwrap();
    let cache = auth.inner.tokens.as_ref().unwrap();
    assert!(cache.get(token.as_bytes(), p.expires_at - 1).is_some());
    assert!(cache.get(token.as_bytes(), p.expires_at).is_none());
    // Another token never hits this one's entry.
    let other = key.mint(json!({"iss": server.issuer(), "aud": "mcp", "exp": now() + 6}));
    assert!(cache.get(other.as_bytes(), now()).is_none());
}

#[tokio::test]
async fn zero_entries_disables_the_token_cache() {
    let key = SigningKey::generate_es256("k1").unwrap();
    let server = JwksServer::start(vec![key.jwk()]).await;
    let s = settings(&server, "mcp");
    let auth = Authenticator::with_token_cache(s, client(), 0);
    let token = key.mint(json!({"iss": server.issuer(), "aud": "mcp", "exp": now() + 60}));
    let first = auth.authenticate(&bearer(&token)).await.unwrap();
    let second = auth.authenticate(&bearer(&token)).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(first, second);
}

#[test]
fn hmac_algorithms_are_dropped_from_the_allow_list() {
    let mut s = AuthSettings::new("https://issuer", vec!["mcp".into()]);
    s.algorithms = vec![Algorithm::HS256, Algorithm::RS256];
    let auth = Authenticator::new(s, client());
    assert_eq!(
        auth.inner.issuers[0].settings.algorithms,
        vec![Algorithm::RS256]
    );
}

#[test]
fn every_token_refusal_is_counted_as_a_token_failure() {
    let all = [
        AuthError::MissingToken,
        AuthError::malformed("x"),
        AuthError::MultipleAuthorization,
        AuthError::TokenTooLarge { limit: 1 },
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::BadSignature,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::MissingClaim("exp"),
        AuthError::UnknownKey("x"),
        AuthError::AlgorithmNotAllowed,
        AuthError::KeyMismatch,
        AuthError::CritHeader,
        AuthError::BadTyp,
        AuthError::KeysUnavailable,
        AuthError::Inactive,
        AuthError::IntrospectionUnavailable,
        AuthError::InvalidDpopProof("x".into()),
        AuthError::NotDpopBound,
        AuthError::BoundTokenAsBearer,
        AuthError::DpopRequired,
        AuthError::DpopNotAccepted,
        AuthError::UnsupportedBinding,
        AuthError::NoClientCertificate,
        AuthError::CertificateMismatch,
        AuthError::UseDpopNonce("n".into()),
    ];
    for e in &all {
        assert!(e.reason().is_token(), "{e:?}");
    }
}

fn client() -> crate::client::HttpClient {
    crate::client::build(None, std::time::Duration::from_secs(2)).unwrap()
}

#[tokio::test]
async fn a_token_is_verified_only_with_the_keys_of_the_issuer_it_names() {
    // Both IdPs call their key `k1`: a lookup by `kid` across issuers would find the wrong one.
    let key_a = SigningKey::generate_es256("k1").unwrap();
    let key_b = SigningKey::generate_es256("k1").unwrap();
    let server_a = JwksServer::start(vec![key_a.jwk()]).await;
    let server_b = JwksServer::start(vec![key_b.jwk()]).await;
    let auth = Authenticator::for_issuers(
        vec![settings(&server_a, "mcp"), settings(&server_b, "mcp")],
        client(),
        DEFAULT_TOKEN_CACHE_ENTRIES,
    );
    let claims = |iss: String| json!({"iss": iss, "aud": "mcp", "exp": now() + 60, "sub": "s"});

    for (key, server, label) in [(&key_a, &server_a, 0), (&key_b, &server_b, 1)] {
        let headers = bearer(&key.mint(claims(server.issuer())));
        let attempt = auth.attempt(&RequestView::headers_only(&headers)).await;
        assert!(attempt.result.is_ok(), "{:?}", attempt.result);
        assert_eq!(
            attempt.issuer.and_then(|i| auth.issuer_labels().nth(i)),
            auth.issuer_labels().nth(label),
            "attributed to its own issuer"
        );
    }

    // Issuer B's name, issuer A's key (same kid): B's key does not verify it.
    let forged = bearer(&key_a.mint(claims(server_b.issuer())));
    let attempt = auth.attempt(&RequestView::headers_only(&forged)).await;
    assert_eq!(attempt.result.unwrap_err(), AuthError::BadSignature);
    assert_eq!(
        attempt.issuer.and_then(|i| auth.issuer_labels().nth(i)),
        Some(server_b.issuer().as_str())
    );

    // An issuer nobody configured is refused before any key is looked up.
    let hits = (server_a.jwks_hits(), server_b.jwks_hits());
    let stranger = bearer(&key_a.mint(claims("https://stranger.example.com".into())));
    let attempt = auth.attempt(&RequestView::headers_only(&stranger)).await;
    assert_eq!(attempt.result.unwrap_err(), AuthError::WrongIssuer);
    assert_eq!(attempt.issuer, None);
    assert_eq!((server_a.jwks_hits(), server_b.jwks_hits()), hits);

    // A repeated `iss` cannot name one issuer to the selection and another to the checks.
    let twice = key_a.sign_raw(
        br#"{"alg":"ES256","kid":"k1"}"#,
        format!(
            r#"{{"iss":"{}","iss":"{}","aud":"mcp","exp":{}}}"#,
            server_b.issuer(),
            server_a.issuer(),
            now() + 60
        )
        .as_bytes(),
    );
    assert_eq!(
        auth.authenticate(&bearer(&twice))
            .await
            .unwrap_err()
            .reason(),
        Reason::Malformed
    );
}
