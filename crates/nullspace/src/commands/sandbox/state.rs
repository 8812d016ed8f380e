//! `nullspace sandbox pause|resume|fork|snapshot`: state over time.

use anyhow::Context;
use nullspace_client::Client;
use nullspace_types::lifecycle::SnapshotInfo;

use crate::exit::ExitStatus;
use crate::output::print_json;

fn print_snapshot(snapshot: &SnapshotInfo, verb: &str, json: bool) -> anyhow::Result<ExitStatus> {
    if json {
        print_json(snapshot)?;
    } else {
        println!("{verb} {} into snapshot {} ({} bytes)", snapshot.sandbox_id, snapshot.id, snapshot.size_bytes);
        println!("resume it with: nullspace sandbox resume {}", snapshot.id);
    }
    Ok(ExitStatus::Success)
}

/// Hibernates a sandbox.
pub async fn pause(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let snapshot = client.hibernate(id).await.with_context(|| format!("could not pause sandbox {id}"))?;
    print_snapshot(&snapshot, "paused", json)
}

/// Snapshots a running sandbox.
pub async fn snapshot(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let snapshot = client.create_snapshot(id).await.with_context(|| format!("could not snapshot sandbox {id}"))?;
    print_snapshot(&snapshot, "saved", json)
}

/// Resumes a snapshot as a new sandbox.
pub async fn resume(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let info = client.resume(id).await.with_context(|| format!("could not resume {id}"))?;
    if json {
        print_json(&info)?;
    } else {
        println!("{}", info.id);
    }
    Ok(ExitStatus::Success)
}

/// Forks a running sandbox.
pub async fn fork(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitStatus> {
    let info = client.fork(id).await.with_context(|| format!("could not fork sandbox {id}"))?;
    if json {
        print_json(&info)?;
    } else {
        println!("{}", info.id);
    }
    Ok(ExitStatus::Success)
}
