//! Dispatch from the parsed command line to one module per verb, plus what they share: building the
//! API client from the global flags.

mod api_key;
mod attachments;
mod bench;
mod doctor;
mod files;
mod mcp;
mod progress;
pub(crate) mod sandbox;
pub(crate) mod server;
pub(crate) mod template;
pub(crate) mod tenant;
mod volume;

use std::path::PathBuf;

use anyhow::Context;
use nullspace_client::{Client, ClientConfig};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::exit::ExitStatus;

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let global = cli.global;
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::ApiKey(command) => api_key::run(command, &global).await,
        Command::Tenant(command) => tenant::run(command, &global).await,
        Command::Doctor(args) => doctor::run(args, &global).await,
        Command::Sandbox(command) => sandbox::run(command, &global).await,
        Command::Template(command) => template::run(command, &global).await,
        Command::Volume(command) => volume::run(command, &global).await,
        Command::Bench(args) => bench::run(args, &global).await,
        Command::Mcp(command) => mcp::run(command, &global).await,
    }
}

/// The API client configured from `--api-url`/`--api-key`, the environment and the config file.
pub fn client(global: &GlobalArgs) -> anyhow::Result<Client> {
    let config = ClientConfig::resolve(global.api_key.clone(), global.api_url.clone());
    Client::new(config).context("could not configure the API client")
}

/// `--data-dir`, or `~/.local/share/nullspace`.
pub fn data_dir(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(dir) => Ok(dir),
        None => dirs::data_dir()
            .map(|dir| dir.join("nullspace"))
            .context("no data directory could be found for this user; pass --data-dir"),
    }
}
