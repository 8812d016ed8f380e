//! The desktop streaming routes the server answers itself (not relayed to the sandbox):
//! `GET …/desktop/stream` (raw VNC address, off unless `--desktop-raw-vnc`), `POST …/stream/start`
//! (mint or rotate the managed viewer's key), `POST …/stream/stop`, `GET …/stream/auth-key`.
//! Every route is tenant-scoped through the sandbox lookup of `control`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use nullspace_types::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::extract::{from_object, json_object, Body, Path};
use super::{ApiError, AppState};
use crate::control::desktop_streams::IssuedKey;
use crate::store::Tenant;

/// The port the desktop's VNC server listens on inside its sandbox.
pub const VNC_PORT: u16 = 5900;

/// Body of `POST …/desktop/stream/start`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StartRequest {
    view_only: bool,
}

/// `{scheme}://{host}` the client reached this server at (the `Host` header; `X-Forwarded-Proto: https`
/// behind a TLS-terminating proxy), the base of viewer URLs.
pub(super) fn public_base_url(headers: &HeaderMap) -> String {
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    format!("{}://{host}", if https { "https" } else { "http" })
}

/// The viewer page URL of `key` on sandbox `id`.
pub(super) fn viewer_url(headers: &HeaderMap, id: &str, key: &str) -> String {
    format!("{}/v1/sandboxes/{id}/desktop/viewer?auth={key}", public_base_url(headers))
}

/// The host name of the request, without a port (raw VNC addresses use it with their own port).
fn request_hostname(headers: &HeaderMap) -> String {
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() => name.to_owned(),
        _ => host.to_owned(),
    }
}

/// The raw VNC address of sandbox `id` (a host port forwarded to its VNC server), when allowed.
async fn raw_vnc(state: &AppState, tenant: &Tenant, id: &str, headers: &HeaderMap) -> Result<(String, u16), ApiError> {
    // Another tenant's (or an unknown) sandbox is a 404 first, whatever this server's VNC policy.
    state.control.get(tenant, id).await?;
    if !state.desktop.raw_vnc {
        return Err(ApiError::new(
            ErrorCode::DesktopRawVncDisabled,
            format!(
                "raw VNC access is off on this server (operator-only: `nullspace server --desktop-raw-vnc`); \
                 watch the desktop through the managed viewer: POST /v1/sandboxes/{id}/desktop/stream/start"
            ),
        ));
    }
    let address = state.control.expose_port(tenant, id, VNC_PORT).await?;
    Ok((request_hostname(headers), address.port()))
}

/// `GET /v1/sandboxes/{id}/desktop/stream`: `{protocol, host, port, url}` of the raw VNC server.
pub async fn info(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (host, port) = raw_vnc(&state, &tenant, &id, &headers).await?;
    Ok(Json(json!({ "protocol": "vnc", "host": host, "port": port, "url": format!("vnc://{host}:{port}") })))
}

/// The `streaming` part of `GET …/desktop/capabilities` as this server serves it (the desktop relay puts it
/// in place of the sandbox's own answer): the managed viewer always, raw VNC only with `--desktop-raw-vnc`.
pub(super) fn streaming_capabilities(raw_vnc: bool) -> Value {
    json!({
        "raw_vnc": raw_vnc,
        "managed_viewer": true,
        "view_only": true,
        "default_surface": "managed_viewer",
        "raw_vnc_role": if raw_vnc { "operator" } else { "disabled" },
        "raw_vnc_mode": if raw_vnc { "host_port" } else { "disabled" },
        "raw_vnc_auth": "none",
        "managed_viewer_auth_required": true,
    })
}

fn managed_json(headers: &HeaderMap, id: &str, key: &IssuedKey, raw: Option<(String, u16)>) -> Value {
    let (host, port, url) = match raw {
        Some((host, port)) => {
            let url = format!("vnc://{host}:{port}");
            (json!(host), json!(port), json!(url))
        }
        None => (Value::Null, Value::Null, Value::Null),
    };
    json!({
        "protocol": "vnc",
        "host": host,
        "port": port,
        "url": url,
        "vnc_url": url,
        "viewer_url": viewer_url(headers, id, &key.auth_key),
        "auth_key": key.auth_key,
        "view_only": key.view_only,
    })
}

/// `POST /v1/sandboxes/{id}/desktop/stream/start` `{view_only}`: a new viewer key (the previous one, if
/// any, is replaced and its viewers disconnected).
pub async fn start(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let request: StartRequest = match json_object(&body, "stream start")? {
        Some(map) => from_object(map, "stream start")?,
        None => StartRequest::default(),
    };
    let raw = match state.desktop.raw_vnc {
        true => Some(raw_vnc(&state, &tenant, &id, &headers).await?),
        false => None,
    };
    let key = state.desktop.streams.start(&tenant, &id, request.view_only).await?;
    Ok(Json(managed_json(&headers, &id, &key, raw)))
}

/// `POST /v1/sandboxes/{id}/desktop/stream/stop`: ends the viewer key; open viewers are disconnected.
pub async fn stop(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stopped = state.desktop.streams.stop(&tenant, &id).await?;
    Ok(Json(json!({ "stopped": stopped })))
}

/// `GET /v1/sandboxes/{id}/desktop/stream/auth-key`: `{auth_key, viewer_url}` of the running stream.
pub async fn auth_key(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let key = state.desktop.streams.current(&tenant, &id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!(
                "no viewer stream runs on sandbox {id} (never started, or stopped); start one with \
                 POST /v1/sandboxes/{id}/desktop/stream/start"
            ),
        )
    })?;
    Ok(Json(json!({ "auth_key": key.auth_key, "viewer_url": viewer_url(&headers, &id, &key.auth_key) })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn viewer_urls_use_the_address_the_client_reached() {
        let plain = headers(&[("host", "127.0.0.1:8080")]);
        assert_eq!(viewer_url(&plain, "sb_a", "K"), "http://127.0.0.1:8080/v1/sandboxes/sb_a/desktop/viewer?auth=K");
        let proxied = headers(&[("host", "ns.example"), ("x-forwarded-proto", "https")]);
        assert_eq!(public_base_url(&proxied), "https://ns.example");
        assert_eq!(request_hostname(&plain), "127.0.0.1");
        assert_eq!(request_hostname(&headers(&[("host", "[::1]:80")])), "[::1]");
    }

    #[test]
    fn streaming_capabilities_follow_the_raw_vnc_flag() {
        let off = streaming_capabilities(false);
        let mut keys: Vec<_> = off.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "default_surface",
                "managed_viewer",
                "managed_viewer_auth_required",
                "raw_vnc",
                "raw_vnc_auth",
                "raw_vnc_mode",
                "raw_vnc_role",
                "view_only"
            ]
        );
        assert_eq!((off["raw_vnc"].clone(), off["raw_vnc_role"].clone()), (json!(false), json!("disabled")));
        assert_eq!(streaming_capabilities(true)["raw_vnc"], true);
        assert_eq!(off["managed_viewer"], true);
    }

    #[test]
    fn managed_stream_info_has_exactly_the_protocol_keys() {
        let key = IssuedKey { auth_key: "K".into(), view_only: true };
        let plain = headers(&[("host", "h:1")]);
        let off = managed_json(&plain, "sb_a", &key, None);
        let mut keys: Vec<_> = off.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["auth_key", "host", "port", "protocol", "url", "view_only", "viewer_url", "vnc_url"]);
        assert_eq!(off["protocol"], "vnc");
        assert_eq!(off["view_only"], true);
        assert!(off["host"].is_null() && off["vnc_url"].is_null());
        let on = managed_json(&plain, "sb_a", &key, Some(("h".into(), 4000)));
        assert_eq!(on["url"], "vnc://h:4000");
        assert_eq!(on["port"], 4000);
    }
}
