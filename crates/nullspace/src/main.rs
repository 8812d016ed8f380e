//! The `nullspace` binary: parse the command line, set up logging on stderr and the async runtime,
//! run the command, and turn its outcome into the exit code.

mod cli;
mod commands;
mod exit;
mod output;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2 (as clap and uv do).
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    init_tracing(&cli);
    if !matches!(cli.command, Command::Server(_) | Command::Mcp(_)) {
        // A one-shot command whose reader went away (`nullspace volume list --json | head -1`) ends
        // quietly, as Unix tools do, instead of failing on every write to the closed pipe; the
        // long-running server and MCP server keep ignoring SIGPIPE and handle EPIPE per connection.
        // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition for SIGPIPE.
        let _ = unsafe { nix::sys::signal::signal(nix::sys::signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    }
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            return exit::report(&anyhow::Error::new(error).context("could not start the async runtime"), json).into()
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(status) => status.into(),
        Err(error) => exit::report(&error, json).into(),
    }
}

/// Logs go to stderr; `server` logs at info by default, everything else only warnings.
fn init_tracing(cli: &Cli) {
    let default = match (cli.global.verbose, &cli.command) {
        (0, Command::Server(_)) => "info",
        (0, _) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
