//! Authentication: `Authorization: Bearer <key>` resolves to a tenant, or the request gets a 401; a
//! known key past its rate limit gets a 429.

use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use nullspace_types::ErrorCode;

use super::{ApiError, AppState};
use crate::store::Tenant;

/// The authenticated tenant of a request.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Tenant);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let State(state) = State::<AppState>::from_request_parts(parts, state).await.map_err(|_| unauthorized())?;
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or_else(unauthorized)?;
        match state.control.store().tenant_for_key(key).await {
            Ok(Some(tenant)) => {
                // Counted per key once the key is known, so unknown keys never take room in the limiter.
                state.limits.check_rate(&crate::store::hash_key(key))?;
                Ok(Self(tenant))
            }
            Ok(None) => Err(unauthorized()),
            Err(error) => {
                tracing::error!(error = %crate::error_chain(&error), "api key lookup failed");
                Err(ApiError::new(ErrorCode::Internal, "internal error; see the server log for details"))
            }
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "missing or invalid API key; send `Authorization: Bearer <key>` (create one with `nullspace api-key create`)",
    )
}
