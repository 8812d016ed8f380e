//! Volume attachments as the CLI shows them: `nullspace sandbox volume …` (list, attach, detach, health,
//! remount on a running sandbox) and the table `nullspace volume attachments` shares.

use anyhow::Context;
use nullspace_client::types::volume::VolumeAttachment;
use nullspace_client::Client;

use crate::cli::SandboxVolumeCommand;
use crate::exit::ExitStatus;
use crate::output::{print_json, print_table};

/// Runs a `sandbox volume` subcommand.
pub async fn run(client: &Client, command: SandboxVolumeCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        SandboxVolumeCommand::List { id } => {
            let attachments =
                client.sandbox_volumes(&id).await.with_context(|| format!("could not list the volumes of {id}"))?;
            print(&attachments, json)
        }
        SandboxVolumeCommand::Attach { id, volume } => {
            let what = format!("could not attach volume {} at {} in {id}", volume.reference, volume.mount_path);
            one(client.attach_volume(&id, &volume).await.context(what)?, json)
        }
        SandboxVolumeCommand::Detach { id, attachment } => {
            let what = format!("could not detach {attachment} from {id}");
            one(client.detach_volume(&id, &attachment).await.context(what)?, json)
        }
        SandboxVolumeCommand::Health { id, attachment } => {
            let what = format!("could not probe {attachment} of {id}");
            let current = client.volume_health(&id, &attachment).await.context(what)?;
            let failed = current.state == "failed";
            one(current, json)?;
            // A script can test the exit code; the hint says what repairs it.
            if failed {
                eprintln!("hint: `nullspace sandbox volume remount {id} {attachment}` mounts it again");
                return Ok(ExitStatus::Failure);
            }
            Ok(ExitStatus::Success)
        }
        SandboxVolumeCommand::Remount { id, attachment } => {
            let what = format!("could not remount {attachment} in {id}");
            one(client.remount_volume(&id, &attachment).await.context(what)?, json)
        }
    }
}

fn one(attachment: VolumeAttachment, json: bool) -> anyhow::Result<ExitStatus> {
    print(std::slice::from_ref(&attachment), json)?;
    Ok(ExitStatus::Success)
}

/// Prints attachments: JSON (one object for a single one), or a table.
pub fn print(attachments: &[VolumeAttachment], json: bool) -> anyhow::Result<ExitStatus> {
    if json {
        match attachments {
            [single] => print_json(single)?,
            many => print_json(&many)?,
        }
        return Ok(ExitStatus::Success);
    }
    if attachments.is_empty() {
        eprintln!("no volume attachments");
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = attachments.iter().map(row).collect();
    print_table(&["ATTACHMENT", "SANDBOX", "VOLUME", "MOUNT", "MODE", "STATE"], &rows)?;
    for attachment in attachments {
        if let Some(message) = &attachment.last_error_message {
            eprintln!("{}: {message}", attachment.id);
        }
    }
    Ok(ExitStatus::Success)
}

fn row(attachment: &VolumeAttachment) -> Vec<String> {
    let source = match &attachment.subpath {
        Some(subpath) => format!("{}:/{subpath}", attachment.volume_id),
        None => attachment.volume_id.clone(),
    };
    vec![
        attachment.id.clone(),
        attachment.sandbox_id.clone(),
        source,
        attachment.mount_path.clone(),
        if attachment.read_only { "ro" } else { "rw" }.to_owned(),
        attachment.state.clone(),
    ]
}
