//! `nullspace bench --mode density`: memory of idle sandboxes. Creates idle sandboxes (default size,
//! networking on) up to each step (10, 100, 1,000; `--quick`: 10, 50; `--density-steps`), reads the
//! host's `MemAvailable` before and at each step (five readings a second apart) and the sandboxes'
//! own cgroup memory, reports MiB per idle sandbox (target ≤ 10), then destroys them all and reports
//! the free memory again beside the reading before. Reads `/proc/meminfo` and the cgroups of the host
//! the bench runs on: run it on the server's host.
//!
//! 1,000 default sandboxes (2 vCPUs, 512 MiB each) reserve more than the default overcommit lets a
//! 2-core, 24 GiB host admit: start the server with `--cpu-overcommit 1000 --memory-overcommit 22`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{stream, StreamExt};
use nullspace_client::Client;
use nullspace_types::sandbox::CreateSandboxRequest;

use super::report::{Figure, Row, Target, Unit};
use super::Bench;
use crate::cli::BenchMode;

/// Creates and destroys in flight at once.
const PARALLEL: usize = 4;
/// Readings of `MemAvailable` at each point (a second apart).
const READINGS: usize = 5;
/// Lifetime of a bench sandbox: the run's destroy removes it, the timeout only if the run is killed.
const LIFETIME_MS: u64 = 2 * 60 * 60 * 1000;

/// `MemAvailable` of this host, MiB.
fn mem_available_mib() -> anyhow::Result<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no MemAvailable in /proc/meminfo")?;
    Ok(kib / 1024.0)
}

/// `READINGS` readings of `MemAvailable`, a second apart.
async fn readings() -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(READINGS);
    for index in 0..READINGS {
        if index > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        out.push(mem_available_mib()?);
    }
    Ok(out)
}

/// Memory charged to sandbox `id`'s cgroup, bytes (cgroup v2, else v1's memory controller).
fn cgroup_bytes(id: &str) -> Option<u64> {
    let v2 = format!("/sys/fs/cgroup/{}/{id}/memory.current", nullspace_runtime::CGROUP_PARENT);
    let v1 = format!("/sys/fs/cgroup/memory/{}/{id}/memory.usage_in_bytes", nullspace_runtime::CGROUP_PARENT);
    [v2, v1].iter().find_map(|path| std::fs::read_to_string(path).ok()?.trim().parse().ok())
}

fn median(values: &[f64]) -> f64 {
    Figure::of(&mut values.to_vec()).p50
}

pub(super) async fn measure(bench: &Bench<'_>, steps: &[usize]) -> anyhow::Result<Vec<Row>> {
    let mut steps: Vec<usize> = steps.iter().copied().filter(|s| *s > 0).collect();
    steps.sort_unstable();
    steps.dedup();
    if steps.is_empty() {
        bail!("--density-steps needs at least one count above 0");
    }
    let mut ids: Vec<String> = Vec::new();
    let result = run_steps(&bench.client, &steps, &mut ids).await;
    eprintln!("bench: destroying {} idle sandboxes", ids.len());
    let started = Instant::now();
    let destroyed = destroy_all(&bench.client, &ids).await;
    eprintln!("bench: destroyed {} sandboxes in {:.1} s", ids.len(), started.elapsed().as_secs_f64());
    let (mut rows, before) = result?;
    destroyed?;
    // Give the kernel a moment to free what the destroys released (namespaces go on RCU callbacks).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = readings().await?;
    rows.push(
        Row::new(
            BenchMode::Density,
            "free memory after destroying all (MiB)",
            Unit::Mib,
            Figure::of(&mut after.clone()),
        )
        .against("free memory before", Figure::of(&mut before.clone())),
    );
    Ok(rows)
}

async fn run_steps(client: &Client, steps: &[usize], ids: &mut Vec<String>) -> anyhow::Result<(Vec<Row>, Vec<f64>)> {
    let before = readings().await?;
    let free_before = median(&before);
    eprintln!("bench: MemAvailable before: {free_before:.0} MiB");
    let mut rows = Vec::new();
    for &step in steps {
        let started = Instant::now();
        let missing = step - ids.len();
        let created: Vec<anyhow::Result<String>> =
            stream::iter(0..missing).map(|_| create_idle(client)).buffer_unordered(PARALLEL).collect().await;
        let mut failed = None;
        for outcome in created {
            match outcome {
                Ok(id) => ids.push(id),
                Err(error) => failed = Some(error),
            }
        }
        if let Some(error) = failed {
            // Every sandbox that was made is in `ids`, for the caller to destroy.
            return Err(error.context(format!("creating idle sandboxes towards {step} ({} alive)", ids.len())));
        }
        let took = started.elapsed();
        // Let the sandboxes go idle: the guests' short-lived threads of boot exit after 10 s.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let at_step = readings().await?;
        let count = ids.len() as f64;
        let mut per_sandbox: Vec<f64> = at_step.iter().map(|free| (free_before - free) / count).collect();
        let cgroups: u64 = ids.iter().filter_map(|id| cgroup_bytes(id)).sum();
        let cgroup_each = cgroups as f64 / count / (1 << 20) as f64;
        let figure = Figure::of(&mut per_sandbox);
        eprintln!(
            "bench: {step} idle sandboxes (created in {:.1} s): {:.2} MiB each from MemAvailable, {cgroup_each:.2} MiB each in their cgroups",
            took.as_secs_f64(),
            figure.p50
        );
        let cgroup = Figure { p50: cgroup_each, p90: cgroup_each, samples: ids.len() };
        rows.push(
            Row::new(BenchMode::Density, format!("MiB per idle sandbox at {step} (MemAvailable)"), Unit::Mib, figure)
                .against("the sandboxes' own cgroup memory", cgroup)
                .target(Target::P50AtMost(10.0)),
        );
        rows.push(
            Row::new(
                BenchMode::Density,
                format!("free memory with {step} idle sandboxes (MiB)"),
                Unit::Mib,
                Figure::of(&mut at_step.clone()),
            )
            .against("free memory before", Figure::of(&mut before.clone())),
        );
    }
    Ok((rows, before))
}

async fn create_idle(client: &Client) -> anyhow::Result<String> {
    let request = CreateSandboxRequest { timeout_ms: Some(LIFETIME_MS), ..CreateSandboxRequest::default() };
    let sandbox = client.create_sandbox(&request, None).await.context("creating an idle sandbox")?;
    Ok(sandbox.id)
}

async fn destroy_all(client: &Client, ids: &[String]) -> anyhow::Result<()> {
    let failures: Vec<String> = stream::iter(ids)
        .map(|id| async move { client.kill_sandbox(id).await.err().map(|e| format!("{id}: {e:#}")) })
        .buffer_unordered(PARALLEL)
        .filter_map(|failure| async move { failure })
        .collect()
        .await;
    if !failures.is_empty() {
        bail!("{} bench sandboxes were not destroyed: {}", failures.len(), failures.join("; "));
    }
    Ok(())
}
