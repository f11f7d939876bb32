//! The `[integrity]` table: where tool pins come from and what a changed definition leads to.
//! Part of reading the config file (see the parent module); what pins do is `integrity`'s.

use std::path::{Path, PathBuf};

use super::raw::RawIntegrity;
use super::resolve;
use crate::diagnostics::Problems;

/// What a definition that does not match its pin leads to (`integrity.on_change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChange {
    /// The tool leaves listings and its calls are refused until the pin is renewed.
    Hide,
    /// Logged and counted only: for rolling pins out before enforcing them.
    Audit,
}

/// The validated `[integrity]` table.
#[derive(Debug, Clone)]
pub struct IntegrityConfig {
    /// The pins file; `None`: trust on first use.
    pub pins: Option<PathBuf>,
    pub on_change: OnChange,
}

/// `on_change` when not set: a changed tool is hidden and refused, since the point of pinning is
/// that a server cannot change what an approved tool says; `"audit"` is the opt-in roll-out.
pub const DEFAULT_ON_CHANGE: OnChange = OnChange::Hide;

pub(super) fn validate_integrity(
    raw: RawIntegrity,
    base: &Path,
    problems: &mut Problems,
) -> Option<IntegrityConfig> {
    let on_change = match &raw.on_change {
        None => Some(DEFAULT_ON_CHANGE),
        Some(value) => problems.value(value, "integrity.on_change", |s| match s.as_str() {
            "hide" => Ok(OnChange::Hide),
            "audit" => Ok(OnChange::Audit),
            _ => Err("must be \"hide\" or \"audit\"".to_string()),
        }),
    };
    Some(IntegrityConfig {
        pins: raw.pins.map(|p| resolve(base, p.into_inner())),
        on_change: on_change?,
    })
}
