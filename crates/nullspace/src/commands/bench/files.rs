//! `nullspace bench --mode files`: upload (one streamed `PUT`, and a resumable session of parts) and
//! download of one file through the API, into a sandbox and into volumes (plain and size-limited),
//! beside `cp` of a file of the same size on the same disk (the server's data dir's), all from one
//! local file on that disk.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nullspace_client::{Client, Files, UploadMode, UploadOptions};
use nullspace_types::sandbox::CreateSandboxRequest;
use sha2::{Digest, Sha256};

use super::report::{Figure, Row, Target, Unit};
use super::Bench;
use crate::cli::BenchMode;

/// Transfers timed per direction and per target.
const RUNS: usize = 3;

/// The times of each kind of transfer to one target.
#[derive(Default)]
struct Samples {
    upload: Vec<Duration>,
    resumable: Vec<Duration>,
    download: Vec<Duration>,
}

/// The local side of the run: a directory on the data dir's disk holding the payload and its sha256.
struct Local {
    dir: tempfile::TempDir,
    source: PathBuf,
    sha256: String,
}

pub(super) async fn measure(bench: &Bench<'_>) -> anyhow::Result<Vec<Row>> {
    let (client, mib) = (&bench.client, bench.file_mb);
    let runs = if bench.quick { 1 } else { RUNS };
    let local = prepare(&bench.data_dir, mib)?;
    eprintln!("bench: `cp` of {mib} MiB on the disk of {} ×{runs}", bench.data_dir.display());
    let copy = Figure::of_rates(mib as f64, &measure_copy(&local, runs, false)?);
    // What durability costs on this disk: an upload is synced before it is answered, `cp` is not.
    let durable_copy = Figure::of_rates(mib as f64, &measure_copy(&local, runs, true)?);
    eprintln!(
        "bench: file upload (PUT, resumable) and download of {mib} MiB ×{runs} (sandbox, volume, size-limited volume)"
    );
    let sandbox = client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
    let in_sandbox = transfers(&client.sandbox_files(&sandbox.id), "/tmp/bench.bin", &local, runs).await;
    client.kill_sandbox(&sandbox.id).await.context("killing the bench sandbox")?;
    let in_sandbox = in_sandbox?;
    let plain = measure_volume_files(client, &local, runs, None).await?;
    // Room for the file, its replacement being written beside it, and the staged parts of a session.
    let limit = ((mib as u64) << 20).saturating_mul(4).max(64 << 20);
    let sized = measure_volume_files(client, &local, runs, Some(limit)).await?;
    let mut rows =
        vec![Row::new(BenchMode::Files, format!("cp + fsync {mib} MiB (local)"), Unit::MibPerS, durable_copy)
            .against("cp", copy)];
    for (target, samples) in [("sandbox", in_sandbox), ("volume", plain), ("size-limited volume", sized)] {
        for (what, samples) in
            [("upload", samples.upload), ("resumable upload", samples.resumable), ("download", samples.download)]
        {
            let figure = Figure::of_rates(mib as f64, &samples);
            rows.push(
                Row::new(BenchMode::Files, format!("{what} {mib} MiB ({target})"), Unit::MibPerS, figure)
                    .against("cp", copy)
                    .target(Target::RatioAtLeast(0.7)),
            );
        }
    }
    Ok(rows)
}

/// A directory on the disk of `data_dir` (the server's: the same disk the uploads land on) with a
/// `file_mb` MiB payload.
fn prepare(data_dir: &Path, file_mb: usize) -> anyhow::Result<Local> {
    let base = if data_dir.is_dir() { data_dir.to_owned() } else { std::env::temp_dir() };
    let dir = tempfile::Builder::new().prefix("bench-files-").tempdir_in(&base).context("creating a bench dir")?;
    let source = dir.path().join("payload");
    let payload: Vec<u8> = (0..file_mb << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &payload).context("writing the payload")?;
    let sha256 = hex::encode(Sha256::digest(&payload));
    Ok(Local { dir, source, sha256 })
}

/// Each kind of transfer of the payload to `path` through `files`, `runs` times, checking the bytes.
async fn transfers(files: &Files<'_>, path: &str, local: &Local, runs: usize) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    let back = local.dir.path().join("download");
    for _ in 0..runs {
        let started = Instant::now();
        files.write_stream(&local.source, path, None).await.context("upload")?;
        samples.upload.push(started.elapsed());
        // Streamed to a local file, as `nullspace … download` does; checked once the clock has stopped.
        let started = Instant::now();
        files.download(path, Some(&back), false, true, None).await.context("download")?;
        samples.download.push(started.elapsed());
        if sha256_of(&back)? != local.sha256 {
            bail!("downloaded bytes differ from the uploaded ones");
        }
        files.remove(path).await.context("removing the upload")?;
        let options = UploadOptions { mode: UploadMode::Always, ..UploadOptions::default() };
        let started = Instant::now();
        files.upload_file(&local.source, path, &options).await.context("resumable upload")?;
        samples.resumable.push(started.elapsed());
        files.remove(path).await.context("removing the upload")?;
    }
    let _ = std::fs::remove_file(&back);
    Ok(samples)
}

fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut hasher, mut buffer) = (Sha256::new(), vec![0u8; 1 << 20]);
    loop {
        match file.read(&mut buffer)? {
            0 => return Ok(hex::encode(hasher.finalize())),
            read => hasher.update(&buffer[..read]),
        }
    }
}

/// File throughput of a new volume's direct files API (through its volume guest), with a size limit or
/// without; the volume is deleted afterwards.
async fn measure_volume_files(
    client: &Client,
    local: &Local,
    runs: usize,
    max_size: Option<u64>,
) -> anyhow::Result<Samples> {
    let name = format!("bench-{}-{}", std::process::id(), max_size.map_or("plain".to_owned(), |s| s.to_string()));
    let volume = client.create_volume(&name, max_size).await.context("creating a bench volume")?;
    let outcome = transfers(&client.volume_files(&volume.id), "/bench.bin", local, runs).await;
    client.delete_volume(&volume.id).await.context("deleting the bench volume")?;
    outcome
}

/// `cp` of the payload beside itself (then `sync` of the copy with `durable`), `runs` times: the time of
/// each copy.
fn measure_copy(local: &Local, runs: usize, durable: bool) -> anyhow::Result<Vec<Duration>> {
    let target = local.dir.path().join("copy");
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let _ = std::fs::remove_file(&target);
        let started = Instant::now();
        let status = std::process::Command::new("cp").arg(&local.source).arg(&target).status()?;
        if !status.success() {
            bail!("cp failed: {status}");
        }
        if durable {
            std::fs::File::open(&target)?.sync_all()?;
        }
        samples.push(started.elapsed());
    }
    let _ = std::fs::remove_file(&target);
    Ok(samples)
}
