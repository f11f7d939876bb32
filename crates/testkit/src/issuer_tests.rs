use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use super::token::percent_decode;
use super::*;

const AUDIENCE: &str = "https://mcp.example.test/mcp";

async fn start() -> IssuerHandle {
    Issuer::start(IssuerConfig::demo(AUDIENCE))
        .await
        .expect("issuer starts")
}

/// Posts a form body to the token endpoint, optionally with HTTP Basic credentials.
async fn post_token(
    issuer: &IssuerHandle,
    basic: Option<(&str, &str)>,
    form: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .post(issuer.token_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.expect("token endpoint answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.expect("token endpoint answers JSON");
    (status, headers, body)
}

async fn fetch_jwks(issuer: &IssuerHandle) -> JwkSet {
    reqwest::get(issuer.jwks_uri())
        .await
        .expect("JWKS answers")
        .json()
        .await
        .expect("JWKS is a JWK set")
}

/// Verifies `token` against the served JWKS the way a resource server would: pick the key by `kid`.
async fn verify(issuer: &IssuerHandle, token: &str) -> jsonwebtoken::errors::Result<Value> {
    let header = jsonwebtoken::decode_header(token)?;
    let jwks = fetch_jwks(issuer).await;
    let kid = header.kid.expect("token names its key");
    let jwk = jwks.find(&kid).expect("kid is published");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[issuer.issuer()]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)
        .map(|d| d.claims)
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

#[tokio::test]
async fn token_endpoint_issues_a_verifiable_es256_token_for_a_good_client() {
    let issuer = start().await;
    let (status, headers, body) = post_token(
        &issuer,
        Some(("support-agent", DEMO_CLIENT_SECRET)),
        "grant_type=client_credentials&scope=customer%3Aread+ticket:create&resource=https%3A%2F%2Fmcp.example.test%2Fmcp",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "customer:read ticket:create");

    let token = body["access_token"].as_str().expect("access_token");
    let header = decode_part(token, 0);
    assert_eq!(
        header,
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": "demo-es256-1" })
    );
    let claims = verify(&issuer, token)
        .await
        .expect("token verifies against the JWKS");
    assert_eq!(claims["sub"], "support-agent");
    assert_eq!(claims["client_id"], "support-agent");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["iss"], issuer.issuer());
    assert_eq!(claims["scope"], "customer:read ticket:create");
    for claim in ["exp", "iat", "nbf", "jti"] {
        assert!(!claims[claim].is_null(), "missing {claim}");
    }
}

#[tokio::test]
async fn form_credentials_work_and_no_scope_means_every_allowed_scope() {
    let issuer = start().await;
    let (status, _, body) = post_token(
        &issuer,
        None,
        "grant_type=client_credentials&client_id=readonly-agent&client_secret=demo-secret",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "customer:read");
}

#[tokio::test]
async fn wrong_secret_is_refused_as_invalid_client_with_401() {
    let issuer = start().await;
    let (status, headers, body) = post_token(
        &issuer,
        Some(("support-agent", "not-the-secret")),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    assert!(headers.contains_key("www-authenticate"));

    let (status, _, body) = post_token(&issuer, None, "grant_type=client_credentials").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn scope_beyond_the_client_allowance_is_invalid_scope() {
    let issuer = start().await;
    let (status, _, body) = post_token(
        &issuer,
        Some(("readonly-agent", DEMO_CLIENT_SECRET)),
        "grant_type=client_credentials&scope=customer:read%20ticket:create",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn resource_other_than_the_audience_is_invalid_target() {
    let issuer = start().await;
    let (status, _, body) = post_token(
        &issuer,
        Some(("support-agent", DEMO_CLIENT_SECRET)),
        "grant_type=client_credentials&resource=https%3A%2F%2Fother.example.test%2Fmcp",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_target");
}

#[tokio::test]
async fn malformed_token_requests_get_rfc6749_errors() {
    let issuer = start().await;
    let creds = Some(("support-agent", DEMO_CLIENT_SECRET));
    let cases = [
        ("grant_type=password", "unsupported_grant_type"),
        ("scope=customer:read", "invalid_request"),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "invalid_request",
        ),
        ("grant_type=client_credentials&scope=%zz", "invalid_request"),
        (
            "grant_type=client_credentials&client_secret=demo-secret",
            "invalid_request",
        ),
    ];
    for (form, error) in cases {
        let (status, _, body) = post_token(&issuer, creds, form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{form}"
        );
    }
}

#[tokio::test]
async fn jwks_publishes_es256_rs256_and_eddsa_keys_for_signing() {
    let issuer = start().await;
    let response = reqwest::get(issuer.jwks_uri()).await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "max-age=300");
    let jwks: Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let described: Vec<_> = keys
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap(),
                k["alg"].as_str().unwrap(),
                k["use"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("demo-es256-1", "ES256", "sig"),
            ("demo-rs256-1", "RS256", "sig"),
            ("demo-eddsa-1", "EdDSA", "sig"),
        ]
    );
    // Public keys only: no private RSA or EC components.
    for key in keys {
        assert!(key.get("d").is_none() && key.get("p").is_none(), "{key}");
    }
}

#[tokio::test]
async fn rsa_and_eddsa_keys_sign_tokens_that_verify_against_the_jwks() {
    let issuer = start().await;
    for (alg, name) in [(Algorithm::RS256, "RS256"), (Algorithm::EdDSA, "EdDSA")] {
        let kid = issuer.key(&KeyChoice::Alg(alg)).unwrap().kid;
        let token = issuer.mint_with(
            json!({ "alg": name, "typ": "at+jwt", "kid": kid }),
            issuer.claims_for("support-agent", &["customer:read"]),
            KeyChoice::Alg(alg),
        );
        let claims = verify(&issuer, &token).await.expect(name);
        assert_eq!(claims["scope"], "customer:read");
    }
}

#[tokio::test]
async fn discovery_metadata_points_at_the_jwks_and_token_endpoints() {
    let issuer = start().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let metadata: Value = reqwest::get(format!("http://{}{path}", issuer.addr()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(metadata["issuer"], issuer.issuer(), "{path}");
        assert_eq!(metadata["jwks_uri"], issuer.jwks_uri(), "{path}");
        assert_eq!(metadata["token_endpoint"], issuer.token_url(), "{path}");
        assert_eq!(
            metadata["grant_types_supported"],
            json!(["client_credentials"])
        );
    }
}

#[tokio::test]
async fn configured_issuer_url_becomes_iss_while_endpoints_stay_on_the_bound_address() {
    let mut config = IssuerConfig::demo(AUDIENCE);
    config.issuer_url = Some("https://idp.example.test/realms/demo".to_owned());
    let issuer = Issuer::start(config).await.unwrap();
    assert_eq!(issuer.issuer(), "https://idp.example.test/realms/demo");
    assert_eq!(issuer.jwks_uri(), format!("http://{}/jwks", issuer.addr()));
    let claims = decode_part(&issuer.mint(issuer.claims_for("a", &[])), 1);
    assert_eq!(claims["iss"], "https://idp.example.test/realms/demo");
}

#[tokio::test]
async fn mint_with_signs_any_header_as_given() {
    let issuer = start().await;
    let header = json!({ "alg": "RS256", "kid": "no-such-key", "crit": ["exp"], "jku": "http://evil.test/jwks" });
    let token = issuer.mint_with(header.clone(), json!({ "sub": "x" }), KeyChoice::Default);
    assert_eq!(decode_part(&token, 0), header);

    // The signature is the default ES256 key's over the given bytes, whatever the header says.
    let (message, signature) = token.rsplit_once('.').unwrap();
    let jwk: Jwk = serde_json::from_value(issuer.key(&KeyChoice::Default).unwrap().jwk).unwrap();
    let verified = jsonwebtoken::crypto::verify(
        signature,
        message.as_bytes(),
        &DecodingKey::from_jwk(&jwk).unwrap(),
        Algorithm::ES256,
    )
    .unwrap();
    assert!(verified);
}

#[tokio::test]
async fn sign_raw_keeps_malformed_bytes_and_unsigned_tokens_end_in_a_dot() {
    let issuer = start().await;
    let header = br#"{"alg":"ES256","alg":"none"}"#;
    let token = issuer.sign_raw(header, b"not json", KeyChoice::Unsigned);
    let parts: Vec<_> = token.split('.').collect();
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[0]).unwrap(), header);
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[1]).unwrap(), b"not json");
    assert_eq!(parts[2], "");
}

#[tokio::test]
async fn foreign_key_tokens_fail_verification_even_with_a_published_kid() {
    let issuer = start().await;
    let token = issuer.mint_with(
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": issuer.default_kid() }),
        issuer.claims_for("support-agent", &["customer:read"]),
        KeyChoice::Foreign,
    );
    let error = verify(&issuer, &token).await.unwrap_err();
    assert_eq!(
        error.kind(),
        &jsonwebtoken::errors::ErrorKind::InvalidSignature
    );
}

#[tokio::test]
async fn rotate_publishes_a_new_default_key_and_retire_stops_publishing_the_old() {
    let issuer = start().await;
    let old = issuer.default_kid();
    let new = issuer.rotate();
    assert_ne!(old, new);
    assert_eq!(issuer.default_kid(), new);

    let token = issuer.mint(issuer.claims_for("support-agent", &[]));
    assert_eq!(decode_part(&token, 0)["kid"], new.as_str());
    verify(&issuer, &token).await.expect("new key is published");
    assert!(
        fetch_jwks(&issuer).await.find(&old).is_some(),
        "old key still published"
    );

    assert!(issuer.retire(&old));
    assert!(!issuer.retire(&old), "already retired");
    let jwks = fetch_jwks(&issuer).await;
    assert!(jwks.find(&old).is_none());
    assert!(jwks.find(&new).is_some());
    // A retired key can still sign, for "key no longer published" tests.
    let stale = issuer.mint_with(
        json!({ "alg": "ES256", "kid": old }),
        json!({}),
        KeyChoice::Kid(old.clone()),
    );
    assert_eq!(decode_part(&stale, 0)["kid"], old.as_str());
}

#[tokio::test]
async fn jwks_faults_are_served_and_every_fetch_is_counted() {
    let issuer = start().await;
    assert_eq!(issuer.jwks_requests(), 0);

    issuer.set_jwks_down(true);
    let response = reqwest::get(issuer.jwks_uri()).await.unwrap();
    assert_eq!(response.status(), 503);

    issuer.set_jwks_down(false);
    issuer.set_jwks_body(Some(b"{not json".to_vec()));
    let body = reqwest::get(issuer.jwks_uri())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"{not json");

    issuer.set_jwks_body(None);
    assert_eq!(fetch_jwks(&issuer).await.keys.len(), 3);
    assert_eq!(issuer.jwks_requests(), 3);
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let issuer = start().await;
    let addr = issuer.addr();
    issuer.shutdown();
    // The accept loop notices on its next poll; wait for the refusal with a deadline.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::task::yield_now().await;
    }
}

#[test]
fn percent_decoding_handles_plus_escapes_and_rejects_broken_ones() {
    assert_eq!(percent_decode("a+b%3Ac%2f").as_deref(), Some("a b:c/"));
    assert_eq!(percent_decode("%E2%9C%93").as_deref(), Some("✓"));
    for broken in ["%", "%4", "%zz", "%+f", "%FF"] {
        assert_eq!(percent_decode(broken), None, "{broken}");
    }
}
