//! `nullspace volume upload-url|download-url|watch|download`: signed URLs, file watches printed as they
//! happen, and downloads (a file, or a directory's tar kept or extracted) with progress on a terminal.
//! `volume upload` is the shared `commands::files::upload`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use nullspace_client::types::volume::VolumeInfo;
use nullspace_client::Client;

use super::label;
use crate::commands::progress::{self, Transfer};
use crate::exit::ExitStatus;
use crate::output::print_json;

/// Prints `{url, token}` (the URL alone without `--json`).
pub async fn upload_url(client: &Client, volume: &VolumeInfo, path: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let signed = client
        .volume_files(&volume.id)
        .upload_url(path)
        .await
        .with_context(|| format!("could not sign an upload URL for {path} in {}", label(volume)))?;
    if json {
        print_json(&signed)?;
    } else {
        println!("{}", signed.url);
    }
    Ok(ExitStatus::Success)
}

/// Prints the download URL (`{url}` with `--json`).
pub async fn download_url(
    client: &Client,
    volume: &VolumeInfo,
    path: &str,
    archive: bool,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let url = client
        .volume_files(&volume.id)
        .download_url(path, archive)
        .await
        .with_context(|| format!("could not sign a download URL for {path} in {}", label(volume)))?;
    if json {
        print_json(&serde_json::json!({"url": url}))?;
    } else {
        println!("{url}");
    }
    Ok(ExitStatus::Success)
}

/// Prints each change (a JSON line with `--json`, `EVENT PATH` otherwise) until Ctrl-C or `timeout`.
pub async fn watch(
    client: &Client,
    volume: &VolumeInfo,
    path: &str,
    recursive: bool,
    timeout: Option<f64>,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let files = client.volume_files(&volume.id);
    let mut watch =
        files.watch(path, recursive).await.with_context(|| format!("could not watch {path} in {}", label(volume)))?;
    // On stderr even with --json: it tells a script the watch is armed, so writes from now on are seen.
    eprintln!("watching {path} in {} (Ctrl-C to stop)", label(volume));
    let deadline = async {
        match timeout {
            Some(secs) => tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = tokio::signal::ctrl_c() => break,
            event = watch.next_event() => match event {
                None => break,
                Some(Err(error)) => {
                    return Err(anyhow::Error::new(error).context(format!("the watch of {path} failed")));
                }
                Some(Ok(event)) if json => println!("{}", serde_json::to_string(&event)?),
                Some(Ok(event)) => println!("{:<7} {}", event.kind, event.path),
            },
        }
    }
    watch.stop().await;
    Ok(ExitStatus::Success)
}

/// Downloads a file or a directory and prints what was written.
pub async fn download(
    client: &Client,
    volume: &VolumeInfo,
    remote: &str,
    local: Option<&Path>,
    archive: bool,
    force: bool,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let transfer = progress::wanted(json).then(|| Transfer::new(format!("downloading {remote}")));
    let result = client
        .volume_files(&volume.id)
        .download(remote, local, archive, force, transfer.as_ref().map(Transfer::callback))
        .await;
    if let Some(transfer) = transfer {
        transfer.finish();
    }
    let outcome = result.with_context(|| format!("could not download {remote} from {}", label(volume)))?;
    if json {
        print_json(&serde_json::json!({
            "volume_id": volume.id,
            "volume_path": remote,
            "local_path": outcome.path,
            "kind": outcome.kind,
            "bytes_downloaded": outcome.bytes_downloaded,
            "archive_format": outcome.archive_format,
            "extracted": outcome.extracted,
        }))?;
    } else if outcome.extracted {
        println!("extracted directory {remote} to {} ({} bytes downloaded)", outcome.path, outcome.bytes_downloaded);
    } else {
        println!("downloaded {} bytes from {remote} to {}", outcome.bytes_downloaded, outcome.path);
    }
    Ok(ExitStatus::Success)
}
