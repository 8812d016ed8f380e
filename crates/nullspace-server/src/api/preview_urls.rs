//! Preview URL routes: issue direct (query/cookie token) and proxy (header token) grants for a sandbox
//! port, list them with their usage counters, and revoke them. The proxy itself is in `proxy.rs`.

use super::extract::{Body, Path, Query};
use axum::extract::State;
use axum::Json;
use nullspace_types::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::{ApiError, AppState};
use crate::clock;
use crate::control::preview_grants::{
    grant_status, AuthMode, IssuedGrant, DEFAULT_GRANT_TTL_SECS, EDGE_TOKEN_PARAM, MAX_GRANT_TTL_SECS,
    PROXY_TOKEN_HEADER,
};
use crate::store::preview_grants::PreviewGrantRecord;

/// `PreviewGrantInfo`: exactly the protocol's keys. Tokens are never part of it (they are not stored).
pub fn grant_json(grant: &PreviewGrantRecord) -> Value {
    let direct = grant.auth_mode == AuthMode::Direct.as_str();
    json!({
        "id": grant.id,
        "sandbox_id": grant.sandbox_id,
        "port": grant.port,
        "auth_mode": grant.auth_mode,
        "bootstrap_transport": if direct { "query" } else { "header" },
        "status": grant_status(grant, clock::now_ms()),
        "token_kinds": ["http_port", "websocket_port"],
        "principal_kind": grant.principal_kind,
        "principal_id": grant.principal_id,
        "issued_at": grant.issued_at,
        "expires_at": clock::ms_to_rfc3339(grant.expires_at_ms),
        "revoked_at": grant.revoked_at,
        "first_used_at": grant.first_used_at,
        "last_used_at": grant.last_used_at,
        "use_count": grant.use_count,
        "http_request_count": grant.http_request_count,
        "websocket_connection_count": grant.websocket_connection_count,
        "bytes_in_count": grant.bytes_in_count,
        "bytes_out_count": grant.bytes_out_count,
        "last_error_code": grant.last_error_code,
        "last_error_at": grant.last_error_at,
        "disabled_at": Value::Null,
        "created_at": grant.issued_at,
        "updated_at": grant.updated_at,
    })
}

fn parse_port(port: &str) -> Result<u16, ApiError> {
    port.parse::<u16>()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| ApiError::invalid(format!("port must be between 1 and 65535, got {port:?}")))
}

fn ttl(expires_in_seconds: Option<i64>) -> Result<u64, ApiError> {
    let Some(seconds) = expires_in_seconds else { return Ok(DEFAULT_GRANT_TTL_SECS) };
    u64::try_from(seconds).ok().filter(|s| (1..=MAX_GRANT_TTL_SECS).contains(s)).ok_or_else(|| {
        ApiError::invalid(format!("expires_in_seconds must be between 1 and {MAX_GRANT_TTL_SECS}, got {seconds}"))
    })
}

fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|error| ApiError::invalid(format!("invalid {what} body: {error}")))
}

fn preview_url(state: &AppState, issued: &IssuedGrant) -> Json<Value> {
    let host = state.preview.config().host(&issued.record.sandbox_id, issued.record.port);
    Json(json!({
        "grant": grant_json(&issued.record),
        "url": format!("http://{host}/?{EDGE_TOKEN_PARAM}={}", issued.token),
        "websocket_url": format!("ws://{host}/?{EDGE_TOKEN_PARAM}={}", issued.token),
        "access_token_expires_at": clock::ms_to_rfc3339(issued.record.expires_at_ms),
        "access_token_transport": "query",
    }))
}

/// `GET /v1/sandboxes/{id}/ports/{port}/preview-url`: a direct grant with the default lifetime.
pub async fn get_preview_url(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, port)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let port = parse_port(&port)?;
    let issued = state.preview.issue(&tenant, &id, port, AuthMode::Direct, DEFAULT_GRANT_TTL_SECS).await?;
    Ok(preview_url(&state, &issued))
}

/// Body of `POST …/signed-preview-url`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignedPreviewRequest {
    expires_in_seconds: Option<i64>,
}

/// `POST /v1/sandboxes/{id}/ports/{port}/signed-preview-url`: a direct grant with the asked lifetime.
pub async fn signed_preview_url(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, port)): Path<(String, String)>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let port = parse_port(&port)?;
    let request: SignedPreviewRequest = body(&bytes, "signed-preview-url")?;
    let ttl = ttl(request.expires_in_seconds)?;
    let issued = state.preview.issue(&tenant, &id, port, AuthMode::Direct, ttl).await?;
    Ok(preview_url(&state, &issued))
}

/// Body of `POST …/preview-proxy-target`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProxyTargetRequest {
    expires_in_seconds: Option<i64>,
    transports: Option<Vec<String>>,
    include_traffic_token_hint: Option<bool>,
}

/// `POST /v1/sandboxes/{id}/ports/{port}/preview-proxy-target`: a proxy grant for a customer-run reverse
/// proxy: upstream URLs without any token, and the token to send in the header.
pub async fn preview_proxy_target(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, port)): Path<(String, String)>,
    Body(bytes): Body,
) -> Result<Json<Value>, ApiError> {
    let port = parse_port(&port)?;
    let request: ProxyTargetRequest = body(&bytes, "preview-proxy-target")?;
    let ttl = ttl(request.expires_in_seconds)?;
    let transports = request.transports.unwrap_or_else(|| vec!["http".to_owned(), "websocket".to_owned()]);
    if transports.is_empty() {
        return Err(ApiError::invalid("transports must name at least one of http, websocket"));
    }
    if let Some(unknown) = transports.iter().find(|t| !matches!(t.as_str(), "http" | "websocket")) {
        return Err(ApiError::invalid(format!("unknown transport {unknown:?}; use http and/or websocket")));
    }
    let issued = state.preview.issue(&tenant, &id, port, AuthMode::Proxy, ttl).await?;
    let host = state.preview.config().host(&id, port);
    let mut target = json!({
        "grant": grant_json(&issued.record),
        "sandbox_id": id,
        "port": port,
        "token_header_name": PROXY_TOKEN_HEADER,
        "expires_at": clock::ms_to_rfc3339(issued.record.expires_at_ms),
        "token_transport": "header",
        "required_forwarded_headers": ["host"],
        "warnings": [],
    });
    let object = target.as_object_mut().expect("a json object");
    if transports.iter().any(|t| t == "http") {
        object.insert("http_url".into(), json!(format!("http://{host}/")));
        object.insert("http_token".into(), json!(issued.token));
    }
    if transports.iter().any(|t| t == "websocket") {
        object.insert("websocket_url".into(), json!(format!("ws://{host}/")));
        object.insert("websocket_token".into(), json!(issued.token));
    }
    if request.include_traffic_token_hint.unwrap_or(true) {
        // This server has no private traffic tokens: the header token alone admits traffic.
        object.insert("traffic_access_required".into(), json!(false));
    }
    Ok(Json(target))
}

/// Query of `GET /v1/sandboxes/{id}/preview-urls`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    port: Option<String>,
}

/// `GET /v1/sandboxes/{id}/preview-urls?port=`.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let port = query.port.as_deref().filter(|p| !p.is_empty()).map(parse_port).transpose()?;
    let grants = state.preview.list(&tenant, &id, port).await?;
    Ok(Json(json!({ "items": grants.iter().map(grant_json).collect::<Vec<_>>() })))
}

/// `DELETE /v1/sandboxes/{id}/preview-urls/{grant_id}`.
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, grant_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let grant = state.preview.revoke(&tenant, &id, &grant_id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("preview grant {grant_id} not found for sandbox {id}; list them with GET /v1/sandboxes/{id}/preview-urls"),
        )
    })?;
    Ok(Json(json!({ "success": true, "grant": grant_json(&grant) })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_lifetimes_are_validated() {
        assert_eq!(parse_port("8080").unwrap(), 8080);
        for bad in ["0", "65536", "-1", "http", ""] {
            assert!(parse_port(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ttl(None).unwrap(), DEFAULT_GRANT_TTL_SECS);
        assert_eq!(ttl(Some(1)).unwrap(), 1);
        assert_eq!(ttl(Some(MAX_GRANT_TTL_SECS as i64)).unwrap(), MAX_GRANT_TTL_SECS);
        for bad in [0, -5, MAX_GRANT_TTL_SECS as i64 + 1] {
            assert!(ttl(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn grant_info_has_exactly_the_protocol_keys() {
        let grant = PreviewGrantRecord {
            id: "pvg_a".into(),
            tenant_id: "tn_a".into(),
            sandbox_id: "sb_a".into(),
            port: 8080,
            auth_mode: "proxy".into(),
            token_hash: "secret-hash".into(),
            principal_kind: "api_key".into(),
            principal_id: Some("tn_a".into()),
            issued_at: "2030-01-01T00:00:00.000Z".into(),
            expires_at_ms: i64::MAX / 2,
            revoked_at: None,
            first_used_at: None,
            last_used_at: None,
            use_count: 1,
            http_request_count: 1,
            websocket_connection_count: 0,
            bytes_in_count: 2,
            bytes_out_count: 3,
            last_error_code: None,
            last_error_at: None,
            updated_at: "2030-01-01T00:00:00.000Z".into(),
        };
        let value = grant_json(&grant);
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut expected = vec![
            "id",
            "sandbox_id",
            "port",
            "auth_mode",
            "bootstrap_transport",
            "status",
            "token_kinds",
            "principal_kind",
            "principal_id",
            "issued_at",
            "expires_at",
            "revoked_at",
            "first_used_at",
            "last_used_at",
            "use_count",
            "http_request_count",
            "websocket_connection_count",
            "bytes_in_count",
            "bytes_out_count",
            "last_error_code",
            "last_error_at",
            "disabled_at",
            "created_at",
            "updated_at",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(value["bootstrap_transport"], "header");
        assert_eq!(value["status"], "active");
        assert!(!value.to_string().contains("secret-hash"));
    }
}
