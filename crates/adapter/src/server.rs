//! The adapter's two listeners: the OpenAI-compatible API (`POST /v1/chat/completions`,
//! `GET /v1/models`, optional static key) and the admin one (`/metrics`, `/healthz`, `/readyz`).
//! Owns HTTP: routing by path, the caller's key, bodies, SSE framing and the error shape; the
//! conversation itself is `chat`'s.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::chat::{ChatError, Engine};
use super::config::Target;
use super::openai::{self, CallerRequest, parse_caller_request};
use super::provider::ProviderError;
use super::relay::{ChannelBody, Relay};
use scopegate_core::accept::Listener;

/// Largest chat request body read; long conversations are hundreds of KiB at most.
const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// The header naming the `provider/model` that gave the answer.
pub const TARGET_HEADER: &str = "x-scopegate-target";
/// The header counting the targets given up on before it.
pub const FALLBACKS_HEADER: &str = "x-scopegate-fallbacks";

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The API listener's response body: whole, or a streamed answer as it is written.
pub type ApiBody = Either<Full<Bytes>, ChannelBody>;

/// Accepts connections on `listener` until `stop` turns true, serving `handle`.
pub fn serve<F, Fut, B>(listener: TcpListener, mut stop: watch::Receiver<bool>, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        let mut listener = Listener::new(listener, "adapter");
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                (stream, _) = listener.next() => {
                    let handle = handle.clone();
                    let service = service_fn(move |req| {
                        let handle = handle.clone();
                        async move { Ok::<_, Infallible>(handle(req).await) }
                    });
                    tokio::spawn(async move {
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        }
    });
}

/// The API listener's service.
pub async fn api(engine: Arc<Engine>, req: Request<Incoming>) -> Response<ApiBody> {
    if req.method() == Method::POST && req.uri().path() == "/v1/chat/completions" {
        if let Some(key) = &engine.config.api_key
            && !key_matches(&req, key)
        {
            return whole(wrong_key());
        }
        return chat(engine, req).await;
    }
    whole(other(&engine, req))
}

fn whole(response: Response<Full<Bytes>>) -> Response<ApiBody> {
    response.map(Either::Left)
}

fn key_matches(req: &Request<Incoming>, key: &str) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|p| constant_time_eq(p.as_bytes(), key.as_bytes()))
}

fn wrong_key() -> Response<Full<Bytes>> {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided.",
    )
}

/// Every path but the chat endpoint.
fn other(engine: &Engine, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(key) = &engine.config.api_key
        && !key_matches(&req, key)
    {
        return wrong_key();
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/v1/models") => models(engine),
        (_, "/v1/models" | "/v1/chat/completions") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            "method not allowed",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            "no such endpoint",
        ),
    }
}

fn models(engine: &Engine) -> Response<Full<Bytes>> {
    let data: Vec<Value> = engine
        .model_ids()
        .into_iter()
        .map(|(id, owner)| json!({ "id": id, "object": "model", "created": 0, "owned_by": owner }))
        .collect();
    json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

async fn chat(engine: Arc<Engine>, req: Request<Incoming>) -> Response<ApiBody> {
    let request_id = format!(
        "chatcmpl-{:x}{:06x}",
        now(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    );
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return whole(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                "request body too large or unreadable",
            ));
        }
    };
    let request = match parse_caller_request(&body) {
        Ok(request) => request,
        Err(message) => {
            return whole(error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                &message,
            ));
        }
    };
    if request.stream {
        return stream(engine, request, request_id).await;
    }
    let answer = match engine.chat(request, &request_id, None).await {
        Ok(answer) => answer,
        Err(e) => return whole(chat_error(&e)),
    };
    let model = answer.target.to_string();
    let body = openai::completion_response(&request_id, now(), &model, &answer.turn);
    let mut response = json_response(StatusCode::OK, &body);
    answer_headers(
        response.headers_mut(),
        &answer.target,
        answer.fallbacks,
        &request_id,
    );
    whole(response)
}

/// `stream: true`: the conversation runs in a task of its own that writes to the response body
/// as the providers answer. The head waits for the first provider to accept the request, so a
/// request that fails before any text is still a plain error with its status.
async fn stream(
    engine: Arc<Engine>,
    request: CallerRequest,
    request_id: String,
) -> Response<ApiBody> {
    let (mut relay, head, body) = Relay::new(request_id.clone(), now(), request.include_usage);
    let id = request_id.clone();
    let conversation = tokio::spawn(async move {
        match engine.chat(request, &id, Some(&mut relay)).await {
            Ok(answer) => {
                let _ = relay.finish(&answer).await;
                Ok(())
            }
            Err(e) if relay.started() => {
                let (_, kind, code) = error_kind(&e);
                let _ = relay.fail(error_body(kind, code, &e.to_string())).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    });
    let head = match head.await {
        Ok(head) => head,
        Err(_) => {
            // The conversation ended before any stream opened: its error is the answer.
            let response = match conversation.await {
                Ok(Err(e)) => chat_error(&e),
                _ => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    "internal",
                    "the conversation ended without an answer",
                ),
            };
            return whole(response);
        }
    };
    let mut response = Response::new(Either::Right(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    answer_headers(headers, &head.target, head.fallbacks, &request_id);
    response
}

fn answer_headers(headers: &mut HeaderMap, target: &Target, fallbacks: usize, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(&target.to_string()) {
        headers.insert(TARGET_HEADER, value);
    }
    headers.insert(FALLBACKS_HEADER, HeaderValue::from(fallbacks));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
    }
}

/// Errors in OpenAI's shape, with a status a client library maps to its own exception types.
fn chat_error(e: &ChatError) -> Response<Full<Bytes>> {
    let (status, kind, code) = error_kind(e);
    error(status, kind, code, &e.to_string())
}

/// The status, `type` and `code` of a conversation's failure.
fn error_kind(e: &ChatError) -> (StatusCode, &'static str, &'static str) {
    match e {
        ChatError::UnknownModel(_) => (
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
        ),
        // A refusal of the request's content (a parameter the provider does not take, a context
        // too long) is the caller's to fix, so its status is passed on; everything else that
        // goes wrong at a provider is the adapter's upstream failing: 502, the provider named.
        ChatError::Provider {
            error: ProviderError::Rejected { status, .. },
            ..
        } if matches!(status.as_u16(), 400 | 413 | 422) => {
            (*status, "invalid_request_error", "provider_rejected")
        }
        ChatError::Provider {
            error: ProviderError::Timeout,
            ..
        } => (StatusCode::GATEWAY_TIMEOUT, "api_error", "provider_timeout"),
        ChatError::Provider { error, .. } => {
            let code = match error {
                ProviderError::Auth { .. } => "provider_auth_failed",
                ProviderError::Status { status, .. }
                    if *status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    "provider_rate_limited"
                }
                _ => "provider_unavailable",
            };
            (StatusCode::BAD_GATEWAY, "api_error", code)
        }
        ChatError::Tools(_) => (StatusCode::BAD_GATEWAY, "api_error", "tools_unavailable"),
        // Only ever seen by a caller that is no longer there.
        ChatError::Disconnected => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "client_closed",
        ),
    }
}

/// The admin listener's service.
pub async fn admin(engine: Arc<Engine>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(engine.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/healthz" | "/readyz" => Response::new(Full::new(Bytes::from_static(b"ok\n"))),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

fn error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &error_body(kind, code, message))
}

/// OpenAI's error object, in a response body or a stream's last event.
fn error_body(kind: &str, code: &str, message: &str) -> Value {
    json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Compares without an early exit, so the key cannot be guessed byte by byte from timings.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bound addresses of a started adapter.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub api: SocketAddr,
    pub admin: SocketAddr,
}
