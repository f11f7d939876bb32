//! `SCOPEGATE_*` environment overrides: every config key can be set from a Kubernetes manifest
//! without editing the file. Owns the variable-to-key mapping and merging into the TOML text.

use crate::suggest::nearest;

/// The prefix of every override variable.
pub const ENV_PREFIX: &str = "SCOPEGATE_";

/// How an override's text becomes a TOML value.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Text,
    Bool,
    Integer,
    /// A number with a fraction (`0.25`).
    Float,
    /// A TOML array (`["a", "b"]`) or a comma-separated list (`a,b`).
    List,
    /// A TOML inline table (`{ sub = "x-user" }`).
    Table,
}

/// Every key an override may set. A key missing here cannot be overridden, so the list is
/// checked against the config model by a test.
pub(super) const KEYS: &[(&str, Kind)] = &[
    ("listen.address", Kind::Text),
    ("listen.insecure_plaintext", Kind::Bool),
    ("listen.allowed_origins", Kind::List),
    ("listen.drain_period", Kind::Text),
    ("listen.runtime", Kind::Text),
    ("listen.tls.cert", Kind::Text),
    ("listen.tls.key", Kind::Text),
    ("listen.tls.client_ca", Kind::Text),
    ("listen.tls.require_client_cert", Kind::Bool),
    ("listen.tls.watch_interval", Kind::Text),
    ("upstream.url", Kind::Text),
    ("upstream.forward_token", Kind::Bool),
    ("upstream.identity_headers", Kind::Table),
    ("upstream.connect_timeout", Kind::Text),
    ("upstream.response_timeout", Kind::Text),
    ("upstream.ca_file", Kind::Text),
    ("mcp.path", Kind::Text),
    ("mcp.resource", Kind::Text),
    ("mcp.max_body", Kind::Text),
    ("mcp.filter_lists", Kind::Bool),
    ("mcp.max_list_size", Kind::Text),
    ("mcp.bind_sessions", Kind::Bool),
    ("mcp.max_sessions", Kind::Integer),
    ("mcp.session_idle", Kind::Text),
    ("limits.header_read_timeout", Kind::Text),
    ("limits.body_read_timeout", Kind::Text),
    ("limits.max_header_size", Kind::Text),
    ("limits.max_connections", Kind::Integer),
    ("limits.max_requests", Kind::Integer),
    ("limits.max_h2_streams", Kind::Integer),
    ("auth.issuer", Kind::Text),
    ("auth.audiences", Kind::List),
    ("auth.jwks_uri", Kind::Text),
    ("auth.algorithms", Kind::List),
    ("auth.leeway", Kind::Text),
    ("auth.scope_claim", Kind::Text),
    ("auth.require_typ", Kind::Text),
    ("auth.dpop", Kind::Text),
    ("auth.dpop_nonce", Kind::Bool),
    ("auth.max_token_size", Kind::Text),
    ("auth.authorization_servers", Kind::List),
    ("auth.ca_file", Kind::Text),
    ("auth.token_cache_entries", Kind::Integer),
    ("auth.jwks.default_ttl", Kind::Text),
    ("auth.jwks.min_ttl", Kind::Text),
    ("auth.jwks.max_ttl", Kind::Text),
    ("auth.jwks.refetch_interval", Kind::Text),
    ("auth.jwks.max_stale", Kind::Text),
    ("auth.jwks.fetch_timeout", Kind::Text),
    ("policy.file", Kind::Text),
    ("policy.watch_interval", Kind::Text),
    ("admin.address", Kind::Text),
    ("state.backend", Kind::Text),
    ("state.url", Kind::Text),
    ("state.url_env", Kind::Text),
    ("state.password_env", Kind::Text),
    ("state.ca_file", Kind::Text),
    ("state.key_prefix", Kind::Text),
    ("state.timeout", Kind::Text),
    ("state.on_error", Kind::Text),
    ("integrity.pins", Kind::Text),
    ("integrity.on_change", Kind::Text),
    ("telemetry.otlp_endpoint", Kind::Text),
    ("telemetry.service_name", Kind::Text),
    ("telemetry.sample_ratio", Kind::Float),
];

/// The variable name for a key: `auth.jwks.max_stale` → `SCOPEGATE_AUTH_JWKS_MAX_STALE`.
pub fn variable_for(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase().replace('.', "_"))
}

/// Applies the overrides that name a key. `Ok(None)` when none does (the file is used as
/// written, with its positions); `Ok(Some(text))` is the merged document.
pub fn apply(source: &str, overrides: &[(String, String)]) -> Result<Option<String>, Vec<String>> {
    let matching: Vec<(&str, Kind, &str, &str)> = overrides
        .iter()
        .filter_map(|(name, value)| {
            KEYS.iter()
                .find(|(key, _)| variable_for(key) == *name)
                .map(|(key, kind)| (*key, *kind, name.as_str(), value.as_str()))
        })
        .collect();
    let misspelt = misspelt(overrides);
    if matching.is_empty() && misspelt.is_empty() {
        return Ok(None);
    }
    // A file that is not TOML is reported by the normal path, with its positions.
    let Ok(mut document) = source.parse::<toml::Table>() else {
        return Ok(None);
    };
    let mut problems = misspelt;
    for (key, kind, name, text) in matching {
        match value(kind, text) {
            Ok(value) => set(&mut document, key, value),
            Err(why) => problems.push(format!("{name}: {why}")),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    toml::to_string(&document)
        .map(Some)
        .map_err(|e| vec![format!("cannot merge overrides: {e}")])
}

/// Variables that name no key but are one slip from a variable that does. An unrelated
/// variable (Kubernetes' `SCOPEGATE_SERVICE_HOST`) is far from every key and stays ignored; a
/// misspelt one would otherwise be dropped without a word and its setting silently lost.
fn misspelt(overrides: &[(String, String)]) -> Vec<String> {
    let variables: Vec<String> = KEYS.iter().map(|(key, _)| variable_for(key)).collect();
    let mut problems = Vec::new();
    for (name, _) in overrides {
        let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if variables.contains(name) {
            continue;
        }
        let suffixes = variables.iter().map(|v| &v[ENV_PREFIX.len()..]);
        if let Some(near) = nearest(suffix, suffixes) {
            let key = KEYS
                .iter()
                .map(|(key, _)| *key)
                .find(|key| variable_for(key)[ENV_PREFIX.len()..] == *near)
                .unwrap_or_default();
            problems.push(format!(
                "{name}: names no config key; did you mean {ENV_PREFIX}{near} (`{key}`)?"
            ));
        }
    }
    problems
}

fn value(kind: Kind, text: &str) -> Result<toml::Value, String> {
    match kind {
        Kind::Text => Ok(toml::Value::String(text.to_string())),
        Kind::Bool => match text {
            "true" => Ok(toml::Value::Boolean(true)),
            "false" => Ok(toml::Value::Boolean(false)),
            _ => Err(format!("{text:?} is not true or false")),
        },
        Kind::Integer => text
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| format!("{text:?} is not a whole number")),
        Kind::Float => text
            .parse::<f64>()
            .map(toml::Value::Float)
            .map_err(|_| format!("{text:?} is not a number")),
        Kind::List if text.trim_start().starts_with('[') => parse_inline(text),
        Kind::List => Ok(toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        )),
        Kind::Table => parse_inline(text),
    }
}

fn parse_inline(text: &str) -> Result<toml::Value, String> {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("v"))
        .ok_or_else(|| format!("{text:?} is not a TOML array or inline table"))
}

fn set(document: &mut toml::Table, key: &str, value: toml::Value) {
    let mut table = document;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            table.insert(part.to_string(), value);
            return;
        }
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        table = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_follow_the_key_path() {
        assert_eq!(
            variable_for("auth.jwks.max_stale"),
            "SCOPEGATE_AUTH_JWKS_MAX_STALE"
        );
        assert_eq!(variable_for("listen.tls.cert"), "SCOPEGATE_LISTEN_TLS_CERT");
    }

    #[test]
    fn lists_take_toml_arrays_or_commas() {
        let from_commas = value(Kind::List, "RS256, ES256").unwrap();
        let from_toml = value(Kind::List, r#"["RS256", "ES256"]"#).unwrap();
        assert_eq!(from_commas, from_toml);
    }

    #[test]
    fn a_misspelt_variable_is_an_error_that_names_the_variable_it_meant() {
        let overrides = vec![(
            "SCOPEGATE_AUHT_ISSUER".to_string(),
            "https://idp.example.com".to_string(),
        )];
        assert_eq!(
            apply("[listen]\naddress = \"x\"\n", &overrides),
            Err(vec![
                "SCOPEGATE_AUHT_ISSUER: names no config key; did you mean \
                 SCOPEGATE_AUTH_ISSUER (`auth.issuer`)?"
                    .to_string()
            ])
        );
    }

    #[test]
    fn unrelated_scopegate_variables_leave_the_file_as_written() {
        let overrides: Vec<(String, String)> = [
            "SCOPEGATE_SERVICE_HOST",
            "SCOPEGATE_SERVICE_PORT",
            "SCOPEGATE_PORT",
            "SCOPEGATE_PORT_9464_TCP_ADDR",
            "SCOPEGATE_PORT_8443_TCP_PROTO",
        ]
        .iter()
        .map(|name| (name.to_string(), "10.0.0.1".to_string()))
        .collect();
        assert_eq!(apply("[listen]\naddress = \"x\"\n", &overrides), Ok(None));
    }
}
