//! The JSON line format: `{"timestamp":…,"level":…,"message":…,<fields>…,"target":…}`, one event per
//! line, fields flattened beside the message.
//!
//! The same shape tracing-subscriber's JSON format writes with flattened events, written straight
//! into the line's buffer: the audit line is written at every request, and going through serde's
//! map serializer cost about as much as the rest of the policy decision path together.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON object.
pub struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Events from the `log` crate (rustls's, say) carry their own target inside.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        line(&mut writer, meta.level(), meta.target(), |fields| {
            event.record(fields)
        })
    }
}

/// Writes one line: the timestamp and level, then what `fields` writes (the message first, as an
/// event records it), then the target. Events and the audit line (written without an event, see
/// `logging::audit`) both come out through here.
pub(super) fn line<W: fmt::Write>(
    out: &mut W,
    level: &Level,
    target: &str,
    fields: impl FnOnce(&mut Fields<'_, W>),
) -> fmt::Result {
    out.write_str("{\"timestamp\":\"")?;
    write_timestamp(out, std::time::SystemTime::now())?;
    out.write_str("\",\"level\":\"")?;
    out.write_str(level.as_str())?;
    out.write_char('"')?;
    let mut written = Fields {
        out: &mut *out,
        result: Ok(()),
    };
    fields(&mut written);
    written.result?;
    out.write_str(",\"target\":")?;
    write_string(out, target)?;
    out.write_str("}\n")
}

/// Writes each field as `,"name":value`; the first error stops the rest. An absent value
/// (`None`) is left out.
pub struct Fields<'w, W> {
    out: &'w mut W,
    result: fmt::Result,
}

impl<W: fmt::Write> super::LineFields for Fields<'_, W> {
    fn str(&mut self, name: &str, value: &str) {
        Fields::str(self, name, value);
    }

    fn u64(&mut self, name: &str, value: u64) {
        Fields::u64(self, name, value);
    }

    fn f64(&mut self, name: &str, value: f64) {
        Fields::f64(self, name, value);
    }

    fn display(&mut self, name: &str, value: &dyn fmt::Display) {
        Fields::display(self, name, value);
    }
}

impl<W: fmt::Write> Fields<'_, W> {
    fn field(&mut self, name: &str, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_char(',')?;
                write_string(self.out, name)?;
                self.out.write_char(':')?;
                value(self.out)
            })();
        }
    }

    pub fn str(&mut self, name: &str, value: &str) {
        self.field(name, |out| write_string(out, value));
    }

    pub fn u64(&mut self, name: &str, value: u64) {
        self.field(name, |out| out.write_str(Digits::of(value).as_str()));
    }

    pub fn i64(&mut self, name: &str, value: i64) {
        self.field(name, |out| write!(out, "{value}"));
    }

    pub fn bool(&mut self, name: &str, value: bool) {
        self.field(name, |out| write!(out, "{value}"));
    }

    pub fn f64(&mut self, name: &str, value: f64) {
        // JSON has no NaN or infinity.
        // ECMAScript's number form (as `JSON.stringify` writes it): shortest round-trip digits.
        self.field(name, |out| match value.is_finite() {
            true => out.write_str(ryu_js::Buffer::new().format_finite(value)),
            false => out.write_str("null"),
        });
    }

    /// A value written through its `Display`, as a string.
    pub fn display(&mut self, name: &str, value: &dyn fmt::Display) {
        self.quoted(name, format_args!("{value}"));
    }

    /// Formatted text as a JSON string, escaped as it is written (no copy of it first).
    fn quoted(&mut self, name: &str, text: fmt::Arguments<'_>) {
        self.field(name, |out| {
            out.write_char('"')?;
            Escaped(&mut *out).write_fmt(text)?;
            out.write_char('"')
        });
    }
}

impl<W: fmt::Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.str(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.u64(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.i64(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.bool(field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.f64(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.quoted(field.name(), format_args!("{value:?}"));
    }
}

/// A `u64` in decimal, without the formatter's machinery (the audit line has a few per request).
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn of(mut value: u64) -> Digits {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                return Digits { buf, start };
            }
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("")
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, as tracing-subscriber writes it. The part up to the
/// seconds is kept per thread and worked out again only when the second changes.
fn write_timestamp(out: &mut impl fmt::Write, now: std::time::SystemTime) -> fmt::Result {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != second {
        prefix = date_time(second);
        SECOND.set((second, prefix));
    }
    out.write_str(std::str::from_utf8(&prefix).unwrap_or(""))?;
    let micros = Digits::of(u64::from(since.subsec_micros()) + 1_000_000);
    // The leading 1 keeps the zeros: 1_000_042 is written 000042.
    out.write_str(&micros.as_str()[1..])?;
    out.write_char('Z')
}

/// `YYYY-MM-DDTHH:MM:SS.` for seconds since the epoch (the civil calendar from days, after
/// Howard Hinnant's `civil_from_days`).
fn date_time(seconds: u64) -> [u8; 20] {
    let days = (seconds / 86_400) as i64;
    let in_day = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, value: u64| {
        let mut value = value;
        for i in (0..width).rev() {
            out[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999) as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, in_day / 3600);
    put(14, 2, in_day / 60 % 60);
    put(17, 2, in_day % 60);
    out
}

fn write_string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(&mut *out).write_str(text)?;
    out.write_char('"')
}

/// Escapes what it is given as the inside of a JSON string (RFC 8259 §7).
struct Escaped<W>(W);

impl<W: fmt::Write> fmt::Write for Escaped<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..i])?;
            plain = i + 1;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::Captured;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        write_string(&mut out, text).unwrap();
        out
    }

    #[test]
    fn an_event_is_one_json_object_with_its_fields_beside_the_message() {
        let lines = Captured::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLine)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let reason = "a \"quoted\"\nline";
            tracing::info!(
                target: "audit",
                request_id = "r-1",
                subject = None::<&str>,
                status = 403u16,
                delta = -2i64,
                duration_ms = 0.25f64,
                ratio = f64::NAN,
                allowed = false,
                %reason,
                "decision"
            );
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "decision");
        assert_eq!(line["request_id"], "r-1");
        assert!(
            line.get("subject").is_none(),
            "an absent value is left out: {line}"
        );
        assert_eq!(line["status"], 403);
        assert_eq!(line["delta"], -2);
        assert_eq!(line["duration_ms"], 0.25);
        assert!(line["ratio"].is_null());
        assert_eq!(line["allowed"], false);
        assert_eq!(line["reason"], "a \"quoted\"\nline");
        assert_eq!(line["target"], "audit");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
        assert!(text.starts_with("{\"timestamp\":\""), "{text}");
        assert!(text.ends_with(",\"target\":\"audit\"}\n"), "{text}");
    }

    #[test]
    fn strings_come_out_as_json_reads_them() {
        for text in [
            "plain",
            "a \"quote\" and \\",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}",
            "é ✓ 😀",
            "",
        ] {
            let json = escaped(text);
            let back: String = serde_json::from_str(&json).unwrap();
            assert_eq!(back, text, "{json}");
        }
        assert_eq!(escaped("\u{1}"), "\"\\u0001\"");
    }

    #[test]
    fn timestamps_are_utc_with_microseconds_across_the_calendar() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |seconds: u64, micros: u64| {
            let mut out = String::new();
            let time = UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_micros(micros);
            write_timestamp(&mut out, time).unwrap();
            out
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 42), "2000-02-29T00:00:00.000042Z");
        assert_eq!(at(1_709_251_199, 999_999), "2024-02-29T23:59:59.999999Z");
        assert_eq!(at(1_796_031_344, 937_929), "2026-11-30T09:35:44.937929Z");
        assert_eq!(at(4_102_444_799, 5), "2099-12-31T23:59:59.000005Z");
        // The per-thread second is worked out again when it changes, not reused.
        assert_eq!(at(86_399, 1), "1970-01-01T23:59:59.000001Z");
        assert_eq!(at(86_400, 1), "1970-01-02T00:00:00.000001Z");
    }

    #[test]
    fn numbers_are_written_as_json_reads_them() {
        for value in [0u64, 7, 10, 403, u64::MAX] {
            assert_eq!(Digits::of(value).as_str(), value.to_string());
        }
        let mut out = String::new();
        let mut fields = Fields {
            out: &mut out,
            result: Ok(()),
        };
        fields.f64("a", 0.315589);
        fields.f64("b", 12.0);
        fields.f64("c", f64::INFINITY);
        assert_eq!(out, ",\"a\":0.315589,\"b\":12,\"c\":null");
    }
}
