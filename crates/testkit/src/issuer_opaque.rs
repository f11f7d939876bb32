//! The dev issuer's opaque access tokens and its RFC 7662 introspection endpoint: tokens that
//! carry nothing themselves, whose claims only the issuer knows. For tests it counts the calls,
//! can slow down or fail the endpoint, and revokes tokens. Owns the opaque tokens only; the
//! signed ones are `issuer.rs`'s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::issuer::{IssuerHandle, State, authenticate_client, json_response, read_form};
use crate::serve::BoxBody;

/// The opaque tokens issued so far, by value, and the endpoint's test switches.
#[derive(Default)]
pub(super) struct OpaqueTokens {
    tokens: Mutex<HashMap<String, Value>>,
    calls: AtomicUsize,
    down: AtomicBool,
    /// Milliseconds each introspection answer waits (0: none).
    delay_ms: AtomicU64,
}

impl IssuerHandle {
    /// An opaque access token whose introspection answer is `{"active": true}` plus `claims`.
    pub fn mint_opaque(&self, claims: Value) -> String {
        let state = self.state();
        // Visible ASCII without dots: no JWS shape, so the proxy can only introspect it.
        let token = format!("opaque-{}", state.next_jti());
        lock(&state.opaque.tokens).insert(token.clone(), claims);
        token
    }

    /// Makes an opaque token inactive from now on.
    pub fn revoke_opaque(&self, token: &str) {
        lock(&self.state().opaque.tokens).remove(token);
    }

    /// Introspection requests received so far (answered or not).
    pub fn introspection_calls(&self) -> usize {
        self.state().opaque.calls.load(Ordering::SeqCst)
    }

    /// While `true`, the introspection endpoint answers 503.
    pub fn set_introspection_down(&self, down: bool) {
        self.state().opaque.down.store(down, Ordering::SeqCst);
    }

    /// Each introspection answer waits this long first: a burst of requests then overlaps.
    pub fn set_introspection_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state().opaque.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// `http://<addr>/introspect`.
    pub fn introspection_url(&self) -> String {
        format!("http://{}/introspect", self.addr())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// `POST /introspect` (RFC 7662 §2): the caller authenticates as a known client (Basic or form
/// fields); the answer is `active: false` for anything this issuer did not issue as opaque.
pub(super) async fn introspect(state: &State, req: Request<Incoming>) -> Response<BoxBody> {
    let opaque = &state.opaque;
    opaque.calls.fetch_add(1, Ordering::SeqCst);
    let delay = opaque.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if opaque.down.load(Ordering::SeqCst) {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "error": "temporarily_unavailable" }),
        );
    }
    let (parts, form) = match read_form(req).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    if let Err(error) = authenticate_client(state, &parts.headers, &form) {
        return error.into_response();
    }
    let answer = match form
        .get("token")
        .and_then(|t| lock(&opaque.tokens).get(t).cloned())
    {
        Some(Value::Object(mut claims)) => {
            claims.insert("active".into(), Value::Bool(true));
            Value::Object(claims)
        }
        _ => json!({ "active": false }),
    };
    let mut response = json_response(StatusCode::OK, &answer);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
    response
}
