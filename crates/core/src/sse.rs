//! The project's one reader of `text/event-stream` bodies, exactly as the WHATWG HTML standard's
//! event-stream grammar parses them: lines end in CRLF, LF or a lone CR (a CRLF split across two
//! chunks is one line end), a blank line ends an event, a line starting with `:` is a comment, and
//! a leading byte-order mark is dropped. The proxy's list filter and the adapter read streams
//! through it, so neither can disagree with the clients that read the same bytes.
//!
//! Incremental and linear: each received byte is scanned once, however the stream is cut into
//! chunks. Bounded: a pending event larger than the limit is an error, never an ever-growing
//! buffer. Not a writer: what to do with an event (pass its raw bytes on, rewrite it) is the
//! caller's.

use bytes::{Bytes, BytesMut};

/// One event: the bytes as received and the fields the grammar gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// From the event's first line through the blank line that ends it, exactly as received.
    pub raw: Bytes,
    /// The `event:` field, if any ("message" when `None`, per the standard).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`; `None` when the block had no data line (the standard
    /// then dispatches nothing: comments, keep-alives).
    pub data: Option<String>,
    /// The `id:` field, if the block set one (a value holding NUL is ignored, as the standard says).
    pub id: Option<String>,
    /// The `retry:` field, if the block set one (ASCII digits only, as the standard says).
    pub retry: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an event-stream event exceeds {limit} bytes")]
    TooLarge { limit: usize },
}

/// Incremental, linear, bounded decoder.
pub struct Decoder {
    /// Bytes of events not yet returned; always starts at an event's first byte.
    pending: BytesMut,
    /// How far `pending` has been scanned: lines before it are complete and already parsed.
    scanned: usize,
    /// Where the line being scanned starts.
    line_start: usize,
    /// The previous chunk ended in CR: an LF at the start of this one belongs to that line end.
    after_cr: bool,
    /// Fields of the event being read.
    fields: Fields,
    /// The stream's first bytes have been seen (the BOM check is done).
    started: bool,
    max_event_bytes: usize,
}

#[derive(Default)]
struct Fields {
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    retry: Option<String>,
}

impl Decoder {
    pub fn new(max_event_bytes: usize) -> Decoder {
        Decoder {
            pending: BytesMut::new(),
            scanned: 0,
            line_start: 0,
            after_cr: false,
            fields: Fields::default(),
            started: false,
            max_event_bytes,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    /// The next complete event, if one is buffered; `Err` when a pending event outgrows the
    /// bound (the stream cannot be read further).
    pub fn next_event(&mut self) -> Result<Option<Event>, SseError> {
        if !self.started {
            // The BOM is only recognisable once three bytes (or the whole stream) are here.
            if self.pending.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.pending[..]) {
                return Ok(None);
            }
            self.started = true;
            if self.pending.starts_with(b"\xEF\xBB\xBF") {
                // Dropped from the fields, kept in the raw bytes of the first event.
                self.scanned = 3;
                self.line_start = 3;
            }
        }
        while self.scanned < self.pending.len() {
            let byte = self.pending[self.scanned];
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    // The LF of a CRLF: the line already ended at the CR.
                    self.scanned += 1;
                    self.line_start = self.scanned;
                    continue;
                }
            }
            match memchr_line_end(&self.pending[self.scanned..]) {
                None => {
                    self.scanned = self.pending.len();
                    break;
                }
                Some(offset) => {
                    let end = self.scanned + offset;
                    let is_cr = self.pending[end] == b'\r';
                    self.scanned = end + 1;
                    if is_cr {
                        self.after_cr = true;
                        // A CRLF whose LF is already here is consumed now, so that the event's
                        // raw bytes include it.
                        if self.scanned < self.pending.len() && self.pending[self.scanned] == b'\n'
                        {
                            self.scanned += 1;
                            self.after_cr = false;
                        }
                    }
                    let line_start = std::mem::replace(&mut self.line_start, self.scanned);
                    if end == line_start {
                        // A blank line: the event ends here, within the bound or not at all
                        // (however the stream was cut into chunks).
                        if self.scanned > self.max_event_bytes {
                            return Err(SseError::TooLarge {
                                limit: self.max_event_bytes,
                            });
                        }
                        return Ok(Some(self.dispatch()));
                    }
                    let line = String::from_utf8_lossy(&self.pending[line_start..end]).into_owned();
                    self.fields.take_line(&line);
                }
            }
        }
        if self.pending.len() > self.max_event_bytes {
            return Err(SseError::TooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(None)
    }

    /// At end of stream: whatever partial event is left (the standard discards it), as raw bytes.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.fields = Fields::default();
        self.scanned = 0;
        self.line_start = 0;
        self.after_cr = false;
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }

    fn dispatch(&mut self) -> Event {
        let raw = self.pending.split_to(self.scanned).freeze();
        self.scanned = 0;
        self.line_start = 0;
        let fields = std::mem::take(&mut self.fields);
        Event {
            raw,
            event: fields.event,
            data: fields.data,
            id: fields.id,
            retry: fields.retry,
        }
    }
}

impl Fields {
    /// One non-blank line of an event.
    fn take_line(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = Some(value.to_string())
            }
            // Unknown fields are ignored, as the standard says.
            _ => {}
        }
    }
}

/// Offset of the first CR or LF.
fn memchr_line_end(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n' || b == b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<Event> {
        let mut decoder = Decoder::new(1 << 20);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event().unwrap() {
                out.push(event);
            }
        }
        out
    }

    fn data(events: &[Event]) -> Vec<Option<&str>> {
        events.iter().map(|e| e.data.as_deref()).collect()
    }

    #[test]
    fn every_line_ending_the_standard_allows_ends_lines_and_events() {
        for stream in [
            &b"data: a\ndata: b\n\ndata: c\n\n"[..],
            b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
            b"data: a\rdata: b\r\rdata: c\r\r",
            // LF lines closed by a CRLF blank line, and mixed endings.
            b"data: a\ndata: b\n\r\ndata: c\r\n\n",
            b"data: a\rdata: b\n\rdata: c\r\n\r",
        ] {
            let got = events(&[stream]);
            assert_eq!(data(&got), [Some("a\nb"), Some("c")], "{stream:?}");
            let raw: Vec<u8> = got.iter().flat_map(|e| e.raw.to_vec()).collect();
            assert_eq!(raw, stream, "raw bytes are kept exactly");
        }
    }

    #[test]
    fn any_split_into_chunks_gives_the_same_events() {
        let stream = b"\xEF\xBB\xBFevent: message\r\nid: 7\r\ndata: {\"x\":1}\r\n\r\n: ping\r\rdata\rdata:\n\n";
        let whole = events(&[stream]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].event.as_deref(), Some("message"));
        assert_eq!(whole[0].id.as_deref(), Some("7"));
        assert_eq!(whole[0].data.as_deref(), Some("{\"x\":1}"));
        assert_eq!(
            whole[1].data, None,
            "a comment-only block dispatches nothing"
        );
        assert_eq!(whole[2].data.as_deref(), Some("\n"));
        // A CRLF split after its CR ends the line at the CR; the LF then opens the next event's
        // raw bytes. The fields, and the bytes as a whole, are the same however it is cut.
        type Named = (Option<String>, Option<String>, Option<String>);
        let fields = |events: &[Event]| -> Vec<Named> {
            events
                .iter()
                .map(|e| (e.event.clone(), e.data.clone(), e.id.clone()))
                .collect()
        };
        let mut cuts: Vec<Vec<&[u8]>> = (1..stream.len())
            .map(|at| {
                let (a, b) = stream.split_at(at);
                vec![a, b]
            })
            .collect();
        cuts.push(stream.chunks(1).collect());
        for chunks in cuts {
            let got = events(&chunks);
            assert_eq!(fields(&got), fields(&whole), "{chunks:?}");
            let raw: Vec<u8> = got.iter().flat_map(|e| e.raw.to_vec()).collect();
            assert_eq!(raw, stream);
        }
    }

    #[test]
    fn field_without_colon_and_space_handling_follow_the_standard() {
        let got =
            events(&[b"data\ndata:  two spaces\nevent:x\nretry: 5\nid: a\0b\n\nretry: 5s\n\n"]);
        assert_eq!(got[0].data.as_deref(), Some("\n two spaces"));
        assert_eq!(got[0].event.as_deref(), Some("x"));
        assert_eq!(got[0].id, None);
        assert_eq!(got[0].retry.as_deref(), Some("5"));
        assert_eq!(got[1].retry, None);
    }

    #[test]
    fn an_event_past_the_bound_is_an_error_not_a_growing_buffer() {
        let mut decoder = Decoder::new(16);
        decoder.push(b"data: 0123456789abcdef");
        assert_eq!(decoder.next_event(), Err(SseError::TooLarge { limit: 16 }));
        let mut decoder = Decoder::new(16);
        decoder.push(b"data: 0123\n\n");
        assert!(decoder.next_event().unwrap().is_some());
        // A whole event past the bound in one chunk is refused the same.
        decoder.push(b"data: 0123456789abcdef\n\n");
        assert!(decoder.next_event().is_err());
    }

    #[test]
    fn a_partial_event_at_the_end_is_handed_back_raw() {
        let mut decoder = Decoder::new(64);
        decoder.push(b"data: a\n\ndata: cut");
        assert!(decoder.next_event().unwrap().is_some());
        assert!(decoder.next_event().unwrap().is_none());
        assert_eq!(decoder.finish().as_deref(), Some(&b"data: cut"[..]));
        assert_eq!(decoder.finish(), None);
    }

    #[test]
    fn scanning_is_linear_in_the_bytes_received() {
        // A 256 KiB event arriving a byte at a time: a decoder that rescans from the start of the
        // pending event on every chunk would take ~3*10^10 steps here.
        let mut decoder = Decoder::new(1 << 20);
        decoder.push(b"data: ");
        for _ in 0..(1 << 18) {
            decoder.push(b"x");
            assert!(decoder.next_event().unwrap().is_none());
        }
        decoder.push(b"\n\n");
        let event = decoder.next_event().unwrap().unwrap();
        assert_eq!(event.data.unwrap().len(), 1 << 18);
    }
}
