//! The `[state]` table: where rate-limit buckets and handle bindings live, checked into the
//! settings the state layer takes (see `state`). Part of reading the config file.

use std::path::Path;

use toml::Spanned;

use super::raw::RawState;
use super::resolve;
use crate::diagnostics::Problems;
use crate::state::{
    Backend, DEFAULT_KEY_PREFIX, DEFAULT_TIMEOUT, OnError, RedisSettings, StateSettings, UrlSource,
    check_url,
};

pub(super) fn validate_state(
    raw: Option<Spanned<RawState>>,
    base: &Path,
    problems: &mut Problems,
) -> Option<StateSettings> {
    let Some(raw) = raw else {
        return Some(StateSettings::default());
    };
    let span = raw.span();
    let raw = raw.into_inner();
    let timeout = problems.duration(raw.timeout.as_ref(), "state.timeout", DEFAULT_TIMEOUT);
    if timeout.is_some_and(|t| t.is_zero()) {
        let span = raw.timeout.as_ref().map(Spanned::span);
        problems.at(span, "state.timeout", "must be more than 0");
    }
    let on_error = match &raw.on_error {
        None => Some(OnError::Local),
        Some(value) => problems.value(value, "state.on_error", |s| match s.as_str() {
            "local" => Ok(OnError::Local),
            "deny" => Ok(OnError::Deny),
            _ => Err("must be \"local\" or \"deny\"".into()),
        }),
    };
    let redis = match &raw.backend {
        None => Some(false),
        Some(value) => problems.value(value, "state.backend", |s| match s.as_str() {
            "memory" => Ok(false),
            "redis" => Ok(true),
            _ => Err("must be \"memory\" or \"redis\" (Valkey too)".into()),
        }),
    };
    let backend = match redis? {
        true => redis_settings(&raw, span, base, problems).map(Backend::Redis),
        false => {
            // A Redis setting under the memory backend is a half-done switch: say so.
            let stray = [
                ("state.url", raw.url.as_ref().map(Spanned::span)),
                ("state.url_env", raw.url_env.as_ref().map(Spanned::span)),
                (
                    "state.password_env",
                    raw.password_env.as_ref().map(Spanned::span),
                ),
                ("state.ca_file", raw.ca_file.as_ref().map(Spanned::span)),
            ];
            for (key, span) in stray {
                if let Some(span) = span {
                    problems.at(Some(span), key, "only used with backend = \"redis\"");
                }
            }
            Some(Backend::Memory)
        }
    };
    Some(StateSettings {
        backend: backend?,
        key_prefix: raw
            .key_prefix
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned()),
        timeout: timeout.filter(|t| !t.is_zero())?,
        on_error: on_error?,
    })
}

fn redis_settings(
    raw: &RawState,
    table: std::ops::Range<usize>,
    base: &Path,
    problems: &mut Problems,
) -> Option<RedisSettings> {
    let url = match (&raw.url, &raw.url_env) {
        (Some(url), None) => problems
            .value(url, "state.url", |s| check_url(s))
            .map(|()| UrlSource::Inline(url.get_ref().clone())),
        (None, Some(name)) => problems
            .value(name, "state.url_env", |s| env_name(s))
            .map(|()| UrlSource::Env(name.get_ref().clone())),
        (Some(_), Some(name)) => {
            problems.at(
                Some(name.span()),
                "state.url_env",
                "give url or url_env, not both",
            );
            None
        }
        (None, None) => {
            problems.at(
                Some(table),
                "state.url",
                "missing: backend = \"redis\" needs url = \"redis://host:6379/0\" or url_env",
            );
            None
        }
    };
    let password_env = match &raw.password_env {
        Some(name) => problems
            .value(name, "state.password_env", |s| env_name(s))
            .map(|()| Some(name.get_ref().clone())),
        None => Some(None),
    };
    Some(RedisSettings {
        url: url?,
        password_env: password_env?,
        ca_file: raw
            .ca_file
            .as_ref()
            .map(|p| resolve(base, p.get_ref().clone())),
    })
}

/// An environment variable's name: what a shell and a Kubernetes manifest can set.
fn env_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err("must be an environment variable name (letters, digits, _)".into())
    }
}
