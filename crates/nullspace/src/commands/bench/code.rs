//! `nullspace bench`'s code-interpreter figures, next to their baseline in the same run: create of a
//! `code-interpreter` sandbox → the first `run_code("1+1")` result, cold (every pool bypassed), as a
//! default create gets it (the server's built-in pool when it has a started sandbox, counted), and
//! (with `--code-warm-pool`) claimed from a warm pool of the tenant's; and the `run_code` round trip of a
//! trivial Python cell through the API (client → server → guest tunnel → gateway → kernel, until the
//! stream ends) next to a raw `jupyter_client` round trip on the same kernel in the same sandbox
//! (`bench_code_kernel.py`, run inside the sandbox). Skipped when the server has no such template.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nullspace_client::Client;
use nullspace_types::code_api::{ExecuteRequest, ExecutionEvent};
use nullspace_types::exec_api::ExecRequest;
use nullspace_types::sandbox::CreateSandboxRequest;
use serde::Deserialize;

use super::report::{summarize, Summary};

/// The built-in template the figures need.
pub(super) const TEMPLATE: &str = "code-interpreter";
/// The cell every figure runs, and the text of its result.
const CELL: &str = "1+1";
const CELL_RESULT: &str = "2";
/// Untimed round trips before each timed series (both ours and the baseline's).
const WARMUP: usize = 3;
/// The in-sandbox baseline (`python3 -c`).
const KERNEL_SCRIPT: &str = include_str!("code_kernel.py");
/// The issue's targets.
const TARGET_RATIO: f64 = 1.5;
const TARGET_FIRST_RESULT_MS: f64 = 300.0;
/// Untimed pause after each create→first-result sample.
const SETTLE: Duration = Duration::from_secs(3);

/// The code-interpreter figures.
#[derive(Debug, serde::Serialize)]
pub(super) struct CodeFigures {
    /// Create → the first `result` event of `1+1`, bypassing every warm pool.
    create_to_first_result: Summary,
    /// The same for a create naming no pool, as users create: served by the server's built-in pool
    /// when it has a started sandbox (`--builtin-warm-pool`), cold otherwise.
    default_create_to_first_result: Summary,
    /// How many of those the built-in pool served.
    default_creates_served_by_builtin_pool: usize,
    /// The same, claiming a ready sandbox of a warm pool of the template (`--code-warm-pool`).
    warm_pool_create_to_first_result: Option<Summary>,
    /// `run_code("1+1")` through the API, until the stream ends.
    run_code_round_trip: Summary,
    /// `jupyter_client` execute round trips on the same kernel, inside the sandbox.
    raw_jupyter_round_trip: Summary,
    run_code_vs_raw_jupyter_p50_ratio: f64,
    /// The baseline's `jupyter_client` version.
    jupyter_client: String,
}

/// Measures the figures over `sandboxes` creates and `runs` round trips; `None` (with a message) when
/// the server has no `code-interpreter` template.
pub(super) async fn measure(
    client: &Client,
    sandboxes: usize,
    runs: usize,
    warm_pool: bool,
) -> anyhow::Result<Option<CodeFigures>> {
    if !client.template_exists(TEMPLATE).await.context("looking up the code-interpreter template")? {
        eprintln!("bench: code-interpreter figures skipped: the server lists no `{TEMPLATE}` template");
        return Ok(None);
    }
    eprintln!("bench: {TEMPLATE} create→first run_code result over {sandboxes} sandboxes");
    let bypass = serde_json::json!({"mode": "bypass"});
    let (create, _) = measure_first_result(client, sandboxes, Some(bypass)).await?;
    eprintln!("bench: {TEMPLATE} default create→first run_code result over {sandboxes} sandboxes ({SETTLE:?} apart)");
    let (default, builtin_hits) = measure_first_result(client, sandboxes, None).await?;
    let warm = if warm_pool {
        eprintln!("bench: {TEMPLATE} warm-pool create→first run_code result over {sandboxes} sandboxes");
        Some(measure_warm_first_result(client, sandboxes).await?)
    } else {
        None
    };
    eprintln!("bench: run_code round trip ×{runs}, then raw jupyter_client ×{runs} on the same kernel");
    let request = CreateSandboxRequest { template: Some(TEMPLATE.into()), ..CreateSandboxRequest::default() };
    let sandbox = client.create_sandbox(&request, None).await.context("creating a code-interpreter sandbox")?;
    let outcome = measure_round_trips(client, &sandbox.id, runs).await;
    client.kill_sandbox(&sandbox.id).await.context("killing the code-interpreter bench sandbox")?;
    let (ours, (raw, jupyter_client)) = outcome?;
    Ok(Some(CodeFigures {
        create_to_first_result: create,
        default_create_to_first_result: default,
        default_creates_served_by_builtin_pool: builtin_hits,
        warm_pool_create_to_first_result: warm,
        run_code_vs_raw_jupyter_p50_ratio: ours.p50_ms / raw.p50_ms.max(f64::EPSILON),
        run_code_round_trip: ours,
        raw_jupyter_round_trip: raw,
        jupyter_client,
    }))
}

/// Prints the figures as rows of `nullspace bench`'s table (or why they were skipped: by
/// `--no-code-interpreter`, or for want of the template).
pub(super) fn print_rows(figures: Option<&CodeFigures>, skipped_by_flag: bool, row: impl Fn(&str, &Summary)) {
    let Some(figures) = figures else {
        let why =
            if skipped_by_flag { "--no-code-interpreter" } else { "the server lists no `code-interpreter` template" };
        println!("{:<24} skipped: {why}", "code interpreter");
        return;
    };
    row("code create→1st result", &figures.create_to_first_result);
    row("default code →1st result", &figures.default_create_to_first_result);
    if let Some(warm) = &figures.warm_pool_create_to_first_result {
        row("warm-pool code →1st res", warm);
    }
    row("run_code round trip", &figures.run_code_round_trip);
    row("raw jupyter_client rt", &figures.raw_jupyter_round_trip);
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "{:<24} {:.2}× raw jupyter_client {} on the same kernel (p50; target ≤ {TARGET_RATIO}× {})",
        "run_code",
        figures.run_code_vs_raw_jupyter_p50_ratio,
        figures.jupyter_client,
        met(figures.run_code_vs_raw_jupyter_p50_ratio <= TARGET_RATIO)
    );
    let cold = figures.create_to_first_result.p50_ms;
    let warm = match &figures.warm_pool_create_to_first_result {
        Some(warm) => {
            format!("; from a warm pool {:.0} ms, {}", warm.p50_ms, met(warm.p50_ms <= TARGET_FIRST_RESULT_MS))
        }
        None => String::new(),
    };
    println!(
        "{:<24} p50 {cold:.0} ms cold (target ≤ {TARGET_FIRST_RESULT_MS:.0} ms {}{warm})",
        "code create→1st result",
        met(cold <= TARGET_FIRST_RESULT_MS)
    );
    let default = figures.default_create_to_first_result.p50_ms;
    println!(
        "{:<24} p50 {default:.0} ms as created by default, {} of {} from the built-in pool ({}; {:.2}× cold)",
        "code create→1st result",
        figures.default_creates_served_by_builtin_pool,
        figures.default_create_to_first_result.samples,
        met(default <= TARGET_FIRST_RESULT_MS),
        default / cold.max(f64::EPSILON)
    );
}

fn cell() -> ExecuteRequest {
    ExecuteRequest { code: CELL.into(), ..ExecuteRequest::default() }
}

/// Create (with `warm_pool` as the request's) → first result of `sandboxes` code-interpreter sandboxes,
/// each killed afterwards and followed by a [`SETTLE`] pause (untimed, so a built-in pool can start
/// its next sandbox, as between a user's creates); with how many claimed a started sandbox.
async fn measure_first_result(
    client: &Client,
    sandboxes: usize,
    warm_pool: Option<serde_json::Value>,
) -> anyhow::Result<(Summary, usize)> {
    let request = CreateSandboxRequest { template: Some(TEMPLATE.into()), ..CreateSandboxRequest::default() };
    let mut samples = Vec::with_capacity(sandboxes);
    let mut hits = 0;
    for _ in 0..sandboxes {
        let started = Instant::now();
        let (sandbox, checkout) = client
            .create_sandbox_checked_out(&request, warm_pool.clone())
            .await
            .context("creating a code-interpreter sandbox")?;
        let first = run_cell(client, &sandbox.id, Until::FirstResult).await;
        let elapsed = started.elapsed();
        client.kill_sandbox(&sandbox.id).await.context("killing a code-interpreter bench sandbox")?;
        first.with_context(|| format!("the first run_code in sandbox {}", sandbox.id))?;
        hits += usize::from(checkout.as_ref().and_then(|c| c["hit"].as_bool()) == Some(true));
        samples.push(elapsed);
        tokio::time::sleep(SETTLE).await;
    }
    Ok((summarize(&mut samples), hits))
}

/// Create → first result of `sandboxes` sandboxes claimed from a warm pool of the template (one ready
/// sandbox kept; each claim waits until the pool has one again, outside the measured time). The pool
/// is deleted afterwards, also after a failure.
async fn measure_warm_first_result(client: &Client, sandboxes: usize) -> anyhow::Result<Summary> {
    let spec = nullspace_client::WarmPoolSpec {
        template_ref: Some(TEMPLATE.into()),
        name: Some(format!("bench-code-{}", nullspace_client::new_idempotency_key())),
        min_ready: Some(1),
        max_ready: Some(1),
        ..Default::default()
    };
    let pool = client.create_warm_pool(&spec).await.context("creating a code-interpreter bench warm pool")?;
    let samples = warm_samples(client, &pool.id, sandboxes).await;
    client.delete_warm_pool(&pool.id).await.context("deleting the code-interpreter bench warm pool")?;
    Ok(summarize(&mut samples?))
}

async fn warm_samples(client: &Client, pool_id: &str, sandboxes: usize) -> anyhow::Result<Vec<Duration>> {
    let request = CreateSandboxRequest { template: Some(TEMPLATE.into()), ..CreateSandboxRequest::default() };
    let mut samples = Vec::with_capacity(sandboxes);
    for _ in 0..sandboxes {
        let waited = Instant::now();
        while client.get_warm_pool(pool_id).await?.status.ready == 0 {
            if waited.elapsed() > Duration::from_secs(180) {
                bail!("warm pool {pool_id} of {TEMPLATE} did not get a ready sandbox within 180 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let started = Instant::now();
        let (sandbox, checkout) = client
            .create_sandbox_from_pool(&request, pool_id, "require")
            .await
            .context("claiming a code-interpreter warm pool sandbox")?;
        let first = run_cell(client, &sandbox.id, Until::FirstResult).await;
        let elapsed = started.elapsed();
        client.kill_sandbox(&sandbox.id).await.context("killing a code-interpreter bench sandbox")?;
        first.with_context(|| format!("the first run_code in warm pool sandbox {}", sandbox.id))?;
        if checkout.as_ref().and_then(|c| c["hit"].as_bool()) != Some(true) {
            bail!("the create did not claim from the code-interpreter warm pool: {checkout:?}");
        }
        samples.push(elapsed);
    }
    Ok(samples)
}

/// Our round trips, then the raw baseline's, in sandbox `id`.
async fn measure_round_trips(client: &Client, id: &str, runs: usize) -> anyhow::Result<(Summary, (Summary, String))> {
    let mut samples = Vec::with_capacity(runs);
    for index in 0..WARMUP + runs {
        let started = Instant::now();
        run_cell(client, id, Until::StreamEnd).await.context("run_code")?;
        if index >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    let raw = raw_jupyter(client, id, runs).await?;
    Ok((summarize(&mut samples), raw))
}

/// Where a timed `run_code` stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Until {
    /// At the `result` event (the rest of the stream is dropped).
    FirstResult,
    /// When the server ends the stream.
    StreamEnd,
}

/// Runs [`CELL`] in sandbox `id`'s default python context; an error event, a stream without the
/// expected result, or a broken stream is an error.
async fn run_cell(client: &Client, id: &str, until: Until) -> anyhow::Result<()> {
    let path = format!("/v1/sandboxes/{id}/code/execute");
    let mut stream = client.post_events::<ExecutionEvent>(&path, &cell()).await?;
    let mut seen_result = false;
    while let Some(event) = stream.next().await {
        match event.context("reading the execute stream")? {
            ExecutionEvent::Result(result) if result.text.as_deref() == Some(CELL_RESULT) => {
                seen_result = true;
                if until == Until::FirstResult {
                    return Ok(());
                }
            }
            ExecutionEvent::Error(error) => bail!("{CELL} failed: {}: {}", error.name, error.value),
            _ => {}
        }
    }
    if !seen_result {
        bail!("the execute stream of {CELL} ended without its result {CELL_RESULT}");
    }
    Ok(())
}

/// Runs the baseline script in sandbox `id`: `runs` timed `jupyter_client` round trips of [`CELL`] on
/// the default python context's kernel. Returns their summary and the `jupyter_client` version.
async fn raw_jupyter(client: &Client, id: &str, runs: usize) -> anyhow::Result<(Summary, String)> {
    let request = ExecRequest {
        command: "python3".into(),
        args: vec!["-c".into(), KERNEL_SCRIPT.into(), runs.to_string(), WARMUP.to_string(), CELL.into()],
        timeout_secs: Some(120 + runs as u64),
        ..ExecRequest::default()
    };
    let result = client.exec(id, &request).await.context("running the raw jupyter_client baseline")?;
    if result.exit_code != 0 {
        bail!("the raw jupyter_client baseline exited {}: {}", result.exit_code, result.stderr.trim());
    }
    let timings = parse_raw_timings(&result.stdout, runs)?;
    let mut samples = timings.samples;
    Ok((summarize(&mut samples), timings.jupyter_client))
}

/// What the baseline script prints (its last stdout line).
#[derive(Debug, Deserialize)]
struct RawOutput {
    round_trips_ms: Vec<f64>,
    #[serde(default)]
    jupyter_client: String,
}

/// The parsed baseline output.
#[derive(Debug, PartialEq)]
struct RawTimings {
    samples: Vec<Duration>,
    jupyter_client: String,
}

/// Parses the baseline script's stdout: its last non-empty line is the JSON, with exactly `runs`
/// finite, non-negative round trips in milliseconds.
fn parse_raw_timings(stdout: &str, runs: usize) -> anyhow::Result<RawTimings> {
    let line = stdout.lines().rev().map(str::trim).find(|line| !line.is_empty()).context(
        "the raw jupyter_client baseline printed nothing (it prints its timings as one JSON line on stdout)",
    )?;
    let output: RawOutput = serde_json::from_str(line)
        .with_context(|| format!("the raw jupyter_client baseline printed no timings JSON: {line:?}"))?;
    if output.round_trips_ms.len() != runs {
        bail!("the raw jupyter_client baseline timed {} round trips, not {runs}", output.round_trips_ms.len());
    }
    let samples = output
        .round_trips_ms
        .iter()
        .map(|ms| {
            Duration::try_from_secs_f64(ms / 1000.0)
                .map_err(|_| anyhow::anyhow!("the raw jupyter_client baseline timed an impossible {ms} ms"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(RawTimings { samples, jupyter_client: output.jupyter_client })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_timings_are_its_last_line_in_milliseconds() {
        let stdout = "a stray line\n{\"round_trips_ms\": [1.5, 0.25, 3], \"jupyter_client\": \"8.6.3\"}\n\n";
        let parsed = parse_raw_timings(stdout, 3).unwrap();
        assert_eq!(parsed.samples, [Duration::from_micros(1500), Duration::from_micros(250), Duration::from_millis(3)]);
        assert_eq!(parsed.jupyter_client, "8.6.3");
        // They summarize as every other figure does.
        let mut samples = parsed.samples;
        let summary = summarize(&mut samples);
        assert_eq!(summary.p50_ms, 1.5);
        assert_eq!(samples, [Duration::from_micros(250), Duration::from_micros(1500), Duration::from_millis(3)]);
    }

    #[test]
    fn baseline_output_that_is_not_the_timings_is_an_error() {
        let wrong_count = parse_raw_timings("{\"round_trips_ms\": [1.0]}", 2).unwrap_err();
        assert!(wrong_count.to_string().contains("timed 1 round trips, not 2"), "{wrong_count}");
        let negative = parse_raw_timings("{\"round_trips_ms\": [-1.0]}", 1).unwrap_err();
        assert!(negative.to_string().contains("impossible -1 ms"), "{negative}");
        // Python's json.dumps writes NaN for a NaN, which is not JSON.
        assert!(parse_raw_timings("{\"round_trips_ms\": [NaN]}", 1).is_err());
        assert!(parse_raw_timings("Traceback (most recent call last):", 1).is_err());
        assert!(parse_raw_timings("\n \n", 1).unwrap_err().to_string().contains("printed nothing"));
    }

    /// Runs the baseline script on the host against a state directory laid out as the gateway's.
    fn script_in(state_dir: &std::path::Path) -> std::process::Output {
        std::process::Command::new("python3")
            .args(["-c", KERNEL_SCRIPT, "1", "0", CELL])
            .arg(state_dir)
            .output()
            .expect("python3 runs")
    }

    #[test]
    fn the_script_finds_the_default_python_context_in_the_gateways_records_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let failure = |output: std::process::Output| {
            assert_eq!(output.status.code(), Some(2), "{output:?}");
            assert!(output.stdout.is_empty());
            String::from_utf8(output.stderr).unwrap()
        };
        assert!(failure(script_in(dir.path())).contains("cannot read the gateway's contexts"));
        // The records as the gateway writes them (state.rs: the context, flattened, and is_default).
        let contexts = dir.path().join("contexts.json");
        let other = r#"{"id":"ctx_r","language":"r","cwd":"/workspace","is_default":true}"#;
        let created = r#"{"id":"ctx_p1","language":"python","cwd":"/workspace","is_default":false}"#;
        std::fs::write(&contexts, format!("[{other},{created}]")).unwrap();
        assert!(failure(script_in(dir.path())).contains("records no default python context"));
        let default = r#"{"id":"ctx_p0","language":"python","cwd":"/workspace","is_default":true}"#;
        std::fs::write(&contexts, format!("[{other},{created},{default}]")).unwrap();
        std::fs::create_dir(dir.path().join("runtime")).unwrap();
        std::fs::write(dir.path().join("runtime/kernel-ctx_p1-0.json"), "{}").unwrap();
        let message = failure(script_in(dir.path()));
        assert!(message.contains("no connection file of context ctx_p0"), "{message}");
    }
}
