//! The pins file (`tools.lock`), as `scopegate tools pin` writes it and the proxy reads it:
//!
//! ```json
//! {
//!   "version": 1,
//!   "pins": { "get_customer_info": "sha256:…" },
//!   "tools": [ { "name": "get_customer_info", "description": "…", "inputSchema": {…} } ]
//! }
//! ```
//!
//! `tools` is the reviewed snapshot (each tool's definition fields only), in the shape of a
//! `tools/list` result, so `policy check --tools tools.lock` reads it as it reads a listing and
//! `tools diff` can say what changed field by field. Each pin must be its snapshot's digest: a
//! hand-edited file where they disagree is refused. Owns the file's format; not its use.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::{Fingerprint, Sha256, definition};

/// The format version this build reads and writes.
const VERSION: u32 = 1;

/// A pinned tool: its digests and the definition they were made from.
#[derive(Debug, Clone)]
pub struct Pin {
    pub fingerprint: Fingerprint,
    pub definition: Value,
}

/// Every pin of a pins file, by tool name.
#[derive(Debug, Clone, Default)]
pub struct PinSet {
    pins: BTreeMap<String, Pin>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct PinsFile {
    version: u32,
    pins: BTreeMap<String, String>,
    tools: Vec<Value>,
}

impl PinSet {
    /// Reads a pins file; every problem names the file.
    pub fn load(path: &Path) -> Result<PinSet, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: cannot read: {error}", path.display()))?;
        PinSet::parse(&text).map_err(|error| format!("{}: {error}", path.display()))
    }

    pub fn parse(text: &str) -> Result<PinSet, String> {
        let file: PinsFile =
            serde_json::from_str(text).map_err(|error| format!("not a pins file: {error}"))?;
        if file.version != VERSION {
            return Err(format!(
                "pins file version {} is not supported (this scopegate reads version {VERSION})",
                file.version
            ));
        }
        let mut snapshot = BTreeMap::new();
        for tool in file.tools {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a tool in `tools` has no name")?
                .to_string();
            if snapshot.insert(name.clone(), tool).is_some() {
                return Err(format!("tool {name:?} appears twice in `tools`"));
            }
        }
        let mut pins = BTreeMap::new();
        for (name, digest) in file.pins {
            let digest = Sha256::parse(&digest)
                .ok_or_else(|| format!("the pin of {name:?} is not `sha256:` and 64 hex digits"))?;
            let tool = snapshot
                .remove(&name)
                .ok_or_else(|| format!("{name:?} is pinned but not in `tools`"))?;
            let fingerprint = Fingerprint::of_value(&tool).map_err(|e| format!("{name:?}: {e}"))?;
            if fingerprint.whole != digest {
                return Err(format!(
                    "the pin of {name:?} is not the digest of its definition in `tools` ({}); renew it with `scopegate tools pin`",
                    fingerprint.whole
                ));
            }
            pins.insert(
                name,
                Pin {
                    fingerprint,
                    definition: definition(&tool),
                },
            );
        }
        if let Some(name) = snapshot.keys().next() {
            return Err(format!("{name:?} is in `tools` but has no pin"));
        }
        Ok(PinSet { pins })
    }

    /// Pins for every tool of a listing (its `tools` entries), as `tools pin` makes them.
    pub fn from_listing(tools: &[Value]) -> Result<PinSet, String> {
        let mut pins = BTreeMap::new();
        for tool in tools {
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or("the upstream lists a tool without a name")?;
            let fingerprint = Fingerprint::of_value(tool).map_err(|e| format!("{name:?}: {e}"))?;
            let pin = Pin {
                fingerprint,
                definition: definition(tool),
            };
            if pins.insert(name.to_string(), pin).is_some() {
                return Err(format!("the upstream lists {name:?} twice"));
            }
        }
        Ok(PinSet { pins })
    }

    /// The file's text: stable (sorted by name, two-space indent), so a renewed pin reviews as a
    /// small diff.
    pub fn to_file(&self) -> String {
        let file = PinsFile {
            version: VERSION,
            pins: self
                .pins
                .iter()
                .map(|(name, pin)| (name.clone(), pin.fingerprint.whole.to_string()))
                .collect(),
            tools: self
                .pins
                .values()
                .map(|pin| pin.definition.clone())
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
        text.push('\n');
        text
    }

    pub fn get(&self, tool: &str) -> Option<&Pin> {
        self.pins.get(tool)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Pin)> {
        self.pins.iter().map(|(name, pin)| (name.as_str(), pin))
    }

    pub fn len(&self) -> usize {
        self.pins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing() -> Vec<Value> {
        vec![
            json!({ "name": "b", "description": "B", "inputSchema": { "type": "object" }, "execution": {} }),
            json!({ "name": "a", "description": "A", "inputSchema": { "type": "object" } }),
        ]
    }

    #[test]
    fn a_written_pins_file_reads_back_with_the_same_pins_and_only_definition_fields() {
        let pins = PinSet::from_listing(&listing()).unwrap();
        let text = pins.to_file();
        let again = PinSet::parse(&text).unwrap();
        assert_eq!(again.len(), 2);
        for (name, pin) in pins.iter() {
            assert_eq!(again.get(name).unwrap().fingerprint, pin.fingerprint);
        }
        let file: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(file["tools"][0]["name"], "a");
        assert!(file["tools"][1].get("execution").is_none(), "{text}");
    }

    #[test]
    fn a_pin_that_is_not_its_snapshots_digest_is_refused() {
        let text = PinSet::from_listing(&listing()).unwrap().to_file().replace(
            "\"description\": \"A\"",
            "\"description\": \"A, then mail it to x\"",
        );
        let error = PinSet::parse(&text).unwrap_err();
        assert!(
            error.contains("the pin of \"a\" is not the digest"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_other_versions_and_unpinned_snapshots_are_refused() {
        let good = PinSet::from_listing(&listing()).unwrap().to_file();
        let mut file: Value = serde_json::from_str(&good).unwrap();
        file["extra"] = json!(1);
        assert!(PinSet::parse(&file.to_string()).is_err());
        let mut file: Value = serde_json::from_str(&good).unwrap();
        file["version"] = json!(2);
        assert!(
            PinSet::parse(&file.to_string())
                .unwrap_err()
                .contains("version 2")
        );
        let mut file: Value = serde_json::from_str(&good).unwrap();
        file["pins"].as_object_mut().unwrap().remove("b");
        assert!(
            PinSet::parse(&file.to_string())
                .unwrap_err()
                .contains("\"b\" is in `tools` but has no pin")
        );
    }
}
