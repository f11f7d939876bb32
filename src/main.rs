#![forbid(unsafe_code)]
//! The `scopegate` binary: parses the command line and calls one function per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "scopegate",
    version,
    about = "Authorization sidecar for MCP servers"
)]
struct Cli {
    /// Log line format; the level comes from RUST_LOG (default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Validate the config, the policy and the TLS files it names, then exit.
        #[arg(long)]
        check_config: bool,
    },
    /// Start a dev issuer, a sample MCP server and the proxy on this machine, and play the
    /// scenarios.
    #[cfg(feature = "demo")]
    Demo {
        /// Keep everything running after the scenarios and print how to connect.
        #[arg(long)]
        serve: bool,
        /// Write the endpoints (MCP URL, CA file, token URL, resource) as JSON to this file once
        /// everything is up, for scripts that drive the running demo.
        #[arg(long)]
        endpoints_file: Option<PathBuf>,
    },
    #[cfg(feature = "adapter")]
    /// Run the companion adapter: an OpenAI-compatible endpoint routed to model providers, with
    /// MCP tools called through scopegate.
    Adapter {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check, test and explain policy files, offline.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Pin the upstream's tool definitions, and show what changed since they were pinned.
    Tools {
        #[command(subcommand)]
        command: ToolsCommand,
    },
    /// Check audit logs, offline.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum ToolsCommand {
    /// Ask the config's upstream for its whole tool listing and write each tool's pin (the
    /// SHA-256 of its RFC 8785 definition) and definition to a pins file for `[integrity] pins`.
    Pin {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_name = "tools.lock")]
        out: PathBuf,
        /// The environment variable holding a bearer token for the upstream (one that wants a
        /// token, or scopegate in front of it); without it no Authorization is sent.
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
    },
    /// Compare the upstream's tools now with a pins file, field by field. Exits 1 when anything
    /// differs.
    Diff {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_name = "tools.lock")]
        pins: PathBuf,
        /// As for `tools pin`.
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check an audit log's hash chain: names the first edited, missing or out-of-order audit
    /// line and exits 1. Keyed chains need SCOPEGATE_AUDIT_HMAC_KEY set as it was for the run.
    Verify { file: PathBuf },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate and lint policy files: `file:line:col: error|warning: …` and a summary line.
    /// A folder stands for the `*.toml` files in it; `*.cases.toml` files are checked as cases.
    /// Exits 1 on any error (and, with --deny-warnings, on any warning).
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Fail on warnings too.
        #[arg(long)]
        deny_warnings: bool,
        /// The scopes the issuer grants, space-separated: warns about rule scopes outside them
        /// and about known scopes that no rule uses.
        #[arg(long, value_name = "SCOPES")]
        known_scopes: Option<String>,
        /// A saved tools/list answer (JSON) or a pins file (`tools pin`): conditions' args.X are
        /// checked against each tool's inputSchema.
        #[arg(long, value_name = "FILE", conflicts_with = "url")]
        tools: Option<PathBuf>,
        /// Fetch the tools/list answer from a running MCP server instead (Streamable HTTP), as
        /// --tools reads a saved one. Point it at the server itself, or through scopegate with
        /// a token that sees every tool: a listing filtered for a narrower token lacks tools.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The environment variable holding a bearer token for --url (a token on the command
        /// line would show in the process list); without it no Authorization is sent.
        #[arg(long, value_name = "VAR", requires = "url")]
        token_env: Option<String>,
        /// A PEM bundle of CAs to trust for an https --url, besides the web PKI roots.
        #[arg(long, value_name = "FILE", requires = "url")]
        ca_file: Option<PathBuf>,
    },
    /// Run a cases file against a policy offline and print a pass/fail table. Exits 1 if any
    /// case fails.
    Test {
        file: PathBuf,
        #[arg(long, value_name = "CASES.toml")]
        cases: PathBuf,
    },
    /// Show which rule decides one call for a token with the given scopes, and why.
    Explain {
        file: PathBuf,
        /// The token's scopes, space-separated.
        #[arg(long, default_value = "")]
        scopes: String,
        /// The tool of a tools/call.
        #[arg(long)]
        tool: Option<String>,
        /// The JSON-RPC method; tools/call when --tool is given.
        #[arg(long, required_unless_present = "tool")]
        method: Option<String>,
        /// The token's other claims, a JSON object, for conditions that read `jwt`.
        #[arg(long)]
        claims: Option<String>,
        /// The call's arguments, a JSON object, for conditions that read `args`.
        #[arg(long = "args")]
        arguments: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.log_format == LogFormat::Json;
    match cli.command {
        // Offline commands: no runtime, no logs.
        Command::Policy { command } => policy(command),
        Command::Audit {
            command: AuditCommand::Verify { file },
        } => audit_verify(&file),
        Command::Run {
            config,
            check_config: true,
        } => report(scopegate_core::check_config(&config).map(|summary| println!("{summary}"))),
        Command::Run { config, .. } => report(logged(json, "info", || {
            on_runtime(scopegate_core::run(&config))
        })),
        #[cfg(feature = "demo")]
        Command::Demo {
            serve,
            endpoints_file,
        } => {
            // The demo prints its own table; logs would bury it unless asked for.
            report(logged(json, "warn", || {
                on_runtime(scopegate::demo::run(serve, endpoints_file.as_deref()))
            }))
        }
        #[cfg(feature = "adapter")]
        Command::Adapter { config } => report(logged(json, "info", || {
            on_runtime(scopegate_adapter::run(&config))
        })),
        Command::Tools { command } => tools(command),
    }
}

fn tools(command: ToolsCommand) -> ExitCode {
    use scopegate_core::integrity::cli;
    match command {
        ToolsCommand::Pin {
            config,
            out,
            token_env,
        } => report(on_runtime(async {
            let token = bearer_token(token_env.as_deref()).map_err(anyhow::Error::msg)?;
            println!("{}", cli::pin(&config, &out, token).await?);
            Ok(())
        })),
        ToolsCommand::Diff {
            config,
            pins,
            token_env,
        } => {
            let mut same = false;
            let result = on_runtime(async {
                let token = bearer_token(token_env.as_deref()).map_err(anyhow::Error::msg)?;
                let (text, clean) = cli::diff(&config, &pins, token).await?;
                print!("{text}");
                same = clean;
                Ok(())
            });
            if result.is_ok() && !same {
                return ExitCode::FAILURE;
            }
            report(result)
        }
    }
}

/// Runs `command` with logging on; every queued line is written before its result is reported,
/// so the last log lines come before the error that ended the process.
fn logged(
    json: bool,
    default_level: &str,
    command: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let _logs = scopegate_core::logging::init(json, default_level);
    command()
}

/// Runs a long-lived command on the multi-threaded runtime.
fn on_runtime(
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| anyhow::anyhow!("cannot start the runtime: {error}"))?;
    runtime.block_on(command)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("scopegate: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn audit_verify(file: &std::path::Path) -> ExitCode {
    use scopegate_core::audit_chain::{self, Verdict};
    let log = match std::fs::read(file) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => {
            eprintln!("scopegate: {}: cannot read: {error}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let key = audit_chain::key_from_env();
    match audit_chain::verify(&log, key.as_deref()) {
        Verdict::Intact { lines, chains } => {
            let keyed = if key.is_some() { "keyed" } else { "unkeyed" };
            println!(
                "{}: ok: {lines} audit lines in {chains} chain(s), {keyed}",
                file.display()
            );
            ExitCode::SUCCESS
        }
        Verdict::Broken { line, problem } => {
            println!("{}:{line}: {problem}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn policy(command: PolicyCommand) -> ExitCode {
    use scopegate_core::policy::cli;
    let mut out = std::io::stdout().lock();
    let result = match command {
        PolicyCommand::Check {
            files,
            deny_warnings,
            known_scopes,
            tools,
            url,
            token_env,
            ca_file,
        } => {
            let tools = match url {
                Some(url) => Some(fetched_tools(url, token_env, ca_file)),
                None => tools.map(cli::Tools::File),
            };
            let options = cli::CheckOptions {
                deny_warnings,
                known_scopes: known_scopes
                    .map(|s| s.split_whitespace().map(str::to_owned).collect()),
                tools,
            };
            let files: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
            cli::check(&files, &options, &mut out)
        }
        PolicyCommand::Test { file, cases } => cli::test(&file, &cases, &mut out),
        PolicyCommand::Explain {
            file,
            scopes,
            tool,
            method,
            claims,
            arguments,
        } => {
            let call = cli::Call {
                scopes: &scopes,
                method: method.as_deref().unwrap_or("tools/call"),
                tool: tool.as_deref(),
                claims: claims.as_deref(),
                arguments: arguments.as_deref(),
            };
            cli::explain(&file, &call, &mut out)
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("scopegate: cannot write the report: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The token a `--token-env VAR` option names, if one is given.
fn bearer_token(token_env: Option<&str>) -> Result<Option<String>, String> {
    token_env
        .map(|var| {
            scopegate_core::integrity::fetch::token_from_env(&scopegate_core::env::ProcessEnv, var)
        })
        .transpose()
}

/// How long `policy check --url` waits for each answer of the server.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The largest answer `policy check --url` reads: a listing of thousands of tools fits.
const FETCH_MAX_BYTES: usize = 16 * 1024 * 1024;

/// `policy check --url`: the server's whole `tools/list` (every page, either protocol revision),
/// fetched as `tools pin` fetches it, as a saved listing would hold it.
fn fetched_tools(
    url: String,
    token_env: Option<String>,
    ca_file: Option<PathBuf>,
) -> scopegate_core::policy::cli::Tools {
    let listing = (|| {
        let token = bearer_token(token_env.as_deref())?;
        let uri = url.parse().map_err(|error| format!("not a URL: {error}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the runtime: {error}"))?;
        runtime.block_on(async {
            let client = scopegate_core::client::build(ca_file.as_deref(), FETCH_TIMEOUT)
                .map_err(|error| format!("{error:#}"))?;
            let upstream = scopegate_core::integrity::fetch::Upstream {
                client,
                url: uri,
                token,
                timeout: FETCH_TIMEOUT,
                max_bytes: FETCH_MAX_BYTES,
            };
            let listing = upstream.list_tools().await.map_err(|e| format!("{e:#}"))?;
            Ok(serde_json::json!({ "tools": listing.tools }))
        })
    })();
    scopegate_core::policy::cli::Tools::Fetched { url, listing }
}
