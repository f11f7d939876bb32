//! Where trust-on-first-use pins are kept: the first definition the proxy relays for a tool
//! becomes its pin. [`PinStore`] is the seam for a shared store (`[state]` on Redis: every
//! replica must trust the same first definition, see `shared`); [`MemoryPins`] keeps them in
//! this process.
//! Not pins from a file (see `pins`), nor what a mismatch does (see `integrity`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;

use super::canonical::Fingerprint;
use crate::state::Unavailable;

/// Tools remembered at most. Past it a new tool gets no pin, so with `on_change = "hide"` it is
/// hidden: an upstream inventing names cannot grow the proxy's memory without end.
pub const MAX_TOOLS: usize = 10_000;

/// Trust-on-first-use pins. Called while a listing is filtered, inside a response body's poll,
/// so it must not block: a shared backend answers from a local mirror and writes through in
/// the background (first write wins, as with `SET NX`), adopting another replica's pin when it
/// learns of one.
pub trait PinStore: Send + Sync {
    /// The pin of `tool`, made from `seen` if it has none yet; `None` when it has none and no
    /// more can be made.
    fn pin_first(&self, tool: &str, seen: &Fingerprint) -> Option<Fingerprint>;

    /// The pin of `tool`, if it has one.
    fn get(&self, tool: &str) -> Option<Fingerprint>;

    /// Brings the local answers up to date with a shared backend, before a listing is asked
    /// for; `Unavailable` when it cannot and nothing may stand in. Nothing to do in memory.
    fn refresh(&self) -> Pin<Box<dyn Future<Output = Result<(), Unavailable>> + Send + '_>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Pins in this process's memory: forgotten on restart, so a restart trusts anew.
#[derive(Default)]
pub struct MemoryPins {
    pins: RwLock<HashMap<String, Fingerprint>>,
}

impl PinStore for MemoryPins {
    fn pin_first(&self, tool: &str, seen: &Fingerprint) -> Option<Fingerprint> {
        if let Some(pin) = self.get(tool) {
            return Some(pin);
        }
        let mut pins = self.pins.write().unwrap_or_else(|e| e.into_inner());
        if let Some(pin) = pins.get(tool) {
            return Some(pin.clone());
        }
        if pins.len() >= MAX_TOOLS {
            return None;
        }
        pins.insert(tool.to_string(), seen.clone());
        Some(seen.clone())
    }

    fn get(&self, tool: &str) -> Option<Fingerprint> {
        let pins = self.pins.read().unwrap_or_else(|e| e.into_inner());
        pins.get(tool).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_definition_seen_stays_the_pin() {
        let store = MemoryPins::default();
        let first = Fingerprint::of_value(&json!({ "name": "t", "description": "a" })).unwrap();
        let second = Fingerprint::of_value(&json!({ "name": "t", "description": "b" })).unwrap();
        assert_eq!(store.get("t"), None);
        assert_eq!(store.pin_first("t", &first), Some(first.clone()));
        assert_eq!(store.pin_first("t", &second), Some(first.clone()));
        assert_eq!(store.get("t"), Some(first));
    }
}
