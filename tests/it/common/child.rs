//! A server of another ecosystem (an SDK's sample or test server) run as a child process for a
//! test: started on a port of its own choosing, its URL read from the line it logs once it
//! listens, killed however the test ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the process when dropped.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` and waits (up to a minute) for the first `http://127.0.0.1:PORT…` it writes
/// on standard error, which it returns as it was written.
pub fn start_listening(mut command: Command) -> (Running, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server process starts");
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let (lines, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("http://127.0.0.1:") {
                let url = line[at..].split_whitespace().next().unwrap().to_string();
                let _ = lines.send(url);
            }
        }
    });
    let url = listening
        .recv_timeout(Duration::from_secs(60))
        .expect("the server listens within a minute");
    (running, url)
}
