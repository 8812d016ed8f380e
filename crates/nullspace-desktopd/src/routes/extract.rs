//! Request extractors whose rejections speak the protocol's error envelope (`invalid_request`).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts};

use crate::error::DesktopError;

/// A JSON body; malformed ones are answered with `invalid_request`.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(DesktopError))]
pub struct JsonBody<T>(pub T);

/// Path parameters; malformed ones are answered with `invalid_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(DesktopError))]
pub struct PathParams<T>(pub T);

impl From<JsonRejection> for DesktopError {
    fn from(rejection: JsonRejection) -> Self {
        DesktopError::invalid(format!("invalid json body: {}", rejection.body_text().to_lowercase()))
    }
}

impl From<PathRejection> for DesktopError {
    fn from(rejection: PathRejection) -> Self {
        DesktopError::invalid(format!("invalid path parameter: {}", rejection.body_text().to_lowercase()))
    }
}
