//! `GET /capabilities`: what this daemon implements, as the protocol's capabilities document. The
//! `streaming` object states the defaults (managed viewer only, raw VNC off); the server rewrites it to
//! its own raw VNC policy when it relays the answer.

use nullspace_types::desktop_api::{
    CaptureCapabilities, ClipboardCapabilities, DesktopCapabilities, DisplayCapabilities, InputCapabilities,
    LaunchCapabilities, OpenCapabilities, RecordingCapabilities, StreamingCapabilities, WindowCapabilities,
};

/// The capabilities document.
pub fn capabilities() -> DesktopCapabilities {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    DesktopCapabilities {
        version: 2,
        capture: CaptureCapabilities {
            compressed_formats: strings(&["png", "jpeg"]),
            region: true,
            cursor_overlay: true,
        },
        input: InputCapabilities { mouse: true, keyboard: true },
        display: DisplayCapabilities { topology_model: "xrandr".into(), multi_monitor: true, primary_monitor: true },
        windows: WindowCapabilities { class_name: true, active: true, pid: true, desktop: true, desktop_name: true },
        launch: LaunchCapabilities {
            modes: strings(&["executable", "desktop_entry"]),
            uri_argument_for_desktop_entry: true,
        },
        open: OpenCapabilities { target_kinds: strings(&["path", "file_url", "uri"]) },
        clipboard: ClipboardCapabilities {
            text_read: true,
            text_write: true,
            viewer_panel: false,
            view_only_copy: false,
        },
        streaming: StreamingCapabilities {
            raw_vnc: false,
            managed_viewer: true,
            view_only: true,
            default_surface: "managed_viewer".into(),
            raw_vnc_role: "disabled".into(),
            raw_vnc_mode: "disabled".into(),
            raw_vnc_auth: "none".into(),
            managed_viewer_auth_required: true,
        },
        recording: RecordingCapabilities { basic: true },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_every_strict_key_and_raw_vnc_is_off() {
        let value = serde_json::to_value(capabilities()).unwrap();
        let keys = |path: &str| -> Vec<String> {
            let object = if path.is_empty() { &value } else { &value[path] };
            object.as_object().unwrap().keys().cloned().collect()
        };
        assert_eq!(keys("").len(), 10);
        assert_eq!(keys("streaming").len(), 8);
        assert_eq!(keys("clipboard").len(), 4);
        assert_eq!(keys("windows").len(), 5);
        assert_eq!(value["streaming"]["raw_vnc"], false);
        assert_eq!(value["streaming"]["raw_vnc_role"], "disabled");
        assert_eq!(value["capture"]["compressed_formats"], serde_json::json!(["png", "jpeg"]));
    }
}
