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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("scopegate: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run { config } => {
            scopegate::logging::init(cli.log_format == LogFormat::Json, "info");
            runtime.block_on(scopegate::run(&config))
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            serve,
            endpoints_file,
        } => {
            // The demo prints its own table; logs would bury it unless asked for.
            scopegate::logging::init(cli.log_format == LogFormat::Json, "warn");
            runtime.block_on(scopegate::demo::run(serve, endpoints_file.as_deref()))
        }
        Command::Adapter { config } => {
            scopegate::logging::init(cli.log_format == LogFormat::Json, "info");
            runtime.block_on(scopegate::adapter::run(&config))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("scopegate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
