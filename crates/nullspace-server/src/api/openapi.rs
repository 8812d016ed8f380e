//! `GET /openapi.json`: the API's OpenAPI 3.1 document, built from the route table (`routes.rs`) and the
//! `ToSchema` derives of the wire types, so it lists exactly the routes the router serves. It needs no
//! key: it describes the protocol, nothing of any tenant.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use nullspace_types::ErrorBody;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required,
    ResponseBuilder, ResponsesBuilder, Schema,
};

use super::routes::{self, Access, BodyDoc, ResponseDoc, Route, TypeDoc, Verb};

/// The name of the API key scheme in the document.
const API_KEY: &str = "api_key";

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| document().to_pretty_json().unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}")));

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

/// The document of every route of [`routes::table`].
pub fn document() -> OpenApi {
    let table = routes::table();
    let mut paths = Paths::new();
    let mut schemas: Vec<(String, RefOr<Schema>)> = Vec::new();
    collect(&mut schemas, routes::type_doc::<ErrorBody>());
    for route in &table {
        let path = openapi_path(route.path);
        for verb in route.verb.methods() {
            paths.add_path_operation(&path, vec![http_method(*verb)], operation(route, *verb, &mut schemas));
        }
    }
    let mut seen = BTreeSet::new();
    schemas.retain(|(name, _)| seen.insert(name.clone()));
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(API_KEY, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)))
        .build();
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title("Nullspace API").version(env!("CARGO_PKG_VERSION")).description(Some(
            "Sandboxes for AI agents. Every error answers the flat envelope `ErrorBody`; ids of another \
                     tenant are answered as unknown (404). Routes marked as relayed pass the request on to a \
                     service inside the sandbox.",
        )))
        .paths(paths)
        .components(Some(components))
        .build()
}

/// `{*rest}` (axum's rest-of-path parameter) becomes the plain parameter `{rest}`.
pub fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// The parameter names of `path`, in order.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| name.trim_start_matches('*'))
        .collect()
}

fn http_method(verb: Verb) -> HttpMethod {
    match verb {
        Verb::Get | Verb::Any => HttpMethod::Get,
        Verb::Post => HttpMethod::Post,
        Verb::Put => HttpMethod::Put,
        Verb::Patch => HttpMethod::Patch,
        Verb::Delete => HttpMethod::Delete,
    }
}

fn collect(schemas: &mut Vec<(String, RefOr<Schema>)>, ty: TypeDoc) -> RefOr<Schema> {
    let name = (ty.name)().into_owned();
    schemas.push((name.clone(), (ty.schema)()));
    (ty.refs)(schemas);
    RefOr::Ref(Ref::from_schema_name(name))
}

fn path_param_schema(name: &str) -> RefOr<Schema> {
    match name {
        "port" => ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(65535)).into(),
        "action" => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["enable", "disable", "drain", "reconcile"]))
            .into(),
        _ => ObjectBuilder::new().schema_type(Type::String).into(),
    }
}

fn binary() -> utoipa::openapi::SchemaFormat {
    utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Binary)
}

fn any_value() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(SchemaType::AnyValue).into()
}

fn operation(
    route: &Route,
    verb: Verb,
    schemas: &mut Vec<(String, RefOr<Schema>)>,
) -> utoipa::openapi::path::Operation {
    let path = openapi_path(route.path);
    let tag = path.trim_start_matches("/v1/").split('/').next().unwrap_or("server").trim_start_matches('/');
    let method = format!("{:?}", verb).to_lowercase();
    let id: String = format!("{method}{path}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect::<String>()
        .split('_')
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let mut op = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(route.summary))
        .tag(if tag.is_empty() || tag == "healthz" || tag == "openapi.json" { "server" } else { tag });
    for name in path_params(route.path) {
        op = op.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(path_param_schema(name))),
        );
    }
    if let Some(query) = route.query {
        op = op.parameters(Some(query()));
    }
    let body = match (route.body, verb) {
        (_, Verb::Get | Verb::Delete) if route.verb != Verb::Any => None,
        (BodyDoc::None, _) => None,
        (BodyDoc::Json(ty), _) => Some(("application/json", collect(schemas, ty))),
        (BodyDoc::AnyObject, _) => Some(("application/json", ObjectBuilder::new().into())),
        (BodyDoc::Bytes, _) => Some((
            "application/octet-stream",
            ObjectBuilder::new().schema_type(Type::String).format(Some(binary())).into(),
        )),
        (BodyDoc::Multipart, _) => Some((
            "multipart/form-data",
            ObjectBuilder::new()
                .property("file", ObjectBuilder::new().schema_type(Type::String).format(Some(binary())))
                .required("file")
                .into(),
        )),
    };
    if let Some((content_type, schema)) = body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content(content_type, ContentBuilder::new().schema(Some(schema)).build())
                .required(Some(Required::False))
                .build(),
        ));
    }
    let error = ResponseBuilder::new()
        .description("The error envelope")
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
        .build();
    let html = || ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String))).build();
    let client_error = match route.response {
        ResponseDoc::Html => {
            let mut page_or_envelope = error.clone();
            page_or_envelope.content.insert("text/html".into(), html());
            page_or_envelope
        }
        _ => error.clone(),
    };
    let success = match route.response {
        ResponseDoc::Html => ("2XX", ResponseBuilder::new().description("The page").content("text/html", html())),
        ResponseDoc::WebSocket => ("101", ResponseBuilder::new().description("Switching to the WebSocket protocol")),
        ResponseDoc::Json(ty) => {
            let schema = collect(schemas, ty);
            ("2XX", json_response(schema))
        }
        ResponseDoc::JsonList(ty) => {
            let schema = collect(schemas, ty);
            ("2XX", json_response(ArrayBuilder::new().items(schema).into()))
        }
        ResponseDoc::AnyJson => ("2XX", json_response(any_value())),
        ResponseDoc::Bytes => (
            "2XX",
            ResponseBuilder::new()
                .description("Success (a relayed answer, a file, a page or a stream)")
                .content("*/*", ContentBuilder::new().schema(Some(any_value())).build()),
        ),
    };
    let mut responses = ResponsesBuilder::new()
        .response(success.0, success.1.build())
        .response("4XX", client_error)
        .response("5XX", error);
    if matches!(route.response, ResponseDoc::AnyJson) {
        responses = responses.response("204", ResponseBuilder::new().description("Done; no body").build());
    }
    if route.not_ready_503 {
        responses =
            responses.response("503", json_response(any_value()).description("Not ready yet (the same body)").build());
    }
    op = op.responses(responses.build());
    match route.access {
        Access::Key => op = op.security(SecurityRequirement::new(API_KEY, Vec::<String>::new())),
        Access::Public | Access::UrlToken => op = op.securities(Some(Vec::new())),
    }
    op.build()
}

fn json_response(schema: RefOr<Schema>) -> ResponseBuilder {
    ResponseBuilder::new()
        .description("Success")
        .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `(METHOD, path)` of every operation of the document.
    fn documented() -> BTreeSet<(String, String)> {
        let value = serde_json::to_value(document()).unwrap();
        let mut pairs = BTreeSet::new();
        for (path, item) in value["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete", "head", "options", "trace"].contains(&method.as_str()) {
                    pairs.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        pairs
    }

    /// `(METHOD, path)` of every route of the table.
    fn served() -> BTreeSet<(String, String)> {
        let mut pairs = BTreeSet::new();
        for route in routes::table() {
            for verb in route.verb.methods() {
                pairs.insert((format!("{verb:?}").to_uppercase(), openapi_path(route.path)));
            }
        }
        pairs
    }

    #[test]
    fn document_and_router_list_the_same_routes() {
        let (documented, served) = (documented(), served());
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(undocumented.is_empty(), "routes the router serves but the document lacks: {undocumented:?}");
        assert!(unserved.is_empty(), "operations the document lists but the router lacks: {unserved:?}");
        // The router is built from the same table, and axum accepts it (no overlapping routes).
        let _ = super::super::router::routes_router();
        assert!(served.contains(&("GET".into(), "/openapi.json".into())));
        assert!(served.contains(&("POST".into(), "/v1/sandboxes/{id}/snapshots".into())));
    }

    #[test]
    fn every_operation_documents_its_parameters_and_the_error_envelope() {
        let value = serde_json::to_value(document()).unwrap();
        assert_eq!(value["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        let schemas = value["components"]["schemas"].as_object().unwrap();
        for name in ["ErrorBody", "CreateSandboxRequest", "SandboxInfo", "VolumeMountRequest", "LifecycleEvent"] {
            assert!(schemas.contains_key(name), "{name} missing from the components");
        }
        // A field of a derived type is in the document (so a new field is, too).
        assert!(schemas["CreateSandboxRequest"]["properties"].get("snapshot_id").is_some());
        assert!(schemas["VolumeMountRequest"]["properties"].get("ref").is_some(), "serde renames are followed");
        let mut ids = BTreeSet::new();
        for (path, item) in value["paths"].as_object().unwrap() {
            let names: BTreeSet<&str> = path_params(path).into_iter().collect();
            for (method, op) in item.as_object().unwrap() {
                assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()), "duplicate id at {method} {path}");
                let declared: BTreeSet<&str> = op["parameters"]
                    .as_array()
                    .map(|params| {
                        params.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect()
                    })
                    .unwrap_or_default();
                assert_eq!(declared, names, "path parameters of {method} {path}");
                assert_eq!(
                    op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} has no error envelope"
                );
            }
        }
        let create = &value["paths"]["/v1/sandboxes"]["post"];
        assert_eq!(
            create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/CreateSandboxRequest"
        );
        assert_eq!(value["paths"]["/healthz"]["get"]["security"], serde_json::json!([]));
        assert_eq!(value["paths"]["/v1/sandboxes"]["get"]["security"], serde_json::json!([{"api_key": []}]));
    }
}
