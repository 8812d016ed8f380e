//! Entry points of the fuzz targets in `fuzz/` (feature `fuzzing`, never in a release build): the
//! server's parsers of untrusted input (request bodies and the pure checks the handlers run before
//! touching the store or a node, preview hosts, cookies, query tokens, signed file URLs), each called
//! exactly as its handler calls it. Refusals come back as the HTTP status the client would see.

use std::collections::BTreeMap;

use axum::http::header::{HeaderMap, HeaderName, HeaderValue};
use axum::http::Uri;
use axum::response::IntoResponse;
use nullspace_types::sandbox::{CreateSandboxRequest, SetTimeoutRequest};
use nullspace_types::template_api::BuildRequest;
use nullspace_types::volume::CreateVolumeRequest;
use serde_json::Value;

use super::extract::{from_object, json_object, parse_object};
use super::ApiError;
use crate::control::preview_grants::{self, Credential, PreviewConfig, EDGE_TOKEN_COOKIE, EDGE_TOKEN_PARAM};
use crate::control::template_validate as build_validate;
use crate::control::validate;
use crate::control::warm_pool_claims::WarmPoolAsk;
use crate::control::ControlError;
use crate::signing::{FileClaim, FileOperation, SignError, Signer};

/// The HTTP status of a refusal.
fn status(error: impl Into<ApiError>) -> u16 {
    error.into().into_response().status().as_u16()
}

/// `POST /v1/sandboxes`: the body parsed as the handler does, then every check of the create path that
/// needs no store, node or template (sizes are checked against the host's budget later, not here).
pub fn sandbox_create(body: &[u8]) -> Result<(), u16> {
    let Some(map) = json_object(body, "sandbox create").map_err(status)? else {
        return Ok(());
    };
    validate::create_extras(&map).map_err(status)?;
    if let Some(value) = map.get("warm_pool").filter(|value| !value.is_null()) {
        serde_json::from_value::<WarmPoolAsk>(value.clone())
            .map_err(|error| status(ApiError::invalid(format!("invalid warm_pool: {error}"))))?;
    }
    let request: CreateSandboxRequest = from_object(map, "sandbox create").map_err(status)?;
    if let Some(timeout_ms) = request.timeout_ms {
        validate::timeout(timeout_ms).map_err(status)?;
    }
    validate::envs(&request.envs.clone().unwrap_or_default()).map_err(status)?;
    if let Some(cwd) = request.cwd.as_deref().filter(|cwd| !cwd.is_empty()) {
        validate::cwd(cwd).map_err(status)?;
    }
    if let Some(metadata) = &request.metadata {
        validate::metadata(metadata).map_err(status)?;
    }
    if request.desktop.is_some() {
        crate::control::desktop::Desktop::resolve(request.desktop.as_ref()).map_err(status)?;
    }
    crate::control::network_policy(request.internet_access, request.network.as_ref()).map_err(status)?;
    let mut mount_paths: Vec<String> = Vec::new();
    for mount in request.volumes.as_deref().unwrap_or_default() {
        let path = nullspace_node::volumes::validate_mount_path(&mount.mount_path)
            .map_err(|error| status(ControlError::Volume(error)))?;
        assert!(path.starts_with('/') && !path.split('/').any(|part| part == ".."), "mount path {path:?}");
        if nullspace_node::volumes::nested_mount(mount_paths.iter().map(String::as_str), &path).is_some() {
            return Err(status(ApiError::invalid("mount paths nest")));
        }
        if let Some(subpath) = mount.subpath.as_deref() {
            nullspace_node::volumes::subpath_string(subpath).map_err(|error| status(ControlError::Volume(error)))?;
        }
        mount_paths.push(path);
    }
    Ok(())
}

/// `POST /v1/sandboxes/{id}/timeout`.
pub fn set_timeout(body: &[u8]) -> Result<(), u16> {
    let request: SetTimeoutRequest = parse_object(body, "timeout").map_err(status)?;
    let timeout_ms = request.timeout_ms.ok_or_else(|| status(ApiError::invalid("timeout_ms is required")))?;
    validate::timeout(timeout_ms).map_err(status)
}

/// `POST /v1/volumes`: the body and the volume name.
pub fn volume_create(body: &[u8]) -> Result<(), u16> {
    let request: CreateVolumeRequest =
        serde_json::from_slice(body).map_err(|error| status(ApiError::invalid(error.to_string())))?;
    crate::control::validate_volume_name(request.name.trim()).map_err(status)
}

/// `POST /v1/templates/builds` (and `/validate`, `/plan`): the body, its validation, the name and tags,
/// and what would be stored.
pub fn template_build(body: &[u8]) -> Result<(), u16> {
    let request: BuildRequest = parse_object(body, "template build").map_err(status)?;
    let (errors, _warnings) = build_validate::check(&request);
    if !errors.is_empty() {
        return Err(status(ApiError::invalid("invalid build")));
    }
    build_validate::name_and_tags(&request).map_err(|message| status(ApiError::invalid(message)))?;
    let stored = build_validate::storable(&request);
    assert!(stored.is_object(), "a stored build request is an object");
    let _ = build_validate::context_digest(&request);
    Ok(())
}

/// `{port}-{sandbox_id}` of a preview host below `domain`, as the proxy reads the `Host`.
pub fn preview_host(host: &str, domain: &str) -> Option<(u16, String)> {
    super::proxy::parse_preview_host(host, domain).map(|target| (target.port, target.sandbox_id))
}

/// The preview host the server hands out for `sandbox_id` and `port`.
pub fn preview_host_name(domain: &str, api_port: u16, sandbox_id: &str, port: u16) -> String {
    PreviewConfig { domain: domain.to_owned(), api_port }.host(sandbox_id, port)
}

/// How a preview request presented its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewCredential {
    /// `?edge_token=`.
    Query(String),
    /// The edge cookie.
    Cookie(String),
    /// The proxy header.
    Header(String),
}

/// A preview request's headers (pairs that are not valid header names or values are dropped, as
/// hyper would refuse them) and its path and query.
pub struct PreviewRequest {
    headers: HeaderMap,
    uri: Uri,
}

impl PreviewRequest {
    /// The request, or `None` when `uri` is not a valid request target.
    pub fn new(headers: &[(&[u8], &[u8])], uri: &str) -> Option<Self> {
        let uri: Uri = uri.parse().ok()?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
                map.append(name, value);
            }
        }
        Some(Self { headers: map, uri })
    }

    /// The token the proxy would check.
    pub fn credential(&self) -> Option<PreviewCredential> {
        super::proxy::credential(&self.headers, &self.uri).map(|credential| match credential {
            Credential::Query(token) => PreviewCredential::Query(token.to_owned()),
            Credential::Cookie(token) => PreviewCredential::Cookie(token.to_owned()),
            Credential::Header(token) => PreviewCredential::Header(token.to_owned()),
        })
    }

    /// The edge cookie's value, as the proxy reads it.
    pub fn edge_cookie(&self) -> Option<String> {
        super::proxy::cookie(&self.headers, EDGE_TOKEN_COOKIE).map(str::to_owned)
    }

    /// The `Cookie` header forwarded to the sandbox (the edge cookie removed), if any is left.
    pub fn forwarded_cookie(&self) -> Option<String> {
        super::proxy::strip_cookie(&self.headers, EDGE_TOKEN_COOKIE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// The query forwarded to the sandbox (the edge token removed), if any is left.
    pub fn forwarded_query(&self) -> Option<String> {
        super::proxy::strip_query_param(self.uri.query().unwrap_or(""), EDGE_TOKEN_PARAM)
    }
}

/// Whether `query` carries an edge token, as the proxy reads it.
pub fn query_has_edge_token(query: &str) -> bool {
    super::proxy::query_param(query, EDGE_TOKEN_PARAM).is_some()
}

/// Whether the cookie line `cookie` carries the edge cookie, as the proxy reads it.
pub fn cookie_has_edge_token(cookie: &str) -> bool {
    HeaderValue::from_str(cookie).is_ok_and(|value| {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, value);
        super::proxy::cookie(&headers, EDGE_TOKEN_COOKIE).is_some()
    })
}

/// The grant id and secret of a preview token, if it is well formed.
pub fn split_preview_token(token: &str) -> Option<(String, String)> {
    preview_grants::split_token(token).map(|(id, secret)| (id.to_owned(), secret.to_owned()))
}

/// A signed file URL's claim, in the fields the fuzz target varies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Sandbox id.
    pub sandbox_id: String,
    /// Path in the sandbox.
    pub path: String,
    /// Upload (else download).
    pub upload: bool,
    /// User.
    pub user: Option<String>,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

fn signer() -> Signer {
    Signer::from_key([0x5a; 32])
}

/// The token the server signs for `claim`.
pub fn sign_file_claim(claim: &Claim) -> String {
    signer().sign(&FileClaim {
        sandbox_id: claim.sandbox_id.clone(),
        tenant_id: "tn_fuzz".into(),
        operation: if claim.upload { FileOperation::Upload } else { FileOperation::Download },
        path: claim.path.clone(),
        user: claim.user.clone(),
        archive: false,
        expires_at: claim.expires_at,
        volume_id: None,
    })
}

/// Why a signed file token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Not authentic.
    Invalid,
    /// Past its expiry.
    Expired,
}

/// The claim of a signed file token at `now`, as the signed-file routes check it.
pub fn verify_file_token(token: &str, now: i64) -> Result<Claim, TokenRefusal> {
    match signer().verify(token, now) {
        Ok(claim) => Ok(Claim {
            sandbox_id: claim.sandbox_id,
            path: claim.path,
            upload: claim.operation == FileOperation::Upload,
            user: claim.user,
            expires_at: claim.expires_at,
        }),
        Err(SignError::Invalid) => Err(TokenRefusal::Invalid),
        Err(SignError::Expired) => Err(TokenRefusal::Expired),
    }
}

/// The path below the noVNC directory `GET /v1/desktop/viewer-assets/{*path}` would read.
pub fn viewer_asset_path(path: &str) -> Option<std::path::PathBuf> {
    super::viewer_assets::safe_relative(path)
}

/// A `metadata=` list filter (`GET /v1/sandboxes?metadata=`).
pub fn metadata_filter(text: &str) -> Result<BTreeMap<String, Value>, u16> {
    super::sandboxes::metadata_filter(Some(text)).map(|map| map.into_iter().collect()).map_err(status)
}
