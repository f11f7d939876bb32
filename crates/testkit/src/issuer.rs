//! A dev OAuth issuer on loopback: signing keys generated at start, a JWKS endpoint, discovery
//! metadata and a client-credentials token endpoint (RFC 6749 §4.4, RFC 8707 `resource`).
//! For tests it also signs any header and claims as given, rotates and retires keys, and breaks
//! its JWKS endpoint on request. It owns issuing only; verifying tokens belongs to `scopegate_core::auth`.
//! Plain HTTP, no persistence, keys live only as long as the process: never a production IdP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

mod token;

use crate::jwks_server::JwksEndpoint;
use crate::keys::{SigningKey, alg_name};
use crate::serve::{self, BoxBody};
pub use token::form_encode;
pub(crate) use token::{authenticate_client, json_response, read_form, token};

/// Lifetime of issued access tokens unless configured: five minutes, short like a real IdP's, so
/// a demo run shows a token expiring without waiting long.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(300);

/// The secret of the demo clients. Public on purpose: the demo issuer is for loopback use only.
pub const DEMO_CLIENT_SECRET: &str = "demo-secret";

/// The client the proxy authenticates as at the introspection endpoint.
pub const INTROSPECTION_CLIENT: &str = "scopegate";

/// How long a JWKS response may be cached; long enough that a cache is exercised, short enough
/// that a rotation shows up within a demo session.
const JWKS_MAX_AGE: &str = "max-age=300";

/// A token request body larger than this is refused; real ones are a few hundred bytes.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// One OAuth client the issuer knows.
#[derive(Debug, Clone)]
pub struct DemoClient {
    /// The `client_id`, also the tokens' `sub`.
    pub id: String,
    /// The client secret, checked by value (constant-time comparison is pointless for a dev issuer).
    pub secret: String,
    /// The scopes this client may ask for; all of them when its request names none.
    pub scopes: Vec<String>,
    /// The `tenant` claim of its tokens, for policies that keep each tenant to its own data;
    /// `None`: no such claim.
    pub tenant: Option<String>,
}

/// How the issuer is set up.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The `iss` of issued tokens; default `http://<bound addr>`, so discovery from it works.
    pub issuer_url: Option<String>,
    /// The `aud` of issued tokens; a request's `resource` must equal it.
    pub audience: String,
    /// The clients allowed to ask for tokens.
    pub clients: Vec<DemoClient>,
    /// Lifetime of issued tokens; default [`DEFAULT_TOKEN_TTL`].
    pub token_ttl: Duration,
    /// Where to listen; default `127.0.0.1:0`, a free port on loopback.
    pub bind: SocketAddr,
}

impl IssuerConfig {
    /// The demo's setup: `support-agent` may read customers, create tickets and calculate account
    /// values; `readonly-agent` may only read customers; `acme-agent` may read customers and its
    /// tokens say `tenant = "acme"`. All use [`DEMO_CLIENT_SECRET`].
    pub fn demo(audience: impl Into<String>) -> Self {
        let client = |id: &str, scopes: &[&str]| DemoClient {
            id: id.to_owned(),
            secret: DEMO_CLIENT_SECRET.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            tenant: None,
        };
        Self {
            issuer_url: None,
            audience: audience.into(),
            clients: vec![
                client(
                    "support-agent",
                    &["customer:read", "ticket:create", "account:calculate"],
                ),
                client("readonly-agent", &["customer:read"]),
                DemoClient {
                    tenant: Some("acme".to_owned()),
                    ..client("acme-agent", &["customer:read"])
                },
                // The resource server's own client, for token introspection (RFC 7662 §2.1).
                client(INTROSPECTION_CLIENT, &[]),
            ],
            token_ttl: DEFAULT_TOKEN_TTL,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// Which key signs a token made by [`IssuerHandle::mint_with`] or [`IssuerHandle::sign_raw`].
#[derive(Debug, Clone)]
pub enum KeyChoice {
    /// The current default key (ES256, the newest after a [`IssuerHandle::rotate`]).
    Default,
    /// The key with this `kid`, published or retired.
    Kid(String),
    /// The first published key of this algorithm (ES256, RS256 or EdDSA).
    Alg(Algorithm),
    /// An ES256 key that is never published: its tokens fail verification.
    Foreign,
    /// HS256 with this secret, e.g. a published public key's bytes, for algorithm-confusion tests.
    Hmac(Vec<u8>),
    /// No signature at all: the token ends in a bare `.`, as for `alg: none`.
    Unsigned,
}

/// Starts issuers.
pub struct Issuer;

impl Issuer {
    /// Generates the keys (ES256 default, RS256, EdDSA), binds `config.bind` and serves until the
    /// last handle is dropped or [`IssuerHandle::shutdown`] is called.
    pub async fn start(config: IssuerConfig) -> anyhow::Result<IssuerHandle> {
        let listener = TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("binding the demo issuer to {}", config.bind))?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let issuer = config.issuer_url.clone().unwrap_or_else(|| base.clone());

        let keys = vec![
            SigningKey::generate_es256("demo-es256-1")?,
            SigningKey::generate_rs256("demo-rs256-1")?,
            SigningKey::generate_ed25519("demo-eddsa-1")?,
        ];
        let state = Arc::new(State {
            base: base.clone(),
            issuer: issuer.clone(),
            audience: config.audience,
            clients: config
                .clients
                .into_iter()
                .map(|c| (c.id.clone(), c))
                .collect(),
            token_ttl: config.token_ttl,
            ring: Mutex::new(KeyRing {
                default_kid: keys[0].kid.clone(),
                published: keys,
                retired: Vec::new(),
                generation: 1,
            }),
            foreign: SigningKey::generate_es256("demo-foreign-1")?,
            jwks_endpoint: JwksEndpoint::new(Some(JWKS_MAX_AGE)),
            jti: AtomicU64::new(0),
            opaque: Default::default(),
        });

        let (stop, stopped) = oneshot::channel();
        let service = {
            let state = state.clone();
            hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            })
        };
        serve::spawn(listener, service, stopped, || {});
        tracing::debug!(%addr, %issuer, "demo issuer listening");

        Ok(IssuerHandle {
            inner: Arc::new(HandleInner {
                state,
                addr,
                jwks_uri: format!("{base}/jwks"),
                token_url: format!("{base}/token"),
                stop: Mutex::new(Some(stop)),
            }),
        })
    }
}

/// A running issuer. Clones share it; it stops when the last clone is dropped.
#[derive(Clone)]
pub struct IssuerHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    state: Arc<State>,
    addr: SocketAddr,
    jwks_uri: String,
    token_url: String,
    /// Dropping the sender (with this struct) stops the accept loop too.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl IssuerHandle {
    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.inner.state.issuer
    }

    /// The `aud` of issued tokens.
    pub fn audience(&self) -> &str {
        &self.inner.state.audience
    }

    /// `http://<addr>/jwks`.
    pub fn jwks_uri(&self) -> &str {
        &self.inner.jwks_uri
    }

    /// `http://<addr>/token`.
    pub fn token_url(&self) -> &str {
        &self.inner.token_url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Stops serving; open connections are closed.
    pub fn shutdown(&self) {
        if let Some(stop) = lock(&self.inner.stop).take() {
            let _ = stop.send(());
        }
    }

    /// The `kid` of the key that [`mint`](Self::mint) and the token endpoint sign with.
    pub fn default_kid(&self) -> String {
        lock(&self.inner.state.ring).default_kid.clone()
    }

    /// The signing key a choice refers to (with its public JWK); `None` for an unknown `kid` and
    /// for [`KeyChoice::Hmac`] and [`KeyChoice::Unsigned`], which have none.
    pub fn key(&self, choice: &KeyChoice) -> Option<SigningKey> {
        self.inner.state.key(choice)
    }

    /// A token with `claims`, signed by the default key, header `{alg, typ: "at+jwt", kid}`.
    pub fn mint(&self, claims: Value) -> String {
        self.inner.state.mint(&claims)
    }

    /// Signs `header` and `claims` exactly as given (any `alg`, `kid`, `crit`, `jku`…) with the
    /// chosen key, which uses its own algorithm whatever the header says.
    ///
    /// # Panics
    /// When `key` names a key that does not exist: a test bug.
    pub fn mint_with(&self, header: Value, claims: Value, key: KeyChoice) -> String {
        let header = serde_json::to_vec(&header).expect("JSON value serialises");
        let claims = serde_json::to_vec(&claims).expect("JSON value serialises");
        self.sign_raw(&header, &claims, key)
    }

    /// Signs the given bytes as header and claims, for byte-exact malformed JSON (duplicate keys,
    /// trailing garbage, invalid UTF-8).
    ///
    /// # Panics
    /// When `key` names a key that does not exist: a test bug.
    pub fn sign_raw(&self, header: &[u8], claims: &[u8], key: KeyChoice) -> String {
        let message = || {
            format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            )
        };
        match &key {
            KeyChoice::Unsigned => format!("{}.", message()),
            KeyChoice::Hmac(secret) => {
                let message = message();
                let signature = jsonwebtoken::crypto::sign(
                    message.as_bytes(),
                    &EncodingKey::from_secret(secret),
                    Algorithm::HS256,
                )
                .expect("HMAC signing does not fail");
                format!("{message}.{signature}")
            }
            _ => self
                .inner
                .state
                .key(&key)
                .unwrap_or_else(|| panic!("no signing key for {key:?}"))
                .sign_raw(header, claims),
        }
    }

    /// A valid claim set for `sub`: this issuer and audience, `exp` in five minutes, `iat` and
    /// `nbf` now, `client_id` = `sub`, `scope` space-delimited, a fresh `jti`.
    pub fn claims_for(&self, sub: &str, scopes: &[&str]) -> Value {
        let state = &self.inner.state;
        let now = unix_now();
        json!({
            "iss": state.issuer,
            "sub": sub,
            "aud": state.audience,
            "exp": now + 300,
            "iat": now,
            "nbf": now,
            "jti": state.next_jti(),
            "client_id": sub,
            "scope": scopes.join(" "),
        })
    }

    /// Adds a new ES256 key, makes it the default and keeps the old ones published. Returns its `kid`.
    ///
    /// # Panics
    /// When key generation fails, which it does not with the bundled crypto.
    pub fn rotate(&self) -> String {
        let mut ring = lock(&self.inner.state.ring);
        ring.generation += 1;
        let key = SigningKey::generate_es256(format!("demo-es256-{}", ring.generation))
            .expect("P-256 key generation");
        let kid = key.kid.clone();
        ring.published.push(key);
        ring.default_kid = kid.clone();
        kid
    }

    /// Stops publishing the key `kid`; it can still sign through [`KeyChoice::Kid`]. Returns
    /// whether it was published.
    pub fn retire(&self, kid: &str) -> bool {
        let mut ring = lock(&self.inner.state.ring);
        let Some(at) = ring.published.iter().position(|k| k.kid == kid) else {
            return false;
        };
        let key = ring.published.remove(at);
        ring.retired.push(key);
        true
    }

    /// While `true`, the JWKS endpoint answers 503.
    pub fn set_jwks_down(&self, down: bool) {
        self.inner
            .state
            .jwks_endpoint
            .set_status(if down { 503 } else { 200 });
    }

    /// Serves these bytes as the JWKS (still `application/json`) instead of the real key set.
    pub fn set_jwks_body(&self, body: Option<Vec<u8>>) {
        self.inner.state.jwks_endpoint.set_body(body);
    }

    /// How many JWKS GETs arrived so far, answered or not.
    pub fn jwks_requests(&self) -> usize {
        self.inner.state.jwks_endpoint.hits()
    }

    /// The JWKS as currently published.
    pub fn jwks(&self) -> Value {
        self.inner.state.jwks()
    }
}

impl IssuerHandle {
    pub(super) fn state(&self) -> &State {
        &self.inner.state
    }
}

impl std::fmt::Debug for IssuerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerHandle")
            .field("addr", &self.inner.addr)
            .field("issuer", &self.inner.state.issuer)
            .finish_non_exhaustive()
    }
}

pub(super) struct State {
    /// `http://<bound addr>`, where the endpoints are.
    base: String,
    issuer: String,
    audience: String,
    clients: HashMap<String, DemoClient>,
    token_ttl: Duration,
    ring: Mutex<KeyRing>,
    foreign: SigningKey,
    /// The `/jwks` endpoint, switchable as [`crate::jwks_server::JwksServer`]'s is.
    jwks_endpoint: JwksEndpoint,
    jti: AtomicU64,
    /// Opaque tokens and the introspection endpoint's switches.
    pub(super) opaque: crate::issuer_opaque::OpaqueTokens,
}

struct KeyRing {
    published: Vec<SigningKey>,
    retired: Vec<SigningKey>,
    default_kid: String,
    /// Numbers the `kid`s that rotation makes.
    generation: u32,
}

impl State {
    fn key(&self, choice: &KeyChoice) -> Option<SigningKey> {
        let ring = lock(&self.ring);
        let mut all = ring.published.iter().chain(&ring.retired);
        match choice {
            KeyChoice::Default => all.find(|k| k.kid == ring.default_kid).cloned(),
            KeyChoice::Kid(kid) => all.find(|k| &k.kid == kid).cloned(),
            KeyChoice::Alg(alg) => ring.published.iter().find(|k| k.alg == *alg).cloned(),
            KeyChoice::Foreign => Some(self.foreign.clone()),
            KeyChoice::Hmac(_) | KeyChoice::Unsigned => None,
        }
    }

    fn mint(&self, claims: &Value) -> String {
        let key = self
            .key(&KeyChoice::Default)
            .expect("the default key is never retired from the ring");
        let header = json!({ "alg": alg_name(key.alg), "typ": "at+jwt", "kid": key.kid });
        key.mint_with_header(header, claims.clone())
    }

    fn jwks(&self) -> Value {
        let ring = lock(&self.ring);
        json!({ "keys": ring.published.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    pub(super) fn next_jti(&self) -> String {
        let n = self.jti.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{nanos:x}-{n}")
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A poisoned lock only means a test panicked while holding it; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn route(state: &State, req: Request<Incoming>) -> Response<BoxBody> {
    let path = req.uri().path();
    let is_metadata = path == "/.well-known/oauth-authorization-server"
        || path.starts_with("/.well-known/oauth-authorization-server/")
        || path.ends_with("/.well-known/openid-configuration");
    match (req.method(), path) {
        (&Method::GET, "/jwks") => {
            state
                .jwks_endpoint
                .answer(|| state.jwks().to_string().into_bytes())
                .await
        }
        (&Method::GET, _) if is_metadata => metadata(state),
        (&Method::POST, "/token") => match token(state, req).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        },
        (&Method::POST, "/introspect") => crate::issuer_opaque::introspect(state, req).await,
        (_, "/jwks" | "/token" | "/introspect") => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({ "error": "method_not_allowed" }),
        ),
        _ if is_metadata => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({ "error": "method_not_allowed" }),
        ),
        _ => json_response(StatusCode::NOT_FOUND, &json!({ "error": "not_found" })),
    }
}

fn metadata(state: &State) -> Response<BoxBody> {
    // Endpoints point at where this server listens, whatever `issuer` is set to.
    let base = &state.base;
    json_response(
        StatusCode::OK,
        &json!({
            "issuer": state.issuer,
            "jwks_uri": format!("{base}/jwks"),
            "token_endpoint": format!("{base}/token"),
            "introspection_endpoint": format!("{base}/introspect"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["token"],
            "scopes_supported": scopes_supported(state),
            "id_token_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
            "subject_types_supported": ["public"],
        }),
    )
}

fn scopes_supported(state: &State) -> Vec<String> {
    let mut scopes: Vec<String> = state
        .clients
        .values()
        .flat_map(|c| c.scopes.iter().cloned())
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

#[cfg(test)]
#[path = "issuer_tests.rs"]
mod tests;
