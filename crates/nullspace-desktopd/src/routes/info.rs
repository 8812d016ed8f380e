//! Routes about the screen: its size, the pointer position, the monitors and the capabilities.

use axum::extract::State;
use axum::Json;
use nullspace_types::desktop_api::{CursorPosition, DesktopCapabilities, DisplayInfo, ScreenSize};

use crate::error::DesktopResult;
use crate::state::Shared;

/// `GET /screen_size`.
pub async fn screen_size(State(state): State<Shared>) -> DesktopResult<Json<ScreenSize>> {
    let (width, height) = state.run(|x11| x11.screen_size()).await?;
    Ok(Json(ScreenSize { width: u32::from(width), height: u32::from(height) }))
}

/// `GET /cursor`.
pub async fn cursor(State(state): State<Shared>) -> DesktopResult<Json<CursorPosition>> {
    let (x, y) = state.run(|x11| x11.pointer()).await?;
    Ok(Json(CursorPosition { x: i64::from(x), y: i64::from(y) }))
}

/// `GET /display`.
pub async fn display(State(state): State<Shared>) -> DesktopResult<Json<DisplayInfo>> {
    state.run(|x11| x11.display_info()).await.map(Json)
}

/// `GET /capabilities`.
pub async fn capabilities() -> Json<DesktopCapabilities> {
    Json(crate::capabilities::capabilities())
}
