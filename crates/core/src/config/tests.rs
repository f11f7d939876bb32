use super::*;
use jsonwebtoken::Algorithm;

const MINIMAL: &str = r#"
[listen]
address = "127.0.0.1:8443"
[listen.tls]
cert = "tls/tls.crt"
key = "tls/tls.key"

[upstream]
url = "http://127.0.0.1:8000/mcp"

[mcp]
resource = "https://mcp.example.com/mcp"

[auth]
issuer = "https://idp.example.com/realms/mcp"
audiences = ["https://mcp.example.com/mcp"]

[policy]
file = "policy.toml"
"#;

fn parse(source: &str) -> Result<Config, ConfigError> {
    Config::parse(source, Path::new("/etc/scopegate/config.toml"))
}

#[test]
fn minimal_config_takes_the_documented_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.mcp.path, "/mcp");
    assert_eq!(config.mcp.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(config.issuers[0].leeway, DEFAULT_LEEWAY);
    assert_eq!(
        config.issuers[0].algorithms,
        vec![Algorithm::RS256, Algorithm::ES256]
    );
    assert_eq!(config.issuers[0].scope_claim, "scope");
    assert_eq!(
        config.authorization_servers,
        vec!["https://idp.example.com/realms/mcp"]
    );
    assert!(!config.upstream.forward_token);
    assert_eq!(config.upstream.identity_headers.len(), 2);
    assert_eq!(config.admin_address, DEFAULT_ADMIN_ADDRESS.parse().unwrap());
}

#[test]
fn relative_paths_are_taken_from_the_config_directory() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.policy_file, Path::new("/etc/scopegate/policy.toml"));
    let tls = config.listen.tls.unwrap();
    assert_eq!(tls.cert, Path::new("/etc/scopegate/tls/tls.crt"));
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let source = MINIMAL.replace("[mcp]\n", "[mcp]\nresorce = \"x\"\n");
    let error = parse(&source).unwrap_err().to_string();
    assert!(
        error.starts_with("/etc/scopegate/config.toml:12:1:"),
        "{error}"
    );
    assert!(
        error.ends_with("mcp.resorce: unknown key; did you mean `mcp.resource`?"),
        "{error}"
    );
}

#[test]
fn type_errors_unknown_keys_and_bad_values_are_all_reported_at_once() {
    let source = MINIMAL
        .replace(
            "audiences = [\"https://mcp.example.com/mcp\"]",
            "audiences = [\"https://mcp.example.com/mcp\"]\nleeway = 30\nleewy = \"1m\"",
        )
        .replace("[mcp]\n", "[mcp]\nmax_sessions = \"many\"\n")
        .replace("http://127.0.0.1:8000/mcp", "ftp://host/mcp");
    let error = parse(&source).unwrap_err();
    let file = "/etc/scopegate/config.toml";
    assert_eq!(
        error.problems,
        [
            format!(
                "{file}:18:10: auth.leeway: invalid type: integer `30`, expected a string; write durations as strings, e.g. \"30s\""
            ),
            format!("{file}:19:1: auth.leewy: unknown key; did you mean `auth.leeway`?"),
            format!("{file}:12:16: mcp.max_sessions: invalid type: string \"many\", expected u64"),
            format!("{file}:9:7: upstream.url: must be an absolute http:// or https:// URL"),
        ],
        "{error}"
    );
}

#[test]
fn a_missing_key_is_reported_beside_the_other_problems_of_its_file() {
    let source = MINIMAL
        .replace(
            "issuer = \"https://idp.example.com/realms/mcp\"\n",
            "leeway = 30\n",
        )
        .replace("[policy]\n", "[policy]\nwatch_interval = 2\n");
    let error = parse(&source).unwrap_err();
    let file = "/etc/scopegate/config.toml";
    assert_eq!(
        error.problems,
        [
            format!(
                "{file}:15:10: auth.leeway: invalid type: integer `30`, expected a string; write durations as strings, e.g. \"30s\""
            ),
            format!(
                "{file}:19:18: policy.watch_interval: invalid type: integer `2`, expected a string; write durations as strings, e.g. \"30s\""
            ),
            // Found once the file is read, since either form of [auth] may name the issuer.
            format!(
                "{file}:14:1: auth.issuer: missing: [auth] names its issuer and audiences, or lists [[auth.issuers]]"
            ),
        ],
        "{error}"
    );
}

#[test]
fn every_semantic_problem_is_reported_with_its_line() {
    let source = MINIMAL
        .replace("\"127.0.0.1:8443\"", "\"nowhere\"")
        .replace("audiences = [\"https://mcp.example.com/mcp\"]", "audiences = [\"https://mcp.example.com/mcp\"]\nalgorithms = [\"HS256\", \"RS256\"]\nleeway = \"30\"");
    let error = parse(&source).unwrap_err();
    assert_eq!(error.problems.len(), 3, "{error}");
    assert!(
        error.problems[0].starts_with("/etc/scopegate/config.toml:3:11: listen.address:"),
        "{error}"
    );
    assert!(
        error.problems[1].contains(":17:15: auth.algorithms: \"HS256\" is refused"),
        "{error}"
    );
    assert!(
        error.problems[2].contains(":18:10: auth.leeway: \"30\" needs a unit"),
        "{error}"
    );
}

#[test]
fn tls_is_required_unless_plaintext_is_asked_for() {
    let without_tls = MINIMAL.replace(
        "[listen.tls]\ncert = \"tls/tls.crt\"\nkey = \"tls/tls.key\"\n",
        "",
    );
    let error = parse(&without_tls).unwrap_err().to_string();
    assert!(error.contains("listen.tls: missing"), "{error}");
    let plaintext = without_tls.replace("[listen]\n", "[listen]\ninsecure_plaintext = true\n");
    assert!(parse(&plaintext).unwrap().listen.tls.is_none());
}

#[test]
fn identity_headers_cannot_name_proxy_managed_headers() {
    let source = MINIMAL.replace(
        "[upstream]\nurl = \"http://127.0.0.1:8000/mcp\"\n",
        "[upstream]\nurl = \"http://127.0.0.1:8000/mcp\"\nidentity_headers = { sub = \"Authorization\" }\n",
    );
    let error = parse(&source).unwrap_err().to_string();
    assert!(error.contains("upstream.identity_headers.sub"), "{error}");
    for name in [
        "mcp_session_id",
        "x-forwarded-for",
        "X_Forwarded_Host",
        "forwarded",
        "x_user",
    ] {
        let source = MINIMAL.replace(
            "[upstream]\nurl = \"http://127.0.0.1:8000/mcp\"\n",
            &format!(
                "[upstream]\nurl = \"http://127.0.0.1:8000/mcp\"\nidentity_headers = {{ sub = \"{name}\" }}\n"
            ),
        );
        let error = parse(&source).unwrap_err().to_string();
        assert!(
            error.contains("upstream.identity_headers.sub"),
            "{name}: {error}"
        );
    }
}

#[test]
fn upstream_must_be_an_http_url() {
    let source = MINIMAL.replace("http://127.0.0.1:8000/mcp", "ftp://host/mcp");
    let error = parse(&source).unwrap_err().to_string();
    assert!(
        error.contains("upstream.url: must be an absolute http"),
        "{error}"
    );
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn environment_overrides_set_nested_keys() {
    let overrides = env(&[
        ("SCOPEGATE_AUTH_ISSUER", "https://other.example.com"),
        ("SCOPEGATE_AUTH_JWKS_MAX_STALE", "1h"),
        ("SCOPEGATE_UPSTREAM_FORWARD_TOKEN", "true"),
        ("SCOPEGATE_AUTH_ALGORITHMS", "ES256,EdDSA"),
        ("SCOPEGATE_LISTEN_TLS_CERT", "/run/tls/cert.pem"),
    ]);
    let config =
        Config::parse_with_overrides(MINIMAL, Path::new("/etc/scopegate/config.toml"), &overrides)
            .unwrap();
    assert_eq!(config.issuers[0].issuer, "https://other.example.com");
    assert_eq!(config.issuers[0].jwks.max_stale, Duration::from_secs(3600));
    assert!(config.upstream.forward_token);
    assert_eq!(
        config.issuers[0].algorithms,
        vec![Algorithm::ES256, Algorithm::EdDSA]
    );
    assert_eq!(
        config.listen.tls.unwrap().cert,
        Path::new("/run/tls/cert.pem")
    );
}

#[test]
fn bad_override_names_its_variable() {
    let overrides = env(&[("SCOPEGATE_AUTH_LEEWAY", "soon")]);
    let error =
        Config::parse_with_overrides(MINIMAL, Path::new("/etc/scopegate/config.toml"), &overrides)
            .unwrap_err()
            .to_string();
    assert!(
        error.contains(
            "(with SCOPEGATE_* overrides): auth.leeway: \"soon\" does not start with a number"
        ),
        "{error}"
    );
}

#[test]
fn every_documented_key_can_be_overridden() {
    // Each key of the example config, as an override variable, must reach the config.
    let example = include_str!("../../../../deploy/config.example.toml");
    let table: toml::Table = example.parse().unwrap();
    fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) if path != "upstream.identity_headers" => {
                    keys(&path, inner, out)
                }
                _ => out.push(path),
            }
        }
    }
    let mut found = Vec::new();
    keys("", &table, &mut found);
    for key in found {
        assert!(
            overrides::KEYS.iter().any(|(k, _)| *k == key),
            "{key} has no environment override"
        );
    }
}

#[test]
fn the_runtime_shape_is_per_core_unless_work_stealing_is_asked_for() {
    assert_eq!(
        parse(MINIMAL).unwrap().listen.runtime,
        RuntimeShape::PerCore
    );
    let stealing = MINIMAL.replace(
        "address = \"127.0.0.1:8443\"",
        "address = \"127.0.0.1:8443\"\nruntime = \"work-stealing\"",
    );
    assert_eq!(
        parse(&stealing).unwrap().listen.runtime,
        RuntimeShape::WorkStealing
    );
    let error = parse(&MINIMAL.replace(
        "address = \"127.0.0.1:8443\"",
        "address = \"127.0.0.1:8443\"\nruntime = \"fast\"",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        error.contains(":4:11: listen.runtime: must be \"work-stealing\" or \"per-core\""),
        "{error}"
    );
}

#[test]
fn state_defaults_to_memory_and_reads_a_redis_table() {
    use crate::state::{Backend, OnError, UrlSource};
    let config = parse(MINIMAL).unwrap();
    assert!(matches!(config.state.backend, Backend::Memory));
    assert_eq!(config.state.on_error, OnError::Local);

    let source = format!(
        "{MINIMAL}\n[state]\nbackend = \"redis\"\nurl = \"rediss://:pw@redis.example:6380/2\"\nca_file = \"redis-ca.crt\"\nkey_prefix = \"gw:\"\ntimeout = \"20ms\"\non_error = \"deny\"\n"
    );
    let config = parse(&source).unwrap();
    let Backend::Redis(redis) = &config.state.backend else {
        panic!("memory backend");
    };
    assert!(matches!(&redis.url, UrlSource::Inline(url) if url.starts_with("rediss://")));
    assert_eq!(
        redis.ca_file.as_deref(),
        Some(Path::new("/etc/scopegate/redis-ca.crt"))
    );
    assert_eq!(config.state.key_prefix, "gw:");
    assert_eq!(config.state.timeout, Duration::from_millis(20));
    assert_eq!(config.state.on_error, OnError::Deny);
    // The password never shows in the settings' debug output (start-up logs, errors).
    assert!(!format!("{config:?}").contains("pw@"), "{config:?}");
}

#[test]
fn state_problems_are_all_reported_with_their_keys() {
    let source = format!(
        "{MINIMAL}\n[state]\nbackend = \"redis\"\nurl = \"http://:hunter2@redis:6379\"\ntimeout = \"0s\"\non_error = \"maybe\"\npassword_env = \"NOT-A-NAME\"\n"
    );
    let error = parse(&source).unwrap_err().to_string();
    for expected in [
        "state.url: must be a redis:// or rediss:// URL",
        "state.timeout: must be more than 0",
        "state.on_error: must be \"local\" or \"deny\"",
        "state.password_env: must be an environment variable name",
    ] {
        assert!(
            error.contains(expected),
            "{expected} missing from:\n{error}"
        );
    }
    assert!(!error.contains("hunter2"), "{error}");

    let missing = parse(&format!("{MINIMAL}\n[state]\nbackend = \"redis\"\n"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("state.url: missing"), "{missing}");
    let both = parse(&format!(
        "{MINIMAL}\n[state]\nbackend = \"redis\"\nurl = \"redis://r:6379\"\nurl_env = \"REDIS_URL\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        both.contains("state.url_env: give url or url_env, not both"),
        "{both}"
    );
    let stray = parse(&format!("{MINIMAL}\n[state]\nurl = \"redis://r:6379\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        stray.contains("state.url: only used with backend = \"redis\""),
        "{stray}"
    );
    let backend = parse(&format!("{MINIMAL}\n[state]\nbackend = \"etcd\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        backend.contains("state.backend: must be \"memory\" or \"redis\""),
        "{backend}"
    );
}

#[test]
fn telemetry_is_off_without_an_endpoint_and_takes_its_defaults_with_one() {
    assert!(parse(MINIMAL).unwrap().telemetry.is_none());
    let config = parse(&format!(
        "{MINIMAL}\n[telemetry]\notlp_endpoint = \"http://collector:4318/\"\n"
    ))
    .unwrap();
    let telemetry = config.telemetry.unwrap();
    assert_eq!(telemetry.traces_url(), "http://collector:4318/v1/traces");
    assert_eq!(telemetry.service_name, DEFAULT_SERVICE_NAME);
    assert_eq!(telemetry.sample_ratio, DEFAULT_SAMPLE_RATIO);
}

#[test]
fn telemetry_refuses_a_ratio_outside_zero_to_one_and_an_endpoint_that_is_not_http() {
    let error = parse(&format!(
        "{MINIMAL}\n[telemetry]\notlp_endpoint = \"collector:4318\"\nsample_ratio = 1.5\n"
    ))
    .unwrap_err();
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(
        error.problems[0]
            .contains(":23:16: telemetry.sample_ratio: 1.5 is not between 0.0 and 1.0"),
        "{error}"
    );
    assert!(
        error.problems[1].contains("telemetry.otlp_endpoint: must be an http:// or https:// URL"),
        "{error}"
    );
}

#[test]
fn state_url_can_come_from_an_override() {
    let source = format!("{MINIMAL}\n[state]\nbackend = \"redis\"\n");
    let overrides = [(
        "SCOPEGATE_STATE_URL".to_owned(),
        "redis://redis.gateway.svc:6379/0".to_owned(),
    )];
    let config =
        Config::parse_with_overrides(&source, Path::new("/etc/scopegate/config.toml"), &overrides)
            .unwrap();
    assert!(matches!(
        config.state.backend,
        crate::state::Backend::Redis(_)
    ));
}

#[test]
fn integrity_is_off_without_its_table_hides_by_default_and_names_a_bad_on_change() {
    use crate::config::OnChange;
    assert!(parse(MINIMAL).unwrap().integrity.is_none());
    let config = parse(&format!("{MINIMAL}[integrity]\npins = \"tools.lock\"\n")).unwrap();
    let integrity = config.integrity.unwrap();
    assert_eq!(integrity.on_change, OnChange::Hide);
    assert_eq!(
        integrity.pins.as_deref(),
        Some(Path::new("/etc/scopegate/tools.lock"))
    );
    let audit = parse(&format!("{MINIMAL}[integrity]\non_change = \"audit\"\n")).unwrap();
    let audit = audit.integrity.unwrap();
    assert_eq!((audit.on_change, audit.pins), (OnChange::Audit, None));
    let error = parse(&format!("{MINIMAL}[integrity]\non_change = \"block\"\n")).unwrap_err();
    assert_eq!(
        error.problems,
        ["/etc/scopegate/config.toml:21:13: integrity.on_change: must be \"hide\" or \"audit\""]
    );
}

#[test]
fn telemetry_ratio_can_be_overridden_from_the_environment() {
    let overrides = [
        (
            "SCOPEGATE_TELEMETRY_OTLP_ENDPOINT".to_string(),
            "http://c:4318".to_string(),
        ),
        (
            "SCOPEGATE_TELEMETRY_SAMPLE_RATIO".to_string(),
            "0.25".to_string(),
        ),
    ];
    let config =
        Config::parse_with_overrides(MINIMAL, Path::new("/etc/c.toml"), &overrides).unwrap();
    assert_eq!(config.telemetry.unwrap().sample_ratio, 0.25);
}

#[test]
fn client_certificates_are_required_with_a_client_ca_unless_said_otherwise() {
    let with_ca = MINIMAL.replace(
        "key = \"tls/tls.key\"\n",
        "key = \"tls/tls.key\"\nclient_ca = \"tls/ca.crt\"\n",
    );
    let tls = parse(&with_ca).unwrap().listen.tls.unwrap();
    assert!(tls.require_client_cert);
    let optional = with_ca.replace(
        "client_ca = \"tls/ca.crt\"\n",
        "client_ca = \"tls/ca.crt\"\nrequire_client_cert = false\n",
    );
    let tls = parse(&optional).unwrap().listen.tls.unwrap();
    assert!(!tls.require_client_cert);

    // Without a CA no certificate is asked for: the key would promise what the listener does not do.
    let without_ca = MINIMAL.replace(
        "key = \"tls/tls.key\"\n",
        "key = \"tls/tls.key\"\nrequire_client_cert = false\n",
    );
    let error = parse(&without_ca).unwrap_err().to_string();
    assert!(
        error.contains(
            "listen.tls.require_client_cert: needs listen.tls.client_ca: without it no client certificate is asked for"
        ),
        "{error}"
    );
}
