//! `nullspace sandbox timeout set`.

use std::time::Duration;

use anyhow::Context;
use nullspace_client::Client;

use crate::cli::TimeoutCommand;
use crate::exit::ExitStatus;
use crate::output::print_json;

/// Sets the deadline, then prints the sandbox as it now is.
pub async fn run(client: &Client, command: TimeoutCommand, json: bool) -> anyhow::Result<ExitStatus> {
    let TimeoutCommand::Set { id, seconds, action } = command;
    client
        .set_timeout(&id, Duration::from_secs(seconds), action.map(Into::into))
        .await
        .with_context(|| format!("could not set the timeout of sandbox {id}"))?;
    let info = client.get_sandbox(&id).await.with_context(|| format!("could not get sandbox {id}"))?;
    if json {
        print_json(&info)?;
    } else {
        println!("{} expires at {} ({} on timeout)", info.id, info.expires_at, info.timeout_action.as_str());
    }
    Ok(ExitStatus::Success)
}
