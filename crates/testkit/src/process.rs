//! The proxy as its own process, `scopegate run --config FILE`, for tests that need what only a
//! process has: its log lines on stderr, its signals (SIGTERM, SIGHUP), its exit code.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long a started proxy may take to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct ProxyProcess {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ProxyProcess {
    /// Starts `binary run --config config` with JSON logs and waits until `/readyz` answers 200
    /// on `admin_url`.
    pub async fn start(
        binary: &Path,
        config: &Path,
        admin_url: &str,
    ) -> anyhow::Result<ProxyProcess> {
        let mut child = Command::new(binary)
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().context("no stderr")?;
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut process = ProxyProcess { child, logs };
        process.wait_ready(admin_url).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, admin_url: &str) -> anyhow::Result<()> {
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let uri: http::Uri = format!("{admin_url}/readyz").parse()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("proxy exited with {status}: {}", self.logs().join("\n"));
            }
            if let Ok(response) = client.get(uri.clone()).await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!(
            "proxy not ready after {READY_TIMEOUT:?}: {}",
            self.logs().join("\n")
        )
    }

    /// The child's process id, for reading its memory use from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line the process wrote to stderr so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends a signal by name (`TERM`, `HUP`) with the system's `kill`.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{name} failed");
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("still running after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
