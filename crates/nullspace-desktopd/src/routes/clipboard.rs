//! Clipboard routes: read CLIPBOARD, set CLIPBOARD and PRIMARY.

use axum::extract::State;
use axum::Json;
use nullspace_types::desktop_api::ClipboardText;

use super::extract::JsonBody;
use crate::error::{DesktopError, DesktopResult};
use crate::state::Shared;
use crate::x11::clipboard::{read_clipboard, MAX_TEXT_BYTES};

/// `GET /clipboard`.
pub async fn get(State(state): State<Shared>) -> DesktopResult<Json<ClipboardText>> {
    let display = state.settings.display_name();
    let text = state.run(move |_| read_clipboard(&display)).await?;
    Ok(Json(ClipboardText { text }))
}

/// `PUT /clipboard`.
pub async fn set(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<ClipboardText>,
) -> DesktopResult<Json<ClipboardText>> {
    if body.text.len() > MAX_TEXT_BYTES {
        return Err(DesktopError::invalid(format!("text is larger than {} MiB", MAX_TEXT_BYTES / (1024 * 1024))));
    }
    let owner = std::sync::Arc::clone(&state.clipboard);
    let text = body.text.clone();
    state.run(move |_| owner.set(&text)).await?;
    Ok(Json(body))
}
