//! The access token for tool calls: an OAuth client-credentials grant (RFC 6749 §4.4) with the
//! RFC 8707 `resource` parameter, cached and refreshed before it expires, fetched by one caller at a
//! time (the others wait for that fetch), retried with backoff. Owns the token; not its use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::config::OAuthConfig;
use scopegate_core::client::HttpClient;

/// A token is replaced this long before it expires, so a tool call never leaves with a token that
/// runs out in flight.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(60);
/// Fetch attempts before a tool call fails for want of a token.
const FETCH_ATTEMPTS: u32 = 3;
/// First pause between fetch attempts, doubled each time.
const FETCH_BACKOFF: Duration = Duration::from_millis(200);
/// Time allowed for one token request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime assumed when the token endpoint gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Cached {
    token: Arc<str>,
    refresh_at: Instant,
}

pub struct TokenManager {
    config: OAuthConfig,
    client: HttpClient,
    /// Held across a fetch: that is the single flight.
    cached: Mutex<Option<Cached>>,
    fetches: std::sync::atomic::AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

impl TokenManager {
    pub fn new(config: OAuthConfig, client: HttpClient) -> Self {
        TokenManager {
            config,
            client,
            cached: Mutex::new(None),
            fetches: Default::default(),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.config.client_id
    }

    /// Successful and failed token requests so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A token that is valid for at least [`REFRESH_BEFORE_EXPIRY`] (or half its lifetime).
    pub async fn token(&self) -> Result<Arc<str>, String> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch_with_retries().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Drops `token` if it is still the cached one: scopegate refused it (401), so the next call
    /// fetches another with the same credentials.
    pub async fn invalidate(&self, token: &str) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &*c.token == token) {
            *cached = None;
        }
    }

    async fn fetch_with_retries(&self) -> Result<Cached, String> {
        let mut pause = FETCH_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.fetch().await {
                Ok(cached) => return Ok(cached),
                Err(error) if attempt >= FETCH_ATTEMPTS => {
                    return Err(format!("token endpoint: {error}"));
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, "token request failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
            }
        }
    }

    async fn fetch(&self) -> Result<Cached, String> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if !self.config.scopes.is_empty() {
            form.push(("scope", self.config.scopes.join(" ")));
        }
        if let Some(resource) = &self.config.resource {
            form.push(("resource", resource.clone()));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        // RFC 6749 §2.3.1: Basic with the form-encoded id and secret.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form_encode(&self.config.client_id),
            form_encode(&self.config.client_secret)
        ));
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.config.token_url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| "timed out".to_owned())??;
        if !status.is_success() {
            // The error body of RFC 6749 §5.2 holds no secret; show its start.
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(format!("{status}: {text}"));
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| format!("unreadable answer: {e}"))?;
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME);
        Ok(Cached {
            token: parsed.access_token.into(),
            refresh_at: started + refresh_after(lifetime),
        })
    }
}

/// How long after a fetch the token is replaced: [`REFRESH_BEFORE_EXPIRY`] before it expires, or
/// at half its life when it lives less than twice that.
pub fn refresh_after(lifetime: Duration) -> Duration {
    if lifetime >= REFRESH_BEFORE_EXPIRY * 2 {
        lifetime - REFRESH_BEFORE_EXPIRY
    } else {
        lifetime / 2
    }
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_a_minute_early_or_at_half_life() {
        assert_eq!(
            refresh_after(Duration::from_secs(300)),
            Duration::from_secs(240)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(
            form_encode("https://x.test/mcp a:b"),
            "https%3A%2F%2Fx.test%2Fmcp+a%3Ab"
        );
    }
}
