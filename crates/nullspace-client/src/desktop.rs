//! The desktop API of a sandbox (`/v1/sandboxes/{id}/desktop/…`, rest.md §9): screenshots and
//! recordings streamed into a writer, mouse and keyboard input, windows, clipboard, launching, the
//! capabilities document and the managed viewer's stream. The server relays most of these to the
//! desktop daemon inside `desktop` sandboxes and serves the stream routes itself.

use std::time::Duration;

use futures::StreamExt;
use nullspace_types::desktop_api::{
    ClickRequest, ClipboardText, CompressedScreenshotRequest, CurrentWindow, CursorPosition, DesktopCapabilities,
    DesktopStreamInfo, DisplayInfo, DragRequest, HotkeyRequest, KeyRequest, LaunchRequest, Launched,
    ManagedDesktopStreamInfo, MouseButtonRequest, MoveRequest, OpenRequest, PressRequest, RecordingInfo, Region,
    ScreenSize, ScrollRequest, StartRecordingRequest, StopRecordingRequest, StreamAuthKey, StreamStartRequest,
    TypeRequest, WindowInfo, WindowTitle,
};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::{segment, Client};
use crate::error::ClientError;

/// How long a recording download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(3600);

/// Which screenshot to take.
#[derive(Debug, Clone, PartialEq)]
pub enum Screenshot {
    /// `POST …/screenshot`: the whole screen as PNG.
    Full,
    /// `POST …/screenshot/region`: part of the screen as PNG.
    Region(Region),
    /// `POST …/screenshot/compressed`: PNG or JPEG with quality, scale, cursor and an optional region.
    Compressed(CompressedScreenshotRequest),
}

/// Mouse button state changes (`POST …/mouse/down`, `…/mouse/up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonAction {
    /// Press.
    Down,
    /// Release.
    Up,
}

impl Client {
    /// Takes a screenshot and copies the image into `out` as it arrives; returns the bytes written.
    /// `label` names `out` in write errors (a path, or `stdout`).
    pub async fn desktop_screenshot<W: AsyncWrite + Unpin>(
        &self,
        id: &str,
        shot: &Screenshot,
        out: &mut W,
        label: &str,
    ) -> Result<u64, ClientError> {
        let builder = match shot {
            Screenshot::Full => self.request(Method::POST, &desktop_path(id, "/screenshot"))?,
            Screenshot::Region(region) => {
                self.request(Method::POST, &desktop_path(id, "/screenshot/region"))?.json(region)
            }
            Screenshot::Compressed(request) => {
                self.request(Method::POST, &desktop_path(id, "/screenshot/compressed"))?.json(request)
            }
        };
        self.copy_to(builder, out, label).await
    }

    /// `GET …/recording/{rec}/download` copied into `out` chunk by chunk (never held whole in memory);
    /// returns the bytes written.
    pub async fn download_desktop_recording<W: AsyncWrite + Unpin>(
        &self,
        id: &str,
        recording: &str,
        out: &mut W,
        label: &str,
    ) -> Result<u64, ClientError> {
        let path = desktop_path(id, &format!("/recording/{}/download", segment(recording)));
        let builder = self.request(Method::GET, &path)?.timeout(DOWNLOAD_TIMEOUT);
        self.copy_to(builder, out, label).await
    }

    /// `POST …/click` (`clicks` 2 is a double click).
    pub async fn desktop_click(&self, id: &str, request: &ClickRequest) -> Result<(), ClientError> {
        self.desktop_post(id, "/click", request).await
    }

    /// `POST …/move`.
    pub async fn desktop_move(&self, id: &str, x: i64, y: i64) -> Result<(), ClientError> {
        self.desktop_post(id, "/move", &MoveRequest { x, y }).await
    }

    /// `POST …/mouse/down` or `…/mouse/up`.
    pub async fn desktop_mouse_button(
        &self,
        id: &str,
        action: ButtonAction,
        request: &MouseButtonRequest,
    ) -> Result<(), ClientError> {
        let rest = match action {
            ButtonAction::Down => "/mouse/down",
            ButtonAction::Up => "/mouse/up",
        };
        self.desktop_post(id, rest, request).await
    }

    /// `POST …/drag`.
    pub async fn desktop_drag(&self, id: &str, request: &DragRequest) -> Result<(), ClientError> {
        self.desktop_post(id, "/drag", request).await
    }

    /// `POST …/scroll`.
    pub async fn desktop_scroll(&self, id: &str, request: &ScrollRequest) -> Result<(), ClientError> {
        self.desktop_post(id, "/scroll", request).await
    }

    /// `POST …/type`.
    pub async fn desktop_type(&self, id: &str, text: &str) -> Result<(), ClientError> {
        self.desktop_post(id, "/type", &TypeRequest { text: text.to_owned() }).await
    }

    /// `POST …/key` (common lower-case names such as `enter` or `esc` become their keysyms first, as the
    /// official client does).
    pub async fn desktop_key(&self, id: &str, key: &str) -> Result<(), ClientError> {
        self.desktop_post(id, "/key", &KeyRequest { key: normalize_key(key) }).await
    }

    /// `POST …/hotkey`.
    pub async fn desktop_hotkey(&self, id: &str, keys: &str) -> Result<(), ClientError> {
        self.desktop_post(id, "/hotkey", &HotkeyRequest { keys: keys.to_owned() }).await
    }

    /// `POST …/press` (the key normalized like [`Client::desktop_key`]'s).
    pub async fn desktop_press(&self, id: &str, request: &PressRequest) -> Result<(), ClientError> {
        let request = PressRequest { key: normalize_key(&request.key), modifiers: request.modifiers.clone() };
        self.desktop_post(id, "/press", &request).await
    }

    /// `GET …/screen_size`.
    pub async fn desktop_screen_size(&self, id: &str) -> Result<ScreenSize, ClientError> {
        self.desktop_get(id, "/screen_size").await
    }

    /// `GET …/cursor`.
    pub async fn desktop_cursor(&self, id: &str) -> Result<CursorPosition, ClientError> {
        self.desktop_get(id, "/cursor").await
    }

    /// `GET …/display`.
    pub async fn desktop_display(&self, id: &str) -> Result<DisplayInfo, ClientError> {
        self.desktop_get(id, "/display").await
    }

    /// `GET …/capabilities`.
    pub async fn desktop_capabilities(&self, id: &str) -> Result<DesktopCapabilities, ClientError> {
        self.desktop_get(id, "/capabilities").await
    }

    /// `GET …/windows`.
    pub async fn desktop_windows(&self, id: &str) -> Result<Vec<WindowInfo>, ClientError> {
        self.desktop_get(id, "/windows").await
    }

    /// `GET …/window/current`.
    pub async fn desktop_current_window(&self, id: &str) -> Result<CurrentWindow, ClientError> {
        self.desktop_get(id, "/window/current").await
    }

    /// `GET …/window/{window}/title`.
    pub async fn desktop_window_title(&self, id: &str, window: &str) -> Result<WindowTitle, ClientError> {
        self.desktop_get(id, &format!("/window/{}/title", segment(window))).await
    }

    /// `GET …/clipboard`.
    pub async fn desktop_clipboard(&self, id: &str) -> Result<ClipboardText, ClientError> {
        self.desktop_get(id, "/clipboard").await
    }

    /// `PUT …/clipboard`: sets the CLIPBOARD text and answers it.
    pub async fn set_desktop_clipboard(&self, id: &str, text: &str) -> Result<ClipboardText, ClientError> {
        let body = ClipboardText { text: text.to_owned() };
        self.send_json(self.request(Method::PUT, &desktop_path(id, "/clipboard"))?.json(&body)).await
    }

    /// `POST …/launch`.
    pub async fn desktop_launch(&self, id: &str, request: &LaunchRequest) -> Result<Launched, ClientError> {
        self.send_json(self.request(Method::POST, &desktop_path(id, "/launch"))?.json(request)).await
    }

    /// `POST …/open`: a URL or a path, opened by the desktop's default application.
    pub async fn desktop_open(&self, id: &str, target: &str) -> Result<(), ClientError> {
        self.desktop_post(id, "/open", &OpenRequest { target: target.to_owned() }).await
    }

    /// `GET …/stream`: the raw VNC address (refused unless the server offers raw VNC).
    pub async fn desktop_stream_info(&self, id: &str) -> Result<DesktopStreamInfo, ClientError> {
        self.desktop_get(id, "/stream").await
    }

    /// `POST …/stream/start`: mints a viewer key (rotating any previous one) and the viewer URL.
    pub async fn start_desktop_stream(
        &self,
        id: &str,
        view_only: bool,
    ) -> Result<ManagedDesktopStreamInfo, ClientError> {
        let path = desktop_path(id, "/stream/start");
        self.send_json(self.request(Method::POST, &path)?.json(&StreamStartRequest { view_only })).await
    }

    /// `POST …/stream/stop`: ends the viewer sessions and invalidates the key.
    pub async fn stop_desktop_stream(&self, id: &str) -> Result<(), ClientError> {
        self.send_empty(self.request(Method::POST, &desktop_path(id, "/stream/stop"))?).await
    }

    /// `GET …/stream/auth-key`: the current viewer key and URL.
    pub async fn desktop_stream_auth_key(&self, id: &str) -> Result<StreamAuthKey, ClientError> {
        self.desktop_get(id, "/stream/auth-key").await
    }

    /// The viewer URL for a known key, built like the official client does (no request).
    pub fn desktop_viewer_url(&self, id: &str, auth_key: &str) -> String {
        let key: String = url::form_urlencoded::byte_serialize(auth_key.as_bytes()).collect();
        format!("{}{}?auth={key}", self.base_url(), desktop_path(id, "/viewer"))
    }

    /// `POST …/recording/start`.
    pub async fn start_desktop_recording(&self, id: &str, name: Option<&str>) -> Result<RecordingInfo, ClientError> {
        let body = StartRecordingRequest { name: name.map(str::to_owned) };
        self.send_json(self.request(Method::POST, &desktop_path(id, "/recording/start"))?.json(&body)).await
    }

    /// `POST …/recording/stop`.
    pub async fn stop_desktop_recording(&self, id: &str, recording: &str) -> Result<RecordingInfo, ClientError> {
        let body = StopRecordingRequest { recording_id: recording.to_owned() };
        self.send_json(self.request(Method::POST, &desktop_path(id, "/recording/stop"))?.json(&body)).await
    }

    /// `GET …/recording`.
    pub async fn list_desktop_recordings(&self, id: &str) -> Result<Vec<RecordingInfo>, ClientError> {
        self.desktop_get(id, "/recording").await
    }

    /// `GET …/recording/{rec}`.
    pub async fn desktop_recording(&self, id: &str, recording: &str) -> Result<RecordingInfo, ClientError> {
        self.desktop_get(id, &format!("/recording/{}", segment(recording))).await
    }

    /// `DELETE …/recording/{rec}`.
    pub async fn delete_desktop_recording(&self, id: &str, recording: &str) -> Result<(), ClientError> {
        let path = desktop_path(id, &format!("/recording/{}", segment(recording)));
        self.send_empty(self.request(Method::DELETE, &path)?).await
    }

    async fn desktop_get<T: DeserializeOwned>(&self, id: &str, rest: &str) -> Result<T, ClientError> {
        self.send_json(self.request(Method::GET, &desktop_path(id, rest))?).await
    }

    async fn desktop_post<B: Serialize + ?Sized>(&self, id: &str, rest: &str, body: &B) -> Result<(), ClientError> {
        self.send_empty(self.request(Method::POST, &desktop_path(id, rest))?.json(body)).await
    }

    /// Sends `builder` and copies the answer's body into `out` chunk by chunk.
    async fn copy_to<W: AsyncWrite + Unpin>(
        &self,
        builder: reqwest::RequestBuilder,
        out: &mut W,
        label: &str,
    ) -> Result<u64, ClientError> {
        let response = self.send(builder).await?;
        let url = response.url().to_string();
        let write_error = |source| ClientError::WriteLocal { path: label.to_owned(), source };
        let mut body = response.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|source| ClientError::Transport { method: "READ".into(), url: url.clone(), source })?;
            out.write_all(&chunk).await.map_err(write_error)?;
            written += chunk.len() as u64;
        }
        out.flush().await.map_err(write_error)?;
        Ok(written)
    }
}

/// The keysym of a common key name the official client translates (`enter` → `Return`); others unchanged.
fn normalize_key(key: &str) -> String {
    let keysym = match key.to_ascii_lowercase().as_str() {
        "enter" | "return" => "Return",
        "esc" | "escape" => "Escape",
        "tab" => "Tab",
        "space" => "space",
        "backspace" => "BackSpace",
        "delete" => "Delete",
        "left" => "Left",
        "right" => "Right",
        "up" => "Up",
        "down" => "Down",
        _ => key,
    };
    keysym.to_owned()
}

/// `/v1/sandboxes/{id}/desktop{rest}`.
fn desktop_path(id: &str, rest: &str) -> String {
    format!("/v1/sandboxes/{}/desktop{rest}", segment(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;

    #[test]
    fn paths_encode_user_segments() {
        assert_eq!(desktop_path("sb_1", "/click"), "/v1/sandboxes/sb_1/desktop/click");
        assert_eq!(desktop_path("sb/1", "/windows"), "/v1/sandboxes/sb%2F1/desktop/windows");
    }

    #[test]
    fn key_names_are_normalized_like_the_official_client() {
        assert_eq!(normalize_key("ENTER"), "Return");
        assert_eq!(normalize_key("esc"), "Escape");
        assert_eq!(normalize_key("backspace"), "BackSpace");
        assert_eq!(normalize_key("ctrl+c"), "ctrl+c");
        assert_eq!(normalize_key("F5"), "F5");
    }

    #[test]
    fn viewer_urls_follow_the_official_client() {
        let client = Client::new(ClientConfig::new("http://host:1/", Some("k".into()))).unwrap();
        assert_eq!(
            client.desktop_viewer_url("sb_1", "a+b"),
            "http://host:1/v1/sandboxes/sb_1/desktop/viewer?auth=a%2Bb"
        );
    }
}
