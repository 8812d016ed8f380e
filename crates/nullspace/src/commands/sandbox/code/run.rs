//! `nullspace sandbox code run`: one execution, its events printed as they arrive (rendered by
//! `render`, or one JSON object a line with `--json`). Exits 1 when the code raised. Ctrl-C interrupts
//! the context when one was named, and exits 130.

use std::io::Write;

use nullspace_client::types::code_api::{ExecuteRequest, ExecutionEvent};
use nullspace_client::Client;

use super::render::{Chunk, Renderer};
use super::{failed, read_code, RunArgs};
use crate::exit::ExitStatus;

/// Runs the code and prints its events.
pub async fn run(client: &Client, args: RunArgs, json: bool) -> anyhow::Result<ExitStatus> {
    let id = args.id.clone();
    let request = request(args)?;
    let mut stream =
        client.code_execute(&id, &request).await.map_err(failed(&id, format!("could not run code in sandbox {id}")))?;
    let mut renderer = Renderer::default();
    let mut raised = false;
    loop {
        let event = tokio::select! {
            event = stream.next() => event,
            _ = tokio::signal::ctrl_c() => {
                if let Some(context) = &request.context_id {
                    let _ = client.interrupt_code_context(&id, context).await;
                }
                return Ok(ExitStatus::Child(130));
            }
        };
        let event = match event {
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                return Err(failed(&id, format!("the execution stream of sandbox {id} broke"))(error));
            }
            None => break,
        };
        raised |= matches!(event, ExecutionEvent::Error(_));
        if json {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", serde_json::to_string(&event)?)?;
            stdout.flush()?;
        } else {
            write_chunks(renderer.event(&event))?;
        }
    }
    if !json {
        write_chunks(renderer.finish())?;
    }
    Ok(if raised { ExitStatus::Failure } else { ExitStatus::Success })
}

/// The execute request of the arguments (reading the code from stdin for `-`).
fn request(args: RunArgs) -> anyhow::Result<ExecuteRequest> {
    Ok(ExecuteRequest {
        code: read_code(args.code)?,
        language: args.language,
        context_id: args.context,
        envs: args.envs.into_iter().collect(),
        timeout: args.timeout,
    })
}

/// Writes chunks to stdout and stderr as they come (stderr without colour when it is not a terminal).
pub(super) fn write_chunks(chunks: Vec<Chunk>) -> anyhow::Result<()> {
    for chunk in chunks {
        match chunk {
            Chunk::Out(text) => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
            }
            Chunk::Err(text) => {
                let mut stderr = anstream::stderr().lock();
                stderr.write_all(text.as_bytes())?;
                stderr.flush()?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_become_the_execute_request() {
        let args = RunArgs {
            id: "sb_1".into(),
            code: "print(1)".into(),
            language: Some("python".into()),
            context: None,
            envs: vec![("A".into(), "1".into())],
            timeout: Some(3),
        };
        let request = request(args).unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            serde_json::json!({"code": "print(1)", "language": "python", "envs": {"A": "1"}, "timeout": 3})
        );
    }
}
