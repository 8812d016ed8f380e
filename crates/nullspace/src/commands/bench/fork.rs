//! `nullspace bench --mode fork`: fork of a running sandbox, with a small change set (one file) and with
//! a large one (100 MiB written), beside `cp -a` of a tree of the same bytes on the server's disk.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nullspace_client::Client;
use nullspace_types::exec_api::ExecRequest;
use nullspace_types::sandbox::CreateSandboxRequest;

use super::report::{Figure, Row, Target, Unit};
use super::Bench;
use crate::cli::BenchMode;

pub(super) async fn measure(bench: &Bench<'_>) -> anyhow::Result<Vec<Row>> {
    let big_mib = if bench.quick { 16 } else { 100 };
    eprintln!("bench: fork ×{} (one file changed, then {big_mib} MiB written)", bench.sandboxes);
    let small = Figure::of_durations(&measure_forks(&bench.client, bench.sandboxes, 0).await?);
    let big = Figure::of_durations(&measure_forks(&bench.client, bench.sandboxes, big_mib).await?);
    let copy = Figure::of_durations(&measure_copy(&bench.data_dir, big_mib, bench.sandboxes)?);
    Ok(vec![
        Row::new(BenchMode::Fork, "fork (one file changed)", Unit::Ms, small).target(Target::P50AtMost(30.0)),
        Row::new(BenchMode::Fork, format!("fork ({big_mib} MiB changed)"), Unit::Ms, big)
            .against(format!("cp -a {big_mib} MiB"), copy)
            .target(Target::P50AtMost(30.0)),
    ])
}

/// Forks of running sandboxes that changed one file and wrote `mib` MiB more: the time of each fork
/// call, after which the fork is checked to hold the parent's change.
async fn measure_forks(client: &Client, count: usize, mib: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for index in 0..count {
        let parent =
            client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
        let outcome = fork_once(client, &parent.id, index, mib).await;
        client.kill_sandbox(&parent.id).await.context("killing the parent")?;
        samples.push(outcome?);
    }
    Ok(samples)
}

async fn fork_once(client: &Client, parent: &str, index: usize, mib: usize) -> anyhow::Result<Duration> {
    let marker = format!("change {index}");
    client.sandbox_files(parent).write_text("/workspace/bench.txt", &marker).await.context("writing")?;
    if mib > 0 {
        let write = ExecRequest {
            command: format!("head -c {mib}M /dev/urandom > /workspace/bench.bin && sync"),
            shell: Some(true),
            ..ExecRequest::default()
        };
        let result = client.exec(parent, &write).await.context("writing the change set")?;
        if result.exit_code != 0 {
            bail!("writing {mib} MiB in {parent} exited {}: {}", result.exit_code, result.stderr);
        }
    }
    let started = Instant::now();
    let child = client.fork(parent).await.context("fork")?;
    let elapsed = started.elapsed();
    let content = client.sandbox_files(&child.id).read_text("/workspace/bench.txt").await;
    client.kill_sandbox(&child.id).await.context("killing the fork")?;
    let content = content.context("reading in the fork")?;
    if content != marker {
        bail!("fork {} lost the parent's change: {content:?}", child.id);
    }
    Ok(elapsed)
}

/// `cp -a` of a tree holding one file of `mib` MiB, on the disk of `dir`, `runs` times.
fn measure_copy(dir: &Path, mib: usize, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let work = tempfile::Builder::new().prefix("bench-fork-").tempdir_in(dir).context("creating a bench dir")?;
    let source = work.path().join("upper");
    std::fs::create_dir(&source)?;
    let bytes: Vec<u8> = (0..mib << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(source.join("bench.bin"), bytes)?;
    let mut samples = Vec::with_capacity(runs);
    for run in 0..runs {
        let target = work.path().join(format!("copy{run}"));
        let started = Instant::now();
        let status = std::process::Command::new("cp").arg("-a").arg(&source).arg(&target).status()?;
        samples.push(started.elapsed());
        if !status.success() {
            bail!("cp -a failed: {status}");
        }
        std::fs::remove_dir_all(&target)?;
    }
    Ok(samples)
}
