//! Forged and malformed JWS: jwt_tool's exploit modes (none, null and psychic signatures, key
//! confusion, spoofed and inline keys, kid injection), RFC 8725's algorithm rules, and
//! Wycheproof-style structural damage. Every one is a 401 `invalid_token`.

use jsonwebtoken::Algorithm;
use scopegate_testkit::issuer::KeyChoice;
use serde_json::{Value, json};

use super::{Refusal, all_pass, b64, check, invalid_token};
use crate::common::{self, TestSystem};

/// A tool call with `token` must be refused as `invalid_token` with `reason` and `description`.
pub async fn refused_token(
    t: &TestSystem,
    name: &str,
    token: &str,
    reason: &str,
    description: &str,
) -> Result<(), String> {
    let want = Refusal {
        status: 401,
        challenge: invalid_token(t, description),
        reason: reason.to_string(),
    };
    let request = t.post(Some(token), TestSystem::tool_call("get_customer_info", 7));
    check(t, name, request, &want, Some(token)).await
}

/// Replaces a token's signature segment.
fn with_signature(token: &str, signature: &str) -> String {
    let (message, _) = token.rsplit_once('.').unwrap();
    format!("{message}.{signature}")
}

const NOT_ALLOWED: &str = "algorithm not allowed";
const BAD_SIGNATURE: &str = "signature does not verify";
const EMPTY_SEGMENT: &str = "token has an empty segment";
const NOT_BASE64URL: &str = "token has characters outside base64url";
const EMBEDDED: &str = "embedded key not accepted";

#[tokio::test]
async fn jwt_tool_exploit_modes_are_refused() {
    let t = common::start().await;
    let issuer = &t.system.issuer;
    let claims = issuer.claims_for("tester", &super::ALL_SCOPES);
    let kid = issuer.default_kid();
    let signed = |header: Value| issuer.mint_with(header, claims.clone(), KeyChoice::Default);
    let unsigned = |header: Value| issuer.mint_with(header, claims.clone(), KeyChoice::Unsigned);
    let valid = issuer.mint(claims.clone());
    let es_jwk = issuer.key(&KeyChoice::Default).unwrap().jwk;
    let rsa_jwk = issuer.key(&KeyChoice::Alg(Algorithm::RS256)).unwrap().jwk;
    let rsa_kid = rsa_jwk["kid"].as_str().unwrap().to_string();
    let hmac = |secret: Vec<u8>, kid: &str| {
        issuer.mint_with(
            json!({ "alg": "HS256", "typ": "at+jwt", "kid": kid }),
            claims.clone(),
            KeyChoice::Hmac(secret),
        )
    };
    let foreign_jwk = issuer.key(&KeyChoice::Foreign).map(|k| k.jwk);

    let cases: Vec<(&str, String, &str, &str)> = vec![
        // alg none in its spellings, with and without a trailing signature.
        (
            "alg none, no signature",
            unsigned(json!({ "alg": "none" })),
            "malformed",
            EMPTY_SEGMENT,
        ),
        (
            "alg None, no signature",
            unsigned(json!({ "alg": "None", "kid": kid })),
            "malformed",
            EMPTY_SEGMENT,
        ),
        (
            "alg none, signature kept",
            signed(json!({ "alg": "none", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "alg None, signature kept",
            signed(json!({ "alg": "None", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "alg NONE, signature kept",
            signed(json!({ "alg": "NONE", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "alg nOnE, signature kept",
            signed(json!({ "alg": "nOnE", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "alg es256 (case folded)",
            signed(json!({ "alg": "es256", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "alg empty string",
            signed(json!({ "alg": "", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        // Null and empty signatures on a real header and claims.
        (
            "null signature (segment dropped)",
            with_signature(&valid, ""),
            "malformed",
            EMPTY_SEGMENT,
        ),
        (
            "signature of one zero byte",
            with_signature(&valid, "AA"),
            "bad_signature",
            BAD_SIGNATURE,
        ),
        // CVE-2022-21449: r = s = 0, raw and DER-encoded.
        (
            "psychic ECDSA r=s=0 (raw)",
            with_signature(&valid, &b64([0u8; 64])),
            "bad_signature",
            BAD_SIGNATURE,
        ),
        (
            "psychic ECDSA r=s=0 (DER)",
            with_signature(&valid, &b64([0x30, 6, 2, 1, 0, 2, 1, 0])),
            "bad_signature",
            BAD_SIGNATURE,
        ),
        (
            "signature bit flipped",
            flip_last_signature_byte(&valid),
            "bad_signature",
            BAD_SIGNATURE,
        ),
        (
            "signature truncated",
            truncate_signature(&valid),
            "bad_signature",
            BAD_SIGNATURE,
        ),
        (
            "signature from another token",
            splice_claims(&valid, &issuer.mint(issuer.claims_for("admin", &["admin"]))),
            "bad_signature",
            BAD_SIGNATURE,
        ),
        // Key confusion: HMAC keyed with what the JWKS publishes.
        (
            "HS256 keyed with the public JWK",
            hmac(es_jwk.to_string().into_bytes(), &kid),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "HS256 keyed with the RSA modulus",
            hmac(rsa_jwk["n"].as_str().unwrap().as_bytes().to_vec(), &rsa_kid),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "HS256 with an empty secret",
            hmac(Vec::new(), &kid),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "HS384 header",
            signed(json!({ "alg": "HS384", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "HS512 header",
            signed(json!({ "alg": "HS512", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "PS256 (not in the allow-list)",
            signed(json!({ "alg": "PS256", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        (
            "ES384 (not in the allow-list)",
            signed(json!({ "alg": "ES384", "kid": kid })),
            "algorithm_not_allowed",
            NOT_ALLOWED,
        ),
        // Algorithm substitution among allowed algorithms: the kid's key decides.
        (
            "RS256 header on the EC key's kid",
            signed(json!({ "alg": "RS256", "kid": kid })),
            "key_mismatch",
            "key with this kid does not fit the token's algorithm",
        ),
        (
            "ES256 header on the RSA key's kid",
            issuer.mint_with(
                json!({ "alg": "ES256", "kid": rsa_kid }),
                claims.clone(),
                KeyChoice::Alg(Algorithm::RS256),
            ),
            "key_mismatch",
            "key with this kid does not fit the token's algorithm",
        ),
        // Spoofed and inline keys.
        (
            "inline jwk with the attacker's key",
            issuer.mint_with(
                json!({ "alg": "ES256", "kid": kid, "jwk": foreign_jwk }),
                claims.clone(),
                KeyChoice::Foreign,
            ),
            "malformed",
            EMBEDDED,
        ),
        (
            "x5u to the attacker's certificate",
            signed(
                json!({ "alg": "ES256", "kid": kid, "x5u": "https://evil.example.com/cert.pem" }),
            ),
            "malformed",
            EMBEDDED,
        ),
        (
            "jku to the issuer's own host",
            signed(json!({ "alg": "ES256", "kid": kid, "jku": issuer.jwks_uri() })),
            "malformed",
            EMBEDDED,
        ),
        (
            "x5c is never read: attacker's key still fails",
            issuer.mint_with(
                json!({ "alg": "ES256", "kid": kid, "x5c": ["MIIBszCCAVmgAwIBAgIU"] }),
                claims.clone(),
                KeyChoice::Foreign,
            ),
            "bad_signature",
            BAD_SIGNATURE,
        ),
        (
            "no kid, attacker's key",
            issuer.mint_with(
                json!({ "alg": "ES256" }),
                claims.clone(),
                KeyChoice::Foreign,
            ),
            "bad_signature",
            BAD_SIGNATURE,
        ),
        // kid injection: the kid is a lookup key, never a path, query or URL.
        (
            "kid path traversal",
            signed(json!({ "alg": "ES256", "kid": "../../../../../../dev/null" })),
            "unknown_key",
            "no key with this kid",
        ),
        (
            "kid SQL injection",
            signed(json!({ "alg": "ES256", "kid": "x' UNION SELECT 'key';--" })),
            "unknown_key",
            "no key with this kid",
        ),
        (
            "kid command injection",
            signed(json!({ "alg": "ES256", "kid": "|/usr/bin/touch /tmp/x;" })),
            "unknown_key",
            "no key with this kid",
        ),
        (
            "kid empty string",
            signed(json!({ "alg": "ES256", "kid": "" })),
            "unknown_key",
            "no key with this kid",
        ),
        (
            "kid as a number",
            signed(json!({ "alg": "ES256", "kid": 1 })),
            "malformed",
            "header `kid` must be a string",
        ),
        (
            "kid null",
            signed(json!({ "alg": "ES256", "kid": null })),
            "malformed",
            "header `kid` must be a string",
        ),
        (
            "kid as an object",
            signed(json!({ "alg": "ES256", "kid": { "$ne": "" } })),
            "malformed",
            "header `kid` must be a string",
        ),
        // RFC 7515 crit with b64: false (RFC 7797) would change what is signed.
        (
            "b64 false listed in crit",
            signed(json!({ "alg": "ES256", "kid": kid, "b64": false, "crit": ["b64"] })),
            "crit_header",
            "critical header parameters are not supported",
        ),
    ];
    let mut results = Vec::new();
    for (name, token, reason, description) in &cases {
        results.push(refused_token(&t, name, token, reason, description).await);
    }
    all_pass(results);
}

#[tokio::test]
async fn structurally_broken_jws_is_refused() {
    let t = common::start().await;
    let issuer = &t.system.issuer;
    let claims = serde_json::to_vec(&issuer.claims_for("tester", &super::ALL_SCOPES)).unwrap();
    let kid = issuer.default_kid();
    let header = format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#);
    let raw = |header: &str, claims: &[u8]| {
        issuer.sign_raw(header.as_bytes(), claims, KeyChoice::Default)
    };
    let valid = raw(&header, &claims);
    let (h, rest) = valid.split_once('.').unwrap();
    let (p, s) = rest.split_once('.').unwrap();
    let not_object_claims = "claims is not a JSON object";

    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "padding on a segment",
            format!("{h}=.{p}.{s}"),
            "malformed",
            NOT_BASE64URL,
        ),
        (
            "standard base64 alphabet",
            format!("{h}.{p}+/.{s}"),
            "malformed",
            NOT_BASE64URL,
        ),
        (
            "whitespace inside",
            format!("{h}. {p}.{s}"),
            "malformed",
            NOT_BASE64URL,
        ),
        (
            "four segments",
            format!("{valid}.{s}"),
            "malformed",
            "token is not a compact JWS (three segments)",
        ),
        (
            "five segments (JWE shape)",
            format!("{h}.{p}.{p}.{p}.{s}"),
            "malformed",
            "token is not a compact JWS (three segments)",
        ),
        (
            "two segments",
            format!("{h}.{p}"),
            "malformed",
            "token is not a compact JWS (three segments)",
        ),
        (
            "empty header segment",
            format!(".{p}.{s}"),
            "malformed",
            EMPTY_SEGMENT,
        ),
        (
            "header of impossible base64 length",
            format!("A.{p}.{s}"),
            "malformed",
            "header is not base64url",
        ),
        (
            "header is a JSON array",
            raw(&format!(r#"["ES256","{kid}"]"#), &claims),
            "malformed",
            "header is not a JSON object",
        ),
        (
            "header is a JSON string",
            raw(r#""ES256""#, &claims),
            "malformed",
            "header is not a JSON object",
        ),
        (
            "header has trailing data",
            raw(&format!("{header}{{}}"), &claims),
            "malformed",
            "header is not a JSON object",
        ),
        (
            "header duplicate alg",
            raw(
                &format!(r#"{{"alg":"ES256","alg":"none","kid":"{kid}"}}"#),
                &claims,
            ),
            "malformed",
            "header has a duplicate key",
        ),
        (
            "header duplicate kid",
            raw(
                &format!(r#"{{"alg":"ES256","kid":"{kid}","kid":"other"}}"#),
                &claims,
            ),
            "malformed",
            "header has a duplicate key",
        ),
        (
            "header escaped duplicate alg",
            raw(
                &format!(r#"{{"alg":"ES256","\u0061lg":"HS256","kid":"{kid}"}}"#),
                &claims,
            ),
            "malformed",
            "header has a duplicate key",
        ),
        (
            "header alg as an array",
            raw(&format!(r#"{{"alg":["ES256"],"kid":"{kid}"}}"#), &claims),
            "malformed",
            "header `alg` must be a string",
        ),
        (
            "header without alg",
            raw(&format!(r#"{{"kid":"{kid}"}}"#), &claims),
            "malformed",
            "header has no `alg`",
        ),
        (
            "header with a huge number",
            raw(
                &format!(r#"{{"alg":"ES256","kid":"{kid}","n":1e999}}"#),
                &claims,
            ),
            "malformed",
            "header is not a JSON object",
        ),
        (
            "claims are a JSON array",
            raw(&header, b"[1,2]"),
            "malformed",
            not_object_claims,
        ),
        (
            "claims are a JSON string",
            raw(&header, br#""admin""#),
            "malformed",
            not_object_claims,
        ),
        (
            "claims are null",
            raw(&header, b"null"),
            "malformed",
            not_object_claims,
        ),
        (
            "claims duplicate scope",
            raw(&header, &duplicate_scope(&claims)),
            "malformed",
            "claims has a duplicate key",
        ),
        (
            "claims not UTF-8",
            raw(&header, b"{\"sub\":\"\xff\"}"),
            "malformed",
            not_object_claims,
        ),
    ];
    let mut results = Vec::new();
    for (name, token, reason, description) in &cases {
        results.push(refused_token(&t, name, token, reason, description).await);
    }
    all_pass(results);
}

/// Claims with a second `scope` that grants everything: a last-key-wins reader would see it.
fn duplicate_scope(claims: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(claims).unwrap();
    let body = text.strip_suffix('}').unwrap();
    format!(r#"{body},"scope":"admin customer:read ticket:create"}}"#).into_bytes()
}

fn flip_last_signature_byte(token: &str) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = engine.decode(signature).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    format!("{message}.{}", engine.encode(bytes))
}

fn truncate_signature(token: &str) -> String {
    let (message, signature) = token.rsplit_once('.').unwrap();
    // 32 characters: whole base64 quanta, so the decoder accepts it and the verifier decides.
    format!("{message}.{}", &signature[..32])
}

/// `token`'s header with `other`'s claims and `token`'s signature.
fn splice_claims(token: &str, other: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = other.split('.').nth(1).unwrap();
    parts.join(".")
}
