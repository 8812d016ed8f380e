//! Build-context blob routes: the preflight and the upload of one blob (streamed, any size up to the
//! blob limit; the server checks its sha256).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::Json;
use nullspace_types::template_wire::{PreflightRequest, PreflightResponse};
use nullspace_types::ErrorCode;

use super::auth::Authenticated;
use super::extract::{parse_object, Body, Path};
use super::{ApiError, AppState};
use crate::control::template_blobs::BlobError;

/// `POST /v1/templates/blobs/preflight`.
pub async fn preflight(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Body(body): Body,
) -> Result<Json<PreflightResponse>, ApiError> {
    let request: PreflightRequest = parse_object(&body, "blob preflight")?;
    Ok(Json(state.control.preflight_blobs(&tenant.id, request).await?))
}

/// `PUT /v1/templates/blobs/{blob_id}`.
pub async fn put(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(blob_id): Path<String>,
    request: Request,
) -> Result<StatusCode, ApiError> {
    let body = request.into_body().into_data_stream();
    match state.control.put_blob(&tenant.id, &blob_id, body).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(error @ (BlobError::BadId(_) | BlobError::Body(_))) => Err(ApiError::invalid(error.to_string())),
        Err(error @ (BlobError::Mismatch { .. } | BlobError::TooLarge)) => {
            Err(ApiError::new(ErrorCode::FileUploadError, error.to_string()))
        }
        Err(error @ (BlobError::Io(_) | BlobError::Store(_))) => {
            tracing::error!(error = %crate::error_chain(&error), "storing a template blob failed");
            Err(ApiError::new(ErrorCode::Internal, "storing the blob failed; see the server log"))
        }
    }
}
