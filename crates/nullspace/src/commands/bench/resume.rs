//! `nullspace bench --mode resume`: hibernate of a sandbox with a small change set, and resume → first
//! exec of it, beside a cold create → first exec in the same run.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nullspace_client::Client;
use nullspace_types::sandbox::CreateSandboxRequest;

use super::report::{Figure, Row, Target, Unit};
use super::{exec_true, Bench};
use crate::cli::BenchMode;

pub(super) async fn measure(bench: &Bench<'_>) -> anyhow::Result<Vec<Row>> {
    eprintln!("bench: hibernate, resume and cold create ×{}", bench.sandboxes);
    let (mut hibernates, mut resumes, mut creates) = (Vec::new(), Vec::new(), Vec::new());
    for index in 0..bench.sandboxes {
        let (hibernate, resume, create) = cycle(&bench.client, index).await?;
        hibernates.push(hibernate);
        resumes.push(resume);
        creates.push(create);
    }
    let create = Figure::of_durations(&creates);
    Ok(vec![
        Row::new(BenchMode::Resume, "hibernate (one file changed)", Unit::Ms, Figure::of_durations(&hibernates))
            .against("cold create→first exec", create),
        Row::new(BenchMode::Resume, "resume→first exec", Unit::Ms, Figure::of_durations(&resumes))
            .against("cold create→first exec", create)
            .target(Target::P50AtMost(30.0)),
    ])
}

/// One cold create → first exec, a change, hibernate, and resume → first exec: the three times.
async fn cycle(client: &Client, index: usize) -> anyhow::Result<(Duration, Duration, Duration)> {
    let started = Instant::now();
    let sandbox = client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
    let first = client.exec(&sandbox.id, &exec_true()).await;
    let create = started.elapsed();
    if let Err(error) = first {
        client.kill_sandbox(&sandbox.id).await.context("killing the bench sandbox")?;
        return Err(error).context("first exec");
    }
    let marker = format!("change {index}");
    client.sandbox_files(&sandbox.id).write_text("/workspace/bench.txt", &marker).await.context("writing")?;
    let started = Instant::now();
    let snapshot = client.hibernate(&sandbox.id).await.context("hibernate")?;
    let hibernate = started.elapsed();
    let started = Instant::now();
    let resumed = client.resume(&snapshot.id).await.context("resume")?;
    let first = client.exec(&resumed.id, &exec_true()).await;
    let resume = started.elapsed();
    let content = client.sandbox_files(&resumed.id).read_text("/workspace/bench.txt").await;
    client.kill_sandbox(&resumed.id).await.context("killing the resumed sandbox")?;
    first.context("first exec after resume")?;
    if content.context("reading after resume")? != marker {
        bail!("resumed sandbox {} lost its change", resumed.id);
    }
    Ok((hibernate, resume, create))
}
