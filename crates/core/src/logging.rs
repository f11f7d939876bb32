//! Log output: JSON lines by default (what a log pipeline ingests), text for people; the level
//! from `RUST_LOG`. Text is coloured only on a terminal, and never with `NO_COLOR` set.
//!
//! Lines are formatted on the thread that logs and written by a thread of their own, in batches
//! (`writer`): a request never waits on a `write` to stderr (one per audit line, at every
//! request), and under load many lines share one write. The queue is bounded and never drops:
//! when it is full, the logging thread waits, because an audit trail with holes is worse than a
//! slower request; such waits are counted (`scopegate_log_queue_waits_total`).

use std::ffi::OsString;
use std::fmt;
use std::io::{BufWriter, IsTerminal as _};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

mod json_line;
mod writer;

pub use writer::queue_waits;

/// Lines waiting to be written before a logging thread has to wait: a second or so of audit
/// lines at full load, and a bound on what a stalled stderr can make the queue hold (~2 MiB).
const QUEUED_LINES: usize = 4096;

/// Keeps the log writer running; dropping it writes out the queued lines (waiting up to a second
/// for that, which the small queue leaves ample room for). Hold it for as long as anything may
/// log.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _writer: Option<writer::Finish>,
}

/// The fields of a line written without a tracing event (the audit line): each named value is
/// written as the log's format writes a field. An absent value is simply not written.
pub trait LineFields {
    fn str(&mut self, name: &str, value: &str);
    fn u64(&mut self, name: &str, value: u64);
    fn f64(&mut self, name: &str, value: f64);
    /// A value written through its `Display`, as a string.
    fn display(&mut self, name: &str, value: &dyn fmt::Display);
}

/// The audit line's way out in the JSON format: straight onto the writer's queue, as the
/// formatter would have written its event, or nowhere when `RUST_LOG` turns the `audit` target
/// off. Unset (text logs, or `init` never called) the line goes out as a tracing event.
///
/// Written at every request: going through an event instead (the dispatcher, the filter, a
/// visitor call per field and a copy of the formatted line) cost about as much as formatting it.
static AUDIT: OnceLock<Option<writer::Queue>> = OnceLock::new();

/// Writes a `message` line on the `audit` target from `fields`, without a tracing event, when the
/// log is JSON; false when the line must go out as an event instead.
pub fn audit(message: &str, fields: impl FnOnce(&mut dyn LineFields)) -> bool {
    let Some(queue) = AUDIT.get() else {
        return false;
    };
    if let Some(queue) = queue
        && let Some(line) = audit_json(message, fields)
    {
        queue.send(line.into_bytes());
    }
    true
}

/// The JSON line `audit` queues: what the formatter writes for an `audit` event at `INFO`.
pub fn audit_json(message: &str, fields: impl FnOnce(&mut dyn LineFields)) -> Option<String> {
    let mut line = String::with_capacity(768);
    json_line::line(&mut line, &tracing::Level::INFO, "audit", |out| {
        out.str("message", message);
        fields(out);
    })
    .ok()?;
    Some(line)
}

/// Installs the global subscriber. `default_level` applies when `RUST_LOG` is unset.
pub fn init(json: bool, default_level: &str) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Audit lines are sealed into the hash chain on the writer thread, in the order they are
    // written.
    let output = crate::audit_chain::ChainWriter::new(
        BufWriter::with_capacity(64 * 1024, std::io::stderr()),
        crate::audit_chain::key_from_env().as_deref(),
    );
    // Without it there would be no audit trail: nothing may run.
    let (writer, guard) = writer::start(output, QUEUED_LINES, "scopegate-log")
        .expect("cannot start the log writer thread");
    let direct = writer.clone();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = if json {
        let result = builder.event_format(json_line::JsonLine).try_init();
        if result.is_ok() {
            // The filter is fixed from here on: whether it lets audit lines through is decided
            // once.
            let on = tracing::enabled!(target: "audit", tracing::Level::INFO);
            let _ = AUDIT.set(on.then_some(direct));
        }
        result
    } else {
        let colour = colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        );
        builder.with_ansi(colour).try_init()
    };
    // A second init (tests) keeps the first subscriber, and its writer.
    LogGuard {
        _writer: result.is_ok().then_some(guard),
    }
}

/// Whether text lines carry colour codes: only for a person at a terminal. Written to a file or a
/// pipe, the escape codes are noise a reader and `grep` trip over; `NO_COLOR` set to anything but
/// the empty string turns colour off everywhere (no-color.org).
fn colour(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Collects what a test's log output writes (the formatter's, or the writer thread's).
#[cfg(test)]
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsString::new())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
        assert!(!colour(false, Some("1".into())));
    }
}
