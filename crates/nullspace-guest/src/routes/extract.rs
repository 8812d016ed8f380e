//! Request extractors whose rejections speak the protocol's error envelope (`invalid_request`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};

use crate::error::GuestError;

/// A JSON body; malformed ones are answered with `invalid_request`.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(GuestError))]
pub struct JsonBody<T>(pub T);

/// A query string; malformed ones are answered with `invalid_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(GuestError))]
pub struct QueryParams<T>(pub T);

/// Path parameters; malformed ones are answered with `invalid_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(GuestError))]
pub struct PathParams<T>(pub T);

impl From<JsonRejection> for GuestError {
    fn from(rejection: JsonRejection) -> Self {
        GuestError::invalid(format!("invalid json body: {}", rejection.body_text().to_lowercase()))
    }
}

impl From<QueryRejection> for GuestError {
    fn from(rejection: QueryRejection) -> Self {
        GuestError::invalid(format!("invalid query: {}", rejection.body_text().to_lowercase()))
    }
}

impl From<PathRejection> for GuestError {
    fn from(rejection: PathRejection) -> Self {
        GuestError::invalid(format!("invalid path parameter: {}", rejection.body_text().to_lowercase()))
    }
}
