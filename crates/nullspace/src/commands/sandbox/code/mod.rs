//! `nullspace sandbox code …`: the clap tree of the code-interpreter group and the dispatch to its
//! modules — executions (`run`, printed by `render`), contexts (`contexts`), stored artifacts
//! (`artifacts`) and queued runs (`runs`) — plus the one helper that gives their errors a context and
//! a `hint:` line.

mod artifacts;
mod contexts;
mod render;
mod run;
mod runs;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use nullspace_client::{Client, ClientError};

use crate::cli::parse_key_value;
use crate::exit::{ExitStatus, UserError};

#[derive(Debug, Subcommand)]
pub enum CodeCommand {
    /// Run code in a code-interpreter sandbox, printing its output as it arrives (exit 1 when it raises).
    Run(RunArgs),
    /// Create, list, restart, interrupt and remove code contexts (kernels whose state persists).
    #[command(subcommand)]
    Context(ContextCommand),
    /// List, show, download and delete the images executions displayed.
    #[command(subcommand, visible_alias = "artifacts")]
    Artifact(ArtifactCommand),
    /// Queue code to run in a context, and follow, wait for or cancel the runs.
    #[command(subcommand, name = "run-job")]
    RunJob(RunJobCommand),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Sandbox id (created from the `code-interpreter` template).
    pub id: String,
    /// The code, or `-` to read it from stdin.
    pub code: String,
    /// Language of the default context to run in: python, javascript, typescript, r, java or bash
    /// [default: python].
    #[arg(long, conflicts_with = "context")]
    pub language: Option<String>,
    /// Run in this context (`ctx_…`, from `code context create`).
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// Environment variable for this execution only (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub envs: Vec<(String, String)>,
    /// Interrupt the execution after this many seconds (it ends with a TimeoutError).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Start a new context (a fresh kernel) and print its id.
    Create {
        /// Sandbox id.
        id: String,
        /// Language of its kernel [default: python].
        #[arg(long)]
        language: Option<String>,
        /// Working directory of its kernel [default: /workspace].
        #[arg(long)]
        cwd: Option<String>,
    },
    /// List the sandbox's contexts.
    #[command(visible_alias = "ls")]
    List {
        /// Sandbox id.
        id: String,
    },
    /// Restart a context's kernel (its variables and imports are cleared).
    Restart {
        /// Sandbox id.
        id: String,
        /// Context id.
        context: String,
    },
    /// Interrupt what a context is running (the context stays usable).
    Interrupt {
        /// Sandbox id.
        id: String,
        /// Context id.
        context: String,
    },
    /// Stop a context's kernel and forget the context.
    #[command(visible_alias = "rm")]
    Remove {
        /// Sandbox id.
        id: String,
        /// Context id.
        context: String,
    },
}

/// Filters and paging of `artifact list`.
#[derive(Debug, Args)]
pub struct ArtifactFilters {
    /// Only artifacts of this context.
    #[arg(long, value_name = "CTX")]
    pub context: Option<String>,
    /// Only artifacts of this execution count.
    #[arg(long, value_name = "N")]
    pub execution_count: Option<i64>,
    /// Only artifacts of this kind (e.g. image).
    #[arg(long)]
    pub kind: Option<String>,
    /// At most this many.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// Continue after a previous page (its `next_cursor`).
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// List stored artifacts, newest first.
    #[command(visible_alias = "ls")]
    List {
        /// Sandbox id.
        id: String,
        #[command(flatten)]
        filters: ArtifactFilters,
    },
    /// Show one artifact.
    Get {
        /// Sandbox id.
        id: String,
        /// Artifact id (`art_…`).
        artifact: String,
    },
    /// Save an artifact's bytes to a local file.
    Download {
        /// Sandbox id.
        id: String,
        /// Artifact id (`art_…`).
        artifact: String,
        /// Local file [default: the artifact's name, in the current directory].
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Replace the local file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Delete an artifact.
    #[command(visible_alias = "rm")]
    Delete {
        /// Sandbox id.
        id: String,
        /// Artifact id (`art_…`).
        artifact: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunJobCommand {
    /// List runs, newest first.
    #[command(visible_alias = "ls")]
    List {
        /// Sandbox id.
        id: String,
        /// Only runs in this status (queued, running, succeeded, failed, cancelled).
        #[arg(long, value_parser = ["queued", "running", "succeeded", "failed", "cancelled"])]
        status: Option<String>,
        /// Only runs of this context.
        #[arg(long, value_name = "CTX")]
        context: Option<String>,
        /// At most this many.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Continue after a previous page (its `next_cursor`).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Queue code to run in a context; prints the run (follow it with `run-job wait`).
    Create {
        /// Sandbox id.
        id: String,
        /// The code, or `-` to read it from stdin.
        code: String,
        /// The context to run in (`ctx_…`, from `code context create`).
        #[arg(long, value_name = "CTX")]
        context: String,
        /// Environment variable for this run only (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        envs: Vec<(String, String)>,
        /// Interrupt the run after this many seconds [gateway default: 300].
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        timeout: Option<u64>,
    },
    /// Show one run and, once it finished, what it printed and returned.
    Get {
        /// Sandbox id.
        id: String,
        /// Run id (`run_…`).
        run: String,
    },
    /// Ask a queued or running run to stop.
    Cancel {
        /// Sandbox id.
        id: String,
        /// Run id (`run_…`).
        run: String,
    },
    /// Wait until a run finishes and show its result (exit 1 unless it succeeded).
    Wait {
        /// Sandbox id.
        id: String,
        /// Run id (`run_…`).
        run: String,
        /// Give up after this many seconds (exit 1) [default: wait as long as it takes].
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
        timeout: Option<u64>,
        /// Seconds between polls.
        #[arg(long, value_name = "SECS", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
    },
}

/// Runs a `sandbox code` subcommand.
pub async fn run(client: &Client, command: CodeCommand, json: bool) -> anyhow::Result<ExitStatus> {
    match command {
        CodeCommand::Run(args) => run::run(client, args, json).await,
        CodeCommand::Context(command) => contexts::run(client, command, json).await,
        CodeCommand::Artifact(command) => artifacts::run(client, command, json).await,
        CodeCommand::RunJob(command) => runs::run(client, command, json).await,
    }
}

/// The code argument: itself, or stdin for `-`.
fn read_code(code: String) -> anyhow::Result<String> {
    if code != "-" {
        return Ok(code);
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|error| anyhow::Error::new(error).context("could not read the code from stdin"))?;
    Ok(text)
}

/// The error of a failed request, saying what could not be done (`what`) and, for the code API's own
/// failures, what to do about it.
fn failed(sandbox: &str, what: String) -> impl FnOnce(ClientError) -> anyhow::Error + '_ {
    move |error| match code_hint(sandbox, &error) {
        Some(hint) => anyhow::Error::new(error).context(UserError { message: what, hint: Some(hint) }),
        None => anyhow::Error::new(error).context(what),
    }
}

/// The hint for the code API's error codes (others keep the client's general hint).
fn code_hint(sandbox: &str, error: &ClientError) -> Option<String> {
    let hint = match error.code() {
        "feature_unavailable" => format!(
            "sandbox {sandbox} runs no code interpreter: create one with `nullspace sandbox create --template code-interpreter`"
        ),
        "context_not_found" => format!("list the contexts with `nullspace sandbox code context list {sandbox}`"),
        "artifact_not_found" => format!("list the artifacts with `nullspace sandbox code artifact list {sandbox}`"),
        "run_not_found" => format!("list the runs with `nullspace sandbox code run-job list {sandbox}`"),
        "sandbox_not_ready" => {
            format!("the code interpreter is still starting; try again, or check `nullspace sandbox get {sandbox}`")
        }
        _ => return None,
    };
    Some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command, SandboxCommand};
    use clap::Parser;

    fn parse(args: &[&str]) -> CodeCommand {
        let cli = Cli::try_parse_from(["nullspace", "sandbox", "code"].iter().chain(args)).expect("parses");
        match cli.command {
            Command::Sandbox(SandboxCommand::Code(command)) => command,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn run_takes_code_language_envs_and_timeout() {
        let CodeCommand::Run(args) = parse(&[
            "run",
            "sb_1",
            "print(1)",
            "--language",
            "bash",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--timeout",
            "5",
        ]) else {
            panic!("not run")
        };
        assert_eq!(
            (args.id.as_str(), args.code.as_str(), args.language.as_deref()),
            ("sb_1", "print(1)", Some("bash"))
        );
        assert_eq!(args.envs, [("A".to_owned(), "1".to_owned()), ("B".to_owned(), "x=y".to_owned())]);
        assert_eq!(args.timeout, Some(5));
    }

    #[test]
    fn run_refuses_a_language_with_a_context_and_a_zero_timeout() {
        let both = ["nullspace", "sandbox", "code", "run", "sb", "1", "--language", "r", "--context", "ctx_1"];
        assert!(Cli::try_parse_from(both).is_err());
        assert!(Cli::try_parse_from(["nullspace", "sandbox", "code", "run", "sb", "1", "--timeout", "0"]).is_err());
    }

    #[test]
    fn run_jobs_need_a_context_and_take_known_statuses() {
        assert!(Cli::try_parse_from(["nullspace", "sandbox", "code", "run-job", "create", "sb", "1"]).is_err());
        let RunJobCommand::List { status, .. } = (match parse(&["run-job", "list", "sb", "--status", "failed"]) {
            CodeCommand::RunJob(command) => command,
            other => panic!("unexpected {other:?}"),
        }) else {
            panic!("not list")
        };
        assert_eq!(status.as_deref(), Some("failed"));
        assert!(
            Cli::try_parse_from(["nullspace", "sandbox", "code", "run-job", "list", "sb", "--status", "x"]).is_err()
        );
    }

    #[test]
    fn code_errors_get_their_own_hints() {
        let missing = ClientError::from_response(501, br#"{"error":{"code":"feature_unavailable","message":"no"}}"#);
        assert!(code_hint("sb_1", &missing).unwrap().contains("--template code-interpreter"));
        let context = ClientError::from_response(404, br#"{"error":{"code":"context_not_found","message":"no"}}"#);
        assert!(code_hint("sb_1", &context).unwrap().contains("code context list sb_1"));
        let internal = ClientError::from_response(500, br#"{"error":{"code":"internal_error","message":"boom"}}"#);
        assert_eq!(code_hint("sb_1", &internal), None);
        let error = failed("sb_1", "could not run code".into())(missing);
        assert_eq!(crate::exit::report(&error, true), ExitStatus::Failure);
    }
}
