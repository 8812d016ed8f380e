//! Screenshot routes: the whole screen or a region as PNG, and the compressed variant (PNG or JPEG,
//! quality, scale, cursor overlay, region).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use nullspace_types::desktop_api::{CompressedScreenshotRequest, Region};

use super::extract::JsonBody;
use crate::error::DesktopResult;
use crate::request::{self, Shot};
use crate::state::Shared;
use crate::x11::screenshot::{self as shot, Encoding};

/// The zlib level of plain screenshots: fastest (a full HD desktop encodes in tens of milliseconds).
const PLAIN_PNG: Encoding = Encoding::Png(1);

fn image(bytes: Vec<u8>, encoding: Encoding) -> Response {
    let kind = match encoding {
        Encoding::Png(_) => "image/png",
        Encoding::Jpeg(_) => "image/jpeg",
    };
    ([(header::CONTENT_TYPE, kind)], bytes).into_response()
}

async fn take(
    state: &Shared,
    request: impl FnOnce((u16, u16)) -> DesktopResult<Shot> + Send + 'static,
) -> DesktopResult<Response> {
    let (bytes, encoding) = state
        .run(move |x11| {
            let shot = request(x11.screen_size()?)?;
            let mut image = x11.capture(shot.rect)?;
            if shot.cursor {
                x11.draw_cursor(&mut image, (shot.rect.x, shot.rect.y))?;
            }
            let image = shot::scale(image, shot.scale);
            Ok((shot::encode(&image, shot.encoding)?, shot.encoding))
        })
        .await?;
    Ok(image(bytes, encoding))
}

/// `POST /screenshot`: the whole screen as PNG.
pub async fn full(State(state): State<Shared>) -> DesktopResult<Response> {
    take(&state, |screen| Ok(Shot { rect: request::full(screen), encoding: PLAIN_PNG, scale: 1.0, cursor: false }))
        .await
}

/// `POST /screenshot/region`: a region as PNG.
pub async fn region(State(state): State<Shared>, JsonBody(region): JsonBody<Region>) -> DesktopResult<Response> {
    take(&state, move |screen| {
        Ok(Shot { rect: request::region(region, screen)?, encoding: PLAIN_PNG, scale: 1.0, cursor: false })
    })
    .await
}

/// `POST /screenshot/compressed`.
pub async fn compressed(
    State(state): State<Shared>,
    JsonBody(body): JsonBody<CompressedScreenshotRequest>,
) -> DesktopResult<Response> {
    take(&state, move |screen| request::shot(&body, screen)).await
}
