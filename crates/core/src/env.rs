//! Where the process environment is read: the `SCOPEGATE_*` overrides of config keys and the
//! secrets a config names by variable (`client_secret_env`, `state.url_env`, …). Production reads
//! the process ([`ProcessEnv`]); tests pass a map, so none of them calls `set_var`.

use std::collections::BTreeMap;

/// A source of environment variables.
pub trait Env {
    /// The variable's value; `None` when unset or empty (an empty secret is no secret).
    fn var(&self, name: &str) -> Option<String>;
    /// Every variable whose name starts with `prefix`, as (name, value) pairs.
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        std::env::vars()
            .filter(|(name, _)| name.starts_with(prefix))
            .collect()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}
