//! `nullspace mcp serve`: drive Nullspace from agents that speak the Model Context Protocol. Every
//! CLI command becomes a tool ([`tools`]) that the stdio server ([`serve`]) runs as a child
//! `nullspace … --json`.

mod serve;
mod tools;

use std::time::Duration;

use anyhow::Context;
use clap::CommandFactory;
use rmcp::ServiceExt;

use crate::cli::{Cli, GlobalArgs, McpCommand, McpServeArgs, McpTransport};
use crate::exit::ExitStatus;

/// Runs an `mcp` subcommand.
pub async fn run(command: McpCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    match command {
        McpCommand::Serve(args) => serve(args, global).await,
    }
}

/// Serves the tools until the client closes stdin. `--json` changes nothing: stdout is the protocol.
async fn serve(args: McpServeArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let exe = std::env::current_exe().context("could not find the nullspace binary that tool calls run")?;
    // Through the environment rather than argv, so the key does not show in the host's process list.
    let mut env = Vec::new();
    if let Some(url) = &global.api_url {
        env.push(("NULLSPACE_API_URL".to_owned(), url.clone()));
    }
    if let Some(key) = &global.api_key {
        env.push(("NULLSPACE_API_KEY".to_owned(), key.clone()));
    }
    let runner = serve::Runner { exe, env, timeout: Duration::from_secs(args.tool_timeout) };
    let handler = serve::NullspaceMcp::new(tools::Catalog::from_command(Cli::command()), runner);
    let transport = match args.transport {
        McpTransport::Stdio => rmcp::transport::stdio(),
    };
    let service = handler
        .serve(transport)
        .await
        .context("the MCP client did not complete the initialize handshake on stdin/stdout")?;
    let reason = service.waiting().await.context("the MCP server stopped unexpectedly")?;
    tracing::debug!(?reason, "MCP client disconnected");
    Ok(ExitStatus::Success)
}
