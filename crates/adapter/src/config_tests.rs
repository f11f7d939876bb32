//! Validation of the adapter's config file.

use super::*;

const GOOD: &str = r#"
[listen]
address = "127.0.0.1:4000"

[mcp]
url = "https://localhost:8443/mcp"

[oauth]
token_url = "https://idp.example.com/token"
client_id = "support-agent"
client_secret_env = "SECRET"

[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com/v1/"
api_key_env = "OPENAI_API_KEY"

[models.support]
targets = ["openai/gpt-4o-mini"]
"#;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn a_good_file_reads_its_secrets_from_the_environment() {
    let config = AdapterConfig::parse(
        GOOD,
        Path::new("a.toml"),
        &env(&[("SECRET", "s"), ("OPENAI_API_KEY", "k")]),
    )
    .unwrap();
    assert_eq!(config.providers[0].api_key.as_deref(), Some("k"));
    assert_eq!(config.providers[0].base_url, "https://api.openai.com/v1");
    assert_eq!(config.tools.unwrap().oauth.client_secret, "s");
    assert_eq!(
        config.models["support"][0].to_string(),
        "openai/gpt-4o-mini"
    );
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = GOOD
        .replace("\"openai\"\nbase_url", "\"openia\"\nbase_url")
        .replace("openai/gpt-4o-mini", "azure/gpt-4o");
    let error = AdapterConfig::parse(&text, Path::new("a.toml"), &env(&[])).unwrap_err();
    let all = error.to_string();
    assert!(
        all.contains(
            "a.toml:11:21: oauth.client_secret_env: environment variable SECRET is not set"
        ),
        "{all}"
    );
    assert!(all.contains("\"openia\" is not a provider kind"), "{all}");
    assert!(all.contains("OPENAI_API_KEY is not set"), "{all}");
    assert!(all.contains("no provider is named \"azure\""), "{all}");
}

#[test]
fn unknown_keys_are_refused() {
    let text = GOOD.replace("[listen]\n", "[listen]\napi_key = \"inline\"\n");
    let error = AdapterConfig::parse(&text, Path::new("a.toml"), &env(&[])).unwrap_err();
    assert!(
        error.to_string().contains(
            "a.toml:3:1: listen.api_key: unknown key; expected one of: address, api_key_env"
        ),
        "{error}"
    );
}
