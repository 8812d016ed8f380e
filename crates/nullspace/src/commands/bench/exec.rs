//! `nullspace bench --mode exec`: the round trip of `commands.run("true")` through the API, beside two
//! baselines measured in the same run, interleaved so all three see the same load: the same `POST /exec`
//! sent raw to the guest daemon's unix socket on one kept-alive connection (what the guest and the spawn
//! cost; the API's hops are the rest), and a `GET /healthz` on the same client (what the API itself
//! costs). The guest's socket is found under the server's `--data-dir` (the bench runs as root on the
//! host, as the server does).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use nullspace_client::Client;
use nullspace_node::{GuestPeer, SandboxPaths};
use nullspace_types::exec_api::ExecResult;
use nullspace_types::sandbox::CreateSandboxRequest;

use super::report::{Figure, Row, Target, Unit};
use super::{exec_true, Bench};
use crate::cli::BenchMode;

/// The API exec row's name.
const EXEC_ROW: &str = "exec round trip (true)";

pub(super) async fn measure(bench: &Bench<'_>) -> anyhow::Result<Vec<Row>> {
    let client = &bench.client;
    eprintln!("bench: exec round trip, raw guest socket exec and GET /healthz ×{}", bench.execs);
    let sandbox = client.create_sandbox(&CreateSandboxRequest::default(), None).await.context("creating a sandbox")?;
    let socket = SandboxPaths::new(&bench.data_dir.join("sandboxes"), &sandbox.id).guest_socket();
    let outcome = round_trips(client, &sandbox.id, &socket, bench.execs).await;
    client.kill_sandbox(&sandbox.id).await.context("killing the bench sandbox")?;
    let samples = outcome?;
    let execs = Figure::of_durations(&samples.execs);
    Ok(vec![
        Row::new(BenchMode::Exec, EXEC_ROW, Unit::Ms, execs)
            .against("raw guest socket POST /exec", Figure::of_durations(&samples.raw))
            .target(Target::P50AtMost(1.0)),
        Row::new(BenchMode::Exec, EXEC_ROW, Unit::Ms, execs)
            .against("GET /healthz", Figure::of_durations(&samples.health))
            .target(Target::P50AtMost(1.0))
            .target(Target::MarginAtMost(0.5)),
    ])
}

/// Round-trip times of the three requests.
struct Samples {
    execs: Vec<Duration>,
    health: Vec<Duration>,
    raw: Vec<Duration>,
}

/// Interleaved exec, health and raw guest round trips (so all see the same load): their times.
async fn round_trips(client: &Client, id: &str, socket: &Path, count: usize) -> anyhow::Result<Samples> {
    let mut samples =
        Samples { execs: Vec::with_capacity(count), health: Vec::with_capacity(count), raw: Vec::with_capacity(count) };
    let mut guest = RawGuest::connect(socket, id).await?;
    let request = exec_true();
    let body = Bytes::from(serde_json::to_vec(&request)?);
    for _ in 0..count {
        let started = Instant::now();
        let result = client.exec(id, &request).await.context("exec")?;
        samples.execs.push(started.elapsed());
        ensure!(result.exit_code == 0, "`true` through the API exited {}: {}", result.exit_code, result.stderr);
        let started = Instant::now();
        client.health().await.context("GET /healthz")?;
        samples.health.push(started.elapsed());
        let started = Instant::now();
        guest.exec(body.clone()).await?;
        samples.raw.push(started.elapsed());
    }
    Ok(samples)
}

/// One kept-alive HTTP/1.1 connection straight to a guest daemon's socket.
struct RawGuest {
    socket: PathBuf,
    sender: SendRequest<Full<Bytes>>,
}

impl RawGuest {
    async fn connect(socket: &Path, sandbox_id: &str) -> anyhow::Result<RawGuest> {
        let hint = || format!("the guest socket {}: pass the server's --data-dir", socket.display());
        // The entry lives in a directory the sandbox can write: connect as the node does (the entry
        // itself, never followed, must be a socket, and its listener a process of the sandbox).
        let peer = GuestPeer::Sandbox(sandbox_id.to_owned());
        let stream = nullspace_node::connect_guest_socket(socket, &peer).await.with_context(hint)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake on {}", socket.display()))?;
        tokio::spawn(connection);
        Ok(RawGuest { socket: socket.to_path_buf(), sender })
    }

    /// `POST /exec` with `body`, read to the end; the command must have exited 0.
    async fn exec(&mut self, body: Bytes) -> anyhow::Result<()> {
        let context = || format!("POST /exec on {}", self.socket.display());
        self.sender.ready().await.with_context(context)?;
        let request = hyper::Request::post("/exec")
            .header(hyper::header::HOST, "guest")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        let response = self.sender.send_request(request).await.with_context(context)?;
        let status = response.status();
        let bytes = response.into_body().collect().await.with_context(context)?.to_bytes();
        ensure!(status.is_success(), "{}: {status}: {}", context(), String::from_utf8_lossy(&bytes));
        let result: ExecResult = serde_json::from_slice(&bytes).with_context(context)?;
        ensure!(result.exit_code == 0, "`true` on the guest socket exited {}: {}", result.exit_code, result.stderr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_symlink_planted_for_the_guest_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("host.sock");
        let _listener = tokio::net::UnixListener::bind(&target).unwrap();
        let planted = dir.path().join("guest.sock");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let error = RawGuest::connect(&planted, "sb_bench").await.err().expect("a planted link is refused");
        assert!(format!("{error:#}").contains("is not a unix socket"), "{error:#}");
        // A real socket whose listener is not a process of the sandbox is refused too.
        let foreign = RawGuest::connect(&target, "sb_bench").await.err().expect("a foreign listener is refused");
        assert!(format!("{foreign:#}").contains("does not belong to sandbox sb_bench"), "{foreign:#}");
    }
}
