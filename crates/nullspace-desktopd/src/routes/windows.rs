//! Window routes: the window manager's windows, the active one, and a window's title.

use axum::extract::State;
use axum::Json;
use nullspace_types::desktop_api::{CurrentWindow, WindowInfo, WindowTitle};

use super::extract::PathParams;
use crate::error::{DesktopError, DesktopResult};
use crate::state::Shared;
use crate::x11::windows::parse_window_id;

/// `GET /windows`.
pub async fn list(State(state): State<Shared>) -> DesktopResult<Json<Vec<WindowInfo>>> {
    state.run(|x11| x11.list_windows()).await.map(Json)
}

/// `GET /window/current`.
pub async fn current(State(state): State<Shared>) -> DesktopResult<Json<CurrentWindow>> {
    let active = state.run(|x11| x11.active_window()).await?.ok_or(DesktopError::NoActiveWindow)?;
    Ok(Json(CurrentWindow { window_id: active.to_string() }))
}

/// `GET /window/{id}/title`.
pub async fn title(
    State(state): State<Shared>,
    PathParams(id): PathParams<String>,
) -> DesktopResult<Json<WindowTitle>> {
    let window = parse_window_id(&id).ok_or_else(|| DesktopError::WindowNotFound { id: id.clone() })?;
    let title = state
        .run(move |x11| {
            if !x11.window_exists(window)? {
                return Err(DesktopError::WindowNotFound { id: window.to_string() });
            }
            x11.title(window)
        })
        .await?;
    Ok(Json(WindowTitle { window_id: window.to_string(), title }))
}
