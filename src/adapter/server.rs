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
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::chat::{ChatError, Engine};
use super::openai::{self, parse_caller_request};
use super::provider::ProviderError;

/// Largest chat request body read; long conversations are hundreds of KiB at most.
const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// The header naming the `provider/model` that gave the answer.
pub const TARGET_HEADER: &str = "x-scopegate-target";
/// The header counting the targets given up on before it.
pub const FALLBACKS_HEADER: &str = "x-scopegate-fallbacks";

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Accepts connections on `listener` until `stop` turns true, serving `handle`.
pub fn serve<F, Fut>(listener: TcpListener, mut stop: watch::Receiver<bool>, handle: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
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
pub async fn api(engine: Arc<Engine>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(key) = &engine.config.api_key {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| constant_time_eq(p.as_bytes(), key.as_bytes())) {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                "Incorrect API key provided.",
            );
        }
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/v1/models") => models(&engine),
        (&Method::POST, "/v1/chat/completions") => chat(&engine, req).await,
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

async fn chat(engine: &Engine, req: Request<Incoming>) -> Response<Full<Bytes>> {
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
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                "request body too large or unreadable",
            );
        }
    };
    let request = match parse_caller_request(&body) {
        Ok(request) => request,
        Err(message) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                &message,
            );
        }
    };
    let (stream, include_usage) = (request.stream, request.include_usage);
    let answer = match engine.chat(request, &request_id).await {
        Ok(answer) => answer,
        Err(e) => return chat_error(&e),
    };
    let model = answer.target.to_string();
    let created = now();
    let mut response = if stream {
        let events =
            openai::completion_chunks(&request_id, created, &model, &answer.turn, include_usage);
        let mut response = Response::new(Full::new(Bytes::from(events.concat())));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    } else {
        let body = openai::completion_response(&request_id, created, &model, &answer.turn);
        json_response(StatusCode::OK, &body)
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&model) {
        headers.insert(TARGET_HEADER, value);
    }
    headers.insert(FALLBACKS_HEADER, HeaderValue::from(answer.fallbacks));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    response
}

/// Errors in OpenAI's shape, with a status a client library maps to its own exception types.
fn chat_error(e: &ChatError) -> Response<Full<Bytes>> {
    let message = e.to_string();
    match e {
        ChatError::UnknownModel(_) => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            &message,
        ),
        // A refusal of the request's content (a parameter the provider does not take, a context
        // too long) is the caller's to fix, so its status is passed on; everything else that
        // goes wrong at a provider is the adapter's upstream failing: 502, the provider named.
        ChatError::Provider {
            error: ProviderError::Rejected { status, .. },
            ..
        } if matches!(status.as_u16(), 400 | 413 | 422) => error(
            *status,
            "invalid_request_error",
            "provider_rejected",
            &message,
        ),
        ChatError::Provider {
            error: ProviderError::Timeout,
            ..
        } => error(
            StatusCode::GATEWAY_TIMEOUT,
            "api_error",
            "provider_timeout",
            &message,
        ),
        ChatError::Provider { error: failure, .. } => {
            let code = match failure {
                ProviderError::Auth { .. } => "provider_auth_failed",
                ProviderError::Status { status, .. }
                    if *status == StatusCode::TOO_MANY_REQUESTS =>
                {
                    "provider_rate_limited"
                }
                _ => "provider_unavailable",
            };
            error(StatusCode::BAD_GATEWAY, "api_error", code, &message)
        }
        ChatError::Tools(_) => error(
            StatusCode::BAD_GATEWAY,
            "api_error",
            "tools_unavailable",
            &message,
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
    json_response(
        status,
        &json!({ "error": { "message": message, "type": kind, "param": null, "code": code } }),
    )
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
