//! The route table: every route the API serves, listed once with what its OpenAPI operation says. The
//! router (`router.rs`) mounts exactly these routes and the document (`openapi.rs`) describes exactly
//! these, so neither can have a route the other lacks. A new route is one line here; a new field of a
//! request or response type shows up in the document through that type's `ToSchema` derive.

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter};
use nullspace_types::lifecycle::{LifecycleEventList, SnapshotInfo};
use nullspace_types::sandbox::{CreateSandboxRequest, SandboxInfo, SetTimeoutRequest};
use nullspace_types::volume::{CreateVolumeRequest, VolumeAttachment, VolumeInfo, VolumeMountRequest};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use super::{
    code, desktop, desktop_stream, desktop_viewer, health, lifecycle, monitor, openapi, ports, preview_urls, relay,
    sandboxes, signed_files, snapshots, template_blobs, template_builds, templates, viewer_assets, volume_files,
    volumes, warm_pools, webhooks, websocket, AppState,
};
use crate::control::template_manage::BuildQuery;
use crate::control::warm_pools::PoolFilter;

/// An HTTP method of the table; `Any` is a relay that passes every method on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// Every method (documented as GET, POST, PUT, PATCH and DELETE).
    Any,
}

impl Verb {
    /// The concrete methods this verb serves, as documented.
    pub fn methods(self) -> &'static [Verb] {
        match self {
            Self::Any => &[Self::Get, Self::Post, Self::Put, Self::Patch, Self::Delete],
            Self::Get => &[Self::Get],
            Self::Post => &[Self::Post],
            Self::Put => &[Self::Put],
            Self::Patch => &[Self::Patch],
            Self::Delete => &[Self::Delete],
        }
    }

    fn filter(self) -> Option<MethodFilter> {
        Some(match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Put => MethodFilter::PUT,
            Self::Patch => MethodFilter::PATCH,
            Self::Delete => MethodFilter::DELETE,
            Self::Any => return None,
        })
    }
}

/// How a route authenticates its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `Authorization: Bearer <API key>`; the tenant of the key scopes every id.
    Key,
    /// No credentials (health, this document, static viewer files).
    Public,
    /// The credential is in the URL: a signed token in the path, or a viewer key in `?auth=`.
    UrlToken,
}

/// A type of the document: its name, its schema and the schemas it refers to.
#[derive(Clone, Copy)]
pub struct TypeDoc {
    /// The component name.
    pub name: fn() -> std::borrow::Cow<'static, str>,
    /// The schema itself.
    pub schema: fn() -> RefOr<Schema>,
    /// The schemas it refers to, collected into the document's components.
    pub refs: fn(&mut Vec<(String, RefOr<Schema>)>),
}

/// The [`TypeDoc`] of `T`.
pub fn type_doc<T: ToSchema>() -> TypeDoc {
    TypeDoc { name: T::name, schema: T::schema, refs: T::schemas }
}

/// What a route takes as its body.
#[derive(Clone, Copy)]
pub enum BodyDoc {
    /// No body.
    None,
    /// A JSON object of this type.
    Json(TypeDoc),
    /// A JSON object the handler reads itself.
    AnyObject,
    /// Raw bytes (file contents, archives, relayed bodies).
    Bytes,
    /// A multipart form whose `file` field is the content.
    Multipart,
}

/// What a route answers on success.
#[derive(Clone, Copy)]
pub enum ResponseDoc {
    /// A JSON value of this type.
    Json(TypeDoc),
    /// A JSON array of this type.
    JsonList(TypeDoc),
    /// Some JSON value (or an empty body).
    AnyJson,
    /// Bytes: a relayed answer, a file, a page or a stream.
    Bytes,
    /// A WebSocket upgrade (`101`).
    WebSocket,
    /// An HTML page, also for its own 404 (a browser opens it).
    Html,
}

/// One route: method, path (axum syntax), handler and what the document says about it.
pub struct Route {
    /// The method.
    pub verb: Verb,
    /// The path, `{name}` for a parameter and `{*name}` for the rest of the path.
    pub path: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The request body.
    pub body: BodyDoc,
    /// The query parameters.
    pub query: Option<fn() -> Vec<Parameter>>,
    /// The success answer.
    pub response: ResponseDoc,
    /// Whether it answers 503 with its usual body while the server is not ready (health).
    pub not_ready_503: bool,
    service: MethodRouter<AppState>,
}

fn route<H, T>(verb: Verb, path: &'static str, handler: H, summary: &'static str) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let service = match verb.filter() {
        Some(filter) => axum::routing::on(filter, handler),
        None => axum::routing::any(handler),
    };
    let (body, response) = match verb {
        Verb::Any => (BodyDoc::Bytes, ResponseDoc::Bytes),
        Verb::Get | Verb::Delete => (BodyDoc::None, ResponseDoc::AnyJson),
        Verb::Post | Verb::Put | Verb::Patch => (BodyDoc::AnyObject, ResponseDoc::AnyJson),
    };
    Route { verb, path, summary, access: Access::Key, body, query: None, response, not_ready_503: false, service }
}

impl Route {
    fn public(mut self) -> Self {
        self.access = Access::Public;
        self
    }

    fn url_token(mut self) -> Self {
        self.access = Access::UrlToken;
        self
    }

    fn body<B: ToSchema>(mut self) -> Self {
        self.body = BodyDoc::Json(type_doc::<B>());
        self
    }

    fn multipart(mut self) -> Self {
        self.body = BodyDoc::Multipart;
        self
    }

    fn not_ready_503(mut self) -> Self {
        self.not_ready_503 = true;
        self
    }

    fn no_body(mut self) -> Self {
        self.body = BodyDoc::None;
        self
    }

    fn raw_body(mut self) -> Self {
        self.body = BodyDoc::Bytes;
        self
    }

    fn query<Q: IntoParams>(mut self) -> Self {
        self.query = Some(|| Q::into_params(|| Some(ParameterIn::Query)));
        self
    }

    fn answers<R: ToSchema>(mut self) -> Self {
        self.response = ResponseDoc::Json(type_doc::<R>());
        self
    }

    fn answers_list<R: ToSchema>(mut self) -> Self {
        self.response = ResponseDoc::JsonList(type_doc::<R>());
        self
    }

    fn bytes(mut self) -> Self {
        self.response = ResponseDoc::Bytes;
        self
    }

    fn html(mut self) -> Self {
        self.response = ResponseDoc::Html;
        self
    }

    fn websocket(mut self) -> Self {
        self.response = ResponseDoc::WebSocket;
        self
    }

    /// Template build routes may carry their build context inline (base64).
    fn build_limit(mut self) -> Self {
        self.service = self.service.layer(DefaultBodyLimit::max(64 << 20));
        self
    }

    /// Uploads that stream to the sandbox's disk: no body limit (a multipart form would otherwise take one).
    fn unlimited_body(mut self) -> Self {
        self.service = self.service.layer(DefaultBodyLimit::disable());
        self
    }

    /// The method router that serves this route.
    pub fn service(self) -> MethodRouter<AppState> {
        self.service
    }
}

/// Every route of the API, in the order the router mounts them.
pub fn table() -> Vec<Route> {
    use Verb::{Any, Delete, Get, Patch, Post, Put};
    vec![
        route(Get, "/healthz", health::healthz, "Liveness and readiness of the server").public().not_ready_503(),
        route(Get, "/openapi.json", openapi::serve, "This document (OpenAPI 3.1)").public(),
        // sandboxes
        route(Post, "/v1/sandboxes", sandboxes::create, "Create a sandbox")
            .body::<CreateSandboxRequest>()
            .answers::<SandboxInfo>(),
        route(Get, "/v1/sandboxes", sandboxes::list, "List the tenant's sandboxes").query::<sandboxes::ListQuery>(),
        route(Get, "/v1/sandboxes/{id}", sandboxes::get, "A sandbox").query::<sandboxes::FieldsQuery>(),
        route(Delete, "/v1/sandboxes/{id}", sandboxes::kill, "Destroy a sandbox"),
        route(Post, "/v1/sandboxes/{id}/timeout", sandboxes::set_timeout, "Set a sandbox's lifetime")
            .body::<SetTimeoutRequest>()
            .answers::<SandboxInfo>(),
        route(Get, "/v1/sandboxes/{id}/metrics", sandboxes::metrics, "One resource usage sample"),
        // ports and previews
        route(Post, "/v1/sandboxes/{id}/host", ports::host, "A reachable address for a sandbox port"),
        route(Post, "/v1/sandboxes/{id}/ports/{port}/readiness", ports::readiness, "Wait until a port is ready"),
        route(Get, "/v1/sandboxes/{id}/ports/{port}/preview-url", preview_urls::get_preview_url, "A preview URL"),
        route(
            Post,
            "/v1/sandboxes/{id}/ports/{port}/signed-preview-url",
            preview_urls::signed_preview_url,
            "A preview URL with its own grant",
        ),
        route(
            Post,
            "/v1/sandboxes/{id}/ports/{port}/preview-proxy-target",
            preview_urls::preview_proxy_target,
            "Where a preview proxy reaches a port",
        ),
        route(Get, "/v1/sandboxes/{id}/preview-urls", preview_urls::list, "The sandbox's preview grants")
            .query::<preview_urls::ListQuery>(),
        route(Delete, "/v1/sandboxes/{id}/preview-urls/{grant_id}", preview_urls::revoke, "Revoke a preview grant"),
        route(Get, "/v1/sandboxes/{id}/ws", websocket::sandbox_ws, "The sandbox's WebSocket (exec, PTY, watch)")
            .websocket(),
        // snapshots
        route(Post, "/v1/sandboxes/{id}/hibernate", snapshots::hibernate, "Hibernate a sandbox")
            .no_body()
            .answers::<SnapshotInfo>(),
        route(Post, "/v1/sandboxes/{id}/pause", snapshots::hibernate, "Hibernate a sandbox (alias)")
            .no_body()
            .answers::<SnapshotInfo>(),
        route(Post, "/v1/sandboxes/{id}/snapshots", snapshots::create, "Snapshot a sandbox").answers::<SnapshotInfo>(),
        route(Post, "/v1/sandboxes/{id}/resume", snapshots::resume, "Resume a paused sandbox or a snapshot")
            .answers::<SandboxInfo>(),
        route(Post, "/v1/sandboxes/{id}/fork", snapshots::fork, "Fork a sandbox").answers::<SandboxInfo>(),
        route(Get, "/v1/snapshots", snapshots::list, "List the tenant's snapshots")
            .query::<snapshots::ListQuery>()
            .answers_list::<SnapshotInfo>(),
        route(Get, "/v1/snapshots/{id}", snapshots::get, "A snapshot").answers::<SnapshotInfo>(),
        route(Delete, "/v1/snapshots/{id}", snapshots::delete, "Delete a snapshot"),
        // lifecycle events and webhooks
        route(Get, "/v1/sandboxes/{id}/lifecycle", lifecycle::sandbox, "A sandbox's lifecycle events")
            .query::<lifecycle::EventsQuery>()
            .answers::<LifecycleEventList>(),
        route(Get, "/v1/sandboxes/{id}/lifecycle/ws", lifecycle::sandbox_ws, "A sandbox's lifecycle events, live")
            .websocket(),
        route(Get, "/v1/snapshots/{id}/lifecycle", lifecycle::snapshot, "A snapshot's lifecycle events")
            .query::<lifecycle::EventsQuery>()
            .answers::<LifecycleEventList>(),
        route(Get, "/v1/lifecycle/events", lifecycle::global, "The tenant's lifecycle events")
            .query::<lifecycle::EventsQuery>()
            .answers::<LifecycleEventList>(),
        route(Get, "/v1/lifecycle/ws", lifecycle::global_ws, "The tenant's lifecycle events, live").websocket(),
        route(Post, "/v1/lifecycle/webhooks", webhooks::create, "Create a lifecycle webhook"),
        route(Get, "/v1/lifecycle/webhooks", webhooks::list, "List lifecycle webhooks"),
        route(Get, "/v1/lifecycle/webhooks/{wid}", webhooks::get, "A lifecycle webhook"),
        route(Patch, "/v1/lifecycle/webhooks/{wid}", webhooks::update, "Change a lifecycle webhook"),
        route(Delete, "/v1/lifecycle/webhooks/{wid}", webhooks::delete, "Delete a lifecycle webhook"),
        route(Get, "/v1/lifecycle/webhooks/{wid}/deliveries", webhooks::deliveries, "A webhook's deliveries")
            .query::<webhooks::PageQuery>(),
        route(Get, "/v1/lifecycle/webhooks/{wid}/deliveries/{did}", webhooks::delivery, "One delivery"),
        route(Get, "/v1/monitor/ws", monitor::monitor_ws, "Live sandbox monitor").websocket(),
        // files by signed URL
        route(Post, "/v1/sandboxes/{id}/files/download-url", signed_files::download_url, "Sign a download URL"),
        route(Post, "/v1/sandboxes/{id}/files/upload-url", signed_files::upload_url, "Sign an upload URL"),
        route(Get, "/v1/signed/{token}", signed_files::signed_get, "Download by signed URL").url_token().bytes(),
        route(Put, "/v1/signed/{token}", signed_files::signed_put, "Upload by signed URL")
            .url_token()
            .raw_body()
            .unlimited_body()
            .bytes(),
        route(Post, "/v1/signed/{token}", signed_files::signed_post, "Upload by signed URL (multipart)")
            .url_token()
            .multipart()
            .unlimited_body()
            .bytes(),
        // services inside the sandbox
        route(Any, "/v1/sandboxes/{id}/code/{*rest}", code::relay, "The code interpreter (relayed)"),
        route(Any, "/v1/sandboxes/{id}/desktop/{*rest}", desktop::relay, "The desktop (relayed)"),
        route(Get, "/v1/sandboxes/{id}/desktop/stream", desktop_stream::info, "Raw VNC address of the desktop"),
        route(Post, "/v1/sandboxes/{id}/desktop/stream/start", desktop_stream::start, "Start the managed viewer"),
        route(Post, "/v1/sandboxes/{id}/desktop/stream/stop", desktop_stream::stop, "Stop the managed viewer")
            .no_body(),
        route(Get, "/v1/sandboxes/{id}/desktop/stream/auth-key", desktop_stream::auth_key, "The viewer's key"),
        route(Get, "/v1/sandboxes/{id}/desktop/viewer", desktop_viewer::page, "The viewer page")
            .url_token()
            .query::<desktop_viewer::ViewerQuery>()
            .html(),
        route(Get, "/v1/sandboxes/{id}/desktop/viewer/ws", desktop_viewer::websocket, "The viewer's VNC socket")
            .url_token()
            .query::<desktop_viewer::ViewerQuery>()
            .websocket(),
        route(Get, "/v1/desktop/viewer-assets/{*path}", viewer_assets::get, "The viewer's static files")
            .public()
            .bytes(),
        route(Any, "/v1/sandboxes/{id}/{*rest}", relay::relay, "The guest's routes (exec, files, processes, PTY)"),
        // templates
        route(Get, "/v1/templates", templates::list, "List templates").query::<sandboxes::FieldsQuery>(),
        route(Post, "/v1/templates", templates::legacy_create, "Create a template (legacy)").build_limit(),
        route(Delete, "/v1/templates/{id}", templates::delete, "Delete a template"),
        route(Get, "/v1/templates/{id}/builds", templates::builds, "A template's builds").query::<BuildQuery>(),
        route(Post, "/v1/templates/build", template_builds::build, "Build a template (streamed)").build_limit().bytes(),
        route(Post, "/v1/templates/builds", template_builds::submit, "Submit a template build").build_limit(),
        route(Get, "/v1/templates/builds/{bid}", template_builds::status, "A build's status")
            .query::<template_builds::OffsetQuery>(),
        route(Get, "/v1/templates/builds/{bid}/logs", template_builds::logs, "A build's log")
            .query::<template_builds::OffsetQuery>()
            .bytes(),
        route(Post, "/v1/templates/builds/{bid}/cancel", template_builds::cancel, "Cancel a build"),
        route(Post, "/v1/templates/builds/{bid}/retry", template_builds::retry, "Retry a build"),
        route(Post, "/v1/templates/builds/{bid}/promote", template_builds::promote, "Tag a build"),
        route(Post, "/v1/templates/validate", template_builds::validate_request, "Check a build request").build_limit(),
        route(Post, "/v1/templates/plan", template_builds::plan, "Plan a build").build_limit(),
        route(Post, "/v1/templates/blobs/preflight", template_blobs::preflight, "Which blobs to upload"),
        route(Put, "/v1/templates/blobs/{blob_id}", template_blobs::put, "Upload a blob").raw_body(),
        route(Get, "/v1/templates/refs/{ref}", templates::get, "A template").query::<sandboxes::FieldsQuery>(),
        route(Delete, "/v1/templates/refs/{ref}", templates::delete, "Delete a template"),
        route(Get, "/v1/templates/refs/{ref}/tags", templates::tags, "A template's tags"),
        route(Post, "/v1/templates/refs/{ref}/tags", templates::assign_tags, "Tag a template"),
        route(Delete, "/v1/templates/refs/{ref}/tags/{tag}", templates::remove_tag, "Remove a tag"),
        route(Patch, "/v1/templates/refs/{ref}/visibility", templates::set_visibility, "Set visibility"),
        route(Post, "/v1/templates/refs/{ref}/rename", templates::rename, "Rename a template"),
        route(Get, "/v1/templates/refs/{ref}/aliases", templates::aliases, "A template's aliases"),
        route(Delete, "/v1/templates/refs/{ref}/aliases/{alias}", templates::remove_alias, "Remove an alias"),
        route(Get, "/v1/templates/refs/{ref}/builds", templates::builds, "A template's builds").query::<BuildQuery>(),
        route(Post, "/v1/templates/claims", templates::claim, "Claim a template name"),
        route(Delete, "/v1/templates/claims/{token}", templates::release_claim, "Release a name claim"),
        route(Get, "/v1/templates/namespaces/{slug}", templates::namespace, "A template namespace"),
        // template warm pools
        route(Get, "/v1/template-warm-pools", warm_pools::list, "List warm pools").query::<PoolFilter>(),
        route(Post, "/v1/template-warm-pools", warm_pools::create, "Create a warm pool"),
        route(Get, "/v1/template-warm-pools/{id}", warm_pools::get, "A warm pool"),
        route(Patch, "/v1/template-warm-pools/{id}", warm_pools::update, "Change a warm pool"),
        route(Delete, "/v1/template-warm-pools/{id}", warm_pools::delete, "Delete a warm pool"),
        route(Post, "/v1/template-warm-pools/{id}/{action}", warm_pools::action, "Enable, disable, drain, reconcile")
            .no_body(),
        // volumes
        route(Post, "/v1/volumes", volumes::create, "Create a volume")
            .body::<CreateVolumeRequest>()
            .answers::<VolumeInfo>(),
        route(Get, "/v1/volumes", volumes::list, "List volumes").query::<sandboxes::FieldsQuery>(),
        route(Get, "/v1/volumes/by-name/{name}", volumes::get_by_name, "A volume by name")
            .query::<sandboxes::FieldsQuery>(),
        route(Get, "/v1/volumes/{vid}", volumes::get, "A volume").query::<sandboxes::FieldsQuery>(),
        route(Delete, "/v1/volumes/{vid}", volumes::delete, "Delete a volume"),
        route(Get, "/v1/volumes/{vid}/attachments", volumes::attachments, "Where a volume is mounted")
            .answers_list::<VolumeAttachment>(),
        route(Post, "/v1/volumes/{vid}/files/download-url", volume_files::download_url, "Sign a download URL"),
        route(Post, "/v1/volumes/{vid}/files/upload-url", volume_files::upload_url, "Sign an upload URL"),
        route(Get, "/v1/volumes/{vid}/ws", volume_files::ws, "A volume's WebSocket (watch)").websocket(),
        route(Any, "/v1/volumes/{vid}/{*rest}", volume_files::relay, "A volume's files (relayed)"),
        route(Get, "/v1/sandboxes/{id}/volumes", volumes::sandbox_volumes, "A sandbox's volume mounts")
            .answers_list::<VolumeAttachment>(),
        route(Post, "/v1/sandboxes/{id}/volumes", volumes::sandbox_volume_attach, "Mount a volume")
            .body::<VolumeMountRequest>()
            .answers::<VolumeAttachment>(),
        route(Delete, "/v1/sandboxes/{id}/volumes/{att}", volumes::sandbox_volume_detach, "Unmount a volume")
            .answers::<VolumeAttachment>(),
        route(Get, "/v1/sandboxes/{id}/volumes/{att}/health", volumes::sandbox_volume_health, "A mount's health")
            .answers::<VolumeAttachment>(),
        route(Post, "/v1/sandboxes/{id}/volumes/{att}/remount", volumes::sandbox_volume_remount, "Remount a volume")
            .no_body()
            .answers::<VolumeAttachment>(),
    ]
}
