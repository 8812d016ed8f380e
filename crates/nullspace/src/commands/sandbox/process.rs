//! `nullspace sandbox process list|logs|kill` (and `sandbox ps`).

use anyhow::Context;
use nullspace_client::Client;

use crate::cli::ProcessCommand;
use crate::exit::ExitStatus;
use crate::output::{print_json, print_table};

/// Runs a `process` subcommand.
pub async fn run(client: &Client, command: ProcessCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        ProcessCommand::List { id } => list(client, &id, json).await,
        ProcessCommand::Logs { id, pid } => {
            let logs =
                client.process_logs(&id, pid).await.with_context(|| format!("could not get logs of {pid} in {id}"))?;
            if json {
                print_json(&logs)?;
            } else {
                print!("{}", logs.output);
                match logs.exit_code {
                    Some(code) => eprintln!("[exited with {code}]"),
                    None => eprintln!("[still running]"),
                }
            }
            Ok(ExitStatus::Success)
        }
        ProcessCommand::Kill { id, pid } => {
            client.kill_process(&id, pid).await.with_context(|| format!("could not kill {pid} in {id}"))?;
            if json {
                print_json(&serde_json::json!({"pid": pid, "killed": true}))?;
            } else {
                println!("killed {pid}");
            }
            Ok(ExitStatus::Success)
        }
    }
}

/// Prints the processes of a sandbox.
pub async fn list(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let processes = client.list_processes(id).await.with_context(|| format!("could not list processes of {id}"))?;
    if json {
        print_json(&processes)?;
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = processes
        .iter()
        .map(|p| vec![p.pid.to_string(), if p.running { "running" } else { "exited" }.to_owned(), p.command.clone()])
        .collect();
    print_table(&["PID", "STATE", "COMMAND"], &rows)?;
    Ok(ExitStatus::Success)
}
