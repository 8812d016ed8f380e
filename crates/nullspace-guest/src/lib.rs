//! `nullspace-guestd`: the daemon inside every sandbox (PID 1); `main.rs` only calls [`run_daemon`],
//! which makes the process non-dumpable (no process of the sandbox may ptrace it or open its
//! `/proc/1/{mem,environ,fd/*}`: that takes `CAP_SYS_PTRACE`, which sandboxes lack), parses its options,
//! sets up logging to stderr within a byte budget and hands over to [`boot::run`].
//!
//! Options: `--control-dir DIR` (or `NULLSPACE_GUEST_CONTROL_DIR`; default `/run/nullspace`),
//! `--write-profile` / `--no-write-profile` (default: write only when running as PID 1) and
//! `--serve-in-child` (see [`serve_in_child`]). The upload staging directory is
//! `NULLSPACE_GUEST_STAGING_DIR` (default `/var/lib/nullspace/uploads`).
//!
//! With the `fuzzing` feature, [`fuzzing`] exposes the parsers of untrusted input to the fuzz targets in
//! `fuzz/`; nothing else is public.

mod boot;
mod error;
mod exec;
mod files;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod host_keys;
mod ids;
mod log_budget;
mod pty;
mod reaper;
mod routes;
mod serve_in_child;
mod state;
mod tunnel;
mod uploads;
mod users;
mod watch;
mod ws;

use std::path::PathBuf;

use nullspace_types::guest::GUEST_CONTROL_DIR;

fn options() -> Result<(boot::BootOptions, bool), String> {
    let mut serve_in_child = false;
    let mut control_dir = std::env::var_os("NULLSPACE_GUEST_CONTROL_DIR").map(PathBuf::from);
    let mut write_profile = std::process::id() == 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--control-dir" => control_dir = Some(args.next().ok_or("--control-dir needs a directory")?.into()),
            "--write-profile" => write_profile = true,
            "--no-write-profile" => write_profile = false,
            "--serve-in-child" => serve_in_child = true,
            "--volume" => error::set_serves_volume(),
            "--help" | "-h" => return Err(
                "usage: nullspace-guestd [--control-dir DIR] [--write-profile|--no-write-profile] [--serve-in-child] [--volume]"
                    .into(),
            ),
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    let options = boot::BootOptions {
        control_dir: control_dir.unwrap_or_else(|| GUEST_CONTROL_DIR.into()),
        write_profile,
        staging_dir: std::env::var_os("NULLSPACE_GUEST_STAGING_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| uploads::store::DEFAULT_STAGING_DIR.into()),
    };
    Ok((options, serve_in_child))
}

/// The daemon's `main`: never returns on success (the server loop runs until the process is killed).
pub fn run_daemon() {
    // First, before anything of the sandbox can run: set on the process (all threads share its mm).
    // SAFETY: prctl(2) with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        eprintln!("nullspace-guestd: cannot make itself non-dumpable: {}", std::io::Error::last_os_error());
    }
    let (options, serve_in_child) = match options() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("nullspace-guestd: {message}");
            std::process::exit(2);
        }
    };
    // Before any thread exists (the logger and the runtime start threads).
    if serve_in_child {
        if let Err(message) = serve_in_child::fork_and_supervise() {
            eprintln!("nullspace-guestd: {message}");
            std::process::exit(1);
        }
    }
    tracing_subscriber::fmt()
        .with_writer(log_budget::BudgetedLog::new(std::io::stderr, log_budget::LOG_BUDGET_BYTES))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("nullspace-guestd: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(boot::run(options)) {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        tracing::error!("{message}");
        std::process::exit(1);
    }
}
