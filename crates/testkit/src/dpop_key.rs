//! A DPoP client's key (RFC 9449): the key pair a client binds its tokens to and the proofs it
//! signs with it, for the tests and the benches. Owns the client's side only; checking proofs
//! belongs to `scopegate_core::auth`.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::issuer::unix_now;
use crate::keys::SigningKey;

/// An ES256 key pair held by a client.
pub struct DpopKey {
    key: SigningKey,
    /// The public JWK as a proof carries it: the key's members only, no `kid` or `use`.
    public: Map<String, Value>,
    jti: AtomicU64,
}

impl DpopKey {
    /// A fresh P-256 key.
    ///
    /// # Panics
    /// When key generation fails, which it does not with the bundled crypto.
    pub fn generate() -> DpopKey {
        let key = SigningKey::generate_es256("dpop").expect("P-256 key generation");
        let public = ["kty", "crv", "x", "y"]
            .into_iter()
            .filter_map(|m| Some((m.to_owned(), key.jwk.get(m)?.clone())))
            .collect();
        DpopKey {
            key,
            public,
            jti: AtomicU64::new(0),
        }
    }

    /// The RFC 7638 thumbprint: what a bound token carries as `cnf.jkt`.
    pub fn thumbprint(&self) -> String {
        scopegate_core::auth::jwk_thumbprint(&self.public).expect("an EC key has a thumbprint")
    }

    /// The public JWK.
    pub fn public_jwk(&self) -> Value {
        Value::Object(self.public.clone())
    }

    /// The claims of a valid proof for `token` sent as `htm` to `htu`: a fresh `jti`, `iat` now,
    /// `ath` the token's hash.
    pub fn claims(&self, htm: &str, htu: &str, token: &str) -> Value {
        let n = self.jti.fetch_add(1, Ordering::Relaxed);
        let ath = URL_SAFE_NO_PAD.encode(scopegate_core::auth::sha256(token.as_bytes()));
        json!({
            "jti": format!("{}-{n}", self.thumbprint()),
            "htm": htm,
            "htu": htu,
            "iat": unix_now(),
            "ath": ath,
        })
    }

    /// A valid proof (header `typ: dpop+jwt`, `alg: ES256`, this key's `jwk`).
    pub fn proof(&self, htm: &str, htu: &str, token: &str) -> String {
        self.sign(self.header(), self.claims(htm, htu, token))
    }

    /// The header of a valid proof, for tests that change one member.
    pub fn header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk() })
    }

    /// Signs `header` and `claims` as given with this key.
    pub fn sign(&self, header: Value, claims: Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.key.encoding, self.key.alg)
                .expect("signing with a generated key does not fail");
        format!("{message}.{signature}")
    }
}
