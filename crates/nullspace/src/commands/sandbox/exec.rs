//! `nullspace sandbox exec`: run a command in a sandbox. Output streams live over the exec WebSocket
//! (REST when the server has no stream); the CLI exits with the command's exit code. Ctrl-C kills the
//! remote process. `--json` waits and prints the result object; `--background` prints the pid.

use std::io::Write;

use anyhow::Context;
use nullspace_client::types::exec_api::{ExecRequest, ExecResult};
use nullspace_client::{Client, ClientError, ExecEvent};

use crate::cli::ExecArgs;
use crate::exit::ExitStatus;
use crate::output::print_json;

/// Runs the command and mirrors its output and exit code.
pub async fn run(client: &Client, args: ExecArgs, json: bool) -> anyhow::Result<ExitStatus> {
    let id = args.id.clone();
    let request = request(args.shell, args.argv, args.cwd, args.envs, args.timeout);
    let context = || format!("could not run `{}` in sandbox {id}", request.command);
    if args.background {
        let started = client.exec_background(&id, &request).await.with_context(context)?;
        if json {
            print_json(&started)?;
        } else {
            println!("{}", started.pid);
        }
        return Ok(ExitStatus::Success);
    }
    if json {
        let result = client.exec(&id, &request).await.with_context(context)?;
        print_json(&result)?;
        return Ok(ExitStatus::Child(result.exit_code));
    }
    let mut stream = match client.exec_stream(&id, &request).await {
        Ok(stream) => stream,
        Err(error) if stream_unsupported(&error) => {
            tracing::debug!(%error, "exec stream unavailable; falling back to POST /exec");
            let result = client.exec(&id, &request).await.with_context(context)?;
            return print_result(&result);
        }
        Err(error) => return Err(error).with_context(context),
    };
    let mut pid = None;
    loop {
        let event = tokio::select! {
            event = stream.next_event() => event,
            _ = tokio::signal::ctrl_c() => {
                if let Some(pid) = pid {
                    let _ = client.kill_process(&id, pid).await;
                }
                return Ok(ExitStatus::Child(130));
            }
        };
        match event {
            Some(Ok(ExecEvent::Started { pid: started })) => pid = Some(started),
            Some(Ok(ExecEvent::Stdout(data))) => write_flush(&mut std::io::stdout(), &data)?,
            Some(Ok(ExecEvent::Stderr(data))) => write_flush(&mut std::io::stderr(), &data)?,
            Some(Ok(ExecEvent::Exit { exit_code })) => return Ok(ExitStatus::Child(exit_code)),
            Some(Err(error)) => return Err(error).with_context(context),
            None => anyhow::bail!("the exec stream ended without an exit code"),
        }
    }
}

/// The exec request: a shell line (`sh -c` on the server) or an argv.
fn request(
    shell: Option<String>,
    argv: Vec<String>,
    cwd: Option<String>,
    envs: Vec<(String, String)>,
    timeout: Option<u64>,
) -> ExecRequest {
    let (command, args, shell) = match shell {
        Some(line) => (line, Vec::new(), Some(true)),
        None => {
            let mut argv = argv.into_iter();
            (argv.next().unwrap_or_default(), argv.collect(), None)
        }
    };
    ExecRequest {
        command,
        args,
        timeout_secs: timeout,
        background: false,
        cwd,
        envs: envs.into_iter().collect(),
        shell,
    }
}

/// Whether the server lacks the WebSocket exec channel (as opposed to the sandbox or command failing).
fn stream_unsupported(error: &ClientError) -> bool {
    match error {
        ClientError::Api { status, code, .. } => code == "not_implemented" || (*status == 404 && code == "unknown"),
        _ => false,
    }
}

fn print_result(result: &ExecResult) -> anyhow::Result<ExitStatus> {
    write_flush(&mut std::io::stdout(), &result.stdout)?;
    write_flush(&mut std::io::stderr(), &result.stderr)?;
    Ok(ExitStatus::Child(result.exit_code))
}

fn write_flush(out: &mut dyn Write, data: &str) -> anyhow::Result<()> {
    out.write_all(data.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_and_argvs_become_requests() {
        let shell = request(Some("echo hi".into()), vec![], None, vec![], Some(5));
        assert_eq!((shell.command.as_str(), shell.shell, shell.timeout_secs), ("echo hi", Some(true), Some(5)));
        let argv =
            request(None, vec!["ls".into(), "-la".into()], Some("/tmp".into()), vec![("A".into(), "1".into())], None);
        assert_eq!((argv.command.as_str(), argv.args.as_slice(), argv.shell), ("ls", &["-la".to_owned()][..], None));
        assert_eq!(argv.envs.get("A").map(String::as_str), Some("1"));
    }
}
