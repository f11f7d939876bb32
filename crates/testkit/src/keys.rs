//! Signing keys for the issuer and the tests: generated ES256, ES384, RS256 and EdDSA keys with
//! their public JWKs, and tokens signed over exactly the header and claims given (including
//! malformed ones), so the verifier is tested against real signatures.

use std::sync::OnceLock;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};

/// Seconds since the epoch, as tokens count time.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// An unsigned token (a fixed fake signature) for header and shape checks.
pub fn raw_token(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A private signing key and its public JWK (with `kid`, `alg` and `use`).
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key stays out of debug output.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh ES256 (P-256) key.
    pub fn generate_es256(kid: impl Into<String>) -> anyhow::Result<Self> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating a P-256 key")?;
        Self::new(
            kid.into(),
            Algorithm::ES256,
            EncodingKey::from_ec_der(&pair.serialize_der()),
        )
    }

    /// A fresh RS256 key (RSA 2048).
    pub fn generate_rs256(kid: impl Into<String>) -> anyhow::Result<Self> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .context("generating an RSA 2048 key")?;
        // rcgen hands out PKCS#8; jsonwebtoken's RSA keys are the PKCS#1 structure inside it.
        let pkcs1 = pkcs8_private_key(&pair.serialize_der()).context("unwrapping the RSA key")?;
        Self::new(
            kid.into(),
            Algorithm::RS256,
            EncodingKey::from_rsa_der(&pkcs1),
        )
    }

    /// A fresh ES384 (P-384) key.
    pub fn generate_es384(kid: impl Into<String>) -> anyhow::Result<Self> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .context("generating a P-384 key")?;
        Self::new(
            kid.into(),
            Algorithm::ES384,
            EncodingKey::from_ec_der(&pair.serialize_der()),
        )
    }

    /// An RS256 key whose private half is generated once per process (RSA generation takes
    /// seconds), under whatever `kid`: for tests that need RSA but not a distinct key.
    pub fn shared_rs256(kid: impl Into<String>) -> anyhow::Result<Self> {
        static PKCS1: OnceLock<Vec<u8>> = OnceLock::new();
        let pkcs1 = match PKCS1.get() {
            Some(der) => der,
            None => {
                let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
                    .context("generating an RSA 2048 key")?;
                let der =
                    pkcs8_private_key(&pair.serialize_der()).context("unwrapping the RSA key")?;
                PKCS1.get_or_init(|| der)
            }
        };
        Self::new(
            kid.into(),
            Algorithm::RS256,
            EncodingKey::from_rsa_der(pkcs1),
        )
    }

    /// A fresh EdDSA (Ed25519) key.
    pub fn generate_ed25519(kid: impl Into<String>) -> anyhow::Result<Self> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .context("generating an Ed25519 key")?;
        // rcgen hands out PKCS#8 v2 (seed and public key); jsonwebtoken derives the JWK only from
        // the 48-byte v1 form, so rebuild that from the seed.
        let inner =
            pkcs8_private_key(&pair.serialize_der()).context("unwrapping the Ed25519 key")?;
        let (tag, seed, _) = scopegate_core::der::element(&inner).context("Ed25519 seed")?;
        anyhow::ensure!(tag == 0x04 && seed.len() == 32, "unexpected Ed25519 seed");
        let mut v1 = ED25519_PKCS8_V1_PREFIX.to_vec();
        v1.extend_from_slice(seed);
        Self::new(kid.into(), Algorithm::EdDSA, EncodingKey::from_ed_der(&v1))
    }

    fn new(kid: String, alg: Algorithm, encoding: EncodingKey) -> anyhow::Result<Self> {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).context("deriving the public JWK")?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let jwk = serde_json::to_value(&jwk)?;
        Ok(Self {
            kid,
            alg,
            encoding,
            jwk,
        })
    }

    /// The public JWK, with `kid`, `alg` and `use`.
    pub fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// The verifying half, as a verifier would build it from the published JWK.
    pub fn decoding_key(&self) -> anyhow::Result<DecodingKey> {
        let jwk: Jwk = serde_json::from_value(self.jwk.clone())?;
        Ok(DecodingKey::from_jwk(&jwk)?)
    }

    /// A token with header `{"alg", "kid"}` and these claims.
    pub fn mint(&self, claims: Value) -> String {
        self.mint_with_header(json!({"alg": alg_name(self.alg), "kid": self.kid}), claims)
    }

    /// A token with exactly this header and these claims.
    pub fn mint_with_header(&self, header: Value, claims: Value) -> String {
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// Signs exactly these header and payload bytes (for duplicate keys and other oddities).
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg)
            .expect("signing with a key this module generated");
        format!("{message}.{signature}")
    }
}

/// The PKCS#8 v1 header of an Ed25519 private key, up to the 32-byte seed (RFC 8410 §7).
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The `privateKey` octets of a PKCS#8 `PrivateKeyInfo` (RFC 5208 §5).
fn pkcs8_private_key(der: &[u8]) -> anyhow::Result<Vec<u8>> {
    let parse = || {
        let (0x30, info, _) = scopegate_core::der::element(der)? else {
            return None;
        };
        let (0x02, _version, rest) = scopegate_core::der::element(info)? else {
            return None;
        };
        let (0x30, _algorithm, rest) = scopegate_core::der::element(rest)? else {
            return None;
        };
        let (0x04, key, _) = scopegate_core::der::element(rest)? else {
            return None;
        };
        Some(key.to_vec())
    };
    parse().context("not a PKCS#8 private key")
}

/// The JWS name of an algorithm (`ES256`, `EdDSA`, ...).
pub fn alg_name(alg: Algorithm) -> String {
    match serde_json::to_value(alg) {
        Ok(Value::String(name)) => name,
        _ => format!("{alg:?}"),
    }
}
