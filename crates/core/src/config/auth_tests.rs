//! The `[auth]` table's two forms: one issuer at its top, several in `[[auth.issuers]]`.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::config::{Config, ConfigError};

fn with_auth(auth: &str) -> String {
    format!(
        r#"
[listen]
address = "127.0.0.1:8443"
insecure_plaintext = true

[upstream]
url = "http://127.0.0.1:8000/mcp"

[mcp]
resource = "https://mcp.example.com/mcp"

[auth]
{auth}

[policy]
file = "policy.toml"
"#
    )
}

fn parse(auth: &str) -> Result<Config, ConfigError> {
    Config::parse(&with_auth(auth), Path::new("/etc/scopegate/config.toml"))
}

const TWO_ISSUERS: &str = r#"
max_token_size = "4KiB"
[auth.jwks]
max_stale = "1h"

[[auth.issuers]]
issuer = "https://old-idp.example.com/realms/mcp"
audiences = ["https://mcp.example.com/mcp"]
algorithms = ["RS256"]

[[auth.issuers]]
issuer = "https://new-idp.example.com"
audiences = ["mcp"]
jwks_uri = "https://new-idp.example.com/keys"
algorithms = ["ES256", "EdDSA"]
leeway = "5s"
scope_claim = "scp"
require_typ = "at+jwt"
"#;

#[test]
fn several_issuers_each_keep_their_own_keys_and_checks() {
    let config = parse(TWO_ISSUERS).unwrap();
    let [old, new] = &config.issuers[..] else {
        panic!("two issuers: {:?}", config.issuers);
    };
    assert_eq!(old.issuer, "https://old-idp.example.com/realms/mcp");
    assert_eq!(old.algorithms, vec![Algorithm::RS256]);
    assert_eq!(old.jwks_uri, None);
    assert_eq!(old.scope_claim, "scope");
    assert_eq!(new.audiences, vec!["mcp"]);
    assert_eq!(
        new.jwks_uri.as_deref(),
        Some("https://new-idp.example.com/keys")
    );
    assert_eq!(new.algorithms, vec![Algorithm::ES256, Algorithm::EdDSA]);
    assert_eq!(new.leeway, Duration::from_secs(5));
    assert_eq!(new.scope_claim, "scp");
    assert_eq!(new.require_typ.as_deref(), Some("at+jwt"));
    // What [auth] itself says applies to every issuer.
    for issuer in [old, new] {
        assert_eq!(issuer.max_token_bytes, 4096);
        assert_eq!(issuer.jwks.max_stale, Duration::from_secs(3600));
    }
    assert_eq!(
        config.authorization_servers,
        vec![
            "https://old-idp.example.com/realms/mcp",
            "https://new-idp.example.com"
        ]
    );
}

#[test]
fn issuer_keys_at_the_top_and_a_list_of_issuers_are_not_mixed() {
    let source = format!("issuer = \"https://idp.example.com\"\nleeway = \"10s\"\n{TWO_ISSUERS}");
    let error = parse(&source).unwrap_err().to_string();
    assert!(
        error.contains("auth.issuers: cannot be combined with issuer keys at the top of [auth] (issuer, leeway)"),
        "{error}"
    );
}

#[test]
fn an_issuer_listed_twice_is_refused_at_its_second_entry() {
    let source = TWO_ISSUERS.replace(
        "issuer = \"https://new-idp.example.com\"",
        "issuer = \"https://old-idp.example.com/realms/mcp\"",
    );
    let error = parse(&source).unwrap_err().to_string();
    assert!(
        error.contains(":24:10: auth.issuers[1].issuer: is listed twice"),
        "{error}"
    );
}

#[test]
fn each_problem_names_its_issuer_entry() {
    let source = TWO_ISSUERS
        .replace("algorithms = [\"RS256\"]", "algorithms = [\"HS256\"]")
        .replace("leeway = \"5s\"", "leeway = \"soon\"");
    let error = parse(&source).unwrap_err().to_string();
    assert!(
        error.contains("auth.issuers[0].algorithms: \"HS256\" is refused"),
        "{error}"
    );
    assert!(error.contains("auth.issuers[1].leeway:"), "{error}");
}

#[test]
fn an_empty_issuer_list_or_no_issuer_at_all_is_refused() {
    let error = parse("issuers = []").unwrap_err().to_string();
    assert!(
        error.contains("auth.issuers: must list at least one issuer"),
        "{error}"
    );
    let error = parse("token_cache_entries = 5").unwrap_err().to_string();
    assert!(
        error.contains("auth.issuer: missing: [auth] names its issuer and audiences"),
        "{error}"
    );
}

#[test]
fn the_single_issuer_form_is_one_issuer() {
    let config = parse(
        "issuer = \"https://idp.example.com\"\naudiences = [\"https://mcp.example.com/mcp\"]",
    )
    .unwrap();
    assert_eq!(config.issuers.len(), 1);
    assert_eq!(config.issuers[0].issuer, "https://idp.example.com");
    assert_eq!(
        config.authorization_servers,
        vec!["https://idp.example.com"]
    );
}

const INTROSPECTION: &str = r#"
[auth.issuers.introspection]
client_id = "scopegate"
client_secret_env = "IDP_SECRET"
cache_ttl = "30s"
auth_method = "client_secret_post"
"#;

#[test]
fn one_env_gives_both_the_overrides_and_the_named_secrets() {
    let source = with_auth(&format!("{TWO_ISSUERS}{INTROSPECTION}"));
    let env: std::collections::BTreeMap<String, String> = [
        ("IDP_SECRET", "s3cret"),
        ("SCOPEGATE_MCP_PATH", "/tools"),
        ("UNRELATED", "x"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config =
        Config::parse_with_env(&source, Path::new("/etc/scopegate/config.toml"), &env).unwrap();
    assert_eq!(config.mcp.path, "/tools");
    let introspection = config.issuers[1].introspection.as_ref().unwrap();
    assert_eq!(introspection.client_secret.0, "s3cret");
}

#[test]
fn introspection_reads_its_secret_from_the_named_variable() {
    let source = with_auth(&format!("{TWO_ISSUERS}{INTROSPECTION}"));
    let path = Path::new("/etc/scopegate/config.toml");
    let env = [("IDP_SECRET".to_string(), "s3cret".to_string())];
    let config = Config::parse_with_overrides(&source, path, &env).unwrap();
    let introspection = config.issuers[1].introspection.as_ref().unwrap();
    assert_eq!(introspection.client_secret.0, "s3cret");
    assert_eq!(introspection.client_id, "scopegate");
    assert_eq!(introspection.cache_ttl, Duration::from_secs(30));
    assert_eq!(introspection.client_auth, crate::auth::ClientAuth::Post);
    assert_eq!(introspection.endpoint, None);
    assert!(config.issuers[0].introspection.is_none());

    let error = Config::parse(&source, path).unwrap_err().to_string();
    assert!(
        error.contains(
            "auth.issuers[1].introspection.client_secret_env: the variable IDP_SECRET is not set"
        ),
        "{error}"
    );
}

#[test]
fn only_one_issuer_may_introspect_opaque_tokens() {
    let both = TWO_ISSUERS.replace(
        "[[auth.issuers]]\nissuer = \"https://new-idp.example.com\"",
        &format!("{INTROSPECTION}\n[[auth.issuers]]\nissuer = \"https://new-idp.example.com\""),
    );
    let source = with_auth(&format!("{both}{INTROSPECTION}"));
    let env = [("IDP_SECRET".to_string(), "s".to_string())];
    let error = Config::parse_with_overrides(&source, Path::new("c.toml"), &env)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "auth.issuers[1].introspection: only one issuer may introspect opaque tokens"
        ),
        "{error}"
    );
}

#[test]
fn dpop_is_allowed_unless_an_issuer_says_otherwise() {
    let config = parse(&TWO_ISSUERS.replace(
        "require_typ = \"at+jwt\"",
        "require_typ = \"at+jwt\"\ndpop = \"required\"",
    ))
    .unwrap();
    assert_eq!(config.issuers[0].dpop, crate::auth::DpopMode::Allowed);
    assert_eq!(config.issuers[1].dpop, crate::auth::DpopMode::Required);
    let error = parse(&TWO_ISSUERS.replace("leeway = \"5s\"", "dpop = \"maybe\""))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("auth.issuers[1].dpop: must be \"allowed\", \"required\" or \"off\""),
        "{error}"
    );
}
