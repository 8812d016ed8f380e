//! `nullspace bench --mode exec`: the round trip of `commands.run("true")` through the API, beside a
//! `GET /healthz` on the same client (what the API itself costs) in the same run.

use std::time::{Duration, Instant};

use anyhow::Context;
use nullspace_client::Client;
use nullspace_types::sandbox::CreateSandboxRequest;

use super::report::{Figure, Row, Target, Unit};
use super::{exec_true, Bench};
use crate::cli::BenchMode;

pub(super) async fn measure(bench: &Bench<'_>) -> anyhow::Result<Vec<Row>> {
    let client = &bench.client;
    eprintln!("bench: exec round trip and GET /healthz ×{}", bench.execs);
    let sandbox = client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
    let outcome = round_trips(client, &sandbox.id, bench.execs).await;
    client.kill_sandbox(&sandbox.id).await.context("killing the bench sandbox")?;
    let (execs, health) = outcome?;
    Ok(vec![Row::new(BenchMode::Exec, "exec round trip (true)", Unit::Ms, Figure::of_durations(&execs))
        .against("GET /healthz", Figure::of_durations(&health))
        .target(Target::P50AtMost(1.0))
        .target(Target::MarginAtMost(0.5))])
}

/// Interleaved exec and health round trips (so both see the same load): their times.
async fn round_trips(client: &Client, id: &str, count: usize) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut execs, mut health) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for _ in 0..count {
        let started = Instant::now();
        client.exec(id, &exec_true()).await.context("exec")?;
        execs.push(started.elapsed());
        let started = Instant::now();
        client.health().await.context("GET /healthz")?;
        health.push(started.elapsed());
    }
    Ok((execs, health))
}
