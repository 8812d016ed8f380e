//! `nullspace bench --mode fork`: fork of a running sandbox, with a small change set (one file) and with
//! a large one (100 MiB written), beside copies of a tree of the same bytes on the server's data dir's
//! filesystem: `cp -a`, and `cp -a --reflink=always` where that filesystem shares blocks (XFS with
//! reflink, btrfs), the copy a fork of a sandbox disk makes there.

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
    let runs = bench.sandboxes;
    let small_copy = Figure::of_durations(&measure_copy(&bench.data_dir, 0, runs, false)?.context("cp -a")?);
    let big_copy = Figure::of_durations(&measure_copy(&bench.data_dir, big_mib, runs, false)?.context("cp -a")?);
    let small_row = "fork (one file changed)";
    let big_row = format!("fork ({big_mib} MiB changed)");
    let mut rows = vec![
        Row::new(BenchMode::Fork, small_row, Unit::Ms, small)
            .against("cp -a of one file", small_copy)
            .target(Target::P50AtMost(30.0)),
        Row::new(BenchMode::Fork, &big_row, Unit::Ms, big)
            .against(format!("cp -a {big_mib} MiB"), big_copy)
            .target(Target::P50AtMost(30.0)),
    ];
    match measure_copy(&bench.data_dir, big_mib, runs, true)? {
        Some(reflinks) => rows.push(
            Row::new(BenchMode::Fork, big_row, Unit::Ms, big)
                .against(format!("cp --reflink=always {big_mib} MiB"), Figure::of_durations(&reflinks))
                .target(Target::P50AtMost(30.0)),
        ),
        None => eprintln!(
            "bench: no cp --reflink=always baseline: the filesystem of {} shares no blocks (ext4); forks copy \
             the data of the parent's disk there",
            bench.data_dir.display()
        ),
    }
    Ok(rows)
}

/// Forks of running sandboxes that changed one file and wrote `mib` MiB more: the time of each fork
/// call, after which the fork is checked to hold the parent's changes.
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

fn shell(script: String) -> ExecRequest {
    ExecRequest { command: "/bin/sh".to_owned(), args: vec!["-c".to_owned(), script], ..ExecRequest::default() }
}

async fn fork_once(client: &Client, parent: &str, index: usize, mib: usize) -> anyhow::Result<Duration> {
    let marker = format!("change {index}");
    client.sandbox_files(parent).write_text("/workspace/bench.txt", &marker).await.context("writing")?;
    let digest = "md5sum < /workspace/bench.bin".to_owned();
    let mut expected = None;
    if mib > 0 {
        let write = shell(format!("head -c {mib}M /dev/urandom > /workspace/bench.bin && sync && {digest}"));
        let result = client.exec(parent, &write).await.context("writing the change set")?;
        if result.exit_code != 0 {
            bail!("writing {mib} MiB in {parent} exited {}: {}", result.exit_code, result.stderr);
        }
        expected = Some(result.stdout);
    }
    let started = Instant::now();
    let child = client.fork(parent).await.context("fork")?;
    let elapsed = started.elapsed();
    let checked = check_fork(client, &child.id, &marker, expected.as_deref(), &digest).await;
    client.kill_sandbox(&child.id).await.context("killing the fork")?;
    checked?;
    Ok(elapsed)
}

/// The fork holds the parent's one-file change and, when `expected` is set, the same big file.
async fn check_fork(
    client: &Client,
    child: &str,
    marker: &str,
    expected: Option<&str>,
    digest: &str,
) -> anyhow::Result<()> {
    let content = client.sandbox_files(child).read_text("/workspace/bench.txt").await.context("reading in the fork")?;
    if content != marker {
        bail!("fork {child} lost the parent's change: {content:?}");
    }
    if let Some(expected) = expected {
        let result = client.exec(child, &shell(digest.to_owned())).await.context("reading the change set")?;
        if result.stdout != expected {
            bail!("fork {child} holds another change set: {:?}, not {expected:?}", result.stdout);
        }
    }
    Ok(())
}

/// Copies of a tree holding one small file and, when `mib` > 0, one file of `mib` MiB, on the
/// filesystem of `dir`, `runs` times: `cp -a`, or `cp -a --reflink=always` when `reflink` (`None` when
/// the filesystem cannot).
fn measure_copy(dir: &Path, mib: usize, runs: usize, reflink: bool) -> anyhow::Result<Option<Vec<Duration>>> {
    let work = tempfile::Builder::new().prefix(".bench-fork-").tempdir_in(dir).context("creating a bench dir")?;
    let source = work.path().join("upper");
    std::fs::create_dir_all(source.join("workspace"))?;
    std::fs::write(source.join("workspace/bench.txt"), "change")?;
    if mib > 0 {
        let bytes: Vec<u8> = (0..mib << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(source.join("workspace/bench.bin"), bytes)?;
    }
    // What a running sandbox's writes are by the time of a fork: on the disk, not only in the page cache.
    nix::unistd::sync();
    let mut samples = Vec::with_capacity(runs);
    for run in 0..runs {
        let target = work.path().join(format!("copy{run}"));
        let mut cp = std::process::Command::new("cp");
        cp.arg("-a");
        if reflink {
            cp.arg("--reflink=always");
        }
        let started = Instant::now();
        let output = cp.arg(&source).arg(&target).output()?;
        samples.push(started.elapsed());
        if !output.status.success() {
            if reflink && run == 0 {
                return Ok(None);
            }
            bail!("{cp:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::fs::remove_dir_all(&target)?;
    }
    Ok(Some(samples))
}
