//! `nullspace bench`: measures a running server (create→first-exec, cold and from a warm pool, exec
//! round trip, file throughput of a sandbox and of volumes, plain and size-limited) and, in the same run,
//! bare `runc run` of the same template rootfs and `cp` on the same disk, and prints the ratios. The
//! template figures (given `--registry-image`) are `bench_templates`', the code-interpreter figures
//! (when the server has the `code-interpreter` template) `bench_code`'s, the desktop figures (when it has
//! the `desktop` template) `bench_desktop`'s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nullspace_client::Client;
use nullspace_node::template::TemplateStore;
use nullspace_runtime::{Limits, OciRuntime, RuntimeKind, SandboxSpec};
use nullspace_types::exec_api::ExecRequest;
use nullspace_types::sandbox::CreateSandboxRequest;
use serde_json::json;

use super::bench_code;
use super::bench_desktop;
use super::bench_templates::{self, TemplateBench};
use crate::cli::{BenchArgs, GlobalArgs};
use crate::exit::ExitStatus;

/// p50, p90 and mean of a sample, in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(super) struct Summary {
    pub(super) p50_ms: f64,
    p90_ms: f64,
    mean_ms: f64,
    pub(super) samples: usize,
}

pub(super) fn summarize(samples: &mut [Duration]) -> Summary {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(samples[((samples.len() as f64 - 1.0) * q).round() as usize]);
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len().max(1) as f64;
    Summary { p50_ms: at(0.5), p90_ms: at(0.9), mean_ms: mean, samples: samples.len() }
}

fn exec_true() -> ExecRequest {
    ExecRequest { command: "true".to_owned(), ..ExecRequest::default() }
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    if args.sandboxes == 0 || args.execs == 0 {
        bail!("--sandboxes and --execs must be at least 1");
    }
    let client = super::client(global)?;
    let data_dir = super::data_dir(args.data_dir.clone())?;
    let rootfs =
        TemplateStore::new(data_dir.join("templates")).get("base").map(|layer| layer.rootfs).with_context(|| {
            format!("no built base template under {}; pass the server's --data-dir", data_dir.display())
        })?;

    let templates = match &args.registry_image {
        Some(image) => {
            let bench = TemplateBench {
                image,
                data_dir: args.data_dir.as_deref(),
                pulls: args.pulls as usize,
                templates: args.templates as usize,
            };
            Some(bench_templates::measure(&client, &bench).await?)
        }
        None => {
            eprintln!("bench: template figures skipped (no --registry-image): {}", bench_templates::IMAGE_HINT);
            None
        }
    };
    let code = if args.no_code_interpreter {
        eprintln!("bench: code-interpreter figures skipped (--no-code-interpreter)");
        None
    } else {
        bench_code::measure(&client, args.code_sandboxes as usize, args.code_runs as usize, args.code_warm_pool).await?
    };
    let desktop = if args.no_desktop {
        eprintln!("bench: desktop figures skipped (--no-desktop)");
        None
    } else {
        bench_desktop::measure(&client, global, args.desktop_samples as usize).await?
    };
    eprintln!("bench: create→first-exec over {} sandboxes", args.sandboxes);
    let create = measure_create(&client, args.sandboxes).await?;
    eprintln!("bench: warm-pool create→first-exec over {} sandboxes", args.sandboxes);
    let warm = measure_warm_create(&client, args.sandboxes).await?;
    eprintln!("bench: exec round trip ×{}, file throughput {} MiB", args.execs, args.file_mb);
    let (exec, write_mbps, read_mbps) = measure_exec_and_files(&client, args.execs, args.file_mb).await?;
    eprintln!("bench: volume file throughput {} MiB (plain, then size-limited)", args.file_mb);
    let plain_volume = measure_volume_files(&client, args.file_mb, None).await?;
    let limit = ((args.file_mb as u64) << 21).max(64 << 20);
    let sized_volume = measure_volume_files(&client, args.file_mb, Some(limit)).await?;
    eprintln!("bench: hibernate, resume and fork ×{}", args.sandboxes);
    let (hibernate, resume, fork) = measure_state(&client, args.sandboxes).await?;
    eprintln!("bench: bare `runc run` of the same rootfs ×{}", args.sandboxes);
    let runc = measure_bare_runc(&rootfs, args.sandboxes).await?;
    let copy_mbps = measure_copy(args.file_mb)?;

    let ratio = create.p50_ms / runc.p50_ms.max(f64::EPSILON);
    if global.json {
        let body = json!({
            "create_to_first_exec": create,
            "warm_pool_create_to_first_exec": warm,
            "exec_round_trip": exec,
            "hibernate": hibernate,
            "resume": resume,
            "fork": fork,
            "bare_runc_run": runc,
            "create_vs_runc_p50_ratio": ratio,
            "file_write_mib_per_s": write_mbps,
            "file_read_mib_per_s": read_mbps,
            "volume_file_write_mib_per_s": plain_volume.0,
            "volume_file_read_mib_per_s": plain_volume.1,
            "sized_volume_file_write_mib_per_s": sized_volume.0,
            "sized_volume_file_read_mib_per_s": sized_volume.1,
            "local_copy_mib_per_s": copy_mbps,
            "file_mib": args.file_mb,
            "templates": templates,
            "code_interpreter": code,
            "desktop": desktop,
        });
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        let row = |name: &str, s: &Summary| {
            println!(
                "{name:<24} p50 {:>8.2} ms   p90 {:>8.2} ms   mean {:>8.2} ms   n={}",
                s.p50_ms, s.p90_ms, s.mean_ms, s.samples
            )
        };
        row("create→first-exec", &create);
        row("warm-pool create→exec", &warm);
        row("bare runc run", &runc);
        row("exec round trip", &exec);
        row("hibernate", &hibernate);
        row("resume", &resume);
        row("fork", &fork);
        println!("{:<24} {ratio:.2}× bare runc (p50)", "create→first-exec");
        println!(
            "{:<24} write {write_mbps:.0} MiB/s   read {read_mbps:.0} MiB/s   (local cp {copy_mbps:.0} MiB/s; {} MiB)",
            "file transfer", args.file_mb
        );
        println!("{:<24} write {:.0} MiB/s   read {:.0} MiB/s", "volume files", plain_volume.0, plain_volume.1);
        println!("{:<24} write {:.0} MiB/s   read {:.0} MiB/s", "size-limited volume", sized_volume.0, sized_volume.1);
        match &templates {
            Some(figures) => bench_templates::print_rows(figures, row),
            None => println!("{:<24} skipped: pass --registry-image (see `nullspace bench --help`)", "templates"),
        }
        bench_code::print_rows(code.as_ref(), args.no_code_interpreter, row);
        bench_desktop::print_rows(desktop.as_ref(), args.no_desktop, row);
    }
    Ok(ExitStatus::Success)
}

async fn measure_create(client: &Client, count: usize) -> anyhow::Result<Summary> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let sandbox =
            client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
        let result = client.exec(&sandbox.id, &exec_true()).await;
        let elapsed = started.elapsed();
        client.kill_sandbox(&sandbox.id).await.context("killing a bench sandbox")?;
        let result = result.context("first exec")?;
        if result.exit_code != 0 {
            bail!("`true` exited {} in sandbox {}", result.exit_code, sandbox.id);
        }
        samples.push(elapsed);
    }
    Ok(summarize(&mut samples))
}

/// Create→first-exec of sandboxes claimed from a warm pool of `base` (one ready sandbox kept; each
/// create waits until the pool has one again, outside the measured time).
async fn measure_warm_create(client: &Client, count: usize) -> anyhow::Result<Summary> {
    let name = format!("bench-{}", nullspace_client::new_idempotency_key());
    let spec = nullspace_client::WarmPoolSpec {
        template_ref: Some("base".into()),
        name: Some(name),
        min_ready: Some(1),
        max_ready: Some(1),
        ..Default::default()
    };
    let pool = client.create_warm_pool(&spec).await.context("creating a bench warm pool")?;
    let pool_id = pool.id.clone();
    let result = warm_samples(client, &pool_id, count).await;
    client.delete_warm_pool(&pool_id).await.context("deleting the bench warm pool")?;
    Ok(summarize(&mut result?))
}

async fn warm_samples(client: &Client, pool_id: &str, count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let waited = Instant::now();
        while client.get_warm_pool(pool_id).await?.status.ready == 0 {
            if waited.elapsed() > Duration::from_secs(120) {
                bail!("warm pool {pool_id} did not get a ready sandbox within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let started = Instant::now();
        let (sandbox, checkout) = client
            .create_sandbox_from_pool(&CreateSandboxRequest::default(), pool_id, "require")
            .await
            .context("claiming a warm pool sandbox")?;
        let result = client.exec(&sandbox.id, &exec_true()).await;
        let elapsed = started.elapsed();
        client.kill_sandbox(&sandbox.id).await.context("killing a bench sandbox")?;
        let result = result.context("first exec")?;
        if result.exit_code != 0 {
            bail!("`true` exited {} in sandbox {}", result.exit_code, sandbox.id);
        }
        if checkout.as_ref().and_then(|c| c["hit"].as_bool()) != Some(true) {
            bail!("the create did not claim from the warm pool: {checkout:?}");
        }
        samples.push(elapsed);
    }
    Ok(samples)
}

/// Hibernate, resume and fork of a sandbox with a small change set (one file written).
async fn measure_state(client: &Client, count: usize) -> anyhow::Result<(Summary, Summary, Summary)> {
    let (mut hibernates, mut resumes, mut forks) = (Vec::new(), Vec::new(), Vec::new());
    for index in 0..count {
        let sandbox =
            client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
        client
            .sandbox_files(&sandbox.id)
            .write_text("/workspace/bench.txt", &format!("change {index}"))
            .await
            .context("writing")?;
        let started = Instant::now();
        let snapshot = client.hibernate(&sandbox.id).await.context("hibernate")?;
        hibernates.push(started.elapsed());
        let started = Instant::now();
        let resumed = client.resume(&snapshot.id).await.context("resume")?;
        resumes.push(started.elapsed());
        let started = Instant::now();
        let child = client.fork(&resumed.id).await.context("fork")?;
        forks.push(started.elapsed());
        let content =
            client.sandbox_files(&child.id).read_text("/workspace/bench.txt").await.context("reading in the fork")?;
        if content != format!("change {index}") {
            bail!("fork {} lost the parent's change: {content:?}", child.id);
        }
        client.kill_sandbox(&child.id).await.context("killing the fork")?;
        client.kill_sandbox(&resumed.id).await.context("killing the resumed sandbox")?;
    }
    Ok((summarize(&mut hibernates), summarize(&mut resumes), summarize(&mut forks)))
}

async fn measure_exec_and_files(client: &Client, execs: usize, file_mb: usize) -> anyhow::Result<(Summary, f64, f64)> {
    let sandbox = client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
    let outcome = async {
        let mut samples = Vec::with_capacity(execs);
        for _ in 0..execs {
            let started = Instant::now();
            client.exec(&sandbox.id, &exec_true()).await.context("exec")?;
            samples.push(started.elapsed());
        }
        let (write, read) = transfer(&client.sandbox_files(&sandbox.id), "/tmp/bench.bin", file_mb).await?;
        Ok((summarize(&mut samples), write, read))
    }
    .await;
    client.kill_sandbox(&sandbox.id).await.context("killing the bench sandbox")?;
    outcome
}

/// Uploads `file_mb` MiB to `path` through `files` and downloads it again into a local file, checking
/// the bytes: MiB/s of the write and of the read.
async fn transfer(files: &nullspace_client::Files<'_>, path: &str, file_mb: usize) -> anyhow::Result<(f64, f64)> {
    let local = tempfile::NamedTempFile::new().context("creating a temp file")?;
    let payload: Vec<u8> = (0..file_mb << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(local.path(), &payload).context("writing the temp file")?;
    let started = Instant::now();
    files.write_stream(local.path(), path, None).await.context("upload")?;
    let write = file_mb as f64 / started.elapsed().as_secs_f64();
    // Streamed to a local file, as `nullspace … download` does; compared once the clock has stopped.
    let back = tempfile::NamedTempFile::new().context("creating a temp file")?;
    let started = Instant::now();
    files.download(path, Some(back.path()), false, true, None).await.context("download")?;
    let read = file_mb as f64 / started.elapsed().as_secs_f64();
    if std::fs::read(back.path()).context("reading the download")? != payload {
        bail!("downloaded bytes differ from the uploaded ones");
    }
    Ok((write, read))
}

/// File throughput of a new volume's direct files API (through its volume guest), with a size limit or
/// without; the volume is deleted afterwards.
async fn measure_volume_files(client: &Client, file_mb: usize, max_size: Option<u64>) -> anyhow::Result<(f64, f64)> {
    let name = format!("bench-{}-{}", std::process::id(), max_size.map_or("plain".to_owned(), |s| s.to_string()));
    let volume = client.create_volume(&name, max_size).await.context("creating a bench volume")?;
    let outcome = transfer(&client.volume_files(&volume.id), "/bench.bin", file_mb).await;
    client.delete_volume(&volume.id).await.context("deleting the bench volume")?;
    outcome
}

/// Overlay mount + `runc run` (foreground, `/bin/true` as the container's process) + unmount: what a
/// sandbox create costs with nothing of ours in the way.
async fn measure_bare_runc(rootfs: &Path, count: usize) -> anyhow::Result<Summary> {
    let work =
        tempfile::Builder::new().prefix("nullspace-bench-").tempdir_in("/var/tmp").context("creating a bench dir")?;
    let runtime = OciRuntime::new(RuntimeKind::Runc, work.path().join("state"));
    let binary = RuntimeKind::Runc.find_binary().context("runc is not installed")?;
    let mut samples = Vec::with_capacity(count);
    for index in 0..count {
        let dir = work.path().join(format!("c{index}"));
        let (upper, overlay_work, merged, bundle) =
            (dir.join("upper"), dir.join("work"), dir.join("rootfs"), dir.join("bundle"));
        for path in [&upper, &overlay_work, &merged, &bundle] {
            std::fs::create_dir_all(path)?;
        }
        let id = format!("nsbench{index}");
        let started = Instant::now();
        let options =
            format!("lowerdir={},upperdir={},workdir={}", rootfs.display(), upper.display(), overlay_work.display());
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .context("mounting the bench overlay")?;
        let spec = SandboxSpec {
            id: id.clone(),
            bundle_dir: bundle.clone(),
            rootfs: merged.clone(),
            hostname: id.clone(),
            args: vec!["/bin/true".to_owned()],
            env: vec![],
            mounts: vec![],
            limits: Limits { vcpus: 2, memory_mb: 512, pids: 1024 },
            no_new_privileges: true,
            netns: None,
            userns: None,
        };
        runtime.write_bundle(&spec)?;
        let status = tokio::process::Command::new(&binary)
            .arg("--root")
            .arg(runtime.state_root())
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .await?;
        let elapsed = started.elapsed();
        let _ = tokio::process::Command::new(&binary)
            .arg("--root")
            .arg(runtime.state_root())
            .args(["delete", "--force", &id])
            .status()
            .await;
        nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH).context("unmounting the bench overlay")?;
        if !status.success() {
            bail!("bare runc run failed: {status}");
        }
        samples.push(elapsed);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(summarize(&mut samples))
}

/// `cp` of a file of the same size on this disk, for comparison with the API's file throughput.
fn measure_copy(file_mb: usize) -> anyhow::Result<f64> {
    let dir = tempfile::Builder::new().prefix("nullspace-bench-cp-").tempdir_in("/var/tmp")?;
    let (source, target): (PathBuf, PathBuf) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&source, vec![7u8; file_mb << 20])?;
    let started = Instant::now();
    let status = std::process::Command::new("cp").arg(&source).arg(&target).status()?;
    if !status.success() {
        bail!("cp failed: {status}");
    }
    Ok(file_mb as f64 / started.elapsed().as_secs_f64())
}
