//! `nullspace-desktopd`: the desktop daemon inside a `desktop` sandbox. Reads the desktop settings from
//! `NULLSPACE_DESKTOP_DISPLAY` / `_RESOLUTION` / `_DPI` (defaults `:1`, 1920x1080, 96), starts the X
//! server with VNC built in (`Xtigervnc`) and the window manager (`openbox`), then serves the desktop API
//! (the public `/v1/sandboxes/{id}/desktop/**` routes without their prefix; `GET /health` answers 200
//! while the X server answers) until SIGTERM or SIGINT, when it finishes running recordings and stops
//! the window manager and the X server.
//!
//! Options: `--listen ADDR` (default `0.0.0.0:49990`), `--x-server PROGRAM` (`Xtigervnc`),
//! `--window-manager "COMMAND LINE"` (`openbox --sm-disable`; empty for none), `--rfb-port N` (5900),
//! `--rfb-localhost` (VNC on loopback only), `--x-timeout-secs N`, `--wm-timeout-secs N`,
//! `--recordings-dir DIR` (default `/workspace/.nullspace/desktop/recordings`), `--ffmpeg PROGRAM`,
//! `--workdir DIR` (where launched programs start; `/workspace`).

mod capabilities;
mod desktop_entry;
mod error;
mod keysym;
mod launch;
mod recording;
mod request;
mod routes;
mod settings;
mod state;
mod supervisor;
mod x11;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::launch::Launcher;
use crate::recording::Recorder;
use crate::settings::Settings;
use crate::supervisor::Commands;

/// The desktop daemon: X server, window manager and the desktop API.
#[derive(Debug, Parser)]
#[command(name = "nullspace-desktopd", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:49990")]
    listen: SocketAddr,
    /// The X server program (found on PATH); it gets `:N -geometry WxH -dpi D -rfbport P …`.
    #[arg(long, default_value = "Xtigervnc")]
    x_server: String,
    /// The window manager's command line, split on whitespace; empty to start none.
    #[arg(long, default_value = "openbox --sm-disable")]
    window_manager: String,
    /// The X server's VNC port.
    #[arg(long, default_value_t = 5900)]
    rfb_port: u16,
    /// Accept VNC connections on loopback only.
    #[arg(long)]
    rfb_localhost: bool,
    /// Seconds to wait for the X server to accept connections.
    #[arg(long, default_value_t = 30)]
    x_timeout_secs: u64,
    /// Seconds to wait for the window manager to announce itself.
    #[arg(long, default_value_t = 30)]
    wm_timeout_secs: u64,
    /// Where recordings (`<id>.mp4` and `<id>.json`) are kept.
    #[arg(long, default_value = "/workspace/.nullspace/desktop/recordings")]
    recordings_dir: PathBuf,
    /// The ffmpeg program.
    #[arg(long, default_value = "ffmpeg")]
    ffmpeg: String,
    /// Working directory of launched programs and base of relative paths given to open.
    #[arg(long, default_value = "/workspace")]
    workdir: PathBuf,
}

async fn run(args: Args) -> Result<(), String> {
    let settings = Settings::from_env(|name| std::env::var(name).ok())?;
    tracing::info!("desktop settings: {settings}");
    let commands = Commands {
        x_server: args.x_server,
        window_manager: args.window_manager.split_whitespace().map(str::to_owned).collect(),
        rfb_port: args.rfb_port,
        rfb_localhost: args.rfb_localhost,
        x_timeout: Duration::from_secs(args.x_timeout_secs.max(1)),
        wm_timeout: Duration::from_secs(args.wm_timeout_secs.max(1)),
    };
    let desktop = supervisor::start(&settings, &commands).await?;
    let display = settings.display_name();
    let clipboard = x11::clipboard::ClipboardOwner::start(&display).map_err(|e| e.message())?;
    let recorder = Recorder::open(args.recordings_dir, display.clone(), args.ffmpeg)?;
    let env = |name: &str| std::env::var(name).ok();
    let launcher = Launcher {
        display,
        workdir: args.workdir,
        entry_dirs: desktop_entry::search_dirs(
            env("XDG_DATA_HOME").as_deref(),
            env("HOME").as_deref(),
            env("XDG_DATA_DIRS").as_deref(),
        ),
    };
    let state = Arc::new(state::State { settings, desktop, clipboard, launcher, recorder });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    // Tests and supervisors read this line to learn the port.
    println!("nullspace-desktopd listening on {address}");
    tracing::info!(%address, "listening");
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {error}");
        }
    });
    let served = axum::serve(listener, routes::router(Arc::clone(&state)))
        .with_graceful_shutdown(terminated())
        .await
        .map_err(|e| format!("serving failed: {e}"));
    state.recorder.stop_all().await;
    if let Some(wm) = &state.desktop.window_manager {
        wm.stop(Duration::from_secs(5)).await;
    }
    state.desktop.x_server.stop(Duration::from_secs(10)).await;
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
    tracing::info!("stopping: recordings are finished, the desktop is stopped");
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nullspace-desktopd: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(message) = runtime.block_on(run(args)) {
        tracing::error!("{message}");
        std::process::exit(1);
    }
}
