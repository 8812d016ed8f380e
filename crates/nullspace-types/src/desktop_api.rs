//! Desktop shapes of the public API (`/v1/sandboxes/{id}/desktop/…`, rest.md §9): the bodies of the
//! screenshot, input, window, clipboard, launch and recording operations and what they answer, the
//! capabilities document and the managed viewer's stream objects. `nullspace-desktopd` inside a desktop
//! sandbox serves all but the stream routes on the same paths without the prefix; the server relays them
//! and serves the stream routes itself.
//!
//! Request bodies are lenient (unknown fields ignored, `null` means absent); numbers are wide signed
//! integers so that out-of-range values reach the daemon's validation and get a message naming the
//! field, not a deserializer error. Response objects are strict on the client side (built with
//! `Dataclass(**data)`): they carry exactly the listed keys.

use serde::{Deserialize, Deserializer, Serialize};

/// A rectangle of the screen in pixels (`POST /screenshot/region` body, `region` of a compressed shot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Region {
    /// Left edge.
    pub x: i64,
    /// Top edge.
    pub y: i64,
    /// Width (> 0).
    pub width: i64,
    /// Height (> 0).
    pub height: i64,
}

/// Body of `POST /screenshot/compressed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompressedScreenshotRequest {
    /// `png` or `jpeg` (`webp` is refused with a clear error: the daemon has no encoder for it).
    #[serde(deserialize_with = "null_as_default")]
    pub format: String,
    /// JPEG quality 1–100; for PNG, below 50 asks for the smallest file instead of the fastest encode.
    #[serde(deserialize_with = "null_as_default")]
    pub quality: i64,
    /// Factor applied to both sides after capture, in (0, 2].
    #[serde(deserialize_with = "null_as_default")]
    pub scale: f64,
    /// Draw the pointer (XFIXES cursor image) into the picture.
    #[serde(deserialize_with = "null_as_default")]
    pub show_cursor: bool,
    /// Capture only this part of the screen.
    pub region: Option<Region>,
}

impl Default for CompressedScreenshotRequest {
    fn default() -> Self {
        Self { format: "png".into(), quality: 80, scale: 1.0, show_cursor: false, region: None }
    }
}

/// Body of `POST /click`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClickRequest {
    /// Pointer x.
    pub x: i64,
    /// Pointer y.
    pub y: i64,
    /// `left` (default), `right` or `middle`.
    pub button: Option<String>,
    /// Clicks in a row (2 is a double click); 1 when absent.
    pub clicks: Option<i64>,
}

/// Body of `POST /move`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MoveRequest {
    /// Pointer x.
    pub x: i64,
    /// Pointer y.
    pub y: i64,
}

/// Body of `POST /mouse/down` and `POST /mouse/up`: the button, pressed or released where the pointer
/// is, or after moving it to `x,y` (both or neither).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MouseButtonRequest {
    /// `left` (default), `right` or `middle`.
    pub button: Option<String>,
    /// Pointer x to move to first.
    pub x: Option<i64>,
    /// Pointer y to move to first.
    pub y: Option<i64>,
}

/// Body of `POST /drag`: press at `x1,y1`, move to `x2,y2`, release.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DragRequest {
    /// Start x.
    pub x1: i64,
    /// Start y.
    pub y1: i64,
    /// End x.
    pub x2: i64,
    /// End y.
    pub y2: i64,
    /// `left` (default), `right` or `middle`.
    pub button: Option<String>,
}

/// Body of `POST /scroll`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScrollRequest {
    /// Pointer x.
    pub x: i64,
    /// Pointer y.
    pub y: i64,
    /// `up`, `down`, `left` or `right`.
    pub direction: String,
    /// Wheel steps; 3 when absent.
    pub amount: Option<i64>,
}

/// Body of `POST /type`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TypeRequest {
    /// Text to type, character by character (`\n` is Return, `\t` is Tab).
    pub text: String,
}

/// Body of `POST /key`: an X keysym name (`Return`, `a`, `F5`) or a combination (`ctrl+c`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyRequest {
    /// The key.
    pub key: String,
}

/// Body of `POST /hotkey`: keys joined by `+`, held in order and released in reverse (`ctrl+s`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HotkeyRequest {
    /// The combination.
    pub keys: String,
}

/// Body of `POST /press`: a key pressed while the modifiers are held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PressRequest {
    /// The key (keysym name).
    pub key: String,
    /// Modifiers such as `ctrl`, `shift`, `alt`, `super`.
    #[serde(deserialize_with = "null_as_default")]
    pub modifiers: Vec<String>,
}

/// `GET /screen_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenSize {
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// `GET /cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorPosition {
    /// Pointer x.
    pub x: i64,
    /// Pointer y.
    pub y: i64,
}

/// `GET /display`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayInfo {
    /// The whole X screen.
    pub virtual_screen: ScreenSize,
    /// The `id` of the primary monitor, if one is primary.
    pub primary_monitor_id: Option<String>,
    /// RandR monitors.
    pub monitors: Vec<DisplayMonitor>,
}

/// One RandR monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayMonitor {
    /// `mon-<index>`.
    pub id: String,
    /// The monitor's RandR name (`VNC-0`).
    pub name: String,
    /// Left edge in the virtual screen.
    pub x: i64,
    /// Top edge in the virtual screen.
    pub y: i64,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// Physical width.
    pub width_mm: Option<u32>,
    /// Physical height.
    pub height_mm: Option<u32>,
    /// Names of the RandR outputs showing it.
    pub outputs: Vec<String>,
    /// Whether it is the primary monitor.
    pub is_primary: bool,
}

/// `GET /windows` element: a top-level window the window manager lists (`_NET_CLIENT_LIST`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowInfo {
    /// The X window id in decimal.
    pub id: String,
    /// `_NET_WM_NAME`, else `WM_NAME`; empty when it has none.
    pub title: String,
    /// `WM_CLASS` as `instance.Class`; empty when it has none.
    pub class_name: String,
    /// Whether it is `_NET_ACTIVE_WINDOW`.
    pub is_active: bool,
    /// `_NET_WM_DESKTOP` (none for sticky windows or when unset).
    pub desktop: Option<u32>,
    /// That desktop's name from `_NET_DESKTOP_NAMES`.
    pub desktop_name: Option<String>,
    /// `_NET_WM_PID`.
    pub pid: Option<u32>,
    /// Left edge of the client area on the screen.
    pub x: i64,
    /// Top edge of the client area on the screen.
    pub y: i64,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// `GET /window/current`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentWindow {
    /// The active window's id in decimal.
    pub window_id: String,
}

/// `GET /window/{id}/title`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowTitle {
    /// The window asked about.
    pub window_id: String,
    /// Its title.
    pub title: String,
}

/// `GET /clipboard` answer and `PUT /clipboard` body and answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClipboardText {
    /// The text of the CLIPBOARD selection.
    pub text: String,
}

/// Body of `POST /launch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum LaunchRequest {
    /// Run a program found on `PATH` (or by absolute path) with arguments.
    Executable {
        /// The program.
        command: String,
        /// Its arguments.
        #[serde(default, deserialize_with = "null_as_default")]
        args: Vec<String>,
    },
    /// Run an application by its desktop entry (`mousepad` or `org.xfce.mousepad.desktop`).
    DesktopEntry {
        /// The desktop file id, with or without `.desktop`.
        desktop_entry: String,
        /// A file or URL given to the application (`%u`, `%f`, … in its `Exec`).
        #[serde(default)]
        uri: Option<String>,
    },
}

/// `POST /launch` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launched {
    /// Process id of the started program.
    pub pid: u32,
    /// The command line that was started.
    pub argv: Vec<String>,
}

/// Body of `POST /open`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenRequest {
    /// A URL (`https://…`, `file:///…`) or a path (relative ones are under `/workspace`).
    pub target: String,
}

/// Body of `POST /recording/start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartRecordingRequest {
    /// A name to remember the recording by.
    pub name: Option<String>,
}

/// Body of `POST /recording/stop`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StopRecordingRequest {
    /// The recording to stop.
    pub recording_id: String,
}

/// A screen recording (`/recording/**` answers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// `rec_…`.
    pub id: String,
    /// The name given at start.
    pub name: Option<String>,
    /// `recording`, `stopped` or `failed` (the encoder ended on its own).
    pub status: String,
    /// Where the MP4 file is inside the sandbox.
    pub file_path: String,
    /// Seconds recorded (once stopped).
    pub duration_seconds: Option<f64>,
    /// Size of the file (once stopped).
    pub file_size_bytes: Option<u64>,
    /// RFC 3339 start time.
    pub created_at: Option<String>,
}

/// `GET /capabilities`: what this desktop offers (every object strict).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesktopCapabilities {
    /// Version of this document.
    pub version: u32,
    /// Screenshots.
    pub capture: CaptureCapabilities,
    /// Input.
    pub input: InputCapabilities,
    /// Display topology.
    pub display: DisplayCapabilities,
    /// Window facts reported by `GET /windows`.
    pub windows: WindowCapabilities,
    /// `POST /launch`.
    pub launch: LaunchCapabilities,
    /// `POST /open`.
    pub open: OpenCapabilities,
    /// Clipboard.
    pub clipboard: ClipboardCapabilities,
    /// Streaming (the server may rewrite this object to its raw VNC policy).
    pub streaming: StreamingCapabilities,
    /// Recordings.
    pub recording: RecordingCapabilities,
}

/// `capabilities.capture`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureCapabilities {
    /// Formats of `POST /screenshot/compressed`.
    pub compressed_formats: Vec<String>,
    /// Region screenshots.
    pub region: bool,
    /// `show_cursor`.
    pub cursor_overlay: bool,
}

/// `capabilities.input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputCapabilities {
    /// Mouse operations.
    pub mouse: bool,
    /// Keyboard operations.
    pub keyboard: bool,
}

/// `capabilities.display`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayCapabilities {
    /// Where monitors come from (`xrandr`).
    pub topology_model: String,
    /// Whether `GET /display` reports more than one monitor when the X server has them.
    pub multi_monitor: bool,
    /// Whether a primary monitor is reported.
    pub primary_monitor: bool,
}

/// `capabilities.windows`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCapabilities {
    /// `class_name` is filled.
    pub class_name: bool,
    /// `is_active` and `GET /window/current` work.
    pub active: bool,
    /// `pid` is filled when the client sets `_NET_WM_PID`.
    pub pid: bool,
    /// `desktop` is filled.
    pub desktop: bool,
    /// `desktop_name` is filled.
    pub desktop_name: bool,
}

/// `capabilities.launch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchCapabilities {
    /// `executable`, `desktop_entry`.
    pub modes: Vec<String>,
    /// A desktop entry launch passes `uri` to the application.
    pub uri_argument_for_desktop_entry: bool,
}

/// `capabilities.open`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCapabilities {
    /// `path`, `file_url`, `uri`.
    pub target_kinds: Vec<String>,
}

/// `capabilities.clipboard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipboardCapabilities {
    /// `GET /clipboard`.
    pub text_read: bool,
    /// `PUT /clipboard`.
    pub text_write: bool,
    /// The managed viewer has a clipboard panel.
    pub viewer_panel: bool,
    /// A view-only viewer may copy the desktop's clipboard.
    pub view_only_copy: bool,
}

/// `capabilities.streaming`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamingCapabilities {
    /// `GET /stream` hands out a raw VNC address.
    pub raw_vnc: bool,
    /// The managed viewer (`/stream/start`, `/viewer`) is offered.
    pub managed_viewer: bool,
    /// View-only viewer sessions are offered.
    pub view_only: bool,
    /// `managed_viewer` or `raw_vnc`.
    pub default_surface: String,
    /// `disabled`, `operator_only` or `enabled`.
    pub raw_vnc_role: String,
    /// How raw VNC is exposed (`disabled` when off).
    pub raw_vnc_mode: String,
    /// Raw VNC authentication (`none`).
    pub raw_vnc_auth: String,
    /// The viewer needs its auth key.
    pub managed_viewer_auth_required: bool,
}

/// `capabilities.recording`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingCapabilities {
    /// Start/stop/list/get/delete/download MP4 recordings.
    pub basic: bool,
}

/// `GET /stream` answer when raw VNC is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesktopStreamInfo {
    /// `vnc`.
    pub protocol: String,
    /// Host a VNC client connects to.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `vnc://host:port`.
    pub url: String,
}

/// Body of `POST /stream/start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamStartRequest {
    /// Viewer input is dropped.
    #[serde(deserialize_with = "null_as_default")]
    pub view_only: bool,
}

/// `POST /stream/start` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedDesktopStreamInfo {
    /// `vnc`.
    pub protocol: String,
    /// Raw VNC host (none when raw VNC is off).
    pub host: Option<String>,
    /// Raw VNC port.
    pub port: Option<u16>,
    /// Raw VNC URL.
    pub url: Option<String>,
    /// Raw VNC URL again (the client reads both).
    pub vnc_url: Option<String>,
    /// `{base}/v1/sandboxes/{id}/desktop/viewer?auth={key}`.
    pub viewer_url: String,
    /// The viewer's credential.
    pub auth_key: String,
    /// Whether viewer input is dropped.
    pub view_only: bool,
    /// When the key stops working, if it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `GET /stream/auth-key` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAuthKey {
    /// The current viewer key.
    pub auth_key: String,
    /// The viewer URL with that key.
    pub viewer_url: String,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compressed_screenshot_defaults_match_the_client() {
        let request: CompressedScreenshotRequest = serde_json::from_value(json!({})).unwrap();
        assert_eq!((request.format.as_str(), request.quality, request.scale), ("png", 80, 1.0));
        assert!(!request.show_cursor && request.region.is_none());
        let request: CompressedScreenshotRequest = serde_json::from_value(json!({
            "format": "jpeg", "quality": 60, "scale": 0.5, "show_cursor": true,
            "region": {"x": 1, "y": 2, "width": 300, "height": 400}
        }))
        .unwrap();
        assert_eq!(request.region, Some(Region { x: 1, y: 2, width: 300, height: 400 }));
        assert!(request.show_cursor);
    }

    #[test]
    fn launch_requests_are_told_apart_by_mode() {
        let executable: LaunchRequest =
            serde_json::from_value(json!({"mode": "executable", "command": "firefox", "args": ["--private-window"]}))
                .unwrap();
        assert_eq!(
            executable,
            LaunchRequest::Executable { command: "firefox".into(), args: vec!["--private-window".into()] }
        );
        let entry: LaunchRequest =
            serde_json::from_value(json!({"mode": "desktop_entry", "desktop_entry": "mousepad"})).unwrap();
        assert_eq!(entry, LaunchRequest::DesktopEntry { desktop_entry: "mousepad".into(), uri: None });
        assert!(serde_json::from_value::<LaunchRequest>(json!({"mode": "shell", "command": "x"})).is_err());
    }

    #[test]
    fn mouse_button_bodies_without_a_position_parse() {
        let request: MouseButtonRequest = serde_json::from_value(json!({"button": "right"})).unwrap();
        assert_eq!((request.x, request.y), (None, None));
        let press: PressRequest = serde_json::from_value(json!({"key": "a", "modifiers": null})).unwrap();
        assert!(press.modifiers.is_empty());
    }

    #[test]
    fn window_info_has_every_key_the_client_requires() {
        let window = WindowInfo {
            id: "4242".into(),
            title: "t".into(),
            class_name: "a.B".into(),
            is_active: false,
            desktop: None,
            desktop_name: None,
            pid: None,
            x: 0,
            y: 0,
            width: 1,
            height: 1,
        };
        let value = serde_json::to_value(window).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys.len(),
            11,
            "{keys:?}: id, title, class_name, is_active, desktop, desktop_name, pid, x, y, width, height"
        );
        assert!(value["desktop"].is_null() && value["pid"].is_null());
    }
}
