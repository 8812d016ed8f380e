//! The preview proxy, served on the API listener: requests whose host is `{port}-{sandbox_id}.{domain}`
//! go to `127.0.0.1:{port}` inside the sandbox instead of the API.
//!
//! A request is admitted by a preview grant token: `?edge_token=` (direct grants; answered with a host-only
//! HttpOnly cookie so subresources and WebSocket upgrades work without the query), the cookie, or the
//! `x-nullspace-preview-proxy-token` header (proxy grants). The token, the cookie and the header are
//! removed before the request reaches the sandbox. Requests are forwarded over HTTP/1.1 through the
//! guest's TCP tunnel with streaming bodies both ways (connections pooled by [`super::upstream`]). Upgrades (WebSocket) are forwarded, and on `101` both upgraded connections are
//! spliced. Bytes are counted into the grant's usage.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use nullspace_node::GuestLink;
use nullspace_types::ErrorBody;

use super::upstream::ForwardError;
use super::{ApiError, AppState};
use crate::clock;
use crate::control::preview_grants::{
    AuthMode, AuthorizeError, Credential, PreviewAuthError, PreviewGrants, EDGE_TOKEN_COOKIE, EDGE_TOKEN_PARAM,
    PROXY_TOKEN_HEADER,
};
use crate::store::preview_grants::{PreviewGrantRecord, PreviewUsage};

/// The sandbox and port a preview host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewTarget {
    /// Port inside the sandbox.
    pub port: u16,
    /// Sandbox id.
    pub sandbox_id: String,
}

/// Parses `{port}-{sandbox_id}.{domain}[:{listen port}]` (case-insensitive, trailing dot allowed).
/// `None` for every other host, which the API serves.
pub fn parse_preview_host(host: &str, domain: &str) -> Option<PreviewTarget> {
    let host = host.trim().to_ascii_lowercase();
    if host.starts_with('[') {
        return None; // an IPv6 literal
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host.as_str(),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let domain = domain.trim_matches('.').to_ascii_lowercase();
    let label = name.strip_suffix(domain.as_str())?.strip_suffix('.')?;
    if label.contains('.') {
        return None;
    }
    let (port, sandbox_id) = label.split_once('-')?;
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = port.parse::<u16>().ok().filter(|port| *port > 0)?;
    let valid_id = !sandbox_id.is_empty()
        && sandbox_id.len() <= 64
        && sandbox_id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    valid_id.then(|| PreviewTarget { port, sandbox_id: sandbox_id.to_owned() })
}

fn request_host(request: &Request) -> Option<&str> {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| request.headers().get(header::HOST).and_then(|value| value.to_str().ok()))
}

/// Middleware in front of the API: preview hosts go to the proxy, everything else to the API unchanged.
pub async fn dispatch(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let target = request_host(&request).and_then(|host| parse_preview_host(host, &state.preview.config().domain));
    match target {
        Some(target) => proxy(&state, target, request).await,
        None => next.run(request).await,
    }
}

fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: message.into(),
        code: code.to_owned(),
        retryable: None,
        suggested_action: None,
        details: None,
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn internal(error: &dyn std::error::Error) -> Response {
    tracing::error!(error = %crate::error_chain(error), "preview proxy failed");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal error; see the server log for details",
    )
}

/// The token a request presents, if any.
pub(super) fn credential<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<Credential<'a>> {
    if let Some(value) = headers.get(PROXY_TOKEN_HEADER) {
        return Some(Credential::Header(value.to_str().unwrap_or("").trim()));
    }
    if let Some(token) = query_param(uri.query().unwrap_or(""), EDGE_TOKEN_PARAM) {
        return Some(Credential::Query(token));
    }
    cookie(headers, EDGE_TOKEN_COOKIE).map(Credential::Cookie)
}

pub(super) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// `query` without `name` parameters (`None` when nothing is left).
pub(super) fn strip_query_param(query: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|value| value.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value.trim())
        })
    })
}

/// The `Cookie` header without cookie `name` (`None` when nothing is left).
pub(super) fn strip_cookie(headers: &HeaderMap, name: &str) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join("; ")).ok()
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.split(',').any(|token| token.trim().eq_ignore_ascii_case("upgrade")))
}

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), plus those named by
/// `Connection`.
fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in ["keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"] {
        headers.remove(name);
    }
    headers.remove(header::CONNECTION);
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Bytes counted for a grant, recorded when the last body or tunnel using it is done.
struct Tally {
    grants: PreviewGrants,
    grant_id: String,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Drop for Tally {
    fn drop(&mut self) {
        let usage = PreviewUsage {
            bytes_in: i64::try_from(self.bytes_in.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            bytes_out: i64::try_from(self.bytes_out.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            ..PreviewUsage::default()
        };
        if usage.bytes_in > 0 || usage.bytes_out > 0 {
            self.grants.record_usage(&self.grant_id, usage);
        }
    }
}

fn counted<B>(body: B, tally: Arc<Tally>, inbound: bool) -> Body
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    Body::new(body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            let counter = if inbound { &tally.bytes_in } else { &tally.bytes_out };
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        frame
    }))
}

async fn proxy(state: &AppState, target: PreviewTarget, request: Request) -> Response {
    let grants = &state.preview;
    let (owner, _state) = match grants.sandbox(&target.sandbox_id).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return error_response(
                StatusCode::NOT_FOUND,
                "sandbox_not_found",
                format!("sandbox {} not found; it may have been destroyed", target.sandbox_id),
            )
        }
        Err(error) => return internal(&error),
    };
    let forwarded_by_proxy =
        ["x-forwarded-host", "x-forwarded-for", "forwarded"].iter().any(|name| request.headers().contains_key(*name));
    let Some(presented) = credential(request.headers(), request.uri()) else {
        let mode = if forwarded_by_proxy { AuthMode::Proxy } else { AuthMode::Direct };
        let refused = PreviewAuthError::Missing(mode);
        return error_response(StatusCode::UNAUTHORIZED, refused.code(), refused.message());
    };
    let grant = match grants.authorize(&target.sandbox_id, target.port, presented).await {
        Ok(grant) => grant,
        Err(AuthorizeError::Refused(refused)) => {
            return error_response(StatusCode::UNAUTHORIZED, refused.code(), refused.message())
        }
        Err(AuthorizeError::Store(error)) => return internal(&error),
    };
    let set_cookie = match presented {
        Credential::Query(token) => Some(edge_cookie(token, &grant)),
        _ => None,
    };
    if grant.tenant_id != owner {
        let refused = PreviewAuthError::ScopeMismatch(presented.mode());
        return error_response(StatusCode::UNAUTHORIZED, refused.code(), refused.message());
    }
    // Traffic to a paused sandbox with auto-resume wakes it; the request is forwarded once it runs.
    let guest = match grants.control().guest_for_tenant_id(&owner, &target.sandbox_id).await {
        Ok((_record, guest)) => guest,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut response = forward(state, &target, &grant, guest, request).await;
    if let Some(cookie) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The host-only cookie that carries a direct token for the rest of the grant's life.
fn edge_cookie(token: &str, grant: &PreviewGrantRecord) -> HeaderValue {
    let max_age = ((grant.expires_at_ms - clock::now_ms()) / 1000).max(1);
    HeaderValue::from_str(&format!("{EDGE_TOKEN_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn forward(
    state: &AppState,
    target: &PreviewTarget,
    grant: &PreviewGrantRecord,
    guest: GuestLink,
    mut request: Request,
) -> Response {
    let upgrade = is_upgrade(request.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let client_ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let (parts, body) = request.into_parts();
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| parts.headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned))
        .unwrap_or_default();

    let mut path = parts.uri.path().to_owned();
    if let Some(query) = parts.uri.query().and_then(|query| strip_query_param(query, EDGE_TOKEN_PARAM)) {
        path = format!("{path}?{query}");
    }
    let mut headers = parts.headers;
    remove_hop_by_hop(&mut headers, upgrade);
    headers.remove(PROXY_TOKEN_HEADER);
    match strip_cookie(&headers, EDGE_TOKEN_COOKIE) {
        Some(value) => {
            headers.insert(header::COOKIE, value);
        }
        None => {
            headers.remove(header::COOKIE);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&host) {
        headers.insert(header::HOST, value.clone());
        headers.insert("x-forwarded-host", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(ip) = client_ip {
        let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", value);
        }
    }

    let tally = Arc::new(Tally {
        grants: state.preview.clone(),
        grant_id: grant.id.clone(),
        bytes_in: AtomicU64::new(0),
        bytes_out: AtomicU64::new(0),
    });
    let mut upstream_request = hyper::Request::new(counted(body, Arc::clone(&tally), true));
    *upstream_request.method_mut() = parts.method;
    *upstream_request.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
    *upstream_request.version_mut() = Version::HTTP_11;
    *upstream_request.headers_mut() = headers;

    let now = clock::now_rfc3339();
    let used = |websocket: bool, error: Option<&str>| PreviewUsage {
        uses: 1,
        http_requests: i64::from(!websocket),
        websocket_connections: i64::from(websocket),
        first_used_at: Some(now.clone()),
        last_used_at: Some(now.clone()),
        last_error: error.map(|code| (code.to_owned(), now.clone())),
        ..PreviewUsage::default()
    };
    let mut response = match state.upstreams.send(&guest, target, upstream_request).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(error = %crate::error_chain(&error), "preview request failed");
            state.preview.record_usage(&grant.id, used(false, Some("port_unreachable")));
            let message = match &error {
                ForwardError::Unreachable { .. } => format!(
                    "{error}: start a server listening on 127.0.0.1:{port} or 0.0.0.0:{port} inside the sandbox",
                    port = target.port
                ),
                ForwardError::Upstream { .. } => error.to_string(),
            };
            return error_response(StatusCode::BAD_GATEWAY, "port_unreachable", message);
        }
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            state.preview.record_usage(&grant.id, used(true, None));
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let tally = Arc::clone(&tally);
            tokio::spawn(async move {
                let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::debug!(%error, "preview upgrade failed");
                        return;
                    }
                };
                let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    Ok((to_sandbox, to_client)) => {
                        tally.bytes_in.fetch_add(to_sandbox, Ordering::Relaxed);
                        tally.bytes_out.fetch_add(to_client, Ordering::Relaxed);
                    }
                    Err(error) => tracing::debug!(%error, "preview upgraded connection ended"),
                }
            });
            let (parts, _body) = response.into_parts();
            return Response::from_parts(parts, Body::empty());
        }
    }
    state.preview.record_usage(&grant.id, used(false, None));
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers, false);
    Response::from_parts(parts, counted(body, tally, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16, id: &str) -> Option<PreviewTarget> {
        Some(PreviewTarget { port, sandbox_id: id.to_owned() })
    }

    #[test]
    fn preview_hosts_name_a_port_and_a_sandbox() {
        assert_eq!(parse_preview_host("8080-sb_abc123.localhost:3000", "localhost"), target(8080, "sb_abc123"));
        assert_eq!(parse_preview_host("8080-sb_abc123.localhost", "localhost"), target(8080, "sb_abc123"));
        assert_eq!(parse_preview_host("8080-SB_ABC.LOCALHOST.:3000", "localhost"), target(8080, "sb_abc"));
        assert_eq!(parse_preview_host("1-sb_a.preview.example.com", "preview.example.com"), target(1, "sb_a"));
        assert_eq!(parse_preview_host("65535-sb_a.localhost", ".localhost."), target(65535, "sb_a"));
    }

    #[test]
    fn other_and_malformed_hosts_go_to_the_api() {
        for host in [
            "localhost:3000",
            "127.0.0.1:3000",
            "[::1]:3000",
            "8080-sb_nonexistent.nullspace.dev",
            "api.localhost",
            "sb_abc.localhost",
            "-sb_abc.localhost",
            "0-sb_abc.localhost",
            "65536-sb_abc.localhost",
            "123456-sb_abc.localhost",
            "80a-sb_abc.localhost",
            "+80-sb_abc.localhost",
            "8080-.localhost",
            "8080-sb_abc.x.localhost",
            "8080-sb/abc.localhost",
            "8080-sb_abc.localhost:abc",
            "8080-sb_abc.localhostx",
            "8080-sb_abcxlocalhost",
            "",
        ] {
            assert_eq!(parse_preview_host(host, "localhost"), None, "{host:?}");
        }
    }

    #[test]
    fn the_edge_token_is_found_and_stripped() {
        assert_eq!(query_param("a=1&edge_token=pvg_x.y&b=2", EDGE_TOKEN_PARAM), Some("pvg_x.y"));
        assert_eq!(query_param("a=1", EDGE_TOKEN_PARAM), None);
        assert_eq!(strip_query_param("a=1&edge_token=t&b=2", EDGE_TOKEN_PARAM).as_deref(), Some("a=1&b=2"));
        assert_eq!(strip_query_param("edge_token=t", EDGE_TOKEN_PARAM), None);
        assert_eq!(strip_query_param("edge_tokenx=1", EDGE_TOKEN_PARAM).as_deref(), Some("edge_tokenx=1"));
    }

    #[test]
    fn the_edge_cookie_is_read_and_removed_from_the_forwarded_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; nullspace_edge_token=pvg_x.s; b=2"));
        assert_eq!(cookie(&headers, EDGE_TOKEN_COOKIE), Some("pvg_x.s"));
        assert_eq!(strip_cookie(&headers, EDGE_TOKEN_COOKIE).unwrap(), "a=1; b=2");
        headers.insert(header::COOKIE, HeaderValue::from_static("nullspace_edge_token=pvg_x.s"));
        assert_eq!(strip_cookie(&headers, EDGE_TOKEN_COOKIE), None);
    }

    #[test]
    fn credentials_prefer_the_header_then_the_query_then_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("nullspace_edge_token=c"));
        let uri: Uri = "/p?edge_token=q".parse().unwrap();
        assert_eq!(credential(&headers, &uri), Some(Credential::Query("q")));
        assert_eq!(credential(&headers, &"/p".parse().unwrap()), Some(Credential::Cookie("c")));
        headers.insert(PROXY_TOKEN_HEADER, HeaderValue::from_static("h"));
        assert_eq!(credential(&headers, &uri), Some(Credential::Header("h")));
        assert_eq!(credential(&HeaderMap::new(), &"/".parse().unwrap()), None);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped_except_an_upgrade() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade, x-private"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-app", HeaderValue::from_static("1"));
        assert!(is_upgrade(&headers));
        let mut upgraded = headers.clone();
        remove_hop_by_hop(&mut upgraded, true);
        assert_eq!(upgraded.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(upgraded.get(header::CONNECTION).unwrap(), "upgrade");
        assert!(upgraded.get("x-private").is_none() && upgraded.get("keep-alive").is_none());
        remove_hop_by_hop(&mut headers, false);
        assert!(headers.get(header::UPGRADE).is_none() && headers.get(header::CONNECTION).is_none());
        assert_eq!(headers.get("x-app").unwrap(), "1");
    }
}
