//! A JWKS and discovery server on `127.0.0.1:0` whose answers can be switched (body, status,
//! delay, `Cache-Control`) and whose hits are counted: the peer of the key-fetching tests, which
//! need failure modes a real issuer does not offer on request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Serves `/jwks` and `/.well-known/openid-configuration` for issuer `http://127.0.0.1:port`.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    /// Dropping the server stops it (the accept loop and its connections).
    _stop: oneshot::Sender<()>,
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
    pub async fn start(keys: Vec<Value>) -> Self {
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
        let service = service_fn(move |req| answer(Arc::clone(&served), addr, req));
        let (stop, stopped) = oneshot::channel();
        crate::serve::spawn(listener, service, stopped, || {});
        Self {
            addr,
            state,
            _stop: stop,
        }
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
        *self.state.body.lock().unwrap() = body.to_owned();
    }

    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
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
