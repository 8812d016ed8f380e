//! Template build routes: build with an SSE log stream, background builds, status polling by offset,
//! the log stream (`follow`), cancel, retry, promote, validate and plan.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use nullspace_types::template_api::BuildRequest;
use nullspace_types::template_wire::{BuildData, BuildStatusSnapshot, ContextManifest, PlanResponse, ValidateResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::auth::Authenticated;
use super::extract::{json_object, parse_object, Body, Path, Query};
use super::{ApiError, AppState};
use crate::control::template_jobs::RetryRequest;
use crate::control::template_validate as validate;
use crate::control::Control;
use crate::store::template_builds::BuildRecord;
use crate::store::Tenant;

/// Longest silence on a log stream before a `: ping` comment.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// Entry kinds that end a build's log.
const TERMINAL_KINDS: [&str; 3] = ["end", "error", "cancelled"];

async fn build_data(control: &Control, record: &BuildRecord) -> Result<BuildData, ApiError> {
    Ok(control.build_data(record).await?)
}

/// `POST /v1/templates/builds`: 202 with the queued build.
pub async fn submit(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Body(body): Body,
) -> Result<(StatusCode, Json<BuildData>), ApiError> {
    let request: BuildRequest = parse_object(&body, "template build")?;
    let record = state.control.submit_build(&tenant, request, None).await?;
    Ok((StatusCode::ACCEPTED, Json(build_data(&state.control, &record).await?)))
}

/// `POST /v1/templates/build`: queues the build and streams its log until the end (SSE).
pub async fn build(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Body(body): Body,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let request: BuildRequest = parse_object(&body, "template build")?;
    let record = state.control.submit_build(&tenant, request, None).await?;
    Ok(log_stream(state.control.clone(), record.id, 0, true))
}

/// Query of the status and log routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OffsetQuery {
    offset: Option<u64>,
    cursor: Option<String>,
    follow: Option<bool>,
}

impl OffsetQuery {
    fn offset(&self) -> Result<u64, ApiError> {
        match (&self.offset, self.cursor.as_deref().filter(|cursor| !cursor.is_empty())) {
            (Some(offset), _) => Ok(*offset),
            (None, Some(cursor)) => {
                cursor.parse().map_err(|_| ApiError::invalid(format!("cursor {cursor:?} is not a log offset")))
            }
            (None, None) => Ok(0),
        }
    }
}

async fn snapshot(
    control: &Control,
    tenant: &Tenant,
    build_id: &str,
    offset: u64,
) -> Result<BuildStatusSnapshot, ApiError> {
    let record = control.build_record(tenant, build_id).await?;
    let entries = control.store().build_logs(build_id, offset).await.map_err(crate::control::ControlError::from)?;
    let next_offset = entries.last().map_or(offset, |(last, _)| last + 1);
    let entries = entries.into_iter().filter_map(|(_, entry)| serde_json::from_str(&entry).ok()).collect();
    Ok(BuildStatusSnapshot { build: build_data(control, &record).await?, entries, next_offset })
}

/// `GET /v1/templates/builds/{id}?offset=N`.
pub async fn status(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(build_id): Path<String>,
    Query(query): Query<OffsetQuery>,
) -> Result<Json<BuildStatusSnapshot>, ApiError> {
    Ok(Json(snapshot(&state.control, &tenant, &build_id, query.offset()?).await?))
}

/// `GET /v1/templates/builds/{id}/logs?follow=&offset=|cursor=` (SSE).
pub async fn logs(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(build_id): Path<String>,
    Query(query): Query<OffsetQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    state.control.build_record(&tenant, &build_id).await?;
    let offset = query.offset()?;
    Ok(log_stream(state.control.clone(), build_id, offset, query.follow.unwrap_or(false)))
}

struct Follow {
    control: Control,
    build_id: String,
    offset: u64,
    follow: bool,
    /// Changes when entries of the live build are stored; `None` once the build is not live.
    written: Option<watch::Receiver<u64>>,
    done: bool,
}

/// The build's entries from `offset` as SSE events; with `follow`, new ones as they are stored, until a
/// terminal entry (or the build is no longer running).
fn log_stream(
    control: Control,
    build_id: String,
    offset: u64,
    follow: bool,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribed before the first read, so no entry stored in between is missed.
    let written = control.live_build(&build_id).map(|live| live.log.subscribe());
    let state = Follow { control, build_id, offset, follow, written, done: false };
    let batches = futures::stream::unfold(state, |mut state| async move {
        let events = next_batch(&mut state).await?;
        Some((futures::stream::iter(events.into_iter().map(Ok)), state))
    });
    let stream = futures::StreamExt::flatten(batches);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(PING_INTERVAL).text(" ping"))
}

async fn next_batch(state: &mut Follow) -> Option<Vec<Event>> {
    loop {
        if state.done {
            return None;
        }
        let entries = match state.control.store().build_logs(&state.build_id, state.offset).await {
            Ok(entries) => entries,
            Err(error) => {
                tracing::error!(build_id = %state.build_id, error = %crate::error_chain(&error), "reading a build log failed");
                return None;
            }
        };
        if let Some((last, _)) = entries.last() {
            state.offset = last + 1;
            let mut events = Vec::with_capacity(entries.len());
            for (_, entry) in entries {
                let kind = serde_json::from_str::<Value>(&entry)
                    .ok()
                    .and_then(|value| value["kind"].as_str().map(str::to_owned));
                events.push(Event::default().data(entry));
                if kind.is_some_and(|kind| TERMINAL_KINDS.contains(&kind.as_str())) {
                    state.done = true;
                    break;
                }
            }
            return Some(events);
        }
        if !state.follow {
            return None;
        }
        match state.written.as_mut() {
            None => return None,
            Some(written) => {
                if written.changed().await.is_err() {
                    // The build's log is closed: read what is left once more, then stop.
                    state.written = None;
                    state.follow = false;
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CancelBody {
    reason: Option<String>,
}

/// `POST /v1/templates/builds/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(build_id): Path<String>,
    Body(body): Body,
) -> Result<Json<BuildStatusSnapshot>, ApiError> {
    let request: CancelBody = match json_object(&body, "cancel")? {
        Some(map) => super::extract::from_object(map, "cancel")?,
        None => CancelBody::default(),
    };
    state.control.cancel_build(&tenant, &build_id, request.reason.as_deref()).await?;
    Ok(Json(snapshot(&state.control, &tenant, &build_id, 0).await?))
}

/// `POST /v1/templates/builds/{id}/retry`.
pub async fn retry(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(build_id): Path<String>,
    Body(body): Body,
) -> Result<(StatusCode, Json<BuildData>), ApiError> {
    let request: RetryRequest = match json_object(&body, "retry")? {
        Some(map) => super::extract::from_object(map, "retry")?,
        None => RetryRequest::default(),
    };
    let record = state.control.retry_build(&tenant, &build_id, request).await?;
    Ok((StatusCode::ACCEPTED, Json(build_data(&state.control, &record).await?)))
}

#[derive(Deserialize)]
struct PromoteBody {
    tag: String,
}

/// `POST /v1/templates/builds/{id}/promote`.
pub async fn promote(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(build_id): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let PromoteBody { tag } = parse_object(&body, "promote")?;
    let info = state.control.promote_build(&tenant, &build_id, &tag).await?;
    Ok(Json(serde_json::to_value(info).unwrap_or_default()))
}

/// `POST /v1/templates/validate`.
pub async fn validate_request(
    Authenticated(_tenant): Authenticated,
    Body(body): Body,
) -> Result<Json<ValidateResponse>, ApiError> {
    let request: BuildRequest = parse_object(&body, "template build")?;
    let (errors, warnings) = validate::check(&request);
    Ok(Json(ValidateResponse { valid: errors.is_empty(), errors, warnings }))
}

/// `POST /v1/templates/plan`.
pub async fn plan(Authenticated(_tenant): Authenticated, Body(body): Body) -> Result<Json<PlanResponse>, ApiError> {
    let request: BuildRequest = parse_object(&body, "template build")?;
    let (errors, warnings) = validate::check(&request);
    if !errors.is_empty() {
        let message = errors.iter().map(|issue| issue.message.as_str()).collect::<Vec<_>>().join("; ");
        return Err(ApiError::invalid(message));
    }
    let stored = validate::storable(&request);
    let context_manifest = validate::context_digest(&request).map(|digest| ContextManifest {
        context_manifest_id: digest.clone(),
        context_digest: digest,
        file_count: request.build_context.as_ref().map_or(0, |context| {
            context.files.iter().filter(|f| f.entry_type.as_deref() != Some("dir")).count() as u64
        }),
    });
    let steps: Vec<Value> =
        request.steps.iter().enumerate().map(|(index, step)| json!({"index": index, "step": step})).collect();
    let build_plan = json!({
        "base_image": request.base_image,
        "dockerfile": request.dockerfile.is_some(),
        "steps": steps,
        "skip_cache": request.skip_cache.unwrap_or(false),
    });
    Ok(Json(PlanResponse {
        build_backend: "native".to_owned(),
        source_type: validate::source_type(&request).to_owned(),
        source_digest: validate::digest(stored.to_string().as_bytes()),
        context_manifest,
        dockerfile_digest: request.dockerfile.as_deref().map(|text| validate::digest(text.as_bytes())),
        build_plan,
        warnings,
        requires_base_image_auth: false,
    }))
}
