//! `nullspace sandbox list`: one page with `--limit`, every page otherwise.

use anyhow::Context;
use nullspace_client::{Client, ListSandboxes};

use crate::cli::ListArgs;
use crate::exit::ExitStatus;
use crate::output::{print_json, print_table};

/// Lists sandboxes matching the filters.
pub async fn run(client: &Client, args: ListArgs, json: bool) -> anyhow::Result<ExitStatus> {
    let mut query = ListSandboxes {
        states: args.state.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
        template: args.template,
        metadata: args.metadata.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(),
        limit: args.limit,
        next_token: None,
    };
    let mut items = Vec::new();
    loop {
        let page = client.list_sandboxes(&query).await.context("could not list sandboxes")?;
        items.extend(page.items);
        match page.next_token {
            Some(token) if page.has_next && args.limit.is_none() => query.next_token = Some(token),
            _ => break,
        }
    }
    if json {
        print_json(&items)?;
    } else if items.is_empty() {
        eprintln!("no sandboxes; create one with `nullspace sandbox create`");
    } else {
        print_table(&super::HEADERS, &items.iter().map(super::row).collect::<Vec<_>>())?;
    }
    Ok(ExitStatus::Success)
}
