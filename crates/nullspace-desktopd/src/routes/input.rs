//! Input routes: pointer motion, clicks, button down/up, drags, wheel steps, typed text, keys, hotkeys
//! and key presses with modifiers. Values are checked against the screen before any event is sent.

use axum::extract::State;
use axum::Json;
use nullspace_types::desktop_api::{
    ClickRequest, DragRequest, HotkeyRequest, KeyRequest, MouseButtonRequest, MoveRequest, PressRequest, ScrollRequest,
    TypeRequest,
};
use serde_json::Value;

use super::done;
use super::extract::JsonBody;
use crate::error::{DesktopError, DesktopResult};
use crate::keysym;
use crate::request;
use crate::state::Shared;

/// Most characters typed by one request.
const MAX_TYPED_CHARS: usize = 100_000;

/// `POST /click`.
pub async fn click(State(state): State<Shared>, JsonBody(body): JsonBody<ClickRequest>) -> DesktopResult<Json<Value>> {
    let button = request::button(body.button.as_deref())?;
    let clicks = request::clicks(body.clicks)?;
    state
        .run(move |x11| {
            let (x, y) = request::point(body.x, body.y, x11.screen_size()?)?;
            x11.click(x, y, button, clicks)
        })
        .await?;
    Ok(done())
}

/// `POST /move`.
pub async fn move_pointer(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<MoveRequest>,
) -> DesktopResult<Json<Value>> {
    state
        .run(move |x11| {
            let (x, y) = request::point(body.x, body.y, x11.screen_size()?)?;
            x11.move_pointer(x, y)
        })
        .await?;
    Ok(done())
}

async fn mouse_button(state: &Shared, body: MouseButtonRequest, down: bool) -> DesktopResult<Json<Value>> {
    let button = request::button(body.button.as_deref())?;
    state
        .run(move |x11| {
            let at = request::optional_point(body.x, body.y, x11.screen_size()?)?;
            x11.button(button, down, at)
        })
        .await?;
    Ok(done())
}

/// `POST /mouse/down`.
pub async fn mouse_down(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<MouseButtonRequest>,
) -> DesktopResult<Json<Value>> {
    mouse_button(&state, body, true).await
}

/// `POST /mouse/up`.
pub async fn mouse_up(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<MouseButtonRequest>,
) -> DesktopResult<Json<Value>> {
    mouse_button(&state, body, false).await
}

/// `POST /drag`.
pub async fn drag(State(state): State<Shared>, JsonBody(body): JsonBody<DragRequest>) -> DesktopResult<Json<Value>> {
    let button = request::button(body.button.as_deref())?;
    state
        .run(move |x11| {
            let screen = x11.screen_size()?;
            let from = request::point(body.x1, body.y1, screen)?;
            let to = request::point(body.x2, body.y2, screen)?;
            x11.drag(from, to, button)
        })
        .await?;
    Ok(done())
}

/// `POST /scroll`.
pub async fn scroll(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<ScrollRequest>,
) -> DesktopResult<Json<Value>> {
    let wheel = request::wheel(&body.direction)?;
    let amount = request::scroll_amount(body.amount)?;
    state
        .run(move |x11| {
            let (x, y) = request::point(body.x, body.y, x11.screen_size()?)?;
            x11.scroll(x, y, wheel, amount)
        })
        .await?;
    Ok(done())
}

/// `POST /type`.
pub async fn type_text(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<TypeRequest>,
) -> DesktopResult<Json<Value>> {
    if body.text.chars().count() > MAX_TYPED_CHARS {
        return Err(DesktopError::invalid(format!(
            "text is longer than {MAX_TYPED_CHARS} characters; send it in chunks or through the clipboard"
        )));
    }
    if !body.text.is_empty() {
        state.run(move |x11| x11.type_text(&body.text)).await?;
    }
    Ok(done())
}

async fn combo(state: &Shared, keys: Vec<u32>) -> DesktopResult<Json<Value>> {
    state.run(move |x11| x11.key_combo(&keys)).await?;
    Ok(done())
}

/// `POST /key`: a keysym name, or a combination such as `ctrl+c`.
pub async fn key(State(state): State<Shared>, JsonBody(body): JsonBody<KeyRequest>) -> DesktopResult<Json<Value>> {
    let keys = keysym::parse_combo(&body.key).map_err(DesktopError::invalid)?;
    combo(&state, keys).await
}

/// `POST /hotkey`.
pub async fn hotkey(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<HotkeyRequest>,
) -> DesktopResult<Json<Value>> {
    let keys = keysym::parse_combo(&body.keys).map_err(DesktopError::invalid)?;
    combo(&state, keys).await
}

/// `POST /press`: the key while the modifiers are held.
pub async fn press(State(state): State<Shared>, JsonBody(body): JsonBody<PressRequest>) -> DesktopResult<Json<Value>> {
    let mut keys = Vec::with_capacity(body.modifiers.len() + 1);
    for modifier in &body.modifiers {
        let keysym = keysym::parse_key(modifier).map_err(|why| DesktopError::invalid(format!("modifiers: {why}")))?;
        if !keysym::is_modifier(keysym) {
            return Err(DesktopError::invalid(format!(
                "modifiers: {modifier:?} is not a modifier; use ctrl, shift, alt or super"
            )));
        }
        keys.push(keysym);
    }
    keys.push(keysym::parse_key(&body.key).map_err(|why| DesktopError::invalid(format!("key: {why}")))?);
    combo(&state, keys).await
}
