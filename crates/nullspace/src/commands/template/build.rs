//! `template build` (streamed, or `--background`; `--visibility` set once it is built), `build-status`,
//! `logs`, `wait` and `cancel`. Log
//! entries go to stderr: on a terminal a progress bar shows `step i/n` with the lines above it; else
//! plain lines (`--log-format text`), JSON lines (`jsonl`) or nothing (`quiet`). Stdout carries only
//! the result. Secrets never appear: the request is printed redacted and log text is redacted too.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use nullspace_client::{BuildLogEntry, BuildStatus, Client, ProgressFn};
use serde_json::json;

use super::render::{redact, redact_text};
use super::request::Prepared;
use crate::exit::{ExitStatus, UserError};
use crate::output::print_json;

/// How build log entries are shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human lines (a progress bar on a terminal).
    #[default]
    Text,
    /// One JSON object per entry.
    Jsonl,
    /// Nothing.
    Quiet,
}

/// Shows log entries on stderr.
pub struct LogView {
    format: LogFormat,
    bar: Option<ProgressBar>,
    secrets: Vec<String>,
}

impl LogView {
    /// A view; the bar only when stderr is a terminal, the format is text and `--json` is off.
    pub fn new(format: LogFormat, json: bool, secrets: Vec<String>) -> Self {
        let bar = (format == LogFormat::Text && !json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_message("starting build");
            bar
        });
        Self { format, bar, secrets }
    }

    /// Shows one entry.
    pub fn show(&self, entry: &BuildLogEntry) {
        match self.format {
            LogFormat::Quiet => {}
            LogFormat::Jsonl => {
                let mut value = serde_json::to_value(entry).unwrap_or_default();
                redact(&mut value, &self.secrets);
                eprintln!("{value}");
            }
            LogFormat::Text => {
                let line = redact_text(&entry_line(entry), &self.secrets);
                match &self.bar {
                    Some(bar) => {
                        if entry.step_index.is_some() && entry.total_steps.is_some() {
                            bar.set_message(line.clone());
                        }
                        bar.println(line);
                    }
                    None => eprintln!("{line}"),
                }
            }
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `step 3/7: message`, with `warning:`/`error:` in front of those levels.
pub fn entry_line(entry: &BuildLogEntry) -> String {
    let mut line = String::new();
    match entry.level.as_str() {
        "warn" => line.push_str("warning: "),
        "error" => line.push_str("error: "),
        _ => {}
    }
    if let (Some(index), Some(total)) = (entry.step_index, entry.total_steps) {
        line.push_str(&format!("step {}/{}: ", index + 1, total));
    }
    line.push_str(&entry.message);
    line
}

/// Uploads the context, then builds (streamed) or queues the build (`background`).
pub async fn run_build(
    client: &Client,
    mut prepared: Prepared,
    background: bool,
    format: LogFormat,
    visibility: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    if background && visibility.is_some() {
        return Err(UserError::new(
            "--visibility cannot be combined with --background (the template does not exist yet)",
            Some("build in the foreground, or run `nullspace template visibility set REF public` once it is ready"),
        )
        .into());
    }
    if !prepared.context.is_empty() {
        let bar = (format == LogFormat::Text && !json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("uploading build context {bar:30} {pos}/{len} files")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let progress: Option<ProgressFn> = bar.clone().map(|bar| {
            Arc::new(move |done: u64, total: Option<u64>| {
                bar.set_length(total.unwrap_or(done));
                bar.set_position(done);
            }) as ProgressFn
        });
        let result = client.upload_build_context(&prepared.context, progress).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        prepared.request.build_context = Some(result.context("could not upload the build context")?);
    }
    if background {
        let build = client
            .build_template_in_background(&prepared.request)
            .await
            .context("could not start the template build")?;
        if json {
            print_json(&build)?;
        } else {
            println!("{}  {}  {}", build.build_id, build.status, build.canonical_ref.as_deref().unwrap_or(&build.name));
            eprintln!("follow it with `nullspace template logs {} --follow`", build.build_id);
        }
        return Ok(ExitStatus::Success);
    }
    let started = Instant::now();
    let view = LogView::new(format, json, prepared.secrets.clone());
    let result = stream_build(client, &prepared, &view).await;
    view.finish();
    let end = result?;
    let mut template = end.result.clone().unwrap_or_default();
    if let Some(visibility) = visibility {
        let info = client.set_template_visibility(&end.template_id, visibility).await.with_context(|| {
            format!("template {} was built, but its visibility could not be set to {visibility}", end.template_id)
        })?;
        template = serde_json::to_value(info)?;
    }
    if json {
        print_json(&json!({
            "build_id": end.build_id,
            "template_id": end.template_id,
            "status": "ready",
            "template": template,
        }))?;
    } else {
        let name = template.get("canonical_ref").and_then(|v| v.as_str()).unwrap_or(&end.template_id);
        println!("{name}  {}  {}", end.template_id, end.build_id);
        eprintln!(
            "built in {:.1}s; start one with `nullspace sandbox create --template {name}`",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitStatus::Success)
}

/// Follows the build's stream to its `end` entry; an `error` or `cancelled` entry is an error.
async fn stream_build(client: &Client, prepared: &Prepared, view: &LogView) -> anyhow::Result<BuildLogEntry> {
    let mut stream = client.build_template(&prepared.request).await.context("could not start the template build")?;
    let mut first: Option<String> = None;
    while let Some(entry) = stream.next().await {
        let entry = entry.context("the build stream broke")?;
        view.show(&entry);
        let build_id = first.get_or_insert_with(|| entry.build_id.clone());
        if *build_id != entry.build_id {
            anyhow::bail!("the build stream mixed builds {build_id} and {}", entry.build_id);
        }
        match entry.kind.as_str() {
            "end" if entry.result.is_some() => return Ok(entry),
            "error" | "cancelled" => return Err(failure(&entry, &prepared.secrets).into()),
            _ => {}
        }
    }
    let hint = first.map(|id| format!("see `nullspace template build-status {id}`"));
    Err(UserError { message: "the build stream ended without an end entry".into(), hint }.into())
}

/// A failed build as a user error naming its build and how to read its log.
fn failure(entry: &BuildLogEntry, secrets: &[String]) -> UserError {
    let (code, message) = match &entry.error_detail {
        Some(detail) => (detail.code.as_str(), detail.message.as_str()),
        None => (entry.kind.as_str(), entry.message.as_str()),
    };
    let action = entry.error_detail.as_ref().and_then(|d| d.suggested_action.clone());
    let hint = format!(
        "{}read the log with `nullspace template logs {}`",
        action.map(|a| format!("{a}; ")).unwrap_or_default(),
        entry.build_id
    );
    UserError {
        message: redact_text(&format!("template build {} failed ({code}): {message}", entry.build_id), secrets),
        hint: Some(redact_text(&hint, secrets)),
    }
}

/// `template build-status ID --offset N`.
pub async fn status(client: &Client, build_id: &str, offset: u64, json: bool) -> anyhow::Result<ExitStatus> {
    let status = client
        .template_build_status(build_id, offset)
        .await
        .with_context(|| format!("could not get build {build_id}"))?;
    if json {
        print_json(&status)?;
    } else {
        for entry in &status.entries {
            println!("{}", entry_line(entry));
        }
        print_status_line(&status);
    }
    Ok(ExitStatus::Success)
}

fn print_status_line(status: &BuildStatus) {
    let build = &status.build;
    let error = build.error.as_deref().map(|e| format!("  {e}")).unwrap_or_default();
    println!("{}  {}  {}  next offset {}{error}", build.build_id, build.status, build.name, status.next_offset);
}

/// `template logs ID [--follow] [--offset N]`: entries to stdout (a JSON array with `--json`).
pub async fn logs(
    client: &Client,
    build_id: &str,
    offset: u64,
    follow: bool,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let mut stream = client
        .template_build_logs(build_id, offset, follow)
        .await
        .with_context(|| format!("could not read the log of build {build_id}"))?;
    let mut entries = Vec::new();
    while let Some(entry) = stream.next().await {
        let entry = entry.context("the log stream broke")?;
        if json {
            entries.push(entry);
        } else {
            println!("{}", entry_line(&entry));
        }
    }
    if json {
        print_json(&entries)?;
    }
    Ok(ExitStatus::Success)
}

/// `template wait ID`: polls until the build is over; exit 1 unless it is `ready`.
pub async fn wait(
    client: &Client,
    build_id: &str,
    offset: u64,
    interval: Duration,
    format: LogFormat,
    secrets: Vec<String>,
    json: bool,
) -> anyhow::Result<ExitStatus> {
    let view = LogView::new(format, json, secrets);
    let result = client.wait_template_build(build_id, offset, interval, |entry| view.show(entry)).await;
    view.finish();
    let status = result.with_context(|| format!("could not follow build {build_id}"))?;
    if json {
        print_json(&status)?;
    } else {
        print_status_line(&status);
    }
    if status.build.status == "ready" {
        return Ok(ExitStatus::Success);
    }
    if !json {
        let detail =
            status.build.error_detail.as_ref().map(|d| format!(" ({}): {}", d.code, d.message)).unwrap_or_default();
        eprintln!("error: build {build_id} ended {}{detail}", status.build.status);
        eprintln!("\nhint: read the log with `nullspace template logs {build_id}`");
    }
    Ok(ExitStatus::Failure)
}

/// `template cancel ID [--reason R]`.
pub async fn cancel(client: &Client, build_id: &str, reason: Option<&str>, json: bool) -> anyhow::Result<ExitStatus> {
    let status = client
        .cancel_template_build(build_id, reason)
        .await
        .with_context(|| format!("could not cancel build {build_id}"))?;
    if json {
        print_json(&status)?;
    } else {
        print_status_line(&status);
    }
    Ok(ExitStatus::Success)
}

/// `template render json`: the request, redacted.
pub fn print_request(prepared: &Prepared) -> anyhow::Result<()> {
    print_json(&super::render::redacted_json(prepared))
}
