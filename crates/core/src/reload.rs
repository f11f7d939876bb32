//! Hot reload of the policy and the listener's certificate: files are polled for changes (which
//! survives Kubernetes ConfigMap and Secret updates, which swap a `..data` symlink, and editors
//! that write a new file and rename it over the old), and `SIGHUP` forces a policy re-read. A
//! new file that does not load is refused; what was serving keeps serving.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use crate::integrity::{Integrity, PinSet};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::proxy::Proxy;
use crate::tls::{self, CertStore};

/// What identifies a file's content cheaply: the resolved file's identity, size and mtime. A
/// symlink swap changes the inode; an in-place write changes mtime or size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(Vec<Option<(u64, u64, u64, SystemTime)>>);

async fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    use std::os::unix::fs::MetadataExt as _;
    let mut parts = Vec::with_capacity(paths.len());
    for path in paths {
        // `metadata` follows symlinks: the ConfigMap's `..data` swap shows as a new inode.
        let meta = tokio::fs::metadata(path).await.ok();
        parts.push(meta.and_then(|m| Some((m.dev(), m.ino(), m.len(), m.modified().ok()?))));
    }
    Fingerprint(parts)
}

/// Watches the policy file; reloads it on change and on `SIGHUP`. The file is fingerprinted
/// before this returns, so a change made right after start-up is not missed.
pub async fn watch_policy(
    proxy: Arc<Proxy>,
    path: PathBuf,
    every: Duration,
) -> anyhow::Result<JoinHandle<()>> {
    watch_file(path, every, move |path, forced| {
        let proxy = proxy.clone();
        async move { reload_policy(&proxy, &path, forced).await }
    })
    .await
}

/// Calls `reload` with the file's path whenever the file changes (polled every `every`) and on
/// `SIGHUP` (`forced`). Fingerprinted before this returns.
async fn watch_file<F, R>(
    path: PathBuf,
    every: Duration,
    reload: F,
) -> anyhow::Result<JoinHandle<()>>
where
    F: Fn(PathBuf, bool) -> R + Send + 'static,
    R: Future<Output = ()> + Send,
{
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let paths = [path.clone()];
    let mut last = fingerprint(&paths).await;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let forced = tokio::select! {
                _ = tick.tick() => false,
                _ = hangup.recv() => true,
            };
            let now = fingerprint(&paths).await;
            if !forced && now == last {
                continue;
            }
            last = now;
            reload(path.clone(), forced).await;
        }
    }))
}

/// Loads the policy at `path` and swaps it in if it differs from the one serving.
pub async fn reload_policy(proxy: &Proxy, path: &Path, forced: bool) {
    let metrics = proxy.metrics();
    let loaded = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Policy::load(&path)).await
    };
    match loaded {
        Ok(Ok(policy)) => {
            let current = proxy.policy();
            if policy.source_hash() == current.policy.source_hash() && !forced {
                return;
            }
            tracing::info!(file = %path.display(), hash = policy.source_hash(), "policy reloaded");
            proxy.replace_policy(policy);
            metrics.policy_reloads.with_label_values(&["success"]).inc();
        }
        Ok(Err(error)) => {
            tracing::error!(file = %path.display(), %error, "policy reload refused; the previous policy keeps serving");
            metrics.policy_reloads.with_label_values(&["failure"]).inc();
        }
        Err(error) => {
            tracing::error!(%error, "policy reload task failed");
            metrics.policy_reloads.with_label_values(&["failure"]).inc();
        }
    }
}

/// Watches the pins file like the policy (polled, and re-read on `SIGHUP`): a renewed pin is in
/// force at once; a file that does not load is refused and the pins in force stay.
pub async fn watch_pins(
    integrity: Arc<Integrity>,
    metrics: Arc<Metrics>,
    path: PathBuf,
    every: Duration,
) -> anyhow::Result<JoinHandle<()>> {
    watch_file(path, every, move |path, _| {
        let (integrity, metrics) = (integrity.clone(), metrics.clone());
        async move { reload_pins(&integrity, &metrics, path).await }
    })
    .await
}

async fn reload_pins(integrity: &Integrity, metrics: &Metrics, path: PathBuf) {
    let loaded = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || PinSet::load(&path)).await
    };
    match loaded {
        Ok(Ok(pins)) => {
            tracing::info!(file = %path.display(), tools = pins.len(), "pins reloaded");
            integrity.replace_pins(pins);
            metrics.pins_reloads.with_label_values(&["success"]).inc();
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "pins reload refused; the previous pins stay in force");
            metrics.pins_reloads.with_label_values(&["failure"]).inc();
        }
        Err(error) => {
            tracing::error!(%error, "pins reload task failed");
            metrics.pins_reloads.with_label_values(&["failure"]).inc();
        }
    }
}

/// Watches the certificate and key files; a renewed pair serves new handshakes, a broken one is
/// refused. Fingerprinted before this returns, like the policy.
pub async fn watch_certificate(
    certs: Arc<CertStore>,
    metrics: Arc<Metrics>,
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
) -> JoinHandle<()> {
    let paths = [cert.clone(), key.clone()];
    let mut last = fingerprint(&paths).await;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = fingerprint(&paths).await;
            if now == last {
                continue;
            }
            let (cert, key) = (cert.clone(), key.clone());
            let loaded =
                tokio::task::spawn_blocking(move || tls::load_certified_key(&cert, &key)).await;
            match loaded {
                Ok(Ok(pair)) => {
                    metrics.certificate_loaded(tls::not_after(&pair));
                    certs.replace(pair);
                    last = now;
                    metrics.tls_reloads.with_label_values(&["success"]).inc();
                    tracing::info!("certificate reloaded");
                }
                Ok(Err(error)) => {
                    // A pair written file by file can be caught half-way: `last` stays, so the
                    // next tick tries again.
                    metrics.tls_reloads.with_label_values(&["failure"]).inc();
                    tracing::error!(error = %format!("{error:#}"), "certificate reload refused; the previous certificate keeps serving");
                }
                Err(error) => tracing::error!(%error, "certificate reload task failed"),
            }
        }
    })
}
