//! The route table of the daemon: the desktop API without its `/v1/sandboxes/{id}/desktop` prefix.

use axum::http::{Method, Uri};
use axum::routing::{get, post};
use axum::Router;

use super::{capture, clipboard, health, info, input, launch, recording, windows};
use crate::error::DesktopError;
use crate::state::Shared;

/// Every route the daemon serves.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/screenshot", post(capture::full))
        .route("/screenshot/region", post(capture::region))
        .route("/screenshot/compressed", post(capture::compressed))
        .route("/click", post(input::click))
        .route("/move", post(input::move_pointer))
        .route("/mouse/down", post(input::mouse_down))
        .route("/mouse/up", post(input::mouse_up))
        .route("/drag", post(input::drag))
        .route("/scroll", post(input::scroll))
        .route("/type", post(input::type_text))
        .route("/key", post(input::key))
        .route("/hotkey", post(input::hotkey))
        .route("/press", post(input::press))
        .route("/screen_size", get(info::screen_size))
        .route("/cursor", get(info::cursor))
        .route("/display", get(info::display))
        .route("/capabilities", get(info::capabilities))
        .route("/windows", get(windows::list))
        .route("/window/current", get(windows::current))
        .route("/window/{id}/title", get(windows::title))
        .route("/clipboard", get(clipboard::get).put(clipboard::set))
        .route("/launch", post(launch::launch))
        .route("/open", post(launch::open))
        .route("/recording", get(recording::list))
        .route("/recording/start", post(recording::start))
        .route("/recording/stop", post(recording::stop))
        .route("/recording/{id}", get(recording::get).delete(recording::delete))
        .route("/recording/{id}/download", get(recording::download))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> DesktopError {
    DesktopError::UnknownRoute { method: method.to_string(), path: uri.path().to_owned() }
}
