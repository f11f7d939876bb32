//! The switchable JWKS endpoint (body, status, delay, `Cache-Control`, a count of hits), which
//! the test issuer's `/jwks` answers through, and [`JwksServer`]: that endpoint on its own on
//! `127.0.0.1:0` with discovery beside it, serving whatever keys a key-fetching test gives it,
//! including failure modes a real issuer does not offer on request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{Response, StatusCode, header};
use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::serve::{BoxBody, full};

/// A JWKS endpoint whose answers can be switched and whose hits are counted.
pub(crate) struct JwksEndpoint {
    /// Served instead of the owner's key set when set.
    body: Mutex<Option<Vec<u8>>>,
    cache_control: Mutex<Option<String>>,
    status: AtomicU16,
    delay_ms: AtomicU64,
    hits: AtomicUsize,
}

impl JwksEndpoint {
    /// Answering 200 at once with the owner's key set and this `Cache-Control`.
    pub(crate) fn new(cache_control: Option<&str>) -> Self {
        Self {
            body: Mutex::new(None),
            cache_control: Mutex::new(cache_control.map(str::to_owned)),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            hits: AtomicUsize::new(0),
        }
    }

    /// The answer to a GET: after the delay, the status; on success the body set, else `keys()`
    /// (both as `application/json`, with the `Cache-Control`), and on failure an OAuth error
    /// object, as an IdP that is down sends.
    pub(crate) async fn answer(&self, keys: impl FnOnce() -> Vec<u8>) -> Response<BoxBody> {
        self.hits.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let status = StatusCode::from_u16(self.status.load(Ordering::SeqCst))
            .expect("set_status takes valid codes");
        let body = if status.is_success() {
            lock(&self.body).clone().unwrap_or_else(keys)
        } else {
            json!({ "error": "temporarily_unavailable" })
                .to_string()
                .into_bytes()
        };
        let mut response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json");
        if status.is_success()
            && let Some(value) = lock(&self.cache_control).as_deref()
        {
            response = response.header(header::CACHE_CONTROL, value);
        }
        response
            .body(full(body))
            .expect("the response parts are valid")
    }

    /// Serves these bytes instead of the key set; `None` serves the key set again.
    pub(crate) fn set_body(&self, body: Option<Vec<u8>>) {
        *lock(&self.body) = body;
    }

    /// Answers with this status (100-999); anything but 2xx carries an error object.
    pub(crate) fn set_status(&self, status: u16) {
        assert!(StatusCode::from_u16(status).is_ok(), "status {status}");
        self.status.store(status, Ordering::SeqCst);
    }

    pub(crate) fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub(crate) fn set_cache_control(&self, value: Option<&str>) {
        *lock(&self.cache_control) = value.map(str::to_owned);
    }

    /// How many GETs arrived so far, answered or not.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A poisoned lock only means a test panicked while holding it; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves `/jwks` and `/.well-known/openid-configuration` for issuer `http://127.0.0.1:port`.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    /// Dropping the server stops it (the accept loop and its connections).
    _stop: oneshot::Sender<()>,
}

struct ServerState {
    jwks: JwksEndpoint,
    discovery_hits: AtomicUsize,
}

impl JwksServer {
    /// Serves `{"keys": keys}`, with no `Cache-Control` until one is set.
    pub async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState {
            jwks: JwksEndpoint::new(None),
            discovery_hits: AtomicUsize::new(0),
        });
        let served = Arc::clone(&state);
        let service = service_fn(move |req| answer(Arc::clone(&served), addr, req));
        let (stop, stopped) = oneshot::channel();
        crate::serve::spawn(listener, service, stopped, || {});
        let server = Self {
            addr,
            state,
            _stop: stop,
        };
        server.set_keys(keys);
        server
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_uri(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        self.set_body(&json!({ "keys": keys }).to_string());
    }

    pub fn set_body(&self, body: &str) {
        self.state.jwks.set_body(Some(body.as_bytes().to_vec()));
    }

    pub fn set_status(&self, status: u16) {
        self.state.jwks.set_status(status);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.jwks.set_delay(delay);
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        self.state.jwks.set_cache_control(value);
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks.hits()
    }

    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }
}

async fn answer(
    state: Arc<ServerState>,
    addr: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<BoxBody>, Infallible> {
    Ok(match req.uri().path() {
        // The body is always set (`start` sets the keys), so the key set is never asked for.
        "/jwks" => state.jwks.answer(Vec::new).await,
        "/.well-known/openid-configuration" => {
            state.discovery_hits.fetch_add(1, Ordering::SeqCst);
            let document = json!({
                "issuer": format!("http://{addr}"),
                "jwks_uri": format!("http://{addr}/jwks"),
            });
            Response::new(full(document.to_string()))
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(full(""))
            .expect("the response parts are valid"),
    })
}
