//! `nullspace-codegw`: the code-interpreter gateway inside a sandbox. Parses its options, finds the
//! kernelspecs, opens the artifact store, listens (default `0.0.0.0:8888`), starts the default python
//! context in the background (`GET /health` answers 200 once it runs code) and serves the code API
//! until SIGTERM or SIGINT, when it stops every kernel.
//!
//! Options: `--listen ADDR`, `--state-dir DIR` (default `/workspace/.nullspace/code`; artifacts, the
//! recorded contexts and kernel connection files), `--kernel-dir DIR` (repeatable; searched before
//! `$JUPYTER_PATH`, the user's and the system kernel directories), `--default-cwd DIR` (default
//! `/workspace`), `--max-output-bytes N` (per execution), `--keepalive-secs N` (`: ping` interval, 10),
//! `--sandbox-id ID` (or `NULLSPACE_SANDBOX_ID`; reported on runs).

mod artifacts;
mod contexts;
mod cursor;
mod error;
mod exec;
mod ids;
mod kernel;
mod routes;
mod runs;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::kernel::spec::{search_path, Kernelspecs};
use crate::state::{Gateway, Options};

/// The code-interpreter gateway: serves the code API over Jupyter kernels.
#[derive(Debug, Parser)]
#[command(name = "nullspace-codegw", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8888")]
    listen: SocketAddr,
    /// The gateway's state: artifacts and kernel connection files.
    #[arg(long, default_value = "/workspace/.nullspace/code")]
    state_dir: PathBuf,
    /// More directories holding kernelspecs (`<dir>/<name>/kernel.json`), searched first (then
    /// `$JUPYTER_PATH/*/kernels`, `~/.local/share/jupyter/kernels`, /usr/local/share and /usr/share).
    #[arg(long = "kernel-dir")]
    kernel_dirs: Vec<PathBuf>,
    /// Working directory of contexts that name none.
    #[arg(long, default_value = "/workspace")]
    default_cwd: PathBuf,
    /// Bytes of output one execution streams before the rest is dropped.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_output_bytes: usize,
    /// Seconds between `: ping` comments on a quiet execute stream.
    #[arg(long, default_value_t = 10)]
    keepalive_secs: u64,
    /// The sandbox this gateway runs in (reported on runs).
    #[arg(long, env = "NULLSPACE_SANDBOX_ID", default_value = "")]
    sandbox_id: String,
    /// The sandbox's environment, kept current by guestd: kernels start with it and get what changes.
    #[arg(long, default_value = crate::exec::sandbox_envs::ENVS_FILE)]
    envs_file: PathBuf,
}

async fn run(args: Args) -> Result<(), String> {
    let jupyter_path = std::env::var("JUPYTER_PATH").ok();
    let home = std::env::var("HOME").ok();
    let dirs = search_path(&args.kernel_dirs, jupyter_path.as_deref(), home.as_deref());
    let specs = Kernelspecs::discover(&dirs);
    tracing::info!(kernels = ?specs.kernel_names(), languages = ?specs.available_languages(), searched = ?specs.searched(), "kernelspecs found");
    let artifacts = artifacts::ArtifactStore::open(&args.state_dir.join("artifacts")).map_err(|e| e.message())?;
    std::fs::create_dir_all(&args.default_cwd)
        .map_err(|e| format!("cannot create the default cwd {}: {e}", args.default_cwd.display()))?;
    let options = Options {
        default_cwd: args.default_cwd,
        runtime_dir: args.state_dir.join("runtime"),
        contexts_file: args.state_dir.join("contexts.json"),
        max_output_bytes: args.max_output_bytes,
        keepalive: std::time::Duration::from_secs(args.keepalive_secs.max(1)),
        sandbox_id: args.sandbox_id,
        envs_file: args.envs_file,
    };
    let gateway = Gateway::new(options, specs, artifacts);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and supervisors read this line to learn the port.
    println!("nullspace-codegw listening on {address}");
    tracing::info!(%address, "listening");
    gateway.restore_contexts().await;
    let starting = std::sync::Arc::clone(&gateway);
    tokio::spawn(async move { starting.start_default_python().await });
    // Events are small writes: without TCP_NODELAY each waits for the client's delayed ACK (~40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {error}");
        }
    });
    let served = axum::serve(listener, routes::router(std::sync::Arc::clone(&gateway)))
        .with_graceful_shutdown(terminated())
        .await
        .map_err(|e| format!("serving failed: {e}"));
    gateway.shutdown().await;
    served
}

/// Resolves on SIGTERM or SIGINT.
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
    tracing::info!("stopping: kernels are shut down");
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // zeromq warns about every reconnection attempt to a kernel that is gone.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,zeromq=error")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nullspace-codegw: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(message) = runtime.block_on(run(args)) {
        tracing::error!("{message}");
        std::process::exit(1);
    }
}
