//! Tool integrity (`[integrity]`): a tool's definition is pinned, from a pins file or on first
//! use, and a relayed definition that no longer matches its pin is caught, since a model reads
//! descriptions as instructions and a server could change what an approved tool says. With
//! `on_change = "hide"` such a tool leaves every listing and its calls are refused
//! (`tool_changed`) until the pin is renewed; with `"audit"` the change is only logged and
//! counted. Each change is one audit event and one count of `scopegate_tool_changes_total`.
//!
//! The proxy learns definitions from the listings it relays (the listing filter calls
//! [`Integrity::observe`] for every tool entry it reads); the last definition seen of each tool is
//! what its calls are judged by. Owns that state and the decisions; not the hashing
//! (`canonical`), the file (`pins`) or the first-use store (`store`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;

use crate::error::ProxyError;
use crate::mcp::{Inspection, MessageKind};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::state::SharedState;

pub mod canonical;
pub mod cli;
pub mod fetch;
pub mod jcs;
pub mod pins;
pub mod shared;
pub mod store;

pub use canonical::{FIELDS, Fingerprint, NotCanonical, Sha256, raw_digest};
pub use pins::PinSet;
pub use shared::SharedPins;
pub use store::{MemoryPins, PinStore};

pub use crate::config::{IntegrityConfig, OnChange};

/// The `tool` label of a change to a tool no policy rule names.
const NO_RULE: &str = "_other";

/// Pins and the definitions last seen, shared by every request.
pub struct Integrity {
    on_change: OnChange,
    /// The pins file's pins, swapped whole on reload; `None` when pins are learned on first use.
    file: Option<ArcSwap<PinSet>>,
    /// First-use pins, when there is no file.
    learned: Box<dyn PinStore>,
    /// The last definition relayed of each tool.
    seen: RwLock<HashMap<String, Fingerprint>>,
    /// Fingerprints by the digest of their fields' raw text: an upstream sends the same bytes
    /// listing after listing, and those are then hashed once, not parsed and canonicalised again.
    known: RwLock<HashMap<Sha256, Fingerprint>>,
    metrics: Arc<Metrics>,
}

impl Integrity {
    /// Loads the configured pins file (a file that does not load is a start-up error), or
    /// learns pins on first use when none is configured: in `shared` when the state is shared,
    /// so that every replica trusts the same first definition.
    pub fn start(
        config: &IntegrityConfig,
        shared: Option<Arc<SharedState>>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Integrity> {
        let pins = match &config.pins {
            Some(path) => {
                Some(PinSet::load(path).map_err(|e| anyhow::anyhow!("integrity.pins: {e}"))?)
            }
            None => None,
        };
        let learned: Box<dyn PinStore> = match (&pins, shared) {
            (Some(pins), _) => {
                tracing::info!(tools = pins.len(), "tool pins loaded");
                Box::<MemoryPins>::default()
            }
            (None, Some(shared)) => {
                tracing::info!(
                    "no pins file: tool definitions are pinned on first use, shared through [state]"
                );
                Box::new(SharedPins::new(shared))
            }
            (None, None) => {
                tracing::info!("no pins file: tool definitions are pinned on first use");
                Box::<MemoryPins>::default()
            }
        };
        Ok(Integrity::with_store(config, pins, learned, metrics))
    }

    /// Pins from `pins` when given, else learned on first use in this process.
    pub fn new(config: &IntegrityConfig, pins: Option<PinSet>, metrics: Arc<Metrics>) -> Integrity {
        Integrity::with_store(config, pins, Box::<MemoryPins>::default(), metrics)
    }

    /// As [`Integrity::new`], with first-use pins kept in `learned` (a shared store).
    pub fn with_store(
        config: &IntegrityConfig,
        pins: Option<PinSet>,
        learned: Box<dyn PinStore>,
        metrics: Arc<Metrics>,
    ) -> Integrity {
        Integrity {
            on_change: config.on_change,
            file: pins.map(ArcSwap::from_pointee),
            learned,
            seen: RwLock::default(),
            known: RwLock::default(),
            metrics,
        }
    }

    /// Swaps in a reloaded pins file: a tool whose last-seen definition matches its renewed pin
    /// is listed and callable again at once.
    pub fn replace_pins(&self, pins: PinSet) {
        if let Some(file) = &self.file {
            file.store(Arc::new(pins));
        }
    }

    /// The pin of `tool` now in force; learns it from `seen` when pins are learned on first use.
    fn pin(&self, tool: &str, seen: Option<&Fingerprint>) -> Option<Fingerprint> {
        match (&self.file, seen) {
            (Some(file), _) => file.load().get(tool).map(|pin| pin.fingerprint.clone()),
            (None, Some(seen)) => self.learned.pin_first(tool, seen),
            (None, None) => self.learned.get(tool),
        }
    }

    /// The fingerprint of a definition given as its fields' raw text, in [`FIELDS`] order.
    pub fn fingerprint(&self, fields: [Option<&str>; 6]) -> Result<Fingerprint, NotCanonical> {
        let raw = raw_digest(fields);
        {
            let known = self.known.read().unwrap_or_else(|e| e.into_inner());
            if let Some(fingerprint) = known.get(&raw) {
                return Ok(fingerprint.clone());
            }
        }
        let fingerprint = Fingerprint::of_raw(fields)?;
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        // An upstream whose definitions keep changing cannot grow this without end.
        if known.len() >= store::MAX_TOOLS {
            known.clear();
        }
        known.insert(raw, fingerprint.clone());
        Ok(fingerprint)
    }

    /// Records a relayed tool definition; whether the tool stays in the listing. A definition
    /// that differs from its pin (or, with a pins file, a tool that has none) is an audit event
    /// the first time it is seen, not at every listing. An entry without a name, or one whose
    /// definition cannot be canonicalised, cannot be matched to a pin: hidden like a change.
    pub fn observe(
        &self,
        tool: Option<&str>,
        seen: Result<Fingerprint, NotCanonical>,
        policy: &Policy,
    ) -> bool {
        let (Some(tool), Ok(seen)) = (tool, seen) else {
            return self.on_change == OnChange::Audit;
        };
        let pin = self.pin(tool, Some(&seen));
        if pin.as_ref().is_some_and(|pin| pin.whole == seen.whole) {
            self.remember(tool, seen);
            return true;
        }
        if self.remember(tool, seen.clone()) {
            self.report(tool, pin.as_ref(), &seen, policy);
        }
        self.on_change == OnChange::Audit
    }

    /// Whether a call to `tool` is refused: its last-seen definition differs from its pin, or it
    /// has no pin in the pins file (nothing reviewed it).
    pub fn refuses(&self, tool: &str) -> bool {
        if self.on_change == OnChange::Audit {
            return false;
        }
        let seen = self.seen.read().unwrap_or_else(|e| e.into_inner());
        let seen = seen.get(tool);
        match self.pin(tool, None) {
            None => self.file.is_some() || seen.is_some(),
            Some(pin) => seen.is_some_and(|seen| seen.whole != pin.whole),
        }
    }

    /// What a request needs of the pins before it is forwarded: first-use pins shared by the
    /// replicas are read again when it asks for a tool listing, so the answer is judged by the
    /// pins another replica recorded (a store that fails with `on_error = "deny"`: 503); then
    /// its calls are checked ([`Integrity::check_calls`]).
    pub async fn check(&self, inspection: &Inspection<'_>) -> Result<(), ProxyError> {
        let lists_tools = inspection.messages.iter().any(|message| {
            message.kind == MessageKind::Request && message.method.as_deref() == Some("tools/list")
        });
        if lists_tools && self.file.is_none() {
            self.learned
                .refresh()
                .await
                .map_err(|_| ProxyError::StateUnavailable {
                    id: inspection
                        .first_id()
                        .and_then(|id| serde_json::to_value(id).ok()),
                })?;
        }
        self.check_calls(inspection)
    }

    /// Refuses a body that calls a changed tool, before anything of it reaches the upstream.
    pub fn check_calls(&self, inspection: &Inspection<'_>) -> Result<(), ProxyError> {
        for message in &inspection.messages {
            // As the policy does: a `tools/call` without an id is still run by some servers.
            if !matches!(
                message.kind,
                MessageKind::Request | MessageKind::Notification
            ) || message.method.as_deref() != Some("tools/call")
            {
                continue;
            }
            let Some(tool) = message.target.as_deref() else {
                continue;
            };
            if self.refuses(tool) {
                return Err(ProxyError::ToolChanged {
                    id: crate::error::error_id(message.id.as_ref()),
                    tool: tool.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Stores `seen` as the last definition of `tool`; whether it differs from the one before.
    /// Past [`store::MAX_TOOLS`] names a new one is not stored, and counts as new each time.
    fn remember(&self, tool: &str, seen: Fingerprint) -> bool {
        {
            let known = self.seen.read().unwrap_or_else(|e| e.into_inner());
            if known.get(tool).is_some_and(|last| last.whole == seen.whole) {
                return false;
            }
        }
        let mut known = self.seen.write().unwrap_or_else(|e| e.into_inner());
        match known.get_mut(tool) {
            Some(last) if last.whole == seen.whole => false,
            Some(last) => {
                *last = seen;
                true
            }
            None => {
                if known.len() < store::MAX_TOOLS {
                    known.insert(tool.to_string(), seen);
                }
                true
            }
        }
    }

    /// One audit event and one count for a definition that does not match its pin.
    fn report(&self, tool: &str, pin: Option<&Fingerprint>, seen: &Fingerprint, policy: &Policy) {
        let changed = match pin {
            Some(pin) => pin.changed_fields(seen).join(" "),
            None => "unpinned".to_string(),
        };
        let label = policy.tool_rule_name(tool).unwrap_or(NO_RULE);
        self.metrics.tool_changes.with_label_values(&[label]).inc();
        tracing::warn!(
            target: "audit",
            event = "tool_changed",
            tool,
            pinned = pin.map(|pin| pin.whole.to_string()),
            seen = %seen.whole,
            changed = %changed,
            action = match self.on_change {
                OnChange::Hide => "hidden",
                OnChange::Audit => "audited",
            },
            "a tool's definition does not match its pin"
        );
    }
}

#[cfg(test)]
mod tests;
