//! Template routes other than builds and blobs: the list (builtins and the caller's templates, a bare
//! array), refs (get, delete, tags, visibility, rename, aliases, builds), the legacy create and delete,
//! name claims and namespaces. Handlers parse, call `control`, and render the wire types.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use nullspace_types::template_api::BuildRequest;
use nullspace_types::template_wire::{AliasInfo, BuildList, NameClaim, NamespaceInfo, TagInfo};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Authenticated;
use super::extract::{parse_object, Body, Path, Query};
use super::sandboxes::{project, FieldsQuery};
use super::{ApiError, AppState};
use crate::control::template_manage::BuildQuery;

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `GET /v1/templates`.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Query(query): Query<FieldsQuery>,
) -> Result<Json<Value>, ApiError> {
    let infos = state.control.list_templates(&tenant).await?;
    let fields = query.fields();
    Ok(Json(Value::Array(infos.iter().map(|info| project(to_value(info), fields)).collect())))
}

/// `POST /v1/templates` (legacy): queues a build and answers 201 with the template id it produces.
pub async fn legacy_create(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Body(body): Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut request: BuildRequest = parse_object(&body, "template")?;
    if !request.envs.is_empty() {
        let runtime = request.runtime_config.get_or_insert_with(Default::default);
        for (key, value) in std::mem::take(&mut request.envs) {
            runtime.default_envs.entry(key).or_insert(value);
        }
    }
    if request.cpu_count.is_some() || request.memory_mb.is_some() {
        let config = request.build_config.get_or_insert_with(Default::default);
        config.vcpus = config.vcpus.or(request.cpu_count);
        config.memory_mib = config.memory_mib.or(request.memory_mb);
    }
    let build = state.control.submit_build(&tenant, request, None).await?;
    let body = json!({
        "id": build.template_id,
        "template_id": build.template_id,
        "build_id": build.id,
        "name": build.name,
        "status": build.status.as_str(),
    });
    Ok((StatusCode::CREATED, Json(body)))
}

/// `DELETE /v1/templates/{id}` (legacy) and `DELETE /v1/templates/refs/{ref}`.
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.control.delete_template(&tenant, &reference).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/templates/refs/{ref}`.
pub async fn get(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(reference): Path<String>,
    Query(query): Query<FieldsQuery>,
) -> Result<Json<Value>, ApiError> {
    let info = state.control.template_info_of(&tenant, &reference).await?;
    Ok(Json(project(to_value(&info), query.fields())))
}

/// `GET /v1/templates/refs/{ref}/tags`.
pub async fn tags(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(reference): Path<String>,
) -> Result<Json<Vec<TagInfo>>, ApiError> {
    Ok(Json(state.control.template_tags(&tenant, &reference).await?))
}

#[derive(Deserialize)]
struct TagsBody {
    tags: Vec<String>,
}

/// `POST /v1/templates/refs/{ref}/tags`.
pub async fn assign_tags(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(reference): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let TagsBody { tags } = parse_object(&body, "tags")?;
    Ok(Json(to_value(&state.control.assign_template_tags(&tenant, &reference, &tags).await?)))
}

/// `DELETE /v1/templates/refs/{ref}/tags/{tag}`.
pub async fn remove_tag(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((reference, tag)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.control.remove_template_tag(&tenant, &reference, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct VisibilityBody {
    visibility: String,
}

/// `PATCH /v1/templates/refs/{ref}/visibility`.
pub async fn set_visibility(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(reference): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let VisibilityBody { visibility } = parse_object(&body, "visibility")?;
    Ok(Json(to_value(&state.control.set_template_visibility(&tenant, &reference, &visibility).await?)))
}

#[derive(Deserialize)]
struct RenameBody {
    new_name: String,
}

/// `POST /v1/templates/refs/{ref}/rename`.
pub async fn rename(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(reference): Path<String>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let RenameBody { new_name } = parse_object(&body, "rename")?;
    Ok(Json(to_value(&state.control.rename_template(&tenant, &reference, new_name.trim()).await?)))
}

/// `GET /v1/templates/refs/{ref}/aliases`.
pub async fn aliases(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(reference): Path<String>,
) -> Result<Json<Vec<AliasInfo>>, ApiError> {
    Ok(Json(state.control.template_aliases(&tenant, &reference).await?))
}

/// `DELETE /v1/templates/refs/{ref}/aliases/{alias}`.
pub async fn remove_alias(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path((reference, alias)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.control.remove_template_alias(&tenant, &reference, &alias).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/templates/refs/{ref}/builds` and `GET /v1/templates/{tmpl_id}/builds`.
pub async fn builds(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(reference): Path<String>,
    Query(query): Query<BuildQuery>,
) -> Result<Json<BuildList>, ApiError> {
    let (records, next_cursor) = state.control.template_builds(&tenant, &reference, &query).await?;
    let mut builds = Vec::with_capacity(records.len());
    for record in &records {
        builds.push(state.control.build_data(record).await?);
    }
    Ok(Json(BuildList { builds, next_cursor }))
}

#[derive(Deserialize)]
struct ClaimBody {
    template_ref: String,
}

/// `POST /v1/templates/claims`.
pub async fn claim(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Body(body): Body,
) -> Result<(StatusCode, Json<NameClaim>), ApiError> {
    let ClaimBody { template_ref } = parse_object(&body, "claim")?;
    Ok((StatusCode::CREATED, Json(state.control.claim_template_name(&tenant, &template_ref).await?)))
}

/// `DELETE /v1/templates/claims/{token}`.
pub async fn release_claim(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.control.release_template_claim(&tenant, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/templates/namespaces/{slug}`.
pub async fn namespace(
    State(state): State<AppState>,
    Authenticated(tenant): Authenticated,
    Path(slug): Path<String>,
) -> Result<Json<NamespaceInfo>, ApiError> {
    Ok(Json(state.control.template_namespace(&tenant, &slug).await?))
}
