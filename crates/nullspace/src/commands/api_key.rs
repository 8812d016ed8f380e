//! `nullspace api-key create`: mint a key in a local server's store and print it.

use crate::cli::{ApiKeyCommand, GlobalArgs};
use crate::exit::ExitStatus;
use crate::output::print_json;

/// Runs an `api-key` subcommand.
pub async fn run(command: ApiKeyCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let ApiKeyCommand::Create { tenant, data_dir } = command;
    let data_dir = super::data_dir(data_dir)?;
    let key = nullspace_server::create_api_key(&data_dir, &tenant).await?;
    if global.json {
        print_json(&serde_json::json!({"api_key": key, "tenant": tenant}))?;
    } else {
        println!("{key}");
        eprintln!("created an API key for tenant `{tenant}`; use it as NULLSPACE_API_KEY");
    }
    Ok(ExitStatus::Success)
}
