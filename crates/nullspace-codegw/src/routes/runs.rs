//! `…/runs` routes: create (queued), list with filters and cursor, get, cancel.

use axum::extract::State;
use axum::Json;
use nullspace_types::code_api::{CodeRun, CreateRunRequest, ListRunsQuery, Page};

use super::extract::{JsonBody, PathParams, QueryParams};
use crate::error::GatewayResult;
use crate::state::Shared;

/// `POST /runs`.
pub async fn create(
    State(gateway): State<Shared>,
    JsonBody(request): JsonBody<CreateRunRequest>,
) -> GatewayResult<Json<CodeRun>> {
    crate::runs::create(&gateway, request).map(Json)
}

/// `GET /runs`.
pub async fn list(
    State(gateway): State<Shared>,
    QueryParams(query): QueryParams<ListRunsQuery>,
) -> GatewayResult<Json<Page<CodeRun>>> {
    gateway.runs.list(&query).map(Json)
}

/// `GET /runs/{id}`.
pub async fn get(State(gateway): State<Shared>, PathParams(id): PathParams<String>) -> GatewayResult<Json<CodeRun>> {
    gateway.runs.get(&id).map(Json)
}

/// `POST /runs/{id}/cancel`.
pub async fn cancel(State(gateway): State<Shared>, PathParams(id): PathParams<String>) -> GatewayResult<Json<CodeRun>> {
    crate::runs::cancel(&gateway, &id).await.map(Json)
}
