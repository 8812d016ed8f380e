//! `nullspace sandbox code run-job list|create|get|cancel|wait`: code queued in a context and run by
//! the gateway in the background; `wait` polls until the run is over and exits 1 unless it succeeded.

use std::time::{Duration, Instant};

use nullspace_client::types::code_api::{CodeRun, CreateRunRequest, ListRunsQuery};
use nullspace_client::Client;

use super::render::execution_chunks;
use super::run::write_chunks;
use super::{failed, read_code, RunJobCommand};
use crate::exit::{ExitStatus, UserError};
use crate::output::{print_json, print_table};

/// Runs a `code run-job` subcommand.
pub async fn run(client: &Client, command: RunJobCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        RunJobCommand::List { id, status, context, limit, cursor } => {
            let query = ListRunsQuery {
                status,
                context_id: context,
                limit: limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                cursor,
            };
            let page = client
                .list_code_runs(&id, &query)
                .await
                .map_err(failed(&id, format!("could not list the code runs of sandbox {id}")))?;
            if json {
                print_json(&page)?;
            } else {
                let rows: Vec<Vec<String>> = page.items.iter().map(row).collect();
                print_table(&["ID", "STATUS", "CONTEXT", "CREATED", "COMPLETED"], &rows)?;
                if let Some(cursor) = &page.next_cursor {
                    eprintln!("more: --cursor {cursor}");
                }
            }
            Ok(ExitStatus::Success)
        }
        RunJobCommand::Create { id, code, context, envs, timeout } => {
            let request = CreateRunRequest {
                code: read_code(code)?,
                context_id: context,
                envs: envs.into_iter().collect(),
                timeout,
            };
            let run = client
                .create_code_run(&id, &request)
                .await
                .map_err(failed(&id, format!("could not queue a code run in sandbox {id}")))?;
            if json {
                print_json(&run)?;
            } else {
                println!("{}", run.id);
            }
            Ok(ExitStatus::Success)
        }
        RunJobCommand::Get { id, run } => {
            let found = get(client, &id, &run).await?;
            show(&found, json)?;
            Ok(ExitStatus::Success)
        }
        RunJobCommand::Cancel { id, run } => {
            let cancelled = client
                .cancel_code_run(&id, &run)
                .await
                .map_err(failed(&id, format!("could not cancel run {run} of sandbox {id}")))?;
            if json {
                print_json(&cancelled)?;
            } else {
                println!("{} {}", cancelled.id, cancelled.status);
            }
            Ok(ExitStatus::Success)
        }
        RunJobCommand::Wait { id, run, timeout, interval } => {
            let deadline = timeout.map(|secs| Instant::now() + Duration::from_secs(secs));
            let finished = loop {
                let current = get(client, &id, &run).await?;
                if is_terminal(&current.status) {
                    break current;
                }
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return Err(UserError::new(
                        format!("run {run} is still {} after {} s", current.status, timeout.unwrap_or_default()),
                        Some(&format!("wait again with `nullspace sandbox code run-job wait {id} {run}`")),
                    )
                    .into());
                }
                tokio::time::sleep(Duration::from_secs(interval)).await;
            };
            show(&finished, json)?;
            Ok(if finished.status == "succeeded" { ExitStatus::Success } else { ExitStatus::Failure })
        }
    }
}

async fn get(client: &Client, id: &str, run: &str) -> anyhow::Result<CodeRun> {
    client.get_code_run(id, run).await.map_err(failed(id, format!("could not get run {run} of sandbox {id}")))
}

/// Whether a run is over.
fn is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "cancelled")
}

/// The run as JSON, or its output (as a live execution prints it) and a status line on stderr.
fn show(run: &CodeRun, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(run);
    }
    if let Some(execution) = &run.execution {
        write_chunks(execution_chunks(execution))?;
    }
    eprintln!("{}", status_line(run));
    Ok(())
}

/// `run_1 succeeded (context ctx_1, execution 3)`, with the failure reason when there is one.
fn status_line(run: &CodeRun) -> String {
    let mut line = format!("{} {} (context {}", run.id, run.status, run.context_id);
    if let Some(count) = run.execution.as_ref().and_then(|execution| execution.execution_count) {
        line.push_str(&format!(", execution {count}"));
    }
    line.push(')');
    if let Some(reason) = &run.failure_reason {
        line.push_str(&format!(": {reason}"));
    }
    line
}

fn row(run: &CodeRun) -> Vec<String> {
    vec![
        run.id.clone(),
        run.status.clone(),
        run.context_id.clone(),
        run.created_at.clone(),
        run.completed_at.clone().unwrap_or_default(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_statuses_end_a_wait() {
        assert!(["succeeded", "failed", "cancelled"].iter().all(|status| is_terminal(status)));
        assert!(!is_terminal("queued") && !is_terminal("running"));
    }

    #[test]
    fn status_lines_carry_the_failure_reason() {
        let run: CodeRun = serde_json::from_value(serde_json::json!({
            "id": "run_1", "sandbox_id": "sb_1", "context_id": "ctx_1", "status": "failed", "timeout_secs": 300,
            "created_at": "t0", "expires_at": "t1", "failure_reason": "ValueError: boom",
            "execution": {"results": [], "artifacts": [], "logs": {"stdout": [], "stderr": []}, "execution_count": 4}
        }))
        .unwrap();
        assert_eq!(status_line(&run), "run_1 failed (context ctx_1, execution 4): ValueError: boom");
    }
}
