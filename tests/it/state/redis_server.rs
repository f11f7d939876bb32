//! A real Redis (Debian's `redis-server`, installed by `.ci/redis.sh`) on a free loopback port,
//! owned by one test: started, stopped, paused and restarted on the same port, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a starting server may take to answer `PING`.
const READY_WITHIN: Duration = Duration::from_secs(10);

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    password: Option<String>,
    /// TLS only, with these files (`rediss://`).
    tls: Option<scopegate_testkit::certs::CertFiles>,
    dir: tempfile::TempDir,
    kept: Vec<tempfile::TempDir>,
}

/// The `redis-server` to run: `$REDIS_SERVER`, else the one on `PATH`.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        return path.into();
    }
    let found = Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .output()
        .expect("sh runs");
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        found.status.success() && !path.is_empty(),
        "redis-server not found: these tests need a real Redis (bash .ci/redis.sh installs it)"
    );
    path.into()
}

impl RedisServer {
    /// A server on a free port; `password`: `requirepass`.
    pub async fn start(password: Option<&str>) -> RedisServer {
        RedisServer::start_with(password, None).await
    }

    /// A server that speaks TLS alone, with a certificate for `localhost` from a CA of its own;
    /// the CA's file is `ca_file()`.
    pub async fn start_tls() -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = scopegate_testkit::certs::DevCa::generate()
            .and_then(|ca| ca.write_server_files(dir.path()))
            .expect("certificates");
        let mut server = RedisServer::start_with(None, Some(files)).await;
        server.keep(dir);
        server
    }

    pub fn ca_file(&self) -> &std::path::Path {
        &self.tls.as_ref().expect("a TLS server").ca
    }

    /// Keeps `dir` as long as the server.
    fn keep(&mut self, dir: tempfile::TempDir) {
        self.kept.push(dir);
    }

    async fn start_with(
        password: Option<&str>,
        tls: Option<scopegate_testkit::certs::CertFiles>,
    ) -> RedisServer {
        let mut dir = tempfile::tempdir().expect("temp dir");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut server = RedisServer {
                child: None,
                port,
                password: password.map(str::to_owned),
                tls: tls.clone(),
                dir,
                kept: Vec::new(),
            };
            if server.spawn().await {
                return server;
            }
            // The port was taken in between: another one.
            dir = server.take_dir();
        }
        panic!("redis-server did not start on any of five free ports");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.kill();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// `redis://` URL of the server, with its password when it has one.
    pub fn url(&self) -> String {
        if self.tls.is_some() {
            return format!("rediss://localhost:{}/0", self.port);
        }
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Starts the process on `self.port` and waits for its `PING`; false if it exited.
    async fn spawn(&mut self) -> bool {
        let mut command = Command::new(binary());
        command.args(["--bind", "127.0.0.1"]);
        match &self.tls {
            None => {
                command.arg("--port").arg(self.port.to_string());
            }
            Some(files) => {
                command
                    .args(["--port", "0", "--tls-port"])
                    .arg(self.port.to_string())
                    .arg("--tls-cert-file")
                    .arg(&files.cert)
                    .arg("--tls-key-file")
                    .arg(&files.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&files.ca)
                    .args(["--tls-auth-clients", "no"]);
            }
        }
        command
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let mut child = command.spawn().expect("redis-server starts");
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if child.try_wait().expect("wait").is_some() {
                return false;
            }
            if self.ping().await {
                self.child = Some(child);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server on port {} did not answer PING", self.port);
    }

    /// Whether the server answers `PING` (with its password); for a TLS server, whether it
    /// listens (Redis opens its port once it is ready).
    async fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        if self.tls.is_some() {
            return true;
        }
        let command = match &self.password {
            Some(password) => format!("AUTH {password}\r\nPING\r\n"),
            None => "PING\r\n".to_owned(),
        };
        if stream.write_all(command.as_bytes()).await.is_err() {
            return false;
        }
        let mut seen = Vec::new();
        let mut buffer = [0u8; 64];
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return false,
                Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
            if seen.windows(5).any(|w| w == b"+PONG") {
                return true;
            }
        }
        false
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server as a crash would (SIGKILL): its data is gone.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn().await,
            "redis-server did not restart on {}",
            self.port
        );
    }

    /// Freezes the process (SIGSTOP): connections stay open and nothing answers, as with a
    /// server that hangs or a network that drops packets.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server would not die of SIGKILL any later, but CONT does no harm.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}
