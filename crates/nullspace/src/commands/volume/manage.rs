//! `nullspace volume create|list|get|delete`: the volume records. `--fields` asks the server for only
//! those fields and prints them (JSON, or tab-separated like the official CLI).

use anyhow::Context;
use nullspace_client::types::volume::VolumeInfo;
use nullspace_client::Client;
use serde_json::Value;

use crate::commands::progress::size;
use crate::exit::ExitStatus;
use crate::output::{print_json, print_table};

/// Creates a volume.
pub async fn create(client: &Client, name: &str, max_size: Option<u64>, json: bool) -> anyhow::Result<ExitStatus> {
    let volume =
        client.create_volume(name, max_size).await.with_context(|| format!("could not create volume `{name}`"))?;
    if json {
        print_json(&volume)?;
    } else {
        match volume.max_size_bytes {
            Some(limit) => println!("created volume {} ({}), limited to {}", volume.name, volume.id, size(limit)),
            None => println!("created volume {} ({})", volume.name, volume.id),
        }
    }
    Ok(ExitStatus::Success)
}

/// Lists volumes (all fields, or only `fields`).
pub async fn list(client: &Client, fields: &[String], json: bool) -> anyhow::Result<ExitStatus> {
    if !fields.is_empty() {
        let rows = client.list_volume_fields(fields).await.context("could not list volumes")?;
        if json {
            print_json(&rows)?;
        } else {
            print_field_rows(&rows, fields);
        }
        return Ok(ExitStatus::Success);
    }
    let volumes = client.list_volumes().await.context("could not list volumes")?;
    if json {
        print_json(&volumes)?;
    } else if volumes.is_empty() {
        eprintln!("no volumes; create one with `nullspace volume create NAME`");
    } else {
        print_table(
            &["ID", "NAME", "STATUS", "USED", "FILES", "MOUNTS"],
            &volumes.iter().map(row).collect::<Vec<_>>(),
        )?;
    }
    Ok(ExitStatus::Success)
}

/// Shows one volume (all fields, or only `fields`).
pub async fn get(client: &Client, reference: &str, fields: &[String], json: bool) -> anyhow::Result<ExitStatus> {
    if !fields.is_empty() {
        let id = super::resolve(client, reference).await?.id;
        let value = client.volume_fields(&id, fields).await.with_context(|| format!("could not get volume {id}"))?;
        if json {
            print_json(&value)?;
        } else {
            print_field_rows(std::slice::from_ref(&value), fields);
        }
        return Ok(ExitStatus::Success);
    }
    let volume = super::resolve(client, reference).await?;
    if json {
        print_json(&volume)?;
        return Ok(ExitStatus::Success);
    }
    let optional = |value: Option<u64>| value.map_or_else(|| "none".to_owned(), |v| v.to_string());
    let lines = [
        ("id", volume.id.clone()),
        ("name", volume.name.clone()),
        ("status", volume.status.clone()),
        ("used", format!("{} ({} bytes)", size(volume.used_bytes), volume.used_bytes)),
        ("files", volume.inode_count.to_string()),
        ("mounts", volume.mount_count.to_string()),
        ("created", volume.created_at.clone()),
        ("max size", optional(volume.max_size_bytes)),
    ];
    for (key, value) in lines {
        println!("{key:<9} {value}");
    }
    Ok(ExitStatus::Success)
}

/// Deletes a volume.
pub async fn delete(client: &Client, reference: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let volume = super::resolve(client, reference).await?;
    client
        .delete_volume(&volume.id)
        .await
        .with_context(|| format!("could not delete volume {} ({})", volume.name, volume.id))?;
    if json {
        print_json(&serde_json::json!({"id": volume.id, "name": volume.name, "deleted": true}))?;
    } else {
        println!("deleted volume {} ({})", volume.name, volume.id);
    }
    Ok(ExitStatus::Success)
}

fn row(volume: &VolumeInfo) -> Vec<String> {
    vec![
        volume.id.clone(),
        volume.name.clone(),
        volume.status.clone(),
        size(volume.used_bytes),
        volume.inode_count.to_string(),
        volume.mount_count.to_string(),
    ]
}

/// One tab-separated line per object, the fields in the order asked (missing: empty).
fn print_field_rows(rows: &[Value], fields: &[String]) {
    for row in rows {
        let cells: Vec<String> = fields
            .iter()
            .map(|field| match row.get(field) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            })
            .collect();
        println!("{}", cells.join("\t"));
    }
}
