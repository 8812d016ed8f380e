//! Windows as the window manager publishes them (EWMH): the client list, the active window, titles
//! (`_NET_WM_NAME`, else `WM_NAME`), classes (`WM_CLASS`), desktops and their names, pids, and each
//! client area's place on the screen.

use nullspace_types::desktop_api::WindowInfo;
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _, Window};

use super::{read_property, X11};
use crate::error::{DesktopError, DesktopResult};

/// `_NET_WM_DESKTOP` of a window shown on every desktop.
const ALL_DESKTOPS: u32 = 0xffff_ffff;

impl X11 {
    fn cardinals(&self, window: Window, property: u32, kind: impl Into<u32>) -> DesktopResult<Vec<u32>> {
        Ok(read_property(&self.conn, window, property, kind.into())?
            .and_then(|reply| reply.value32().map(Iterator::collect))
            .unwrap_or_default())
    }

    fn text(&self, window: Window, property: u32) -> DesktopResult<Option<String>> {
        Ok(read_property(&self.conn, window, property, AtomEnum::ANY.into())?
            .filter(|reply| reply.format == 8)
            .map(|reply| decode_text(&reply.value, reply.type_ == self.atoms.UTF8_STRING)))
    }

    /// The active window, if the window manager names one.
    pub fn active_window(&self) -> DesktopResult<Option<Window>> {
        let active = self.cardinals(self.root, self.atoms._NET_ACTIVE_WINDOW, AtomEnum::WINDOW)?;
        Ok(active.first().copied().filter(|&w| w != x11rb::NONE))
    }

    /// A window's title: `_NET_WM_NAME`, else `WM_NAME`, else empty.
    pub fn title(&self, window: Window) -> DesktopResult<String> {
        if let Some(title) = self.text(window, self.atoms._NET_WM_NAME)? {
            return Ok(title);
        }
        Ok(self.text(window, self.atoms.WM_NAME)?.unwrap_or_default())
    }

    /// Whether `window` exists.
    pub fn window_exists(&self, window: Window) -> DesktopResult<bool> {
        match self.conn.get_geometry(window).map_err(DesktopError::x11("look up a window"))?.reply() {
            Ok(_) => Ok(true),
            Err(x11rb::errors::ReplyError::X11Error(_)) => Ok(false),
            Err(error) => Err(DesktopError::x11("look up a window")(error)),
        }
    }

    /// The window manager's client windows, in its stacking-independent list order.
    pub fn list_windows(&self) -> DesktopResult<Vec<WindowInfo>> {
        let clients = self.cardinals(self.root, self.atoms._NET_CLIENT_LIST, AtomEnum::WINDOW)?;
        let active = self.active_window()?;
        let names = read_property(&self.conn, self.root, self.atoms._NET_DESKTOP_NAMES, self.atoms.UTF8_STRING)?
            .map(|reply| split_names(&reply.value))
            .unwrap_or_default();
        let mut windows = Vec::with_capacity(clients.len());
        for window in clients {
            // A window closing while it is listed is left out.
            if let Some(info) = self.window_info(window, active, &names)? {
                windows.push(info);
            }
        }
        Ok(windows)
    }

    fn window_info(
        &self,
        window: Window,
        active: Option<Window>,
        names: &[String],
    ) -> DesktopResult<Option<WindowInfo>> {
        let Ok(geometry) = self.conn.get_geometry(window).map_err(DesktopError::x11("list windows"))?.reply() else {
            return Ok(None);
        };
        let Ok(position) = self
            .conn
            .translate_coordinates(window, self.root, 0, 0)
            .map_err(DesktopError::x11("list windows"))?
            .reply()
        else {
            return Ok(None);
        };
        let class_name = read_property(&self.conn, window, self.atoms.WM_CLASS, AtomEnum::STRING.into())?
            .map(|reply| split_names(&reply.value).join("."))
            .unwrap_or_default();
        let desktop = self
            .cardinals(window, self.atoms._NET_WM_DESKTOP, AtomEnum::CARDINAL)?
            .first()
            .copied()
            .filter(|&d| d != ALL_DESKTOPS);
        let pid = self.cardinals(window, self.atoms._NET_WM_PID, AtomEnum::CARDINAL)?.first().copied();
        Ok(Some(WindowInfo {
            id: window.to_string(),
            title: self.title(window)?,
            class_name,
            is_active: active == Some(window),
            desktop,
            desktop_name: desktop.and_then(|d| names.get(usize::try_from(d).ok()?).cloned()),
            pid,
            x: i64::from(position.dst_x),
            y: i64::from(position.dst_y),
            width: u32::from(geometry.width),
            height: u32::from(geometry.height),
        }))
    }
}

/// A window id as the API spells it: decimal (or `0x…` hex, as X tools print them).
pub fn parse_window_id(id: &str) -> Option<Window> {
    match id.strip_prefix("0x").or_else(|| id.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => id.parse().ok(),
    }
    .filter(|&w| w != x11rb::NONE)
}

/// Text of a property: UTF-8, or Latin-1 for `STRING` (`COMPOUND_TEXT` is read as Latin-1 too: plain
/// ASCII titles are right, others approximate).
fn decode_text(bytes: &[u8], utf8: bool) -> String {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if utf8 {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        bytes.iter().map(|&b| char::from(b)).collect()
    }
}

/// NUL-separated names (`WM_CLASS`, `_NET_DESKTOP_NAMES`).
fn split_names(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|&b| b == 0).map(|name| String::from_utf8_lossy(name).into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ids_are_decimal_or_hex_and_never_zero() {
        assert_eq!(parse_window_id("4242"), Some(4242));
        assert_eq!(parse_window_id("0x1a00003"), Some(0x1a0_0003));
        assert_eq!(parse_window_id("0"), None);
        assert_eq!(parse_window_id("../etc"), None);
        assert_eq!(parse_window_id("-1"), None);
    }

    #[test]
    fn class_and_desktop_names_split_on_nul() {
        assert_eq!(split_names(b"mousepad\0Mousepad\0").join("."), "mousepad.Mousepad");
        assert_eq!(split_names(b"Workspace 1\0Workspace 2\0"), ["Workspace 1", "Workspace 2"]);
        assert!(split_names(b"").is_empty());
    }

    #[test]
    fn titles_decode_as_utf8_or_latin1() {
        assert_eq!(decode_text("Café".as_bytes(), true), "Café");
        assert_eq!(decode_text(&[0x43, 0x61, 0x66, 0xe9], false), "Café");
    }
}
