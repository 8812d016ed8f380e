//! `nullspace bench --mode create`: create→first exec of a sandbox, cold and claimed from a warm pool,
//! beside bare `runc run` of the same template rootfs (overlay mount + run + delete) in the same run.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nullspace_client::Client;
use nullspace_runtime::{Limits, OciRuntime, RuntimeKind, SandboxSpec};
use nullspace_types::sandbox::CreateSandboxRequest;

use super::report::{Figure, Row, Target, Unit};
use super::{exec_true, Bench};
use crate::cli::BenchMode;

pub(super) async fn measure(bench: &Bench<'_>) -> anyhow::Result<Vec<Row>> {
    let client = &bench.client;
    eprintln!("bench: create→first-exec over {} sandboxes", bench.sandboxes);
    let cold = Figure::of_durations(&measure_create(client, bench.sandboxes).await?);
    eprintln!("bench: warm-pool create→first-exec over {} sandboxes", bench.sandboxes);
    let warm = Figure::of_durations(&measure_warm_create(client, bench.sandboxes).await?);
    eprintln!("bench: bare `runc run` of the same rootfs ×{}", bench.sandboxes);
    let runc = Figure::of_durations(&measure_bare_runc(&bench.base_rootfs()?, bench.sandboxes).await?);
    Ok(vec![
        Row::new(BenchMode::Create, "create→first exec (cold)", Unit::Ms, cold)
            .against("bare runc run", runc)
            .target(Target::RatioAtMost(1.0)),
        Row::new(BenchMode::Create, "create→first exec (warm pool)", Unit::Ms, warm).against("bare runc run", runc),
    ])
}

async fn measure_create(client: &Client, count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let sandbox =
            client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
        let elapsed = first_exec_then_kill(client, &sandbox.id, started).await?;
        samples.push(elapsed);
    }
    Ok(samples)
}

/// Runs `true` in a just-created sandbox, then kills it: the time from `started` to the exec's answer
/// (checked to be exit 0 once the sandbox is gone).
async fn first_exec_then_kill(client: &Client, id: &str, started: Instant) -> anyhow::Result<Duration> {
    let result = client.exec(id, &exec_true()).await;
    let elapsed = started.elapsed();
    client.kill_sandbox(id).await.context("killing a bench sandbox")?;
    let result = result.context("first exec")?;
    if result.exit_code != 0 {
        bail!("`true` exited {} in sandbox {id}", result.exit_code);
    }
    Ok(elapsed)
}

/// Create→first-exec of sandboxes claimed from a warm pool of `base` (one ready sandbox kept; each
/// create waits until the pool has one again, outside the measured time).
async fn measure_warm_create(client: &Client, count: usize) -> anyhow::Result<Vec<Duration>> {
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
    result
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
        let elapsed = first_exec_then_kill(client, &sandbox.id, started).await?;
        if checkout.as_ref().and_then(|c| c["hit"].as_bool()) != Some(true) {
            bail!("the create did not claim from the warm pool: {checkout:?}");
        }
        samples.push(elapsed);
    }
    Ok(samples)
}

/// Overlay mount + `runc run` (foreground, `/bin/true` as the container's process) + unmount: what a
/// sandbox create costs with nothing of ours in the way.
async fn measure_bare_runc(rootfs: &Path, count: usize) -> anyhow::Result<Vec<Duration>> {
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
    Ok(samples)
}
