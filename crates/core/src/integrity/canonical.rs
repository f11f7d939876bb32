//! What a tool pin is: the SHA-256 of the tool's definition fields (`name`, `title`,
//! `description`, `inputSchema`, `outputSchema`, `annotations`) in RFC 8785 canonical JSON, so
//! that key order, whitespace and number spellings (`1.0`, `1`, `1e0`) do not count as a change.
//! Each field is also hashed alone, which says *what* changed without keeping the old text.
//! Owns the hashing; not the canonical form itself (`jcs`), nor where pins are kept or compared
//! (see `integrity`).

use std::fmt;

use serde_json::Value;

/// The definition fields a pin covers, in RFC 8785 member order (all ASCII, so the UTF-16 order
/// the RFC asks for is the byte order used here).
pub const FIELDS: [&str; 6] = [
    "annotations",
    "description",
    "inputSchema",
    "name",
    "outputSchema",
    "title",
];

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    pub fn of(bytes: &[u8]) -> Sha256 {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        Sha256(out)
    }

    /// `sha256:` and 64 lowercase hex digits, as the pins file writes it.
    pub fn parse(text: &str) -> Option<Sha256> {
        let hex = text.strip_prefix("sha256:")?;
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Sha256(out))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A definition's pin and its fields' digests (`None`: the field is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub whole: Sha256,
    pub fields: [Option<Sha256>; 6],
}

/// A definition field that is not JSON the canonical form can write (a number past `f64`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCanonical(pub &'static str);

impl fmt::Display for NotCanonical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the tool's {} has no RFC 8785 form", self.0)
    }
}

/// A digest of the fields' raw text as the upstream wrote it: equal for byte-identical
/// definitions, so a listing seen before is recognised without parsing it again. Not a pin:
/// spacing and key order change it.
pub fn raw_digest(fields: [Option<&str>; 6]) -> Sha256 {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for field in fields {
        // Each field as its presence and length, then its text: no two field lists run together.
        match field {
            Some(text) => {
                context.update(&[1]);
                context.update(&(text.len() as u64).to_le_bytes());
                context.update(text.as_bytes());
            }
            None => context.update(&[0]),
        }
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    Sha256(out)
}

impl Fingerprint {
    /// From the fields' raw JSON text, in [`FIELDS`] order, as the listing filter finds them.
    pub fn of_raw(fields: [Option<&str>; 6]) -> Result<Fingerprint, NotCanonical> {
        let mut values: [Option<Value>; 6] = Default::default();
        for ((value, raw), name) in values.iter_mut().zip(fields).zip(FIELDS) {
            if let Some(raw) = raw {
                *value = Some(serde_json::from_str(raw).map_err(|_| NotCanonical(name))?);
            }
        }
        Fingerprint::of_fields(values.each_ref().map(Option::as_ref))
    }

    /// From a parsed tool definition (a pins file's snapshot, a fetched listing); members other
    /// than [`FIELDS`] are not part of it.
    pub fn of_value(tool: &Value) -> Result<Fingerprint, NotCanonical> {
        Fingerprint::of_fields(FIELDS.map(|name| tool.get(name)))
    }

    fn of_fields(values: [Option<&Value>; 6]) -> Result<Fingerprint, NotCanonical> {
        // The object's canonical form is its members' in FIELDS order: each value is written
        // once and hashed alone as well as in the whole.
        let mut whole = Vec::with_capacity(256);
        whole.push(b'{');
        let mut fields = [None; 6];
        for ((digest, value), name) in fields.iter_mut().zip(values).zip(FIELDS) {
            let Some(value) = value else { continue };
            let canonical = super::jcs::to_vec(value).map_err(|_| NotCanonical(name))?;
            *digest = Some(Sha256::of(&canonical));
            if whole.len() > 1 {
                whole.push(b',');
            }
            whole.push(b'"');
            whole.extend_from_slice(name.as_bytes());
            whole.extend_from_slice(b"\":");
            whole.extend_from_slice(&canonical);
        }
        whole.push(b'}');
        Ok(Fingerprint {
            whole: Sha256::of(&whole),
            fields,
        })
    }

    /// The fields whose value differs between two definitions, in [`FIELDS`] order.
    pub fn changed_fields(&self, other: &Fingerprint) -> Vec<&'static str> {
        FIELDS
            .iter()
            .zip(self.fields.iter().zip(&other.fields))
            .filter(|(_, (a, b))| a != b)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// The definition fields of a tool entry, nothing else: what a pins file keeps of a listing.
pub fn definition(tool: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for name in FIELDS {
        if let Some(value) = tool.get(name) {
            out.insert(name.to_string(), value.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pin_is_the_sha256_of_the_rfc8785_form_of_the_definition_fields() {
        // Digest from an independent canonicaliser (sorted keys, no whitespace) over this input.
        let tool = json!({
            "name": "t", "description": "Look up",
            "inputSchema": { "type": "object", "properties": { "n": { "type": "number", "maximum": 10 } } },
            "execution": { "taskSupport": "optional" }
        });
        let fingerprint = Fingerprint::of_value(&tool).unwrap();
        assert_eq!(
            fingerprint.whole.to_string(),
            "sha256:a2b40048e5739dd285491e69a2f8cb41adbdd95ce3a4bfcb877ae0c94ecc5935"
        );
        assert_eq!(
            fingerprint.fields[1].unwrap().to_string(),
            "sha256:e146b7b320929d845cddcbad127b49db3c89b23f89110ba4cdeea0ebc2d2452a"
        );
        let whole = super::super::jcs::to_vec(&definition(&tool)).unwrap();
        assert_eq!(fingerprint.whole, Sha256::of(&whole));
    }

    #[test]
    fn key_order_whitespace_and_number_spellings_do_not_change_a_pin() {
        let a = Fingerprint::of_raw([
            None,
            Some(r#""Sum""#),
            Some(r#"{"type":"object","properties":{"n":{"maximum":1.0E1,"type":"number"}}}"#),
            Some(r#""sum""#),
            None,
            None,
        ])
        .unwrap();
        let b = Fingerprint::of_value(&json!({
            "inputSchema": { "properties": { "n": { "type": "number", "maximum": 10 } }, "type": "object" },
            "name": "sum", "description": "Sum"
        }))
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn a_changed_description_changes_the_pin_and_is_named() {
        let old = Fingerprint::of_value(&json!({ "name": "t", "description": "a" })).unwrap();
        let new = Fingerprint::of_value(&json!({ "name": "t", "description": "b" })).unwrap();
        assert_ne!(old.whole, new.whole);
        assert_eq!(old.changed_fields(&new), ["description"]);
        let titled =
            Fingerprint::of_value(&json!({ "name": "t", "description": "a", "title": "T" }))
                .unwrap();
        assert_eq!(old.changed_fields(&titled), ["title"]);
    }

    #[test]
    fn the_raw_digest_tells_fields_apart_however_their_text_is_split() {
        let a = raw_digest([None, Some("\"ab\""), None, None, None, None]);
        let b = raw_digest([None, Some("\"a"), Some("b\""), None, None, None]);
        let c = raw_digest([Some("\"ab\""), None, None, None, None, None]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            a,
            raw_digest([None, Some("\"ab\""), None, None, None, None])
        );
    }

    #[test]
    fn digests_read_back_from_their_text() {
        let digest = Sha256::of(b"x");
        assert_eq!(Sha256::parse(&digest.to_string()), Some(digest));
        assert_eq!(Sha256::parse("sha256:00"), None);
        assert_eq!(Sha256::parse(&digest.to_string()[7..]), None);
    }
}
