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
    /// Check audit logs, offline.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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
        /// A saved tools/list answer (JSON): conditions' args.X are checked against each tool's
        /// inputSchema.
        #[arg(long, value_name = "FILE")]
        tools: Option<PathBuf>,
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
        } => report(scopegate::check_config(&config).map(|summary| println!("{summary}"))),
        Command::Run { config, .. } => {
            report(logged(json, "info", || on_runtime(scopegate::run(&config))))
        }
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
        Command::Adapter { config } => report(logged(json, "info", || {
            on_runtime(scopegate::adapter::run(&config))
        })),
    }
}

/// Runs `command` with logging on; every queued line is written before its result is reported,
/// so the last log lines come before the error that ended the process.
fn logged(
    json: bool,
    default_level: &str,
    command: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let _logs = scopegate::logging::init(json, default_level);
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
    use scopegate::audit_chain::{self, Verdict};
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
    use scopegate::policy::cli;
    let mut out = std::io::stdout().lock();
    let result = match command {
        PolicyCommand::Check {
            files,
            deny_warnings,
            known_scopes,
            tools,
        } => {
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
