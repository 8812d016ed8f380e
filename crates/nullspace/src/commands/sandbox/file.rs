//! `nullspace sandbox file …` (read, write, list, exists, info, mkdir, mv, chmod, rm) and
//! `nullspace sandbox upload`.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use nullspace_client::types::files_api::{FileInfo, FileType};
use nullspace_client::Client;

use crate::cli::{EncodingArg, FileCommand};
use crate::exit::ExitStatus;
use crate::output::{print_json, print_table};

/// Runs a `file` subcommand.
pub async fn run(client: &Client, command: FileCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        FileCommand::Read { id, path, encoding } => read(client, &id, &path, encoding, json).await,
        FileCommand::Write { id, path, content, from } => {
            let info = match (content, from) {
                (_, Some(local)) => client.sandbox_files(&id).write_stream(&local, &path, None).await,
                (Some(text), None) => client.sandbox_files(&id).write_text(&path, &text).await,
                (None, None) => {
                    let mut bytes = Vec::new();
                    std::io::stdin().read_to_end(&mut bytes).context("could not read stdin")?;
                    client.sandbox_files(&id).write_bytes(&path, &bytes).await
                }
            }
            .with_context(|| format!("could not write {path} in {id}"))?;
            print_info(&info, json, "wrote")
        }
        FileCommand::List { id, path, depth } => {
            let entries = client
                .sandbox_files(&id)
                .list(&path, depth)
                .await
                .with_context(|| format!("could not list {path} in {id}"))?;
            if json {
                print_json(&entries)?;
            } else {
                print_table(&["MODE", "SIZE", "MODIFIED", "PATH"], &entries.iter().map(row).collect::<Vec<_>>())?;
            }
            Ok(ExitStatus::Success)
        }
        FileCommand::Exists { id, path } => {
            let exists = client
                .sandbox_files(&id)
                .exists(&path)
                .await
                .with_context(|| format!("could not check {path} in {id}"))?;
            if json {
                print_json(&serde_json::json!({"exists": exists}))?;
            } else {
                println!("{exists}");
            }
            Ok(if exists { ExitStatus::Success } else { ExitStatus::Failure })
        }
        FileCommand::Info { id, path } => {
            let info = client
                .sandbox_files(&id)
                .info(&path)
                .await
                .with_context(|| format!("could not stat {path} in {id}"))?;
            print_info(&info, json, "")
        }
        FileCommand::Mkdir { id, path } => {
            client
                .sandbox_files(&id)
                .make_dir(&path)
                .await
                .with_context(|| format!("could not create {path} in {id}"))?;
            done(json, serde_json::json!({"path": path}), &format!("created {path}"))
        }
        FileCommand::Mv { id, from, to } => {
            let info = client
                .sandbox_files(&id)
                .rename(&from, &to)
                .await
                .with_context(|| format!("could not move {from} in {id}"))?;
            print_info(&info, json, "moved to")
        }
        FileCommand::Chmod { id, path, mode } => {
            client
                .sandbox_files(&id)
                .chmod(&path, &mode)
                .await
                .with_context(|| format!("could not chmod {path} in {id}"))?;
            done(json, serde_json::json!({"path": path, "mode": mode}), &format!("{path}: {mode}"))
        }
        FileCommand::Rm { id, path } => {
            client
                .sandbox_files(&id)
                .remove(&path)
                .await
                .with_context(|| format!("could not remove {path} in {id}"))?;
            done(json, serde_json::json!({"path": path, "removed": true}), &format!("removed {path}"))
        }
    }
}

/// Streams a local file into the sandbox.
pub async fn upload(client: &Client, id: &str, local: &Path, path: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let info = client
        .sandbox_files(id)
        .write_stream(local, path, None)
        .await
        .with_context(|| format!("could not upload {} to {path} in {id}", local.display()))?;
    print_info(&info, json, "uploaded")
}

async fn read(client: &Client, id: &str, path: &str, encoding: EncodingArg, json: bool) -> anyhow::Result<ExitStatus> {
    let context = || format!("could not read {path} in {id}");
    let bytes = client.sandbox_files(id).read_bytes(path).await.with_context(context)?;
    let base64 = || base64::engine::general_purpose::STANDARD.encode(&bytes);
    match (encoding, json) {
        (EncodingArg::Utf8, false) => std::io::stdout().lock().write_all(&bytes)?,
        (EncodingArg::Base64, false) => println!("{}", base64()),
        (EncodingArg::Utf8, true) => print_json(
            &serde_json::json!({"path": path, "encoding": "utf8", "content": String::from_utf8_lossy(&bytes)}),
        )?,
        (EncodingArg::Base64, true) => {
            print_json(&serde_json::json!({"path": path, "encoding": "base64", "content": base64()}))?
        }
    }
    Ok(ExitStatus::Success)
}

fn print_info(info: &FileInfo, json: bool, verb: &str) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(info)?;
    } else if verb.is_empty() {
        print_table(&["MODE", "SIZE", "MODIFIED", "PATH"], &[row(info)])?;
        if let Some(owner) = &info.owner {
            println!("owner: {owner}:{}", info.group.as_deref().unwrap_or("?"));
        }
    } else {
        println!("{verb} {} ({} bytes)", info.path, info.size);
    }
    Ok(ExitStatus::Success)
}

fn done(json: bool, value: serde_json::Value, line: &str) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(&value)?;
    } else {
        println!("{line}");
    }
    Ok(ExitStatus::Success)
}

fn row(info: &FileInfo) -> Vec<String> {
    let kind = match info.file_type {
        Some(FileType::Dir) => 'd',
        Some(FileType::Symlink) => 'l',
        Some(FileType::File) => '-',
        None if info.is_dir => 'd',
        None => '-',
    };
    let mode = format!("{kind}{}", info.permissions.as_deref().unwrap_or("?????????"));
    let mut path = info.path.clone();
    if let Some(target) = &info.symlink_target {
        path.push_str(&format!(" -> {target}"));
    }
    vec![mode, info.size.to_string(), info.modified_time.clone().unwrap_or_default(), path]
}
