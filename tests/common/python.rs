//! The official MCP Python SDK 2.x server (`tests/python/mcp_sdk_server.py`) as an upstream, for
//! the tests that need it (run by `.ci/python-sdk.sh` with `--ignored`, `SCOPEGATE_PYTHON`
//! naming a Python that has the SDK).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the server process however the test ends.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn python() -> String {
    std::env::var("SCOPEGATE_PYTHON")
        .expect("SCOPEGATE_PYTHON names a Python with the MCP SDK 2.x: run .ci/python-sdk.sh")
}

/// Starts the SDK server on a port of its choosing and returns it with its base URL
/// (`http://127.0.0.1:PORT`, the MCP endpoint at `/mcp`), read from the line uvicorn logs once
/// it listens.
pub fn start_server() -> (Server, String) {
    let mut child = Command::new(python())
        .args(["tests/python/mcp_sdk_server.py", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (lines, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("http://127.0.0.1:") {
                let url = line[at..].split_whitespace().next().unwrap().to_string();
                let _ = lines.send(url);
            }
        }
    });
    let base = listening
        .recv_timeout(Duration::from_secs(60))
        .expect("the SDK server listens within a minute");
    (server, base)
}
