//! Signed file URLs: `POST …/files/download-url` and `…/files/upload-url` mint them (authenticated);
//! `GET|PUT|POST /v1/signed/{token}` use them without the API key, relayed to the guest's raw file routes.

use super::extract::{Multipart, Path};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::Json;
use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use nullspace_types::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::relay::forward;
use super::{ApiError, AppState};
use crate::signing::{FileClaim, FileOperation, SignError};

/// Lifetime of a signed URL when the request names none.
const DEFAULT_EXPIRY_SECS: i64 = 15 * 60;
/// Longest lifetime a signed URL may have.
const MAX_EXPIRY_SECS: i64 = 7 * 24 * 60 * 60;

/// Body of the URL-minting routes.
#[derive(Debug, Deserialize)]
pub struct UrlRequest {
    path: Option<String>,
    user: Option<String>,
    archive_format: Option<String>,
    expires_in_seconds: Option<i64>,
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// What a signed URL reaches.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target<'a> {
    /// A running sandbox's files.
    Sandbox(&'a str),
    /// A volume's files (served by its volume guest).
    Volume(&'a str),
}

pub(super) async fn mint(
    state: &AppState,
    tenant_id: &str,
    target: Target<'_>,
    headers: &HeaderMap,
    body: &[u8],
    operation: FileOperation,
) -> Result<(String, String), ApiError> {
    let request: UrlRequest =
        serde_json::from_slice(body).map_err(|error| ApiError::invalid(format!("invalid body: {error}")))?;
    let path = request.path.filter(|p| !p.is_empty()).ok_or_else(|| ApiError::invalid("path is required"))?;
    let archive = match request.archive_format.as_deref() {
        None => false,
        Some("tar") if operation == FileOperation::Download => true,
        Some(other) => {
            return Err(ApiError::invalid(format!("archive_format {other:?} is not supported; use \"tar\"")))
        }
    };
    let lifetime = request.expires_in_seconds.unwrap_or(DEFAULT_EXPIRY_SECS);
    if !(1..=MAX_EXPIRY_SECS).contains(&lifetime) {
        return Err(ApiError::invalid(format!("expires_in_seconds must be between 1 and {MAX_EXPIRY_SECS}")));
    }
    // The sandbox must exist and run now (the volume must exist); it is checked again when the URL is used.
    let (sandbox_id, volume_id) = match target {
        Target::Sandbox(id) => {
            state.control.guest_for_tenant_id(tenant_id, id).await?;
            (id.to_owned(), None)
        }
        Target::Volume(id) => {
            state.control.volume_for_tenant_id(tenant_id, id).await?;
            (String::new(), Some(id.to_owned()))
        }
    };
    let claim = FileClaim {
        sandbox_id,
        volume_id,
        tenant_id: tenant_id.to_owned(),
        operation,
        path,
        user: request.user.filter(|u| !u.is_empty()),
        archive,
        expires_at: crate::clock::now_ms() / 1000 + lifetime,
    };
    let token = state.signer.sign(&claim);
    Ok((format!("{}/v1/signed/{token}", base_url(headers)), token))
}

/// `POST /v1/sandboxes/{id}/files/download-url`.
pub async fn download_url(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    super::extract::Body(body): super::extract::Body,
) -> Result<Json<Value>, ApiError> {
    let (url, _token) =
        mint(&state, &tenant.id, Target::Sandbox(&id), &headers, &body, FileOperation::Download).await?;
    Ok(Json(json!({ "url": url })))
}

/// `POST /v1/sandboxes/{id}/files/upload-url`.
pub async fn upload_url(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    super::extract::Body(body): super::extract::Body,
) -> Result<Json<Value>, ApiError> {
    let (url, token) = mint(&state, &tenant.id, Target::Sandbox(&id), &headers, &body, FileOperation::Upload).await?;
    Ok(Json(json!({ "url": url, "token": token })))
}

/// The guest a claim's URL reaches and the id to name in errors.
async fn claim_guest(state: &AppState, claim: &FileClaim) -> Result<(nullspace_node::GuestLink, String), ApiError> {
    match &claim.volume_id {
        Some(volume_id) => {
            Ok((state.control.volume_guest_for_tenant_id(&claim.tenant_id, volume_id).await?, volume_id.clone()))
        }
        None => {
            let (_record, guest) = state.control.guest_for_tenant_id(&claim.tenant_id, &claim.sandbox_id).await?;
            Ok((guest, claim.sandbox_id.clone()))
        }
    }
}

fn verify(state: &AppState, token: &str, operation: FileOperation) -> Result<FileClaim, ApiError> {
    let claim = state.signer.verify(token, crate::clock::now_ms() / 1000).map_err(|error| match error {
        SignError::Invalid => ApiError::new(ErrorCode::Unauthorized, error.to_string()),
        SignError::Expired => ApiError::new(ErrorCode::Unauthorized, error.to_string()),
    })?;
    if claim.operation != operation {
        let verb = if operation == FileOperation::Download { "downloads" } else { "uploads" };
        return Err(ApiError::new(ErrorCode::Unauthorized, format!("this signed URL does not allow {verb}")));
    }
    Ok(claim)
}

fn file_query(route: &str, claim: &FileClaim) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("path", &claim.path);
    if let Some(user) = &claim.user {
        query.append_pair("user", user);
    }
    format!("{route}?{}", query.finish())
}

/// `GET /v1/signed/{token}`: the file's bytes, or a tar of the directory for archive URLs.
pub async fn signed_get(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response, ApiError> {
    let claim = verify(&state, &token, FileOperation::Download)?;
    let (guest, target_id) = claim_guest(&state, &claim).await?;
    let route = if claim.archive { "/archive" } else { "/file" };
    forward(&guest, &target_id, Method::GET, &file_query(route, &claim), &HeaderMap::new(), Body::empty()).await
}

/// `PUT /v1/signed/{token}`: the raw body becomes the file.
pub async fn signed_put(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let claim = verify(&state, &token, FileOperation::Upload)?;
    let (guest, target_id) = claim_guest(&state, &claim).await?;
    let mut forwarded = HeaderMap::new();
    for name in ["content-length", "transfer-encoding"] {
        if let Some(value) = headers.get(name) {
            forwarded.insert(name, value.clone());
        }
    }
    forwarded.insert("content-type", "application/octet-stream".parse().expect("static header value"));
    forward(&guest, &target_id, Method::PUT, &file_query("/file", &claim), &forwarded, body).await
}

/// `POST /v1/signed/{token}` with a multipart form: the `file` field becomes the file, streamed.
pub async fn signed_post(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Multipart(mut multipart): Multipart,
) -> Result<Response, ApiError> {
    let claim = verify(&state, &token, FileOperation::Upload)?;
    let (guest, target_id) = claim_guest(&state, &claim).await?;
    let mut field = loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => break field,
            Ok(Some(_other)) => continue,
            Ok(None) => return Err(ApiError::invalid("the multipart form has no `file` field")),
            Err(error) => return Err(ApiError::invalid(format!("invalid multipart body: {error}"))),
        }
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item.map(Frame::data), receiver))
    });
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/octet-stream".parse().expect("static header value"));
    let target = file_query("/file", &claim);
    let upload = forward(&guest, &target_id, Method::PUT, &target, &headers, StreamBody::new(stream));
    let pump = async move {
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if sender.send(Ok(chunk)).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let _ = sender.send(Err(std::io::Error::other(error.to_string()))).await;
                    break;
                }
            }
        }
    };
    let (response, ()) = tokio::join!(upload, pump);
    response
}
