//! `nullspace template list`.

use anyhow::Context;

use crate::cli::{GlobalArgs, TemplateCommand};
use crate::exit::ExitStatus;
use crate::output::{print_json, print_table};

/// Runs a `template` subcommand.
pub async fn run(command: TemplateCommand, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let TemplateCommand::List = command;
    let templates = super::client(global)?.list_templates().await.context("could not list templates")?;
    if global.json {
        print_json(&templates)?;
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<Vec<String>> = templates
        .iter()
        .map(|t| vec![t.id.clone(), t.canonical_ref.clone().unwrap_or_default(), t.description.clone()])
        .collect();
    print_table(&["ID", "REF", "DESCRIPTION"], &rows)?;
    Ok(ExitStatus::Success)
}
