//! The daemon's X11 side, spoken with `x11rb` (pure Rust, so the binary stays static): one shared
//! connection to the desktop's X server with the atoms and extensions the operations need, and one
//! module per group of operations. Every function here blocks; handlers call them on the blocking pool.

pub mod clipboard;
pub mod display;
pub mod input;
pub mod keymap;
pub mod screenshot;
pub mod windows;

use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::Instant;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, Window};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use crate::error::{DesktopError, DesktopResult};

x11rb::atom_manager! {
    /// The atoms the daemon reads and writes.
    pub Atoms: AtomsCookie {
        UTF8_STRING,
        STRING,
        TEXT,
        TARGETS,
        TIMESTAMP,
        INCR,
        CLIPBOARD,
        PRIMARY,
        NULLSPACE_SELECTION,
        WM_NAME,
        WM_CLASS,
        _NET_WM_NAME,
        _NET_CLIENT_LIST,
        _NET_ACTIVE_WINDOW,
        _NET_WM_DESKTOP,
        _NET_DESKTOP_NAMES,
        _NET_WM_PID,
        _NET_SUPPORTING_WM_CHECK,
    }
}

/// A connection to the desktop's X server.
pub struct X11 {
    /// The connection (requests from several threads are fine: x11rb serializes them).
    pub conn: RustConnection,
    /// The root window of the (only) screen.
    pub root: Window,
    /// Interned atoms.
    pub atoms: Atoms,
    /// Input is one sequence at a time (so a hotkey's modifiers never mix with another request's
    /// keys) and owns the keycodes remapped for characters the keymap lacks.
    pub input: Mutex<keymap::Scratch>,
}

impl X11 {
    /// Connects to `display` (`:1`) and checks the extensions the operations use (XTEST is required;
    /// XFIXES and RandR are used when present).
    pub fn connect(display: &str) -> DesktopResult<Self> {
        let (conn, screen) = x11rb::connect(Some(display)).map_err(DesktopError::x11("connect"))?;
        let root = conn.setup().roots.get(screen).map(|s| s.root).ok_or_else(|| DesktopError::X11 {
            what: "find the screen".into(),
            message: format!("screen {screen} of {display} does not exist"),
        })?;
        let atoms = Atoms::new(&conn).map_err(DesktopError::x11("intern atoms"))?;
        let atoms = atoms.reply().map_err(DesktopError::x11("intern atoms"))?;
        use x11rb::protocol::xtest::ConnectionExt as _;
        conn.xtest_get_version(2, 2)
            .map_err(DesktopError::x11("query XTEST"))?
            .reply()
            .map_err(|_| DesktopError::X11 { what: "use XTEST".into(), message: "the extension is missing".into() })?;
        use x11rb::protocol::xfixes::ConnectionExt as _;
        if let Ok(cookie) = conn.xfixes_query_version(4, 0) {
            if let Err(error) = cookie.reply() {
                tracing::warn!("XFIXES unavailable, screenshots cannot show the cursor: {error}");
            }
        }
        Ok(Self { conn, root, atoms, input: Mutex::new(keymap::Scratch::default()) })
    }

    /// One round trip: whether the X server answers.
    pub fn ping(&self) -> DesktopResult<()> {
        self.conn.get_input_focus().map_err(DesktopError::x11("reach the server"))?;
        use x11rb::wrapper::ConnectionExt as _;
        self.conn.sync().map_err(DesktopError::x11("reach the server"))
    }

    /// Whether the X server on `display` accepts a new connection (a broken shared connection does not
    /// always fail the next request by itself).
    pub fn answers(display: &str) -> bool {
        x11rb::connect(Some(display)).is_ok()
    }

    /// The screen's current size (the root window's geometry follows RandR resizes).
    pub fn screen_size(&self) -> DesktopResult<(u16, u16)> {
        let geometry = self
            .conn
            .get_geometry(self.root)
            .map_err(DesktopError::x11("read the screen size"))?
            .reply()
            .map_err(DesktopError::x11("read the screen size"))?;
        Ok((geometry.width, geometry.height))
    }
}

/// Waits for the first event on `conn` that `wanted` accepts, until `deadline`; events before it are
/// dropped. `Ok(None)` when the deadline passes.
pub fn wait_for_event(
    conn: &RustConnection,
    deadline: Instant,
    mut wanted: impl FnMut(&Event) -> bool,
) -> DesktopResult<Option<Event>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        while let Some(event) = conn.poll_for_event().map_err(DesktopError::x11("read events"))? {
            if wanted(&event) {
                return Ok(Some(event));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let millis = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(conn.stream().as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(DesktopError::x11("wait for events")(errno)),
        }
    }
}

/// Reads a property whole (up to 16 MiB) as bytes with its type and format; `None` when unset.
pub fn read_property(
    conn: &RustConnection,
    window: Window,
    property: u32,
    kind: u32,
) -> DesktopResult<Option<x11rb::protocol::xproto::GetPropertyReply>> {
    let reply = conn
        .get_property(false, window, property, kind, 0, 4 * 1024 * 1024)
        .map_err(DesktopError::x11("read a property"))?
        .reply();
    match reply {
        Ok(reply) if reply.type_ != x11rb::NONE => Ok(Some(reply)),
        Ok(_) => Ok(None),
        // The window went away between listing and reading.
        Err(x11rb::errors::ReplyError::X11Error(_)) => Ok(None),
        Err(error) => Err(DesktopError::x11("read a property")(error)),
    }
}
