//! `nullspace volume …`: resolve REF (a `vol_…` id or a name) once, then dispatch — volume records to
//! `manage`, file commands to the shared `commands::files` on the volume's `Files`, URLs, watches and
//! transfers to `transfer`.

mod manage;
mod transfer;

use anyhow::Context;
use nullspace_client::types::volume::VolumeInfo;
use nullspace_client::{Client, UploadMode};

use crate::cli::{GlobalArgs, ResumableArg, VolumeCommand};
use crate::commands::files;
use crate::exit::{ExitStatus, UserError};

/// Runs a `volume` subcommand.
pub async fn run(command: VolumeCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let client = super::client(global)?;
    let json = global.json;
    match command {
        VolumeCommand::Create { name, max_size } => manage::create(&client, &name, max_size, json).await,
        VolumeCommand::List { fields } => manage::list(&client, &fields, json).await,
        VolumeCommand::Get { reference, fields } => manage::get(&client, &reference, &fields, json).await,
        VolumeCommand::Delete { reference } => manage::delete(&client, &reference, json).await,
        VolumeCommand::Attachments { reference } => {
            let volume = resolve(&client, &reference).await?;
            let attachments = client
                .volume_attachments(&volume.id)
                .await
                .with_context(|| format!("could not list the attachments of volume {}", label(&volume)))?;
            crate::commands::attachments::print(&attachments, json)
        }
        VolumeCommand::LsFiles { reference, path, depth } => {
            let volume = resolve(&client, &reference).await?;
            files::list(&client.volume_files(&volume.id), &label(&volume), &path, depth, json).await
        }
        VolumeCommand::Read { reference, path, encoding } => {
            let volume = resolve(&client, &reference).await?;
            files::read(&client.volume_files(&volume.id), &label(&volume), &path, encoding, json).await
        }
        VolumeCommand::Cat { reference, path } => {
            let volume = resolve(&client, &reference).await?;
            files::cat(&client.volume_files(&volume.id), &label(&volume), &path, json).await
        }
        VolumeCommand::Write { reference, path, encoding } => {
            let volume = resolve(&client, &reference).await?;
            files::write_stdin(&client.volume_files(&volume.id), &label(&volume), &path, encoding, json).await
        }
        VolumeCommand::WriteFiles { reference, files: spec } => {
            let entries = parse_batch(&read_argument(&spec)?)?;
            let volume = resolve(&client, &reference).await?;
            files::write_many(&client.volume_files(&volume.id), &label(&volume), &entries, json).await
        }
        VolumeCommand::Info { reference, path } => {
            let volume = resolve(&client, &reference).await?;
            files::info(&client.volume_files(&volume.id), &label(&volume), &path, json).await
        }
        VolumeCommand::Exists { reference, path } => {
            let volume = resolve(&client, &reference).await?;
            files::exists(&client.volume_files(&volume.id), &label(&volume), &path, json).await
        }
        VolumeCommand::Mkdir { reference, path } => {
            let volume = resolve(&client, &reference).await?;
            files::mkdir(&client.volume_files(&volume.id), &label(&volume), &path, json).await
        }
        VolumeCommand::Chmod { reference, path, mode } => {
            let volume = resolve(&client, &reference).await?;
            files::chmod(&client.volume_files(&volume.id), &label(&volume), &path, &mode, json).await
        }
        VolumeCommand::Rm { reference, path } => {
            let volume = resolve(&client, &reference).await?;
            files::rm(&client.volume_files(&volume.id), &label(&volume), &path, json).await
        }
        VolumeCommand::Mv { reference, old, new } => {
            let volume = resolve(&client, &reference).await?;
            files::mv(&client.volume_files(&volume.id), &label(&volume), &old, &new, json).await
        }
        VolumeCommand::Find { reference, path, pattern } => {
            let volume = resolve(&client, &reference).await?;
            files::find(&client.volume_files(&volume.id), &label(&volume), &path, &pattern, json).await
        }
        VolumeCommand::Search { reference, path, pattern } => {
            let volume = resolve(&client, &reference).await?;
            files::search(&client.volume_files(&volume.id), &label(&volume), &path, &pattern, json).await
        }
        VolumeCommand::Replace { reference, old, new, paths, dry_run } => {
            let volume = resolve(&client, &reference).await?;
            let files = client.volume_files(&volume.id);
            files::replace(&files, &label(&volume), &old, &new, &paths, dry_run, json).await
        }
        VolumeCommand::UploadUrl { reference, path } => {
            let volume = resolve(&client, &reference).await?;
            transfer::upload_url(&client, &volume, &path, json).await
        }
        VolumeCommand::DownloadUrl { reference, path, archive_format } => {
            let volume = resolve(&client, &reference).await?;
            transfer::download_url(&client, &volume, &path, archive_format.is_some(), json).await
        }
        VolumeCommand::Watch { reference, path, recursive, timeout } => {
            let volume = resolve(&client, &reference).await?;
            transfer::watch(&client, &volume, &path, recursive, timeout, json).await
        }
        VolumeCommand::Upload { reference, local, remote, resumable, concurrency } => {
            let volume = resolve(&client, &reference).await?;
            let mode = match resumable {
                ResumableArg::Auto => UploadMode::Auto,
                ResumableArg::Always => UploadMode::Always,
                ResumableArg::Never => UploadMode::Never,
            };
            let files = client.volume_files(&volume.id);
            files::upload(&files, &label(&volume), &local, remote.as_deref(), mode, concurrency, json).await
        }
        VolumeCommand::Download { reference, remote, local, force, archive } => {
            let volume = resolve(&client, &reference).await?;
            transfer::download(&client, &volume, &remote, local.as_deref(), archive, force, json).await
        }
    }
}

/// The volume REF names (id or name); a miss says how to find or create one.
pub(crate) async fn resolve(client: &Client, reference: &str) -> anyhow::Result<VolumeInfo> {
    match client.resolve_volume(reference).await {
        Ok(volume) => Ok(volume),
        Err(error) if error.status() == Some(404) => {
            let hint = format!(
                "list your volumes with `nullspace volume list`, or create it with `nullspace volume create {reference}`"
            );
            Err(anyhow::Error::new(error).context(UserError {
                message: format!("no volume is named or has the id `{reference}`"),
                hint: Some(hint),
            }))
        }
        Err(error) => Err(anyhow::Error::new(error).context(format!("could not look up volume `{reference}`"))),
    }
}

/// How errors name a volume.
fn label(volume: &VolumeInfo) -> String {
    format!("volume {} ({})", volume.name, volume.id)
}

/// The argument itself, `@FILE`'s content, or stdin for `-`.
fn read_argument(raw: &str) -> anyhow::Result<String> {
    if raw == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("could not read stdin")?;
        return Ok(text);
    }
    match raw.strip_prefix('@') {
        Some("") => Err(UserError::new("`@` needs a file name", Some("e.g. @files.json")).into()),
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("could not read {path}")),
        None => Ok(raw.to_owned()),
    }
}

/// `write-files` JSON: `[["/a.txt","a\n"],…]`, `[{"path":…,"content":…},…]` or `{"/a.txt":"a\n",…}`.
fn parse_batch(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    const SHAPES: &str =
        r#"[["/a.txt","a\n"],["/b.txt","b\n"]] or {"/a.txt":"a\n"} or [{"path":"/a.txt","content":"a\n"}]"#;
    let bad = |why: String| UserError { message: why, hint: Some(format!("write it as {SHAPES}")) };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| bad(format!("the files JSON is not valid JSON: {error}")))?;
    let pair = |path: &serde_json::Value, content: &serde_json::Value| match (path.as_str(), content.as_str()) {
        (Some(path), Some(content)) if !path.is_empty() => Ok((path.to_owned(), content.to_owned())),
        _ => Err(bad(format!("each file needs a path and text content, got {path} and {content}"))),
    };
    let entries: Vec<(String, String)> = match &value {
        serde_json::Value::Object(map) => {
            map.iter().map(|(path, content)| pair(&serde_json::Value::String(path.clone()), content)).collect()
        }
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                serde_json::Value::Array(two) if two.len() == 2 => pair(&two[0], &two[1]),
                serde_json::Value::Object(entry) => pair(
                    entry.get("path").unwrap_or(&serde_json::Value::Null),
                    entry.get("content").unwrap_or(&serde_json::Value::Null),
                ),
                other => Err(bad(format!("unexpected entry {other}"))),
            })
            .collect(),
        _ => Err(bad("the files JSON must be a list or an object".into())),
    }?;
    if entries.is_empty() {
        return Err(bad("the files JSON names no file".into()).into());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_accept_pairs_objects_and_maps() {
        let expected = vec![("/a.txt".to_owned(), "a\n".to_owned()), ("/b.txt".to_owned(), "b\n".to_owned())];
        assert_eq!(parse_batch(r#"[["/a.txt","a\n"],["/b.txt","b\n"]]"#).unwrap(), expected);
        assert_eq!(
            parse_batch(r#"[{"path":"/a.txt","content":"a\n"},{"path":"/b.txt","content":"b\n"}]"#).unwrap(),
            expected
        );
        assert_eq!(parse_batch(r#"{"/a.txt":"a\n","/b.txt":"b\n"}"#).unwrap(), expected);
    }

    #[test]
    fn bad_batches_are_user_errors() {
        for bad in ["", "[]", "3", r#"[["/a"]]"#, r#"[["/a", 1]]"#, r#"[{"path":"/a"}]"#, r#"[["", "x"]]"#] {
            let error = parse_batch(bad).unwrap_err();
            assert!(error.downcast_ref::<UserError>().is_some(), "{bad}: {error}");
        }
    }

    #[test]
    fn arguments_may_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files.json");
        std::fs::write(&path, "[]").unwrap();
        assert_eq!(read_argument(&format!("@{}", path.display())).unwrap(), "[]");
        assert_eq!(read_argument("{}").unwrap(), "{}");
        assert!(read_argument("@").is_err());
    }
}
