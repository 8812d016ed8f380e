//! The desktop's processes: starts the X server (`Xtigervnc :N -geometry WxH -dpi D -rfbport P …`),
//! waits until it accepts a connection, starts the window manager and waits until it manages windows
//! (it announces itself with `_NET_SUPPORTING_WM_CHECK`, then lists a probe window we map), reaps both, and records when the X server dies (health turns 503).
//! Both die with the daemon (parent-death signal) and are stopped with it.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::wrapper::ConnectionExt as _;

use crate::settings::Settings;
use crate::x11::{read_property, wait_for_event, X11};

/// Lines of a child's stderr kept for error messages.
const TAIL_LINES: usize = 20;

/// How to start the desktop's processes.
#[derive(Debug, Clone)]
pub struct Commands {
    /// The X server program (`Xtigervnc`).
    pub x_server: String,
    /// The window manager's command line (program and arguments); empty for none.
    pub window_manager: Vec<String>,
    /// The VNC port of the X server.
    pub rfb_port: u16,
    /// Accept VNC connections on loopback only.
    pub rfb_localhost: bool,
    /// Longest wait for the X server to accept connections.
    pub x_timeout: Duration,
    /// Longest wait for the window manager to announce itself.
    pub wm_timeout: Duration,
}

/// A started child: its pid, whether it still runs, and its stderr's last lines.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Process id.
    pub pid: u32,
    alive: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    ended: Arc<tokio::sync::Notify>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Watched {
    /// Whether the process still runs.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// The last lines it wrote to stderr.
    pub fn tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Asks it to end (SIGTERM) and waits up to `grace` for it to go, then kills it.
    pub async fn stop(&self, grace: Duration) {
        let Ok(pid) = i32::try_from(self.pid) else { return };
        let ended = self.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if !self.alive() {
            return;
        }
        self.stopping.store(true, Ordering::SeqCst);
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        if tokio::time::timeout(grace, ended).await.is_err() && self.alive() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// The running desktop.
pub struct Desktop {
    /// The shared connection to the X server.
    pub x11: Arc<X11>,
    /// The X server.
    pub x_server: Watched,
    /// The window manager, when one was started.
    pub window_manager: Option<Watched>,
    /// Whether the window manager announced itself in time.
    pub wm_ready: Arc<AtomicBool>,
}

/// The X server's argument list.
pub fn x_server_args(settings: &Settings, commands: &Commands) -> Vec<String> {
    let mut args: Vec<String> = vec![
        settings.display_name(),
        "-geometry".into(),
        settings.geometry(),
        "-depth".into(),
        "24".into(),
        "-dpi".into(),
        settings.dpi.to_string(),
        "-rfbport".into(),
        commands.rfb_port.to_string(),
        "-SecurityTypes".into(),
        "None".into(),
        "-AlwaysShared".into(),
        "-desktop".into(),
        "nullspace".into(),
        "-nolisten".into(),
        "tcp".into(),
    ];
    if commands.rfb_localhost {
        args.extend(["-interface".into(), "127.0.0.1".into()]);
    }
    args
}

/// Spawns `command` with its stderr logged and kept, reaped by a task that clears `alive` on exit.
fn spawn_watched(mut command: Command, what: &'static str) -> Result<(Watched, Child), String> {
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(false);
    // SAFETY: prctl(2) between fork and exec, async-signal-safe: the child ends with the daemon.
    unsafe {
        command.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from));
    }
    let mut child = command.spawn().map_err(|error| format!("cannot start the {what}: {error}"))?;
    let pid = child.id().ok_or_else(|| format!("the {what} exited at once"))?;
    let watched = Watched {
        pid,
        alive: Arc::new(AtomicBool::new(true)),
        stopping: Arc::default(),
        ended: Arc::default(),
        tail: Arc::default(),
    };
    if let Some(stderr) = child.stderr.take() {
        let tail = Arc::clone(&watched.tail);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "desktopd::child", "{what}: {line}");
                let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                tail.push_back(line);
                if tail.len() > TAIL_LINES {
                    tail.pop_front();
                }
            }
        });
    }
    Ok((watched, child))
}

/// Reaps `child` and records its end; `then` runs after it ended.
fn reap(mut child: Child, watched: &Watched, what: &'static str, then: impl FnOnce() + Send + 'static) {
    let watched = watched.clone();
    tokio::spawn(async move {
        let status = child.wait().await;
        watched.alive.store(false, Ordering::SeqCst);
        then();
        watched.ended.notify_waiters();
        let pid = watched.pid;
        match status {
            Ok(status) if watched.stopping.load(Ordering::SeqCst) => {
                tracing::info!(pid, "the {what} stopped ({status})")
            }
            Ok(status) => tracing::warn!(pid, "the {what} exited ({status}); last output:\n{}", watched.tail()),
            Err(error) => tracing::warn!(pid, "the {what} could not be waited for: {error}"),
        }
    });
}

/// Removes a lock file and socket left by an X server on this display that no longer runs (a sandbox
/// restored from a snapshot, a killed daemon); refuses when the holder still runs.
fn clear_stale_lock(display: u32) -> Result<(), String> {
    let lock = format!("/tmp/.X{display}-lock");
    let Ok(content) = std::fs::read_to_string(&lock) else { return Ok(()) };
    if let Ok(pid) = content.trim().parse::<i32>() {
        if pid > 0 && kill(Pid::from_raw(pid), None).is_ok() {
            return Err(format!("display :{display} is in use by process {pid} ({lock}); choose another display"));
        }
    }
    tracing::info!("removing the stale X lock {lock}");
    let _ = std::fs::remove_file(&lock);
    let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{display}"));
    Ok(())
}

/// Creates `/tmp/.X11-unix` (sticky, world-writable, as X servers expect) when a fresh sandbox lacks it.
fn socket_dir() -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::path::Path::new("/tmp/.X11-unix");
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

/// Removes the lock and socket of `display` if process `pid` holds them.
fn remove_lock_of(display: u32, pid: u32) {
    let lock = format!("/tmp/.X{display}-lock");
    if std::fs::read_to_string(&lock).is_ok_and(|content| content.trim() == pid.to_string()) {
        let _ = std::fs::remove_file(&lock);
        let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{display}"));
    }
}

/// Starts the X server and the window manager and waits until both are usable.
pub async fn start(settings: &Settings, commands: &Commands) -> Result<Desktop, String> {
    clear_stale_lock(settings.display)?;
    socket_dir()?;
    let display = settings.display_name();
    let mut command = Command::new(&commands.x_server);
    command.args(x_server_args(settings, commands));
    tracing::info!("starting {} {}", commands.x_server, x_server_args(settings, commands).join(" "));
    let (x_server, child) = spawn_watched(command, "X server")?;
    // An X server that dies without cleaning up (killed) leaves its lock: remove it when it names it.
    let (number, pid) = (settings.display, x_server.pid);
    reap(child, &x_server, "X server", move || remove_lock_of(number, pid));

    let deadline = Instant::now() + commands.x_timeout;
    let x11 = loop {
        match X11::connect(&display) {
            Ok(x11) => break x11,
            Err(error) if !x_server.alive() => {
                return Err(format!(
                    "the X server exited before accepting connections ({}); its output:\n{}",
                    error.message(),
                    x_server.tail()
                ))
            }
            Err(error) if Instant::now() >= deadline => {
                x_server.stop(Duration::from_secs(5)).await;
                return Err(format!(
                    "the X server did not accept connections on {display} within {} s ({}); its output:\n{}",
                    commands.x_timeout.as_secs(),
                    error.message(),
                    x_server.tail()
                ));
            }
            // The socket appears a little after the process starts: try again shortly.
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    };
    tracing::info!(pid = x_server.pid, "the X server answers on {}", settings.display_name());

    let wm_ready = Arc::new(AtomicBool::new(false));
    let window_manager = match commands.window_manager.split_first() {
        None => None,
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).env("DISPLAY", &display);
            let (watched, child) = spawn_watched(command, "window manager")?;
            reap(child, &watched, "window manager", || {});
            Some(watched)
        }
    };
    if let Some(wm) = &window_manager {
        let (wm, ready, display, timeout) = (wm.clone(), Arc::clone(&wm_ready), display.clone(), commands.wm_timeout);
        let announced = tokio::task::spawn_blocking(move || wait_for_window_manager(&display, timeout, &wm))
            .await
            .map_err(|error| format!("waiting for the window manager failed: {error}"))?;
        match announced {
            Ok(()) => {
                ready.store(true, Ordering::SeqCst);
                tracing::info!("the window manager is running");
            }
            Err(why) => tracing::error!("{why}; windows will lack EWMH facts"),
        }
    }
    Ok(Desktop { x11: Arc::new(x11), x_server, window_manager, wm_ready })
}

/// Waits until a window manager manages windows: it has set `_NET_SUPPORTING_WM_CHECK` on the root window,
/// and then a probe window we map appears in its `_NET_CLIENT_LIST` (and leaves it once destroyed). The
/// announcement alone is not enough: openbox sets it before it redirects map requests, and a client mapped
/// in between stays unmanaged for good (never reparented, never listed): seen with openbox 3.6 here.
fn wait_for_window_manager(display: &str, timeout: Duration, wm: &Watched) -> Result<(), String> {
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        format!("cannot {what} while waiting for the window manager: {error}")
    };
    let x11 = X11::connect(display).map_err(|e| failed("connect", &e.message()))?;
    let root = x11.root;
    x11.conn
        .change_window_attributes(root, &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE))
        .map_err(|e| failed("watch the root window", &e))?;
    x11.conn.flush().map_err(|e| failed("watch the root window", &e))?;
    let deadline = Instant::now() + timeout;
    let window_property = |property: u32| -> Result<Vec<u32>, String> {
        let reply = read_property(&x11.conn, root, property, AtomEnum::WINDOW.into())
            .map_err(|e| failed("read", &e.message()))?;
        Ok(reply.and_then(|reply| reply.value32().map(|values| values.collect())).unwrap_or_default())
    };
    // Wakes on a change of `property` on the root window, or every quarter second to notice the process
    // ending; fails once the window manager exited or the deadline passed.
    let wait_for = |property: u32, what: &str| -> Result<(), String> {
        if !wm.alive() {
            return Err(format!("the window manager exited; its output:\n{}", wm.tail()));
        }
        if Instant::now() >= deadline {
            return Err(format!("the window manager did not {what} within {} s", timeout.as_secs()));
        }
        let slice = deadline.min(Instant::now() + Duration::from_millis(250));
        wait_for_event(&x11.conn, slice, |event| matches!(event, Event::PropertyNotify(p) if p.atom == property))
            .map_err(|e| failed("wait", &e.message()))?;
        Ok(())
    };

    let check = x11.atoms._NET_SUPPORTING_WM_CHECK;
    while !window_property(check)?.iter().any(|&window| window != 0) {
        wait_for(check, "announce itself")?;
    }

    let probe = map_probe_window(&x11).map_err(|e| failed("map a probe window", &e))?;
    let clients = x11.atoms._NET_CLIENT_LIST;
    let mut mapped_at = Instant::now();
    let managed = loop {
        if window_property(clients)?.contains(&probe) {
            break Ok(());
        }
        // A window mapped before the manager redirects map requests is mapped as is and never managed:
        // map it again (the unmap/map pair reaches the manager once it listens).
        if mapped_at.elapsed() >= PROBE_REMAP {
            remap(&x11, probe).map_err(|e| failed("map the probe window again", &e))?;
            mapped_at = Instant::now();
        }
        if let Err(why) = wait_for(clients, "manage a window") {
            break Err(why);
        }
    };
    x11.conn.destroy_window(probe).map_err(|e| failed("destroy the probe window", &e))?;
    x11.conn.flush().map_err(|e| failed("destroy the probe window", &e))?;
    managed?;
    while window_property(clients)?.contains(&probe) {
        wait_for(clients, "forget a destroyed window")?;
    }
    Ok(())
}

/// How long the probe window may stay unmanaged before it is mapped again.
const PROBE_REMAP: Duration = Duration::from_millis(200);

fn remap(x11: &X11, window: u32) -> Result<(), String> {
    x11.conn.unmap_window(window).map_err(|e| e.to_string())?;
    x11.conn.map_window(window).map_err(|e| e.to_string())?;
    x11.conn.flush().map_err(|e| e.to_string())
}

/// Creates and maps a small titled window for the window manager to manage.
fn map_probe_window(x11: &X11) -> Result<u32, String> {
    let conn = &x11.conn;
    let window = conn.generate_id().map_err(|e| e.to_string())?;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        x11.root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new(),
    )
    .map_err(|e| e.to_string())?;
    conn.change_property8(PropMode::REPLACE, window, AtomEnum::WM_NAME, AtomEnum::STRING, b"nullspace-wm-probe")
        .map_err(|e| e.to_string())?;
    conn.map_window(window).map_err(|e| e.to_string())?;
    conn.flush().map_err(|e| e.to_string())?;
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_x_server_command_line_shows_the_settings() {
        let settings = Settings { display: 3, width: 1366, height: 768, dpi: 144 };
        let commands = Commands {
            x_server: "Xtigervnc".into(),
            window_manager: vec!["openbox".into()],
            rfb_port: 5900,
            rfb_localhost: false,
            x_timeout: Duration::from_secs(1),
            wm_timeout: Duration::from_secs(1),
        };
        let line = x_server_args(&settings, &commands).join(" ");
        assert!(line.starts_with(":3 -geometry 1366x768 "), "{line}");
        for part in ["-dpi 144", "-rfbport 5900", "-SecurityTypes None", "-AlwaysShared"] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
        assert!(!line.contains("-interface"));
        let local = x_server_args(&settings, &Commands { rfb_localhost: true, ..commands });
        assert!(local.join(" ").ends_with("-interface 127.0.0.1"));
    }
}
