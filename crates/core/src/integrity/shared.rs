//! Trust-on-first-use pins shared by every replica (`[state] backend = "redis"`, no pins file):
//! the first replica to relay a tool records its pin in the shared store, and the others judge
//! the tool by that pin, so a definition changed behind one replica is caught by all, even by
//! one that never saw the original.
//!
//! A listing is filtered inside a response body's poll, which must not wait on Redis. So this
//! store answers from a local mirror: the mirror is read again from Redis before a `tools/list`
//! request is forwarded ([`SharedPins::sync`], one round trip, and a small answer while no
//! pin was added), and a tool the mirror does not know is pinned here at once and written
//! through in the background; should another replica have pinned it first meanwhile, its pin
//! is adopted and judges the tool's next listing and calls. Owns the mirror and its sync; not
//! the Redis commands (`state`) nor what a mismatch does (`integrity`).
//!
//! To renew a learned pin (the operator approves the new definition): `HDEL <prefix>{pins}
//! <tool>` and `INCR <prefix>{pins}:version`; every replica then pins the next definition it
//! relays. Or use a pins file.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use super::canonical::{Fingerprint, Sha256};
use super::store::{MAX_TOOLS, PinStore};
use crate::state::{Attempt, Op, SharedState, Unavailable};

/// First-use pins kept in the shared store, mirrored here.
pub struct SharedPins {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<SharedState>,
    mirror: RwLock<Mirror>,
}

#[derive(Default)]
struct Mirror {
    pins: HashMap<String, Fingerprint>,
    /// The store's version of the pins the mirror last read; `None` before the first read.
    version: Option<u64>,
    /// Pins made here and not (yet) in the store: kept when the mirror is read again.
    unwritten: HashSet<String>,
}

impl SharedPins {
    pub fn new(shared: Arc<SharedState>) -> SharedPins {
        SharedPins {
            inner: Arc::new(Inner {
                shared,
                mirror: RwLock::default(),
            }),
        }
    }

    /// Reads the store's pins into the mirror, unless none was added since the last read. A
    /// failing store leaves the mirror as it is (`on_error = "local"`) or is `Unavailable`
    /// (`"deny"`), so that no listing is judged by pins that may be out of date.
    pub async fn sync(&self) -> Result<(), Unavailable> {
        let inner = &self.inner;
        let known = inner.read().version;
        let answer = inner
            .shared
            .attempt(Op::PinRead, inner.shared.store().pins_since(known))
            .await;
        let (version, pins) = match answer {
            Attempt::Done(answer) => answer,
            Attempt::Local => return Ok(()),
            Attempt::Unavailable => return Err(Unavailable),
        };
        let Some(pins) = pins else {
            return Ok(());
        };
        let mut read = HashMap::with_capacity(pins.len());
        for (tool, text) in pins.into_iter().take(MAX_TOOLS) {
            match decode(&text) {
                Some(pin) => {
                    read.insert(tool, pin);
                }
                // Not one of ours: the tool gets no pin from it, so it is judged as unpinned.
                None => tracing::warn!(tool, "a shared tool pin is not readable; ignored"),
            }
        }
        let mut mirror = inner.write();
        let unwritten = std::mem::take(&mut mirror.unwritten);
        for tool in unwritten {
            if read.contains_key(&tool) || read.len() >= MAX_TOOLS {
                continue;
            }
            if let Some(pin) = mirror.pins.remove(&tool) {
                read.insert(tool.clone(), pin);
                mirror.unwritten.insert(tool);
            }
        }
        mirror.pins = read;
        mirror.version = Some(version);
        Ok(())
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Mirror> {
        self.mirror.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Mirror> {
        self.mirror.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a pin made here to the store; adopts the store's when another replica was first.
    async fn record(&self, tool: String, pin: Fingerprint) {
        let text = encode(&pin);
        let answer = self
            .shared
            .attempt(Op::PinRecord, self.shared.store().pin_first(&tool, &text))
            .await;
        let mut mirror = self.write();
        match answer {
            Attempt::Done(None) => {
                mirror.unwritten.remove(&tool);
            }
            Attempt::Done(Some(first)) => {
                mirror.unwritten.remove(&tool);
                match decode(&first) {
                    Some(first) => {
                        mirror.pins.insert(tool, first);
                    }
                    None => {
                        tracing::warn!(tool, "a shared tool pin is not readable; ignored");
                        mirror.pins.remove(&tool);
                    }
                }
            }
            // This process's pin stands in (counted, logged); the next read keeps it.
            Attempt::Local => {}
            // Nothing may stand in for the shared pin: the tool has none until one is written,
            // so its calls are refused and its next listing tries again.
            Attempt::Unavailable => {
                mirror.unwritten.remove(&tool);
                mirror.pins.remove(&tool);
            }
        }
    }
}

impl PinStore for SharedPins {
    fn pin_first(&self, tool: &str, seen: &Fingerprint) -> Option<Fingerprint> {
        if let Some(pin) = self.get(tool) {
            return Some(pin);
        }
        {
            let mut mirror = self.inner.write();
            if let Some(pin) = mirror.pins.get(tool) {
                return Some(pin.clone());
            }
            if mirror.pins.len() >= MAX_TOOLS {
                return None;
            }
            mirror.pins.insert(tool.to_owned(), seen.clone());
            mirror.unwritten.insert(tool.to_owned());
        }
        // Outside a runtime (never so in the proxy) the pin stays this process's own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::clone(&self.inner);
            let (tool, seen) = (tool.to_owned(), seen.clone());
            runtime.spawn(async move { inner.record(tool, seen).await });
        }
        Some(seen.clone())
    }

    fn get(&self, tool: &str) -> Option<Fingerprint> {
        self.inner.read().pins.get(tool).cloned()
    }

    fn refresh(&self) -> Pin<Box<dyn Future<Output = Result<(), Unavailable>> + Send + '_>> {
        Box::pin(self.sync())
    }
}

/// A pin as the store keeps it: the whole digest, then each field's in [`super::FIELDS`] order
/// (`-` for an absent field), space-separated, so a replica can say what changed.
fn encode(pin: &Fingerprint) -> String {
    let mut text = pin.whole.to_string();
    for field in &pin.fields {
        text.push(' ');
        match field {
            Some(digest) => text.push_str(&digest.to_string()),
            None => text.push('-'),
        }
    }
    text
}

fn decode(text: &str) -> Option<Fingerprint> {
    let mut parts = text.split(' ');
    let whole = Sha256::parse(parts.next()?)?;
    let mut fields = [None; 6];
    for field in &mut fields {
        *field = match parts.next()? {
            "-" => None,
            digest => Some(Sha256::parse(digest)?),
        };
    }
    parts
        .next()
        .is_none()
        .then_some(Fingerprint { whole, fields })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pin_reads_back_as_written_and_a_foreign_value_is_no_pin() {
        let pin = Fingerprint::of_value(&json!({ "name": "t", "description": "a" })).unwrap();
        assert_eq!(decode(&encode(&pin)), Some(pin.clone()));
        assert_eq!(decode("1"), None);
        assert_eq!(decode(&format!("{} extra", encode(&pin))), None);
        assert_eq!(decode(&pin.whole.to_string()), None);
    }
}
