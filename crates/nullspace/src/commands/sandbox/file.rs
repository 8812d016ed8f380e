//! `nullspace sandbox file …` (read, write, list, exists, info, mkdir, mv, chmod, rm) and
//! `nullspace sandbox upload`, on the sandbox's [`nullspace_client::Files`] through the shared file
//! commands.

use std::io::Read;
use std::path::Path;

use anyhow::Context;
use nullspace_client::Client;

use crate::cli::FileCommand;
use crate::commands::files;
use crate::commands::progress::{self, Transfer};
use crate::exit::ExitStatus;

/// Runs a `file` subcommand.
pub async fn run(client: &Client, command: FileCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        FileCommand::Read { id, path, encoding } => {
            files::read(&client.sandbox_files(&id), &id, &path, encoding, json).await
        }
        FileCommand::Write { id, path, content, from } => {
            let files = client.sandbox_files(&id);
            let info = match (content, from) {
                (_, Some(local)) => files.write_stream(&local, &path, None).await,
                (Some(text), None) => files.write_text(&path, &text).await,
                (None, None) => {
                    let mut bytes = Vec::new();
                    std::io::stdin().read_to_end(&mut bytes).context("could not read stdin")?;
                    files.write_bytes(&path, &bytes).await
                }
            }
            .with_context(|| format!("could not write {path} in {id}"))?;
            files::print_info(&info, json, "wrote")
        }
        FileCommand::List { id, path, depth } => files::list(&client.sandbox_files(&id), &id, &path, depth, json).await,
        FileCommand::Exists { id, path } => files::exists(&client.sandbox_files(&id), &id, &path, json).await,
        FileCommand::Info { id, path } => files::info(&client.sandbox_files(&id), &id, &path, json).await,
        FileCommand::Mkdir { id, path } => files::mkdir(&client.sandbox_files(&id), &id, &path, json).await,
        FileCommand::Mv { id, from, to } => files::mv(&client.sandbox_files(&id), &id, &from, &to, json).await,
        FileCommand::Chmod { id, path, mode } => {
            files::chmod(&client.sandbox_files(&id), &id, &path, &mode, json).await
        }
        FileCommand::Rm { id, path } => files::rm(&client.sandbox_files(&id), &id, &path, json).await,
    }
}

/// Streams a local file into the sandbox, with progress on a terminal.
pub async fn upload(client: &Client, id: &str, local: &Path, path: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let transfer = progress::wanted(json).then(|| Transfer::new(format!("uploading {}", local.display())));
    let result = client.sandbox_files(id).write_stream(local, path, transfer.as_ref().map(Transfer::callback)).await;
    if let Some(transfer) = transfer {
        transfer.finish();
    }
    let info = result.with_context(|| format!("could not upload {} to {path} in {id}", local.display()))?;
    files::print_info(&info, json, "uploaded")
}
