//! The clipboard as X selections. Setting text makes the daemon own CLIPBOARD and PRIMARY from a window
//! of its own connection, whose thread answers `SelectionRequest`s (`TARGETS`, `UTF8_STRING`, `STRING`,
//! `TEXT`) for as long as it owns them; reading converts CLIPBOARD to `UTF8_STRING` into a helper
//! window of a fresh connection, whoever owns it (large answers arrive in `INCR` chunks).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, Property, SelectionNotifyEvent,
    SelectionRequestEvent, Window, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::CURRENT_TIME;

use super::{wait_for_event, Atoms};
use crate::error::{DesktopError, DesktopResult};

/// Largest text the clipboard takes (answered in one property, well under the request size limit).
pub const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;
/// How long a read waits for the selection owner to answer.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The daemon's selection owner.
pub struct ClipboardOwner {
    conn: Arc<RustConnection>,
    window: Window,
    atoms: Atoms,
    text: Arc<Mutex<Vec<u8>>>,
}

/// Connects to `display` and creates an unmapped 1×1 window on its root with `events`.
fn helper_window(display: &str, events: EventMask) -> DesktopResult<(RustConnection, Window, Atoms)> {
    let (conn, screen) = x11rb::connect(Some(display)).map_err(DesktopError::x11("connect for the clipboard"))?;
    let root = conn.setup().roots[screen].root;
    let window = conn.generate_id().map_err(DesktopError::x11("create the clipboard window"))?;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        root,
        -10,
        -10,
        1,
        1,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new().event_mask(events),
    )
    .map_err(DesktopError::x11("create the clipboard window"))?;
    let atoms = Atoms::new(&conn).map_err(DesktopError::x11("intern atoms"))?;
    let atoms = atoms.reply().map_err(DesktopError::x11("intern atoms"))?;
    Ok((conn, window, atoms))
}

impl ClipboardOwner {
    /// Creates the owner window and starts the thread answering requests for its selections.
    pub fn start(display: &str) -> DesktopResult<Arc<Self>> {
        let (conn, window, atoms) = helper_window(display, EventMask::NO_EVENT)?;
        let owner = Arc::new(Self { conn: Arc::new(conn), window, atoms, text: Arc::default() });
        let (conn, text) = (Arc::clone(&owner.conn), Arc::clone(&owner.text));
        std::thread::Builder::new()
            .name("clipboard".into())
            .spawn(move || serve(&conn, window, atoms, &text))
            .map_err(|error| DesktopError::X11 { what: "start the clipboard".into(), message: error.to_string() })?;
        Ok(owner)
    }

    /// Makes `text` the content of CLIPBOARD and PRIMARY.
    pub fn set(&self, text: &str) -> DesktopResult<()> {
        *self.text.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = text.as_bytes().to_vec();
        for selection in [self.atoms.CLIPBOARD, self.atoms.PRIMARY] {
            self.conn
                .set_selection_owner(self.window, selection, CURRENT_TIME)
                .map_err(DesktopError::x11("own the clipboard"))?;
        }
        let owner = self
            .conn
            .get_selection_owner(self.atoms.CLIPBOARD)
            .map_err(DesktopError::x11("own the clipboard"))?
            .reply()
            .map_err(DesktopError::x11("own the clipboard"))?;
        if owner.owner != self.window {
            return Err(DesktopError::X11 {
                what: "own the clipboard".into(),
                message: "another client took the selection at the same time".into(),
            });
        }
        Ok(())
    }
}

/// Answers selection requests until the connection ends.
fn serve(conn: &RustConnection, window: Window, atoms: Atoms, text: &Mutex<Vec<u8>>) {
    loop {
        match conn.wait_for_event() {
            Ok(Event::SelectionRequest(request)) => {
                let data = text.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
                if let Err(error) = answer(conn, window, &atoms, &request, &data) {
                    tracing::debug!("cannot answer a selection request: {error}");
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::info!("the clipboard owner's X connection ended: {error}");
                return;
            }
        }
    }
}

fn answer(
    conn: &RustConnection,
    window: Window,
    atoms: &Atoms,
    request: &SelectionRequestEvent,
    text: &[u8],
) -> Result<(), Box<dyn std::error::Error>> {
    // Obsolete clients name no property: the target is the property then.
    let property = if request.property == x11rb::NONE { request.target } else { request.property };
    let target = request.target;
    let max = conn.maximum_request_bytes().saturating_sub(64);
    let answered = if request.owner != window {
        false
    } else if target == atoms.TARGETS {
        let targets = [atoms.TARGETS, atoms.UTF8_STRING, atoms.STRING, atoms.TEXT];
        conn.change_property32(PropMode::REPLACE, request.requestor, property, AtomEnum::ATOM, &targets)?;
        true
    } else if (target == atoms.UTF8_STRING || target == atoms.TEXT) && text.len() <= max {
        conn.change_property8(PropMode::REPLACE, request.requestor, property, atoms.UTF8_STRING, text)?;
        true
    } else if target == atoms.STRING && text.len() <= max {
        let latin1: Vec<u8> =
            String::from_utf8_lossy(text).chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect();
        conn.change_property8(PropMode::REPLACE, request.requestor, property, AtomEnum::STRING, &latin1)?;
        true
    } else {
        false
    };
    let notify = SelectionNotifyEvent {
        response_type: SELECTION_NOTIFY_EVENT,
        sequence: 0,
        time: request.time,
        requestor: request.requestor,
        selection: request.selection,
        target,
        property: if answered { property } else { x11rb::NONE },
    };
    conn.send_event(false, request.requestor, EventMask::NO_EVENT, notify)?;
    conn.flush()?;
    Ok(())
}

/// The text of CLIPBOARD (empty when nobody owns it or the owner has no text).
pub fn read_clipboard(display: &str) -> DesktopResult<String> {
    let (conn, window, atoms) = helper_window(display, EventMask::PROPERTY_CHANGE)?;
    let owner = conn
        .get_selection_owner(atoms.CLIPBOARD)
        .map_err(DesktopError::x11("read the clipboard"))?
        .reply()
        .map_err(DesktopError::x11("read the clipboard"))?;
    if owner.owner == x11rb::NONE {
        return Ok(String::new());
    }
    let deadline = Instant::now() + READ_TIMEOUT;
    for target in [atoms.UTF8_STRING, atoms.STRING] {
        if let Some(bytes) = convert(&conn, window, &atoms, target, deadline)? {
            return Ok(if target == atoms.UTF8_STRING {
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                bytes.iter().map(|&b| char::from(b)).collect()
            });
        }
    }
    Ok(String::new())
}

/// Asks the owner for CLIPBOARD as `target`; `None` when it refuses that target.
fn convert(
    conn: &RustConnection,
    window: Window,
    atoms: &Atoms,
    target: Atom,
    deadline: Instant,
) -> DesktopResult<Option<Vec<u8>>> {
    let property = atoms.NULLSPACE_SELECTION;
    let failed = DesktopError::x11("read the clipboard");
    conn.convert_selection(window, atoms.CLIPBOARD, target, property, CURRENT_TIME).map_err(failed)?;
    conn.flush().map_err(DesktopError::x11("read the clipboard"))?;
    let notified = wait_for_event(
        conn,
        deadline,
        |event| matches!(event, Event::SelectionNotify(n) if n.requestor == window && n.selection == atoms.CLIPBOARD),
    )?;
    let Some(Event::SelectionNotify(notify)) = notified else {
        return Err(DesktopError::X11 {
            what: "read the clipboard".into(),
            message: format!("its owner did not answer within {} s", READ_TIMEOUT.as_secs()),
        });
    };
    if notify.property == x11rb::NONE {
        return Ok(None);
    }
    let first = take_property(conn, window, property)?;
    if first.0 != atoms.INCR {
        return Ok(Some(first.1));
    }
    // INCR: deleting the property (done by the read) asks for the next chunk; an empty one ends it.
    let mut data = Vec::new();
    loop {
        let changed = wait_for_event(
            conn,
            deadline,
            |event| matches!(event, Event::PropertyNotify(p) if p.window == window && p.atom == property && p.state == Property::NEW_VALUE),
        )?;
        if changed.is_none() {
            return Err(DesktopError::X11 {
                what: "read the clipboard".into(),
                message: "its owner stopped sending a large text".into(),
            });
        }
        let (_, chunk) = take_property(conn, window, property)?;
        if chunk.is_empty() {
            return Ok(Some(data));
        }
        data.extend_from_slice(&chunk);
    }
}

/// Reads and deletes a property: its type and bytes.
fn take_property(conn: &RustConnection, window: Window, property: Atom) -> DesktopResult<(Atom, Vec<u8>)> {
    let reply = conn
        .get_property(true, window, property, AtomEnum::ANY, 0, u32::try_from(MAX_TEXT_BYTES).unwrap_or(u32::MAX))
        .map_err(DesktopError::x11("read the clipboard"))?
        .reply()
        .map_err(DesktopError::x11("read the clipboard"))?;
    Ok((reply.type_, reply.value))
}
