//! `nullspace bench --mode concurrent`: N creates sent at once, each followed by its first exec (`true`),
//! timed from the first request until the last exec has answered, beside the same N creates → first
//! exec made one after another in the same run (N = `--concurrency`, 100; `--quick`: 10).
//!
//! Both rounds create sandboxes of 1 vCPU and 256 MiB and keep them all until the round ends, so both
//! end with N live sandboxes; they are killed between rounds, outside the timed part. 100 such sandboxes
//! reserve 100 vCPUs: on a 2-core host the server needs `--cpu-overcommit 50` or more (the default 16
//! refuses the 33rd with `capacity_exceeded`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use nullspace_client::Client;
use nullspace_types::sandbox::CreateSandboxRequest;

use super::report::{Figure, Row, Target, Unit};
use super::{exec_true, Bench};
use crate::cli::BenchMode;

/// What the issue asks of 100 concurrent creates on this 2-core host: all answered within 1.5 s.
const TARGET_MS: f64 = 1500.0;
/// Kills in flight at once while cleaning up a round.
const KILLS_AT_ONCE: usize = 8;

/// The times of one round: wall time from its first request to its last answer, and each sandbox's
/// create → first exec.
struct Round {
    wall: Duration,
    each: Vec<Duration>,
}

pub(super) async fn measure(bench: &Bench<'_>) -> anyhow::Result<Vec<Row>> {
    let count = bench.concurrency;
    let rounds = if bench.quick { 1 } else { 3 };
    let (mut concurrent, mut sequential) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs on a host still busy with the other's kills.
        let concurrent_first = round % 2 == 0;
        for concurrent_now in [concurrent_first, !concurrent_first] {
            if concurrent_now {
                eprintln!("bench: {count} concurrent creates→first exec (round {}/{rounds})", round + 1);
                concurrent.push(round_of(&bench.client, count, true).await?);
            } else {
                eprintln!("bench: {count} sequential creates→first exec (round {}/{rounds})", round + 1);
                sequential.push(round_of(&bench.client, count, false).await?);
            }
        }
    }
    let wall = |rounds: &[Round]| Figure::of_durations(&rounds.iter().map(|r| r.wall).collect::<Vec<_>>());
    let each = |rounds: &[Round]| Figure::of_durations(&rounds.iter().flat_map(|r| r.each.clone()).collect::<Vec<_>>());
    let mut all = Row::new(
        BenchMode::Concurrent,
        format!("{count} concurrent creates→first exec, all answered"),
        Unit::Ms,
        wall(&concurrent),
    )
    .against(format!("{count} sequential"), wall(&sequential));
    if count >= 100 {
        all = all.target(Target::P50AtMost(TARGET_MS));
    }
    Ok(vec![
        all,
        Row::new(
            BenchMode::Concurrent,
            format!("create→first exec, one of {count} concurrent"),
            Unit::Ms,
            each(&concurrent),
        )
        .against("one of the sequential", each(&sequential)),
    ])
}

/// Creates `count` sandboxes, all at once or one after another, each to its first exec; kills them all
/// once the round is timed (also when it failed).
async fn round_of(client: &Client, count: usize, at_once: bool) -> anyhow::Result<Round> {
    let made = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let started = Instant::now();
    let results: Vec<anyhow::Result<Duration>> = if at_once {
        let tasks: Vec<_> = (0..count)
            .map(|_| {
                let (client, made) = (client.clone(), made.clone());
                tokio::spawn(async move { create_to_first_exec(&client, &made).await })
            })
            .collect();
        let mut results = Vec::with_capacity(count);
        for task in tasks {
            results.push(task.await.unwrap_or_else(|e| Err(anyhow::anyhow!("a create task failed: {e}"))));
        }
        results
    } else {
        let mut results = Vec::with_capacity(count);
        for _ in 0..count {
            let result = create_to_first_exec(client, &made).await;
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        results
    };
    let wall = started.elapsed();
    let ids = std::mem::take(&mut *made.lock().unwrap_or_else(|p| p.into_inner()));
    let killed: Vec<_> = stream::iter(ids)
        .map(|id| async move { client.kill_sandbox(&id).await.with_context(|| format!("killing bench sandbox {id}")) })
        .buffer_unordered(KILLS_AT_ONCE)
        .collect()
        .await;
    let each = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    killed.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Round { wall, each })
}

/// One create (1 vCPU, 256 MiB) and its first exec; the id goes into `made` as soon as it is known.
async fn create_to_first_exec(client: &Client, made: &std::sync::Mutex<Vec<String>>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let request = CreateSandboxRequest { vcpus: Some(1), memory_mb: Some(256), ..CreateSandboxRequest::default() };
    let sandbox = client.create_sandbox(&request, None).await.map_err(|error| {
        let hint = if error.to_string().contains("capacity") {
            " (100 sandboxes of 1 vCPU need `nullspace server --cpu-overcommit 64` on a 2-core host)"
        } else {
            ""
        };
        anyhow::Error::new(error).context(format!("creating a sandbox{hint}"))
    })?;
    made.lock().unwrap_or_else(|p| p.into_inner()).push(sandbox.id.clone());
    let result = client.exec(&sandbox.id, &exec_true()).await.context("first exec")?;
    let elapsed = started.elapsed();
    if result.exit_code != 0 {
        bail!("`true` exited {} in sandbox {}", result.exit_code, sandbox.id);
    }
    Ok(elapsed)
}
