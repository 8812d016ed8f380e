//! `nullspace sandbox code artifact list|get|download|delete`: the images executions displayed, as the
//! sandbox's gateway stores them.

use std::path::{Path, PathBuf};

use nullspace_client::types::code_api::{Artifact, ListArtifactsQuery};
use nullspace_client::Client;

use super::{failed, ArtifactCommand, ArtifactFilters};
use crate::commands::progress::size;
use crate::exit::{ExitStatus, UserError};
use crate::output::{print_json, print_table};

/// Runs a `code artifact` subcommand.
pub async fn run(client: &Client, command: ArtifactCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        ArtifactCommand::List { id, filters } => list(client, &id, filters, json).await?,
        ArtifactCommand::Get { id, artifact } => {
            let info = get(client, &id, &artifact).await?;
            if json {
                print_json(&info)?;
            } else {
                print_table(&["FIELD", "VALUE"], &fields(&info))?;
            }
        }
        ArtifactCommand::Download { id, artifact, output, force } => {
            let target = match output {
                Some(path) => path,
                None => local_name(&get(client, &id, &artifact).await?)?,
            };
            let bytes = client
                .download_code_artifact(&id, &artifact, &target, force)
                .await
                .map_err(failed(&id, format!("could not download artifact {artifact} of sandbox {id}")))?;
            if json {
                print_json(&serde_json::json!({"id": artifact, "path": target, "bytes_downloaded": bytes}))?;
            } else {
                println!("{} ({})", target.display(), size(bytes));
            }
        }
        ArtifactCommand::Delete { id, artifact } => {
            client
                .delete_code_artifact(&id, &artifact)
                .await
                .map_err(failed(&id, format!("could not delete artifact {artifact} of sandbox {id}")))?;
            if json {
                print_json(&serde_json::json!({"id": artifact, "deleted": true}))?;
            } else {
                println!("deleted {artifact}");
            }
        }
    }
    Ok(ExitStatus::Success)
}

async fn list(client: &Client, id: &str, filters: ArtifactFilters, json: bool) -> anyhow::Result<()> {
    let query = ListArtifactsQuery {
        context_id: filters.context,
        execution_count: filters.execution_count,
        kind: filters.kind,
        limit: filters.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        cursor: filters.cursor,
    };
    let page = client
        .list_code_artifacts(id, &query)
        .await
        .map_err(failed(id, format!("could not list the artifacts of sandbox {id}")))?;
    if json {
        return print_json(&page);
    }
    let rows: Vec<Vec<String>> = page.items.iter().map(row).collect();
    print_table(&["ID", "KIND", "MIME", "SIZE", "CONTEXT", "EXEC", "NAME"], &rows)?;
    if let Some(cursor) = &page.next_cursor {
        eprintln!("more: --cursor {cursor}");
    }
    Ok(())
}

async fn get(client: &Client, id: &str, artifact: &str) -> anyhow::Result<Artifact> {
    client
        .get_code_artifact(id, artifact)
        .await
        .map_err(failed(id, format!("could not get artifact {artifact} of sandbox {id}")))
}

fn row(artifact: &Artifact) -> Vec<String> {
    vec![
        artifact.id.clone(),
        artifact.kind.clone(),
        artifact.mime_type.clone(),
        size(artifact.size_bytes),
        artifact.context_id.clone(),
        artifact.execution_count.map(|n| n.to_string()).unwrap_or_default(),
        artifact.name.clone(),
    ]
}

fn fields(artifact: &Artifact) -> Vec<Vec<String>> {
    let pairs = [
        ("id", artifact.id.clone()),
        ("kind", artifact.kind.clone()),
        ("mime_type", artifact.mime_type.clone()),
        ("name", artifact.name.clone()),
        ("size", format!("{} ({} bytes)", size(artifact.size_bytes), artifact.size_bytes)),
        ("sha256", artifact.sha256.clone()),
        ("context", artifact.context_id.clone()),
        ("execution_count", artifact.execution_count.map(|n| n.to_string()).unwrap_or_default()),
        ("created_at", artifact.created_at.clone()),
    ];
    pairs.into_iter().map(|(name, value)| vec![name.to_owned(), value]).collect()
}

/// The artifact's own name as a file in the current directory, when it is a plain file name.
fn local_name(artifact: &Artifact) -> anyhow::Result<PathBuf> {
    let name = Path::new(&artifact.name);
    let plain = name.file_name().is_some_and(|file| file == name.as_os_str()) && artifact.name != "..";
    if !plain || artifact.name.is_empty() {
        return Err(UserError::new(
            format!("artifact {} has no usable file name ({:?})", artifact.id, artifact.name),
            Some("name the local file with --output PATH"),
        )
        .into());
    }
    Ok(PathBuf::from(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Artifact {
        Artifact {
            id: "art_1".into(),
            context_id: "ctx_1".into(),
            kind: "image".into(),
            mime_type: "image/png".into(),
            name: name.into(),
            size_bytes: 1,
            sha256: String::new(),
            created_at: String::new(),
            execution_count: None,
        }
    }

    #[test]
    fn downloads_default_to_plain_artifact_names_only() {
        assert_eq!(local_name(&named("figure-1-1.png")).unwrap(), PathBuf::from("figure-1-1.png"));
        for bad in ["", "..", "../x.png", "/etc/passwd", "a/b.png"] {
            assert!(local_name(&named(bad)).is_err(), "{bad:?} was accepted");
        }
    }
}
