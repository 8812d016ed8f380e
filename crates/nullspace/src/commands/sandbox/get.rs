//! `nullspace sandbox get` and `nullspace sandbox kill`.

use anyhow::Context;
use nullspace_client::Client;

use crate::exit::ExitStatus;
use crate::output::print_json;

/// Prints one sandbox.
pub async fn get(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let info = client.get_sandbox(id).await.with_context(|| format!("could not get sandbox {id}"))?;
    if json {
        print_json(&info)?;
        return Ok(ExitStatus::Success);
    }
    let metadata = serde_json::Value::Object(info.metadata.clone());
    let lines = [
        ("id", info.id.clone()),
        ("status", info.status.as_str().to_owned()),
        ("template", info.template.clone()),
        ("resources", format!("{} vCPU, {} MiB", info.config.vcpus, info.config.memory_mb)),
        ("cwd", info.cwd.clone()),
        ("created", info.created_at.clone()),
        ("expires", format!("{} ({} on timeout)", info.expires_at, info.timeout_action.as_str())),
        ("metadata", metadata.to_string()),
    ];
    for (key, value) in lines {
        println!("{key:<10} {value}");
    }
    if let Some(snapshot) = &info.snapshot_id {
        println!("{:<10} {snapshot}", "snapshot");
    }
    Ok(ExitStatus::Success)
}

/// Destroys one sandbox.
pub async fn kill(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitStatus> {
    client.kill_sandbox(id).await.with_context(|| format!("could not kill sandbox {id}"))?;
    if json {
        print_json(&serde_json::json!({"id": id, "killed": true}))?;
    } else {
        println!("killed {id}");
    }
    Ok(ExitStatus::Success)
}
