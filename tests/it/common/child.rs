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

/// Starts `command` and waits (up to a minute) for the first line it writes on standard output,
/// which it returns. Its standard input stays open while the process is held: a server that
/// stops at the end of its input cannot outlive the tests, even when they are killed.
pub fn start_announcing(mut command: Command) -> (Running, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server process starts");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let (lines, announced) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let _ = lines.send(line);
        // Whatever it writes later goes to the test's output, not into a closed pipe.
        for line in stdout.lines().map_while(Result::ok) {
            eprintln!("{line}");
        }
    });
    let line = announced
        .recv_timeout(Duration::from_secs(60))
        .expect("the server announces itself within a minute");
    assert!(
        !line.is_empty(),
        "the server exited before it announced itself"
    );
    (running, line)
}
