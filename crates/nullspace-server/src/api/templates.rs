//! `GET /v1/templates`: the templates this node has built (a bare JSON array).

use axum::extract::State;
use axum::Json;
use nullspace_types::sandbox::TemplateInfo;

use super::auth::Authenticated;
use super::AppState;

/// `GET /v1/templates`.
pub async fn list(State(state): State<AppState>, Authenticated(_tenant): Authenticated) -> Json<Vec<TemplateInfo>> {
    let templates = state
        .control
        .node()
        .templates()
        .list()
        .into_iter()
        .map(|layer| TemplateInfo {
            id: layer.name.clone(),
            canonical_ref: Some(format!("nullspace/{}", layer.name)),
            name: layer.name,
            description: layer.description,
            tags: vec!["default".to_owned()],
            default_tag: Some("default".to_owned()),
            builtin: true,
            namespace_slug: Some("nullspace".to_owned()),
            visibility: Some("public".to_owned()),
        })
        .collect();
    Json(templates)
}
