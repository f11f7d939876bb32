//! `scopegate tools pin` and `tools diff` against an upstream that wants a token: scopegate
//! itself, over TLS, with a token from the environment variable `--token-env` names.

use super::common::{self, Options};
use super::{CHANGED, NEW_DESCRIPTION, SCOPES, pin_config_trusting, tools_with_env};

/// Runs `scopegate tools …` off the runtime's threads: the proxy it talks to runs in this process.
async fn run(args: Vec<String>, env: Vec<(&'static str, String)>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        tools_with_env(&args, &env)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_pin_and_diff_send_the_token_named_by_token_env_through_the_tls_proxy() {
    let t = common::start_with(Options {
        policy: Some("version = 1\n[[tools]]\nname = \"*\"\nscopes = []\n".into()),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = pin_config_trusting(dir.path(), t.url(), Some(&t.system.certs.ca));
    let lock = dir.path().join("tools.lock");
    let token = t.token(&SCOPES);
    let config = config.display().to_string();
    let lock = lock.display().to_string();
    let args = |command: &str, file_flag: &str, token_env: bool| {
        let mut args = vec![command, "--config", &config, file_flag, &lock];
        if token_env {
            args.extend(["--token-env", "PIN_TOKEN"]);
        }
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let with_token = || vec![("PIN_TOKEN", token.clone())];

    // Without the option no Authorization is sent, and scopegate's 401 ends the command.
    let before = t.upstream_requests();
    let (ok, out) = run(args("pin", "--out", false), with_token()).await;
    assert!(!ok, "{out}");
    assert!(out.contains("401"), "{out}");
    assert!(
        !std::path::Path::new(&lock).exists(),
        "no pins file on failure"
    );
    assert_eq!(t.upstream_requests(), before, "refused by the proxy");

    // A named variable that is unset: refused before anything is asked.
    let (ok, out) = run(args("pin", "--out", true), vec![]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("the environment variable PIN_TOKEN holds no token"),
        "{out}"
    );

    let (ok, out) = run(args("pin", "--out", true), with_token()).await;
    assert!(ok, "{out}");
    assert!(out.contains("4 tools pinned"), "{out}");
    assert!(
        t.upstream_requests() > before,
        "the listing came from the server"
    );
    assert!(!out.contains(&token), "{out}");

    let (same, out) = run(args("diff", "--pins", true), with_token()).await;
    assert!(same, "{out}");
    assert!(out.contains("4 unchanged, 0 changed"), "{out}");

    t.system.upstream.set_description(CHANGED, NEW_DESCRIPTION);
    let (same, out) = run(args("diff", "--pins", true), with_token()).await;
    assert!(!same, "{out}");
    assert!(
        out.contains(&format!("    + \"{NEW_DESCRIPTION}\"")),
        "{out}"
    );
    assert!(!out.contains(&token), "{out}");
}
