//! `nullspace sandbox code context create|list|restart|interrupt|remove`.

use nullspace_client::types::code_api::{CodeContext, CreateContextRequest};
use nullspace_client::Client;

use super::{failed, ContextCommand};
use crate::exit::ExitStatus;
use crate::output::{print_json, print_table};

/// Runs a `code context` subcommand.
pub async fn run(client: &Client, command: ContextCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        ContextCommand::Create { id, language, cwd } => {
            let request = CreateContextRequest { cwd, language };
            let context = client
                .create_code_context(&id, &request)
                .await
                .map_err(failed(&id, format!("could not create a code context in sandbox {id}")))?;
            if json {
                print_json(&context)?;
            } else {
                println!("{}", context.id);
            }
        }
        ContextCommand::List { id } => {
            let contexts = client
                .list_code_contexts(&id)
                .await
                .map_err(failed(&id, format!("could not list the code contexts of sandbox {id}")))?;
            if json {
                print_json(&contexts)?;
            } else {
                print_table(&["ID", "LANGUAGE", "CWD"], &contexts.iter().map(row).collect::<Vec<_>>())?;
            }
        }
        ContextCommand::Restart { id, context } => {
            client
                .restart_code_context(&id, &context)
                .await
                .map_err(failed(&id, format!("could not restart context {context} of sandbox {id}")))?;
            done(json, &context, "restarted")?;
        }
        ContextCommand::Interrupt { id, context } => {
            client
                .interrupt_code_context(&id, &context)
                .await
                .map_err(failed(&id, format!("could not interrupt context {context} of sandbox {id}")))?;
            done(json, &context, "interrupted")?;
        }
        ContextCommand::Remove { id, context } => {
            client
                .remove_code_context(&id, &context)
                .await
                .map_err(failed(&id, format!("could not remove context {context} of sandbox {id}")))?;
            done(json, &context, "removed")?;
        }
    }
    Ok(ExitStatus::Success)
}

fn row(context: &CodeContext) -> Vec<String> {
    vec![context.id.clone(), context.language.clone(), context.cwd.clone()]
}

/// `{"id": ctx, "<what>": true}`, or `<what> ctx`.
fn done(json: bool, context: &str, what: &str) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::json!({"id": context, what: true}))
    } else {
        println!("{what} {context}");
        Ok(())
    }
}
