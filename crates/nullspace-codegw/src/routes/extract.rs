//! Request extractors whose rejections speak the protocol's error envelope (`invalid_request`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};

use crate::error::GatewayError;

/// A JSON body; malformed ones are answered with `invalid_request`.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(GatewayError))]
pub struct JsonBody<T>(pub T);

/// A query string; malformed ones are answered with `invalid_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(GatewayError))]
pub struct QueryParams<T>(pub T);

/// Path parameters; malformed ones are answered with `invalid_request`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(GatewayError))]
pub struct PathParams<T>(pub T);

impl From<JsonRejection> for GatewayError {
    fn from(rejection: JsonRejection) -> Self {
        GatewayError::invalid(format!("invalid json body: {}", rejection.body_text().to_lowercase()))
    }
}

impl From<QueryRejection> for GatewayError {
    fn from(rejection: QueryRejection) -> Self {
        GatewayError::invalid(format!("invalid query: {}", rejection.body_text().to_lowercase()))
    }
}

impl From<PathRejection> for GatewayError {
    fn from(rejection: PathRejection) -> Self {
        GatewayError::invalid(format!("invalid path parameter: {}", rejection.body_text().to_lowercase()))
    }
}
