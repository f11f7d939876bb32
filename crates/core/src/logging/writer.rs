//! The log writer: a thread of its own that takes finished lines off a bounded queue and writes
//! them out in batches, so a request never waits on a `write` to stderr. Owns the queue, the
//! thread and how they meet; not what a line says (`json_line`) nor how audit lines are sealed
//! (`audit_chain`, the output it writes through).
//!
//! Under load the thread gathers rather than being called: after a batch of more than one line it
//! pauses for [`GATHER`] before it looks again, and a line queued meanwhile wakes nobody. Woken per
//! line instead (what a writer blocked on its queue is), every request paid a cross-thread wake-up
//! and the writer a context switch, which at 4 connections was about one context switch in three
//! of the whole process. A lone line (a quiet proxy) is written at once.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer lets lines gather after a busy batch: short enough that a line is on
/// stderr well within a scrape interval, long enough that at full load one write carries a few
/// hundred lines.
const GATHER: Duration = Duration::from_millis(5);

/// How long dropping the guard waits for the queued lines to be written.
const FINISH_WAIT: Duration = Duration::from_secs(1);

/// Lines that found the queue full, and waited for room (with them, whatever the logging thread
/// was doing: on a per-core worker, every request on that core).
static QUEUE_WAITS: AtomicU64 = AtomicU64::new(0);

/// How many lines have waited for room in the queue since the process started.
pub fn queue_waits() -> u64 {
    QUEUE_WAITS.load(Ordering::Relaxed)
}

enum Message {
    Line(Vec<u8>),
    /// Write out what came before, then stop.
    Finish,
}

/// Hands lines to the writer thread; what the subscriber writes through.
#[derive(Clone)]
pub struct Queue {
    sender: SyncSender<Message>,
}

/// Stops the writer when dropped, after what was queued before is written out (waiting up to
/// [`FINISH_WAIT`]).
pub struct Finish {
    sender: SyncSender<Message>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread over `out`, with room for `capacity` lines in its queue.
pub fn start<W: Write + Send + 'static>(
    out: W,
    capacity: usize,
    name: &str,
) -> std::io::Result<(Queue, Finish)> {
    let (sender, receiver) = mpsc::sync_channel(capacity);
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || write_out(receiver, out))?;
    Ok((
        Queue {
            sender: sender.clone(),
        },
        Finish {
            sender,
            thread: Some(thread),
        },
    ))
}

/// The writer thread: a batch at a time until finished (or every sender is gone).
fn write_out<W: Write>(receiver: Receiver<Message>, mut out: W) {
    while let Ok(first) = receiver.recv() {
        let mut lines = 0usize;
        let mut finish = write_one(&mut out, first, &mut lines);
        while !finish {
            match receiver.try_recv() {
                Ok(message) => finish = write_one(&mut out, message, &mut lines),
                Err(_) => break,
            }
        }
        // Nowhere to report a failed write to but the log itself.
        let _ = out.flush();
        if finish {
            return;
        }
        if lines > 1 {
            std::thread::sleep(GATHER);
        }
    }
    let _ = out.flush();
}

/// Writes a line; true for the message to finish.
fn write_one<W: Write>(out: &mut W, message: Message, lines: &mut usize) -> bool {
    match message {
        Message::Line(line) => {
            *lines += 1;
            let _ = out.write_all(&line);
            false
        }
        Message::Finish => true,
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Behind every line queued so far; waits for room like a line would, but not forever.
        let (done, waiting) = mpsc::sync_channel::<()>(1);
        let sender = self.sender.clone();
        let _ = std::thread::Builder::new().spawn(move || {
            if sender.send(Message::Finish).is_ok() {
                let _ = thread.join();
            }
            let _ = done.send(());
        });
        match waiting.recv_timeout(FINISH_WAIT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                eprintln!(
                    "log writer did not finish within {FINISH_WAIT:?}; some lines may be lost"
                );
            }
        }
    }
}

/// One line as the subscriber formats it, queued whole when written.
pub struct LineWriter<'a> {
    queue: &'a Queue,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.queue.send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Queue {
    /// Queues `line`, waiting for room when the queue is full (never dropping it: an audit
    /// trail with holes is worse than a slower request).
    pub(super) fn send(&self, line: Vec<u8>) {
        match self.sender.try_send(Message::Line(line)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(message)) => {
                QUEUE_WAITS.fetch_add(1, Ordering::Relaxed);
                let _ = self.sender.send(message);
            }
        }
    }
}

impl<'a> MakeWriter<'a> for Queue {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { queue: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Captured;

    #[test]
    fn every_queued_line_is_written_in_order_before_the_guard_is_gone() {
        let out = Captured::default();
        let (queue, finish) = start(out.clone(), 4, "test-log").unwrap();
        // More lines than the queue holds: the later ones wait for room, none is dropped.
        let before = queue_waits();
        for i in 0..1000 {
            queue
                .make_writer()
                .write_all(format!("{i}\n").as_bytes())
                .unwrap();
        }
        drop(finish);
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let expected: String = (0..1000).map(|i| format!("{i}\n")).collect();
        assert_eq!(written, expected);
        assert!(queue_waits() > before, "a full queue is counted");
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_company() {
        let out = Captured::default();
        let (queue, _finish) = start(out.clone(), 16, "test-log").unwrap();
        queue.make_writer().write_all(b"alone\n").unwrap();
        // The writer flushes as soon as its queue runs empty; nothing else is coming.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.0.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was never written"
            );
            std::thread::yield_now();
        }
        assert_eq!(out.0.lock().unwrap().as_slice(), b"alone\n");
    }
}
