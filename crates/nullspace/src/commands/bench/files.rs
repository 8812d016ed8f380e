//! `nullspace bench --mode files`: upload and download of one file through the API, into a sandbox and
//! into volumes (plain and size-limited), beside `cp` of a file of the same size on the same disk.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nullspace_client::Client;
use nullspace_types::sandbox::CreateSandboxRequest;

use super::report::{Figure, Row, Target, Unit};
use super::Bench;
use crate::cli::BenchMode;

/// Transfers timed per direction and per target.
const RUNS: usize = 3;

pub(super) async fn measure(bench: &Bench<'_>) -> anyhow::Result<Vec<Row>> {
    let (client, mib) = (&bench.client, bench.file_mb);
    let runs = if bench.quick { 1 } else { RUNS };
    eprintln!("bench: `cp` of {mib} MiB on this disk ×{runs}");
    let copy = Figure::of_rates(mib as f64, &measure_copy(mib, runs)?);
    eprintln!("bench: file upload and download of {mib} MiB ×{runs} (sandbox, volume, size-limited volume)");
    let sandbox = client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
    let in_sandbox = transfers(&client.sandbox_files(&sandbox.id), "/tmp/bench.bin", mib, runs).await;
    client.kill_sandbox(&sandbox.id).await.context("killing the bench sandbox")?;
    let in_sandbox = in_sandbox?;
    let plain = measure_volume_files(client, mib, runs, None).await?;
    let limit = ((mib as u64) << 21).max(64 << 20);
    let sized = measure_volume_files(client, mib, runs, Some(limit)).await?;
    let mut rows = Vec::new();
    for (target, (writes, reads)) in [("sandbox", in_sandbox), ("volume", plain), ("size-limited volume", sized)] {
        for (direction, samples) in [("upload", writes), ("download", reads)] {
            let figure = Figure::of_rates(mib as f64, &samples);
            rows.push(
                Row::new(BenchMode::Files, format!("{direction} {mib} MiB ({target})"), Unit::MibPerS, figure)
                    .against("cp", copy)
                    .target(Target::RatioAtLeast(0.7)),
            );
        }
    }
    Ok(rows)
}

/// Uploads `file_mb` MiB to `path` through `files` and downloads it again into a local file, `runs`
/// times, checking the bytes: the time of each write and of each read.
async fn transfers(
    files: &nullspace_client::Files<'_>,
    path: &str,
    file_mb: usize,
    runs: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut writes, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let (write, read) = transfer(files, path, file_mb).await?;
        writes.push(write);
        reads.push(read);
    }
    Ok((writes, reads))
}

/// Uploads `file_mb` MiB to `path` through `files` and downloads it again into a local file, checking
/// the bytes: the time of the write and of the read.
async fn transfer(
    files: &nullspace_client::Files<'_>,
    path: &str,
    file_mb: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let local = tempfile::NamedTempFile::new().context("creating a temp file")?;
    let payload: Vec<u8> = (0..file_mb << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(local.path(), &payload).context("writing the temp file")?;
    let started = Instant::now();
    files.write_stream(local.path(), path, None).await.context("upload")?;
    let write = started.elapsed();
    // Streamed to a local file, as `nullspace … download` does; compared once the clock has stopped.
    let back = tempfile::NamedTempFile::new().context("creating a temp file")?;
    let started = Instant::now();
    files.download(path, Some(back.path()), false, true, None).await.context("download")?;
    let read = started.elapsed();
    if std::fs::read(back.path()).context("reading the download")? != payload {
        bail!("downloaded bytes differ from the uploaded ones");
    }
    Ok((write, read))
}

/// File throughput of a new volume's direct files API (through its volume guest), with a size limit or
/// without; the volume is deleted afterwards.
async fn measure_volume_files(
    client: &Client,
    file_mb: usize,
    runs: usize,
    max_size: Option<u64>,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let name = format!("bench-{}-{}", std::process::id(), max_size.map_or("plain".to_owned(), |s| s.to_string()));
    let volume = client.create_volume(&name, max_size).await.context("creating a bench volume")?;
    let outcome = transfers(&client.volume_files(&volume.id), "/bench.bin", file_mb, runs).await;
    client.delete_volume(&volume.id).await.context("deleting the bench volume")?;
    outcome
}

/// `cp` of a file of the same size on this disk, `runs` times: the time of each copy.
fn measure_copy(file_mb: usize, runs: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::Builder::new().prefix("nullspace-bench-cp-").tempdir_in("/var/tmp")?;
    let (source, target): (PathBuf, PathBuf) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&source, vec![7u8; file_mb << 20])?;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let _ = std::fs::remove_file(&target);
        let started = Instant::now();
        let status = std::process::Command::new("cp").arg(&source).arg(&target).status()?;
        if !status.success() {
            bail!("cp failed: {status}");
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}
