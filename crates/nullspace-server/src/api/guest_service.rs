//! The relay of a sandbox-scoped API to the service its template runs inside the sandbox on a guest
//! port (the code interpreter's gateway, the desktop daemon): the request goes through the
//! [`super::UpstreamPool`] with the API prefix removed, and bodies stream through untouched in both
//! directions (an SSE stream reaches the client event by event).

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderValue};
use axum::http::{Uri, Version};
use axum::response::Response;
use nullspace_types::ErrorCode;

use super::proxy::PreviewTarget;
use super::upstream::ForwardError;
use super::{ApiError, AppState};
use crate::store::Tenant;

/// A service that a template runs inside its sandboxes.
#[derive(Debug, Clone, Copy)]
pub struct GuestService {
    /// The guest port it listens on.
    pub port: u16,
    /// What it is, for messages ("code interpreter").
    pub what: &'static str,
    /// The built-in template that runs it.
    pub template: &'static str,
}

/// Request headers passed to the service; everything else (notably `Authorization`) stays here.
const FORWARDED_HEADERS: &[header::HeaderName] =
    &[header::CONTENT_TYPE, header::CONTENT_LENGTH, header::ACCEPT, header::TRANSFER_ENCODING];

/// Response headers the relay does not pass back (connection-level ones belong to each hop).
const HOP_BY_HOP: &[header::HeaderName] =
    &[header::CONNECTION, header::TRANSFER_ENCODING, header::UPGRADE, header::TE, header::TRAILER];

/// Relays `request` for path `/{rest}` (query kept) to `service` in sandbox `id` of `tenant` and streams
/// the answer back.
pub async fn relay(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
    rest: &str,
    request: Request,
    service: GuestService,
) -> Result<Response, ApiError> {
    let (_record, guest) = state.control.guest(tenant, id).await?;
    let (parts, body) = request.into_parts();
    let uri = upstream_uri(rest, parts.uri.query())
        .ok_or_else(|| ApiError::invalid(format!("invalid {} path /{rest}: percent-encode it", service.what)))?;
    let mut upstream = hyper::Request::new(body);
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = uri;
    *upstream.version_mut() = Version::HTTP_11;
    for name in FORWARDED_HEADERS {
        if let Some(value) = parts.headers.get(name) {
            upstream.headers_mut().insert(name.clone(), value.clone());
        }
    }
    upstream.headers_mut().insert(header::HOST, HeaderValue::from_static("localhost"));

    let target = PreviewTarget { port: service.port, sandbox_id: id.to_owned() };
    let response =
        state.upstreams.send(&guest, &target, upstream).await.map_err(|error| unavailable(service, id, &error))?;
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The service's URI for `/{rest}` with `query`; `None` when it is no valid path.
fn upstream_uri(rest: &str, query: Option<&str>) -> Option<Uri> {
    let path_and_query = match query {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    };
    path_and_query.parse().ok()
}

/// The service cannot be reached: the sandbox does not run it, or it has not started (yet).
fn unavailable(service: GuestService, sandbox_id: &str, error: &ForwardError) -> ApiError {
    let GuestService { port, what, template } = service;
    tracing::debug!(sandbox = %sandbox_id, port, error = %crate::error_chain(error), "{what} unreachable");
    let message = match error {
        ForwardError::Unreachable { .. } => format!(
            "sandbox {sandbox_id} runs no {what} on port {port}: create the sandbox from the `{template}` template \
             (or a template built on it)"
        ),
        ForwardError::Upstream { .. } => format!(
            "the {what} of sandbox {sandbox_id} closed the connection without an answer; retry, and check \
             `GET /v1/sandboxes/{sandbox_id}` if it keeps failing"
        ),
    };
    ApiError::new(ErrorCode::FeatureUnavailable, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_gone_and_the_query_kept() {
        assert_eq!(upstream_uri("screenshot", None).unwrap(), "/screenshot");
        assert_eq!(upstream_uri("recording/r1/download", Some("a=1&b=2")).unwrap(), "/recording/r1/download?a=1&b=2");
        assert!(upstream_uri("bad path", None).is_none());
    }

    #[test]
    fn an_unreachable_service_names_its_template() {
        let service = GuestService { port: 49990, what: "desktop", template: "desktop" };
        let error = ForwardError::Unreachable {
            port: 49990,
            sandbox_id: "sb_x".into(),
            source: std::io::Error::other("refused").into(),
        };
        let error = unavailable(service, "sb_x", &error);
        let text = format!("{error:?}");
        assert!(
            text.contains("FeatureUnavailable") && text.contains("`desktop` template") && text.contains("49990"),
            "{text}"
        );
    }
}
