//! Test helpers: signing keys with their public JWKs, tokens with any header and claims, and a
//! JWKS/discovery server on `127.0.0.1:0` whose answers can be switched and whose hits are counted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};

use crate::client::HttpClient;

pub(super) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

pub(super) fn client() -> HttpClient {
    crate::client::build(None, Duration::from_secs(2)).unwrap()
}

/// An unsigned token (fixed fake signature) for header and shape checks.
pub(super) fn raw_token(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// A signing key and its public JWK.
pub(super) struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    pub(super) fn es256(kid: &str) -> Self {
        let der = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_der();
        Self::from_der(kid, Algorithm::ES256, EncodingKey::from_ec_der(&der))
    }

    pub(super) fn es384(kid: &str) -> Self {
        let der = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .unwrap()
            .serialize_der();
        Self::from_der(kid, Algorithm::ES384, EncodingKey::from_ec_der(&der))
    }

    pub(super) fn ed25519(kid: &str) -> Self {
        let der = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .unwrap()
            .serialize_der();
        let encoding = EncodingKey::from_ed_der(&der);
        // PKCS#8 v2 documents end with the public key, which the crate's JWK helper does not read.
        let jwk = match Jwk::from_encoding_key(&encoding, Algorithm::EdDSA) {
            Ok(jwk) => serde_json::to_value(jwk).unwrap(),
            Err(_) => json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA",
                "x": URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]),
            }),
        };
        Self::with_jwk(kid, Algorithm::EdDSA, encoding, jwk)
    }

    /// RSA generation is slow; one key per test binary, under whatever kid.
    pub(super) fn rs256(kid: &str) -> Self {
        static DER: OnceLock<Vec<u8>> = OnceLock::new();
        let der = DER.get_or_init(|| {
            let pkcs8 = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
                .unwrap()
                .serialize_der();
            pkcs1_from_pkcs8(&pkcs8)
        });
        Self::from_der(kid, Algorithm::RS256, EncodingKey::from_rsa_der(der))
    }

    fn from_der(kid: &str, alg: Algorithm, encoding: EncodingKey) -> Self {
        let jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, alg).unwrap()).unwrap();
        Self::with_jwk(kid, alg, encoding, jwk)
    }

    fn with_jwk(kid: &str, alg: Algorithm, encoding: EncodingKey, mut jwk: Value) -> Self {
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
        }
    }

    /// The public JWK, with `kid`, `alg` and `use`.
    pub(super) fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    pub(super) fn decoding_key(&self) -> DecodingKey {
        let jwk: Jwk = serde_json::from_value(self.jwk.clone()).unwrap();
        DecodingKey::from_jwk(&jwk).unwrap()
    }

    /// A token with header `{"alg", "kid"}` and these claims.
    pub(super) fn mint(&self, claims: Value) -> String {
        self.mint_with_header(json!({"alg": alg_name(self.alg), "kid": self.kid}), claims)
    }

    pub(super) fn mint_with_header(&self, header: Value, claims: Value) -> String {
        self.sign_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// Signs exactly these header and payload bytes (for duplicate keys and other oddities).
    pub(super) fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{message}.{signature}")
    }
}

/// The crate signs with PKCS#1 RSA keys; rcgen writes PKCS#8, whose last field
/// (`privateKey OCTET STRING`) is the PKCS#1 document.
fn pkcs1_from_pkcs8(der: &[u8]) -> Vec<u8> {
    fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (b[0], b[1] as usize);
        let (len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            (
                b[2..2 + n].iter().fold(0, |acc, &x| acc << 8 | x as usize),
                2 + n,
            )
        };
        (tag, &b[header..header + len], &b[header + len..])
    }
    let (_, info, _) = tlv(der);
    let (_, _, rest) = tlv(info); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04, "PKCS#8 privateKey is an OCTET STRING");
    key.to_vec()
}

fn alg_name(alg: Algorithm) -> String {
    serde_json::to_value(alg)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Serves `/jwks` and `/.well-known/openid-configuration` for issuer `http://127.0.0.1:port`.
pub(super) struct JwksServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

struct ServerState {
    body: Mutex<String>,
    cache_control: Mutex<Option<String>>,
    status: AtomicU16,
    delay_ms: AtomicU64,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
}

impl JwksServer {
    pub(super) async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState {
            body: Mutex::new(json!({ "keys": keys }).to_string()),
            cache_control: Mutex::new(None),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
        });
        let served = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(Arc::clone(&state), addr, req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, state }
    }

    pub(super) fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(super) fn jwks_uri(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub(super) fn set_keys(&self, keys: Vec<Value>) {
        self.set_body(&json!({ "keys": keys }).to_string());
    }

    pub(super) fn set_body(&self, body: &str) {
        *self.state.body.lock().unwrap() = body.to_owned();
    }

    pub(super) fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub(super) fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub(super) fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    pub(super) fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub(super) fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }
}

async fn answer(
    state: Arc<ServerState>,
    addr: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::builder();
    let body = match req.uri().path() {
        "/jwks" => {
            state.jwks_hits.fetch_add(1, Ordering::SeqCst);
            let delay = state.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            response = response.status(state.status.load(Ordering::SeqCst));
            if let Some(cc) = state.cache_control.lock().unwrap().clone() {
                response = response.header("cache-control", cc);
            }
            state.body.lock().unwrap().clone()
        }
        "/.well-known/openid-configuration" => {
            state.discovery_hits.fetch_add(1, Ordering::SeqCst);
            json!({"issuer": format!("http://{addr}"), "jwks_uri": format!("http://{addr}/jwks")})
                .to_string()
        }
        _ => {
            response = response.status(404);
            String::new()
        }
    };
    Ok(response.body(Full::new(Bytes::from(body))).unwrap())
}
