//! The managed desktop viewer, authenticated by its auth key alone (no API key):
//! `GET /v1/sandboxes/{id}/desktop/viewer?auth=KEY` (the noVNC page, or a page saying the session ended or
//! was replaced) and `GET …/desktop/viewer/ws?auth=KEY` (the WebSocket bridged to the sandbox's VNC server
//! on port 5900 through its guest's TCP tunnel, closed when the key is rotated or stopped).

use std::path::PathBuf;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use nullspace_types::ErrorCode;
use serde::Deserialize;

use super::desktop_bridge::{bridge, Ended};
use super::desktop_stream::VNC_PORT;
use super::extract::{Path, Query};
use super::{ApiError, AppState};
use crate::control::desktop_streams::{key_hash, revoked, Access, DesktopStreams};

/// Largest message a viewer client may send (clipboard text in interactive sessions).
const MAX_CLIENT_MESSAGE: usize = 4 << 20;

/// The managed viewer's share of the API state.
#[derive(Clone)]
pub struct DesktopViewer {
    /// Viewer keys.
    pub streams: DesktopStreams,
    /// Raw VNC addresses are answered (`--desktop-raw-vnc`).
    pub raw_vnc: bool,
    /// The noVNC files (`core/rfb.js`, `vendor/pako/…`); `None` when not installed.
    pub assets: Option<PathBuf>,
}

impl DesktopViewer {
    /// The viewer state; `assets` is kept only if it holds `core/rfb.js` (a warning is logged otherwise).
    pub fn new(streams: DesktopStreams, raw_vnc: bool, assets: PathBuf) -> Self {
        let assets = if assets.join("core/rfb.js").is_file() {
            Some(assets)
        } else {
            tracing::warn!(
                dir = %assets.display(),
                "noVNC assets not found: the desktop viewer page will say so (run scripts/fetch-novnc.sh, or set {})",
                super::viewer_assets::NOVNC_DIR_ENV
            );
            None
        };
        Self { streams, raw_vnc, assets }
    }
}

/// Query of the viewer routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Deserialize)]
pub struct ViewerQuery {
    auth: Option<String>,
}

/// `GET /v1/sandboxes/{id}/desktop/viewer?auth=KEY`.
pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ViewerQuery>,
) -> Result<Response, ApiError> {
    let key = query.auth.unwrap_or_default();
    let access = if key.is_empty() { Access::Unknown } else { state.desktop.streams.check(&id, &key).await? };
    let (status, html) = match access {
        Access::Active(row) => (StatusCode::OK, viewer_html(row.view_only, state.desktop.assets.is_some())),
        Access::Ended => (
            StatusCode::OK,
            notice_html("Viewer session ended", "This viewer session was stopped. Ask for a new viewer URL."),
        ),
        Access::Replaced => (
            StatusCode::OK,
            notice_html(
                "Viewer session replaced",
                "A newer viewer session was started for this desktop; this link no longer works. Use the new \
                 viewer URL.",
            ),
        ),
        Access::Unknown => (
            StatusCode::NOT_FOUND,
            notice_html(
                "Viewer session not found",
                "This link has no valid auth key for this desktop (or the sandbox is gone). Ask for a new viewer URL.",
            ),
        ),
    };
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    // The key is in the URL: never cache the page, never leak it in a Referer.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:",
        ),
    );
    Ok(response)
}

/// `GET /v1/sandboxes/{id}/desktop/viewer/ws?auth=KEY` (upgrade).
pub async fn websocket(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ViewerQuery>,
    super::extract::WsUpgrade(upgrade): super::extract::WsUpgrade,
) -> Result<Response, ApiError> {
    let key = query.auth.unwrap_or_default();
    let streams = &state.desktop.streams;
    // Watch before checking, so a rotation right after the check still closes this bridge.
    let mut watch = streams.watch(&id);
    let access = if key.is_empty() { Access::Unknown } else { streams.check(&id, &key).await? };
    let row = match access {
        Access::Active(row) => row,
        Access::Ended => return Err(refused("this viewer session was stopped; start a new one")),
        Access::Replaced => return Err(refused("this viewer session was replaced by a newer one; use its URL")),
        Access::Unknown => return Err(refused("no valid viewer auth key; pass ?auth= from stream/start")),
    };
    let (_record, guest) = state.control.guest_for_tenant_id(&row.tenant_id, &id).await?;
    let tunnel = guest.tcp_tunnel(VNC_PORT).await.map_err(|error| {
        tracing::debug!(sandbox = %id, error = %crate::error_chain(&error), "desktop VNC server unreachable");
        ApiError::new(
            ErrorCode::FeatureUnavailable,
            format!(
                "sandbox {id} runs no VNC server on port {VNC_PORT}: create it from the `desktop` template (or \
                 wait until its desktop is up)"
            ),
        )
    })?;
    let mine = key_hash(&key);
    let revoked_reason = async move {
        loop {
            if watch.changed().await.is_err() {
                return "the server is shutting down";
            }
            let active = watch.borrow_and_update().clone();
            if revoked(&mine, &active, true) {
                return if active.is_some() { "viewer session replaced" } else { "viewer session ended" };
            }
        }
    };
    let view_only = row.view_only;
    Ok(super::websocket::bounded(upgrade, MAX_CLIENT_MESSAGE).on_upgrade(move |socket| async move {
        let ended = bridge(socket, tunnel, view_only, revoked_reason).await;
        match ended {
            Ended::Refused(why) => tracing::info!(sandbox = %id, %why, "view-only viewer stream refused"),
            ended => tracing::debug!(sandbox = %id, ?ended, "desktop viewer bridge ended"),
        }
    }))
}

fn refused(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, format!("desktop viewer: {message}"))
}

const STYLE: &str = "html,body{margin:0;height:100%;background:#1e1e1e;color:#ddd;font:14px system-ui,sans-serif}\
#bar{height:28px;line-height:28px;padding:0 10px;background:#2d2d2d;display:flex;gap:12px}\
#screen{position:absolute;top:28px;left:0;right:0;bottom:0}\
main{max-width:40em;margin:15vh auto;padding:0 1em}";

/// The page of a session that cannot be viewed (ended, replaced, unknown).
fn notice_html(title: &str, text: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Nullspace Desktop Viewer - \
         {title}</title><style>{STYLE}</style></head>\n<body data-state=\"{state}\"><main><h1>Nullspace Desktop \
         Viewer</h1><h2>{title}</h2><p>{text}</p></main></body></html>\n",
        state = title.to_ascii_lowercase().replace(' ', "-"),
    )
}

/// The viewer page: noVNC's RFB, served by this server, connected to `viewer/ws` with the page's own query.
fn viewer_html(view_only: bool, assets_installed: bool) -> String {
    let missing = if assets_installed {
        String::new()
    } else {
        "<main id=\"missing\"><h2>Viewer assets missing</h2><p>This server has no noVNC files (expected in \
         <code>novnc/</code> beside the server binary; build them with <code>scripts/fetch-novnc.sh</code> or \
         set NULLSPACE_NOVNC_DIR). The desktop itself works; only this page cannot show it.</p></main>"
            .to_owned()
    };
    let mode = if view_only { "view only" } else { "interactive" };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Nullspace Desktop Viewer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head>
<body data-state="connecting" data-view-only="{view_only}">
<div id="bar"><strong>Nullspace Desktop Viewer</strong><span id="mode">{mode}</span><span id="status">connecting…</span></div>
{missing}<div id="screen"></div>
<script type="module">
import RFB from "/v1/desktop/viewer-assets/core/rfb.js";
const viewOnly = {view_only};
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const url = scheme + "//" + location.host + location.pathname.replace(/\/$/, "") + "/ws" + location.search;
const status = document.getElementById("status");
const show = (state, text) => {{ document.body.dataset.state = state; status.textContent = text; }};
const rfb = new RFB(document.getElementById("screen"), url, {{ shared: true }});
rfb.viewOnly = viewOnly;
rfb.scaleViewport = true;
rfb.resizeSession = false;
rfb.focusOnClick = !viewOnly;
rfb.addEventListener("connect", () => {{ show("connected", "connected"); if (!viewOnly) rfb.focus(); }});
rfb.addEventListener("disconnect", (e) => show("disconnected", e.detail.clean ? "disconnected" : "connection lost"));
rfb.addEventListener("securityfailure", (e) => show("failed", "security failure: " + e.detail.reason));
window.nullspaceViewer = rfb;
</script>
</body></html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_viewer_page_loads_novnc_from_this_server_only() {
        for view_only in [true, false] {
            let html = viewer_html(view_only, true);
            assert!(html.contains("Desktop Viewer"));
            assert!(html.contains(r#"import RFB from "/v1/desktop/viewer-assets/core/rfb.js""#));
            assert!(html.contains(&format!("const viewOnly = {view_only};")));
            assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("cdn."), "no CDN");
            assert!(!html.contains("Viewer assets missing"));
        }
        assert!(viewer_html(false, false).contains("Viewer assets missing"));
    }

    #[test]
    fn notice_pages_carry_the_protocol_texts() {
        let ended = notice_html("Viewer session ended", "x");
        assert!(ended.contains("Desktop Viewer") && ended.contains("Viewer session ended"));
        assert!(ended.contains("data-state=\"viewer-session-ended\""));
        assert!(!ended.contains("rfb.js"));
    }
}
