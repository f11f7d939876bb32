//! RFC 8785 (JSON Canonicalization Scheme) serialisation of a parsed JSON value: what a tool pin
//! hashes. Members sorted by their names' UTF-16 code units (§3.2.3), no whitespace, strings
//! escaped as §3.2.2.2 says and no more, numbers written as ECMAScript writes a double
//! (§3.2.2.3, through `ryu-js`, the ECMAScript flavour of Ryū).
//!
//! Ours rather than the `serde_jcs` crate's: a few lines over `serde_json::Value` with the RFC's
//! own test vectors, no allocation per scalar, and the one build setting it needs stated where
//! the build is (the workspace turns on serde_json's `float_roundtrip`): numbers reach this
//! module as doubles that serde_json parsed, and only its exact parser reads every decimal as
//! the double RFC 8785 means. Its default parser reads the RFC's own sample number
//! `333333333.33333329` one unit in the last place off, which would make a pin differ from any
//! other RFC 8785 implementation's.
//!
//! Owns the serialisation alone; which fields are hashed is `canonical`'s.

use serde_json::{Map, Number, Value};

/// A number RFC 8785 cannot write: NaN and the infinities have no JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotFinite;

/// `value` in its RFC 8785 canonical form, appended to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), NotFinite> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => write_number(number, out)?,
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(members) => write_object(members, out)?,
    }
    Ok(())
}

/// `value`'s canonical form on its own.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, NotFinite> {
    let mut out = Vec::with_capacity(64);
    write(value, &mut out)?;
    Ok(out)
}

/// Members in the order of their names' UTF-16 code units (§3.2.3). serde_json keeps them in
/// UTF-8 byte order, which differs from it only past U+FFFF (a surrogate pair, 0xD800..0xDFFF,
/// sorts below U+E000..U+FFFF in UTF-16, above them in UTF-8), so the names are sorted again.
fn write_object(members: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), NotFinite> {
    let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
    sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    out.push(b'{');
    for (i, (name, value)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(name, out);
        out.push(b':');
        write(value, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// Every number as the double it stands for, written as ECMAScript's `Number.prototype.toString`
/// writes it (§3.2.2.3): integers too, so `10`, `10.0` and `1e1` are one form, and an integer
/// past 2^53 is rounded as any I-JSON reader would.
fn write_number(number: &Number, out: &mut Vec<u8>) -> Result<(), NotFinite> {
    let double = match (number.as_u64(), number.as_i64()) {
        (Some(unsigned), _) => unsigned as f64,
        (None, Some(signed)) => signed as f64,
        _ => number.as_f64().ok_or(NotFinite)?,
    };
    if !double.is_finite() {
        return Err(NotFinite);
    }
    out.extend_from_slice(ryu_js::Buffer::new().format_finite(double).as_bytes());
    Ok(())
}

/// A string with only what §3.2.2.2 escapes escaped: `"`, `\`, and the controls below U+0020
/// (the five with a short form as `\b \t \n \f \r`, the others as `\u00xx` in lowercase hex).
/// Everything else, `/`, DEL and all of Unicode included, is written as itself.
fn write_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            let hex = [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&hex);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
#[path = "jcs_tests.rs"]
mod tests;
