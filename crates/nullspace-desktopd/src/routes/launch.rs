//! Routes that start applications: a program or desktop entry (`POST /launch`), a file or URL
//! (`POST /open`).

use axum::extract::State;
use axum::Json;
use nullspace_types::desktop_api::{LaunchRequest, Launched, OpenRequest};

use super::extract::JsonBody;
use crate::error::DesktopResult;
use crate::state::Shared;

/// `POST /launch`.
pub async fn launch(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<LaunchRequest>,
) -> DesktopResult<Json<Launched>> {
    state.x11()?;
    let launched = match body {
        LaunchRequest::Executable { command, args } => {
            let argv: Vec<String> = std::iter::once(command).chain(args).collect();
            state.launcher.spawn(&argv, None)?
        }
        LaunchRequest::DesktopEntry { desktop_entry, uri } => {
            state.launcher.spawn_entry(&desktop_entry, uri.as_deref())?
        }
    };
    Ok(Json(launched))
}

/// `POST /open`.
pub async fn open(State(state): State<Shared>, JsonBody(body): JsonBody<OpenRequest>) -> DesktopResult<Json<Launched>> {
    state.x11()?;
    state.launcher.open(&body.target).map(Json)
}
