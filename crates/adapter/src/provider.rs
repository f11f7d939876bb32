//! One request to one provider: the URL, headers and body its kind wants, the exchange with a
//! timeout, and the answer sorted into a [`Turn`] or a [`ProviderError`] that says whether another
//! try may help. Owns no retry or fallback (see `routing`).

use scopegate_core::error::error_chain;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::anthropic;
use super::config::{ProviderConfig, ProviderKind};
use super::openai::{self, ModelRequest, Turn};
use super::stream::ProviderStream;
use scopegate_core::client::HttpClient;

/// Largest provider answer read; a completion is kilobytes, this bounds a misbehaving server.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Largest error body read: only its message is kept.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Why a provider did not answer with a turn.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderError {
    /// 429 or 5xx: worth another try, here or at the next target.
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        message: String,
    },
    /// No answer within the provider's timeout.
    Timeout,
    /// Could not connect or the connection broke.
    Connect(String),
    /// The provider refused the adapter's own credentials (401 or 403): a problem of this
    /// provider's key, not of the caller's request, so the next target is tried at once.
    Auth { status: StatusCode, message: String },
    /// The provider refused the request itself (4xx other than 429): another target would most
    /// likely refuse it too, so it goes back to the caller.
    Rejected { status: StatusCode, message: String },
    /// An answer the adapter cannot read.
    Invalid(String),
}

impl ProviderError {
    /// What may help after this failure: another try at the same target, the next target, or
    /// nothing (the request itself was refused or not understood).
    pub fn next_step(&self) -> NextStep {
        match self {
            ProviderError::Status { .. } | ProviderError::Timeout | ProviderError::Connect(_) => {
                NextStep::Retry
            }
            ProviderError::Auth { .. } => NextStep::NextTarget,
            ProviderError::Rejected { .. } | ProviderError::Invalid(_) => NextStep::GiveUp,
        }
    }

    /// Bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ProviderError::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                "rate_limited"
            }
            ProviderError::Status { .. } => "server_error",
            ProviderError::Timeout => "timeout",
            ProviderError::Connect(_) => "connect",
            ProviderError::Auth { .. } => "auth_failed",
            ProviderError::Rejected { .. } => "rejected",
            ProviderError::Invalid(_) => "invalid_response",
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderError::Status {
                status, message, ..
            }
            | ProviderError::Auth { status, message }
            | ProviderError::Rejected { status, message } => write!(f, "{status}: {message}"),
            ProviderError::Timeout => f.write_str("timed out"),
            ProviderError::Connect(e) => write!(f, "connection failed: {e}"),
            ProviderError::Invalid(e) => write!(f, "unreadable answer: {e}"),
        }
    }
}

/// What the routing walk does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try the same target again after a pause, then the next one.
    Retry,
    /// Go to the next target without retrying this one.
    NextTarget,
    /// Stop: no other target would answer differently.
    GiveUp,
}

/// A configured provider with the client it is reached through.
pub struct Provider {
    pub config: ProviderConfig,
    client: HttpClient,
}

impl Provider {
    pub fn new(config: ProviderConfig, client: HttpClient) -> Self {
        Provider { config, client }
    }

    /// Sends `request` (whose `model` is this provider's model name) and reads the answer.
    pub async fn complete(&self, request: &ModelRequest) -> Result<Turn, ProviderError> {
        let exchange = async {
            let response = self.send(request, false).await?;
            Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ProviderError::Connect(e.to_string()))
                .map(|body| body.to_bytes())
        };
        let body = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| ProviderError::Timeout)??;
        match self.config.kind {
            ProviderKind::Anthropic => anthropic::parse_response(&body),
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
                openai::parse_provider_response(&body)
            }
        }
        .map_err(ProviderError::Invalid)
    }

    /// Sends `request` with streaming on and returns once the provider has accepted it (a
    /// refusal is an error here, so the walk can still fall back); the answer is then read as it
    /// arrives, with the provider's timeout as the longest silence between two pieces.
    pub async fn open_stream(
        &self,
        request: &ModelRequest,
    ) -> Result<ProviderStream, ProviderError> {
        let response = tokio::time::timeout(self.config.timeout, self.send(request, true))
            .await
            .map_err(|_| ProviderError::Timeout)??;
        Ok(ProviderStream::new(
            response.into_body(),
            self.config.kind,
            self.config.timeout,
        ))
    }

    /// One exchange up to a successful status; any other status is read into its error.
    async fn send(
        &self,
        request: &ModelRequest,
        stream: bool,
    ) -> Result<http::Response<Incoming>, ProviderError> {
        let http_request = self.build(request, stream)?;
        let response = self
            .client
            .request(http_request)
            .await
            .map_err(|e| ProviderError::Connect(error_chain(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(parse_retry_after);
        let body = Limited::new(response.into_body(), MAX_ERROR_BYTES)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = error_message(&body);
        Err(
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                ProviderError::Status {
                    status,
                    retry_after,
                    message,
                }
            } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                ProviderError::Auth { status, message }
            } else {
                ProviderError::Rejected { status, message }
            },
        )
    }

    fn build(
        &self,
        request: &ModelRequest,
        stream: bool,
    ) -> Result<Request<Full<Bytes>>, ProviderError> {
        let config = &self.config;
        let (path, body) = match config.kind {
            ProviderKind::Anthropic => (
                "/v1/messages",
                anthropic::request_body(request, config.max_tokens, stream).map_err(|e| {
                    ProviderError::Rejected {
                        status: StatusCode::BAD_REQUEST,
                        message: e,
                    }
                })?,
            ),
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => (
                "/chat/completions",
                openai::provider_body(request, stream, config.kind == ProviderKind::OpenAi),
            ),
        };
        let accept = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", config.base_url))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, accept);
        if let Some(key) = &config.api_key {
            builder = match config.kind {
                ProviderKind::Anthropic => builder
                    .header("x-api-key", key)
                    .header("anthropic-version", &config.anthropic_version),
                _ => builder.header(header::AUTHORIZATION, format!("Bearer {key}")),
            };
        } else if config.kind == ProviderKind::Anthropic {
            builder = builder.header("anthropic-version", &config.anthropic_version);
        }
        builder
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| ProviderError::Invalid(format!("cannot build the request: {e}")))
    }
}

/// `Retry-After` in seconds (the form providers send); an HTTP date is ignored.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The provider's own error message when its body has one (OpenAI and Anthropic both put it at
/// `error.message`), else the start of the body.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_ignores_dates() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(parse_retry_after(&v("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(&v("0.5")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_retry_after(&v("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }

    #[test]
    fn only_rate_limits_server_errors_timeouts_and_connect_failures_are_retried_and_auth_falls_back()
     {
        let status = |code: u16| ProviderError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: None,
            message: String::new(),
        };
        assert_eq!(status(429).next_step(), NextStep::Retry);
        assert_eq!(status(503).next_step(), NextStep::Retry);
        assert_eq!(ProviderError::Timeout.next_step(), NextStep::Retry);
        assert_eq!(
            ProviderError::Connect("refused".into()).next_step(),
            NextStep::Retry
        );
        let rejected = ProviderError::Rejected {
            status: StatusCode::BAD_REQUEST,
            message: String::new(),
        };
        assert_eq!(rejected.next_step(), NextStep::GiveUp);
        assert_eq!(
            ProviderError::Invalid("x".into()).next_step(),
            NextStep::GiveUp
        );
        assert_eq!(status(429).reason(), "rate_limited");
        let auth = ProviderError::Auth {
            status: StatusCode::UNAUTHORIZED,
            message: String::new(),
        };
        assert_eq!(auth.next_step(), NextStep::NextTarget);
        assert_eq!(auth.reason(), "auth_failed");
    }

    #[test]
    fn error_message_comes_from_the_error_object() {
        assert_eq!(
            error_message(br#"{"error":{"message":"overloaded","type":"x"}}"#),
            "overloaded"
        );
        assert_eq!(error_message(b"plain"), "plain");
    }
}
