//! State that several replicas of the proxy share (`[state]`): rate-limit buckets, the
//! bindings of session and task handles, keys used once (DPoP proofs' `jti`s) and first-use tool
//! pins, kept in Redis or Valkey when `backend = "redis"` and in each process otherwise. Owns the
//! settings, the connection, and what a failing store means for a request (`on_error`: fall back
//! to this process's own state, or refuse with 503); not the buckets, bindings, keys and pins
//! themselves, whose modules (`ratelimit`, `session`, `once`, `integrity`) ask this one and keep
//! the local state. Verified tokens never come here: they stay in the local cache.

use crate::env::{Env as _, ProcessEnv};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus::IntCounter;
use redis::RedisResult;

use crate::metrics::Metrics;

mod once;
mod redis_store;

pub use once::OnceKeys;
pub use redis_store::RedisStore;

/// Every key's prefix when `key_prefix` is not set: several deployments can share one server.
pub const DEFAULT_KEY_PREFIX: &str = "scopegate:";
/// How long one operation may take before `on_error` applies: a healthy Redis on the same
/// network answers in well under a millisecond, and every request may wait this long at worst.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// At most one warning per this period about a failing store, however many requests fail.
const WARNING_PERIOD: Duration = Duration::from_secs(60);

/// The validated `[state]` table.
#[derive(Debug, Clone)]
pub struct StateSettings {
    pub backend: Backend,
    pub key_prefix: String,
    pub timeout: Duration,
    pub on_error: OnError,
}

impl Default for StateSettings {
    fn default() -> Self {
        StateSettings {
            backend: Backend::Memory,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            on_error: OnError::Local,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Backend {
    /// Each process keeps its own (the default: right for a sidecar, one replica per pod).
    Memory,
    Redis(RedisSettings),
}

/// Where the Redis server is. Its `Debug` never shows the URL, which may hold a password.
#[derive(Clone)]
pub struct RedisSettings {
    pub url: UrlSource,
    /// An environment variable holding the password (or ACL user's password), when the URL
    /// does not carry one.
    pub password_env: Option<String>,
    /// Extra CA bundle (PEM) for `rediss://`, in place of the public roots.
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone)]
pub enum UrlSource {
    /// `url = "redis://…"`, checked when the config was read.
    Inline(String),
    /// `url_env = "NAME"`: read at start-up, so a Secret can supply the whole URL.
    Env(String),
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = match &self.url {
            UrlSource::Inline(_) => "(inline, not shown)".to_owned(),
            UrlSource::Env(name) => format!("${name}"),
        };
        f.debug_struct("RedisSettings")
            .field("url", &url)
            .field("password_env", &self.password_env)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What a request that needs the shared state gets while the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// This process's own state stands in: limits hold per replica, handles bound here work
    /// here. Counted and logged; the proxy stays ready.
    Local,
    /// Refused with 503: no request is let through on a guess.
    Deny,
}

/// A URL the `[state]` table accepts: `redis://` or `rediss://` (TLS) with a host. The message
/// never repeats the URL, which may carry a password.
pub fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("must be a redis:// or rediss:// URL (a unix socket is not supported)".into());
    }
    redis::IntoConnectionInfo::into_connection_info(url)
        .map(drop)
        .map_err(|_| "not a valid redis:// URL (redis://[user:password@]host[:port][/db])".into())
}

/// The operations on the shared store, the `op` label of `scopegate_state_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    RateLimit = 0,
    HandleCheck = 1,
    HandleBind = 2,
    HandleRelease = 3,
    SetIfAbsent = 4,
    /// A tool's first-use pin written (or the one already there read back).
    PinRecord = 5,
    /// The first-use pins read, when a tool listing is asked for.
    PinRead = 6,
}

impl Op {
    pub const ALL: [Op; 7] = [
        Op::RateLimit,
        Op::HandleCheck,
        Op::HandleBind,
        Op::HandleRelease,
        Op::SetIfAbsent,
        Op::PinRecord,
        Op::PinRead,
    ];

    pub fn as_str(self) -> &'static str {
        crate::metrics::STATE_OPS[self as usize]
    }
}

/// The shared store could not answer and `on_error = "deny"`: the request gets 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// How one operation on the shared store went, as its caller must act on it.
pub enum Attempt<T> {
    /// The store answered.
    Done(T),
    /// It did not (counted, logged); use this process's own state.
    Local,
    /// It did not, and nothing may stand in for it.
    Unavailable,
}

/// The shared store with its failure policy. Cheap to share: one per proxy.
pub struct SharedState {
    store: RedisStore,
    timeout: Duration,
    on_error: OnError,
    /// Resolved per op ahead of time, indexed by `Op as usize`.
    errors: [IntCounter; Op::ALL.len()],
    warnings: Throttle,
}

/// Says yes at most once per [`WARNING_PERIOD`], however many threads ask.
struct Throttle {
    /// Milliseconds after `started` of the last yes, plus one (0: none yet).
    last: AtomicU64,
    started: Instant,
}

impl Throttle {
    fn new() -> Throttle {
        Throttle {
            last: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn ready(&self) -> bool {
        self.ready_at(self.started.elapsed().as_millis() as u64 + 1)
    }

    /// `now`: milliseconds after `started`, plus one.
    fn ready_at(&self, now: u64) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARNING_PERIOD.as_millis() as u64;
        due && self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

impl SharedState {
    /// The shared store `settings` name, or `None` for `backend = "memory"`. Does not wait for
    /// Redis: a server that is down now is reached once it is up. `connections`: how many
    /// multiplexed connections to keep (one per worker, within a small bound). Must be called
    /// inside a Tokio runtime.
    pub fn connect(
        settings: &StateSettings,
        metrics: &Metrics,
        connections: usize,
    ) -> anyhow::Result<Option<Arc<SharedState>>> {
        let Backend::Redis(redis) = &settings.backend else {
            return Ok(None);
        };
        let client = client(redis)?;
        let store = RedisStore::new(client, &settings.key_prefix, settings.timeout, connections)
            .context("state: cannot set up the Redis connection")?;
        tracing::info!(on_error = ?settings.on_error, timeout = ?settings.timeout, "shared state on Redis");
        Ok(Some(Arc::new(SharedState {
            store,
            timeout: settings.timeout,
            on_error: settings.on_error,
            errors: Op::ALL.map(|op| metrics.state_errors.with_label_values(&[op.as_str()])),
            warnings: Throttle::new(),
        })))
    }

    pub fn store(&self) -> &RedisStore {
        &self.store
    }

    /// Runs one operation within the timeout. A failure or a timeout is counted under `op`,
    /// logged at most once a minute, and answered by `on_error`.
    pub async fn attempt<T>(
        &self,
        op: Op,
        operation: impl Future<Output = RedisResult<T>>,
    ) -> Attempt<T> {
        let error = match tokio::time::timeout(self.timeout, operation).await {
            Ok(Ok(value)) => return Attempt::Done(value),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        self.errors[op as usize].inc();
        self.warn(op, &error);
        match self.on_error {
            OnError::Local => Attempt::Local,
            OnError::Deny => Attempt::Unavailable,
        }
    }

    /// Logs a failure unless one was logged less than [`WARNING_PERIOD`] ago.
    fn warn(&self, op: Op, error: &str) {
        if self.warnings.ready() {
            // The error comes from the client library, which never includes the password.
            tracing::warn!(
                op = op.as_str(),
                %error,
                on_error = ?self.on_error,
                "shared state (Redis) failing; next warning in a minute at the earliest, count in scopegate_state_errors_total"
            );
        }
    }
}

/// What `run --check-config` checks of `[state]`: the variables it names are set and its CA
/// file loads, as at start-up; Redis itself is not contacted.
pub fn check_settings(settings: &StateSettings) -> anyhow::Result<()> {
    match &settings.backend {
        Backend::Memory => Ok(()),
        Backend::Redis(redis) => client(redis).map(drop),
    }
}

/// The client for `settings`: the URL from the config or the environment, the password from
/// the environment when named, the extra CA when given.
fn client(settings: &RedisSettings) -> anyhow::Result<redis::Client> {
    let url = match &settings.url {
        UrlSource::Inline(url) => url.clone(),
        UrlSource::Env(name) => ProcessEnv
            .var(name)
            .with_context(|| format!("state.url_env: environment variable {name} is not set"))?,
    };
    // The URL itself is never put into a message: it may carry a password.
    check_url(&url).map_err(|e| anyhow::anyhow!("state.url: {e}"))?;
    let mut info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
        .map_err(|_| anyhow::anyhow!("state.url: not a redis:// or rediss:// URL"))?;
    if let Some(name) = &settings.password_env {
        let password = ProcessEnv.var(name).with_context(|| {
            format!("state.password_env: environment variable {name} is not set")
        })?;
        let redis_info = info.redis_settings().clone().set_password(password);
        info = info.set_redis_settings(redis_info);
    }
    if url.starts_with("rediss://") {
        // redis-rs builds its TLS config with the process's default provider: make it ours.
        let _ = rustls::crypto::CryptoProvider::install_default(
            crate::tls::crypto_provider().as_ref().clone(),
        );
    }
    let client = match &settings.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("state.ca_file: cannot read {}", path.display()))?;
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
        }
        None => redis::Client::open(info),
    };
    client.map_err(|e| anyhow::anyhow!("state: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_store_is_warned_about_at_most_once_a_minute() {
        let throttle = Throttle::new();
        assert!(throttle.ready_at(5));
        assert!(!throttle.ready_at(6));
        assert!(!throttle.ready_at(5 + 59_999));
        assert!(throttle.ready_at(5 + 60_000));
        assert!(!throttle.ready_at(5 + 60_001));
    }

    #[test]
    fn only_redis_urls_are_accepted_and_the_message_never_repeats_one() {
        assert_eq!(check_url("redis://127.0.0.1:6379/0"), Ok(()));
        assert_eq!(check_url("rediss://user:pw@redis.example:6380"), Ok(()));
        for bad in [
            "http://:pw@redis:6379",
            "redis+unix:///tmp/r.sock",
            "redis://:pw@/0x",
        ] {
            let message = check_url(bad).unwrap_err();
            assert!(!message.contains("pw"), "{message}");
        }
    }
}
