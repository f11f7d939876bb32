//! The audit trail's hash chain: every audit line, as written, ends with the previous audit
//! line's hash and its own, so an edited, deleted or reordered line breaks the chain where it
//! happened. Owns the writer that seals lines and `scopegate audit verify`; not what an audit
//! line says (see `audit`).
//!
//! A sealed line is `C,"prev":"P","hash":"H"}` where `C` is the JSON line without its closing
//! brace, `P` the previous audit line's `H` (64 zeros for the first line a process writes) and
//! `H` the hex SHA-256 of `C,"prev":"P"` — HMAC-SHA-256 keyed with `SCOPEGATE_AUDIT_HMAC_KEY`
//! when that is set, so that only a holder of the key can write a chain that verifies.
//!
//! Lines are sealed on the log writer's thread, in the order they are written, never on a
//! request's thread. Only the JSON log format is sealed.

use std::io::{self, Write};

use aws_lc_rs::{digest, hmac};

/// The environment variable whose value keys the chain's hashes (HMAC-SHA-256).
pub const KEY_ENV: &str = "SCOPEGATE_AUDIT_HMAC_KEY";

/// How an audit line ends before it is sealed: `target` is the formatter's last field.
const AUDIT_END: &[u8] = b",\"target\":\"audit\"}";
/// What only an audit line holds outside a string (quotes inside strings are escaped).
const AUDIT_MARK: &str = "\"target\":\"audit\"";
const PREV: &str = ",\"prev\":\"";
const HASH: &str = "\",\"hash\":\"";
/// The `prev` of the first line of a chain.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// `,"prev":"<64>","hash":"<64>"}`
const SEAL_LEN: usize = PREV.len() + 64 + HASH.len() + 64 + 2;

/// SHA-256, or HMAC-SHA-256 with a key.
#[derive(Clone)]
enum Hasher {
    Plain,
    Keyed(Box<hmac::Key>),
}

impl Hasher {
    fn new(key: Option<&[u8]>) -> Hasher {
        match key {
            Some(key) if !key.is_empty() => {
                Hasher::Keyed(Box::new(hmac::Key::new(hmac::HMAC_SHA256, key)))
            }
            _ => Hasher::Plain,
        }
    }

    /// The hex hash of `parts`, one after the other.
    fn hex(&self, parts: &[&[u8]]) -> String {
        let mut out = String::with_capacity(64);
        // Two table lookups a byte: `{:02x}` through the formatter, 32 times a line, showed in
        // the profile of every audited request.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut write_hex = |digest: &[u8]| {
            for byte in digest {
                out.push(DIGITS[usize::from(byte >> 4)] as char);
                out.push(DIGITS[usize::from(byte & 0x0f)] as char);
            }
        };
        match self {
            Hasher::Plain => {
                let mut context = digest::Context::new(&digest::SHA256);
                for part in parts {
                    context.update(part);
                }
                write_hex(context.finish().as_ref());
            }
            Hasher::Keyed(key) => {
                let mut context = hmac::Context::with_key(key);
                for part in parts {
                    context.update(part);
                }
                write_hex(context.sign().as_ref());
            }
        }
        out
    }
}

/// The key from the environment, if set.
pub fn key_from_env() -> Option<Vec<u8>> {
    std::env::var_os(KEY_ENV).map(|key| key.into_encoded_bytes())
}

/// Wraps the log's output: passes other lines through and seals audit lines into the chain.
pub struct ChainWriter<W> {
    inner: W,
    hasher: Hasher,
    prev: String,
    /// The start of a line whose end has not been written yet.
    pending: Vec<u8>,
}

impl<W: Write> ChainWriter<W> {
    pub fn new(inner: W, key: Option<&[u8]>) -> ChainWriter<W> {
        ChainWriter {
            inner,
            hasher: Hasher::new(key),
            prev: GENESIS.to_string(),
            pending: Vec::new(),
        }
    }

    fn line(&mut self, line: &[u8]) -> io::Result<()> {
        let Some(content) = line
            .strip_suffix(b"\n")
            .filter(|l| l.ends_with(AUDIT_END))
            .map(|l| &l[..l.len() - 1])
        else {
            return self.inner.write_all(line);
        };
        let hash = self
            .hasher
            .hex(&[content, PREV.as_bytes(), self.prev.as_bytes(), b"\""]);
        self.inner.write_all(content)?;
        self.inner.write_all(PREV.as_bytes())?;
        self.inner.write_all(self.prev.as_bytes())?;
        self.inner.write_all(HASH.as_bytes())?;
        self.inner.write_all(hash.as_bytes())?;
        self.inner.write_all(b"\"}\n")?;
        self.prev = hash;
        Ok(())
    }
}

impl<W: Write> Write for ChainWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The log writer hands over whole lines; a part line waits for its end.
        let mut rest = buf;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(end + 1);
            if self.pending.is_empty() {
                self.line(line)?;
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(line);
                self.line(&whole)?;
            }
            rest = after;
        }
        self.pending.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What `audit verify` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every audit line is intact and in order.
    Intact { lines: usize, chains: usize },
    /// The first line (1-based, of the file) where the chain breaks, and how.
    Broken { line: usize, problem: String },
}

/// Checks the chain of every audit line in `log` (other lines are skipped). A log can hold
/// several chains, one per process start; each must begin with a first line.
pub fn verify(log: &str, key: Option<&[u8]>) -> Verdict {
    let hasher = Hasher::new(key);
    let mut previous: Option<(usize, &str)> = None;
    let (mut lines, mut chains) = (0, 0);
    for (index, line) in log.lines().enumerate() {
        let number = index + 1;
        if !line.contains(AUDIT_MARK) {
            continue;
        }
        let broken = |problem: &str| Verdict::Broken {
            line: number,
            problem: problem.to_string(),
        };
        let Some((sealed, prev, hash)) = split_seal(line) else {
            return broken("an audit line without its prev and hash fields");
        };
        if hasher.hex(&[sealed.as_bytes()]) != hash {
            return broken(if key.is_some() {
                "the line was altered: its hash does not match its content (or the key differs)"
            } else {
                "the line was altered: its hash does not match its content"
            });
        }
        match previous {
            _ if prev == GENESIS => chains += 1,
            None => {
                return broken(
                    "the chain starts mid-way: the audit lines before this one are missing",
                );
            }
            Some((_, expected)) if expected == prev => {}
            Some((before, _)) => {
                return broken(&format!(
                    "does not follow line {before}: an audit line between them is missing, or the lines are out of order"
                ));
            }
        }
        previous = Some((number, hash));
        lines += 1;
    }
    Verdict::Intact { lines, chains }
}

/// A sealed line as (what its hash covers, prev, hash).
fn split_seal(line: &str) -> Option<(&str, &str, &str)> {
    let cut = line.len().checked_sub(SEAL_LEN)?;
    let seal = line.get(cut..)?;
    let prev = seal.strip_prefix(PREV)?.get(..64)?;
    let hash = seal
        .get(PREV.len() + 64..)?
        .strip_prefix(HASH)?
        .strip_suffix("\"}")?;
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(prev) && hex(hash)).then(|| (&line[..cut + PREV.len() + 64 + 1], prev, hash))
}

#[cfg(test)]
#[path = "audit_chain_tests.rs"]
mod tests;
