//! `ANY /v1/sandboxes/{id}/code/{*rest}`: the code-interpreter API, relayed to the gateway that the
//! `code-interpreter` template runs inside the sandbox on port [`CODE_PORT`] (`/execute`, `/contexts`,
//! `/runs`, `/artifacts`, … without the `/v1/sandboxes/{id}/code` prefix); see [`super::guest_service`].

use axum::extract::{Request, State};
use axum::response::Response;

use super::auth::Authenticated;
use super::extract::Path;
use super::guest_service::{self, GuestService};
use super::{ApiError, AppState};

/// The port the code-interpreter gateway listens on inside its sandbox.
pub const CODE_PORT: u16 = 8888;

/// The code-interpreter gateway.
const GATEWAY: GuestService = GuestService { port: CODE_PORT, what: "code interpreter", template: "code-interpreter" };

/// Relays one code-interpreter request to the sandbox's gateway and streams the answer back.
pub async fn relay(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((id, rest)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    guest_service::relay(&state, &tenant, &id, &rest, request, GATEWAY).await
}
