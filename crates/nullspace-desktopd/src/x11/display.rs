//! Display topology: the virtual screen (root window) and its RandR monitors (`GetMonitors`, with the
//! names of their outputs); one monitor covering the screen when the server has no RandR 1.5.

use nullspace_types::desktop_api::{DisplayInfo, DisplayMonitor, ScreenSize};
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xproto::ConnectionExt as _;

use super::X11;
use crate::error::{DesktopError, DesktopResult};

impl X11 {
    /// The virtual screen and its monitors.
    pub fn display_info(&self) -> DesktopResult<DisplayInfo> {
        let (width, height) = self.screen_size()?;
        let virtual_screen = ScreenSize { width: u32::from(width), height: u32::from(height) };
        let monitors = match self.randr_monitors() {
            Ok(monitors) if !monitors.is_empty() => monitors,
            Ok(_) => vec![whole_screen(virtual_screen)],
            Err(error) => {
                tracing::debug!("no RandR monitors, reporting the screen as one: {}", error.message());
                vec![whole_screen(virtual_screen)]
            }
        };
        let primary_monitor_id = monitors.iter().find(|m| m.is_primary).map(|m| m.id.clone());
        Ok(DisplayInfo { virtual_screen, primary_monitor_id, monitors })
    }

    fn randr_monitors(&self) -> DesktopResult<Vec<DisplayMonitor>> {
        let reply = self
            .conn
            .randr_get_monitors(self.root, true)
            .map_err(DesktopError::x11("list monitors"))?
            .reply()
            .map_err(DesktopError::x11("list monitors"))?;
        let resources = self.conn.randr_get_screen_resources_current(self.root).ok().and_then(|c| c.reply().ok());
        let timestamp = resources.as_ref().map_or(x11rb::CURRENT_TIME, |r| r.config_timestamp);
        let any_primary = reply.monitors.iter().any(|m| m.primary);
        let mut monitors = Vec::new();
        for (index, monitor) in reply.monitors.iter().enumerate() {
            let name = self.atom_name(monitor.name).unwrap_or_else(|| format!("monitor-{index}"));
            let outputs = monitor
                .outputs
                .iter()
                .filter_map(|&output| self.conn.randr_get_output_info(output, timestamp).ok()?.reply().ok())
                .map(|info| String::from_utf8_lossy(&info.name).into_owned())
                .collect();
            monitors.push(DisplayMonitor {
                id: format!("mon-{index}"),
                name,
                x: i64::from(monitor.x),
                y: i64::from(monitor.y),
                width: u32::from(monitor.width),
                height: u32::from(monitor.height),
                width_mm: Some(monitor.width_in_millimeters).filter(|&mm| mm > 0),
                height_mm: Some(monitor.height_in_millimeters).filter(|&mm| mm > 0),
                outputs,
                // Without a primary monitor set, the first one is where new windows go.
                is_primary: monitor.primary || (!any_primary && index == 0),
            });
        }
        Ok(monitors)
    }

    /// The name of an atom.
    pub fn atom_name(&self, atom: u32) -> Option<String> {
        let reply = self.conn.get_atom_name(atom).ok()?.reply().ok()?;
        Some(String::from_utf8_lossy(&reply.name).into_owned())
    }
}

fn whole_screen(screen: ScreenSize) -> DisplayMonitor {
    DisplayMonitor {
        id: "mon-0".into(),
        name: "screen".into(),
        x: 0,
        y: 0,
        width: screen.width,
        height: screen.height,
        width_mm: None,
        height_mm: None,
        outputs: Vec::new(),
        is_primary: true,
    }
}
