//! Checks of a template build request (names, tags, base, steps, build context) shared by submit,
//! validate and plan, and the request as it may be stored (no secret values, no registry credentials).

use base64::Engine as _;
use nullspace_types::template_api::{BuildRequest, Step};
use nullspace_types::template_wire::ValidationIssue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Longest name, tag or namespace.
const MAX_NAME: usize = 128;

/// Whether `text` is a template name: starts with a letter or digit, then letters, digits, `-`, `_`, `.`.
pub fn valid_name(text: &str) -> bool {
    valid_word(text) && !text.starts_with("tmpl_")
}

/// Whether `text` is a tag (a name that is not a build id).
pub fn valid_tag(text: &str) -> bool {
    valid_word(text) && !text.starts_with("tb_")
}

fn valid_word(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= MAX_NAME
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The name and tags a request asks for: `name` (or the legacy `alias`) may carry `:tag`; tags default to
/// that tag or `["default"]`. `None` name: the caller names the template after its id.
pub fn name_and_tags(request: &BuildRequest) -> Result<(Option<String>, Vec<String>), String> {
    let raw = request.name.clone().or_else(|| request.alias.clone()).filter(|name| !name.trim().is_empty());
    let (name, name_tag) = match raw.as_deref().map(str::trim) {
        None => (None, None),
        Some(text) => match text.split_once(':') {
            Some((name, tag)) => (Some(name.to_owned()), Some(tag.to_owned())),
            None => (Some(text.to_owned()), None),
        },
    };
    if let Some(name) = &name {
        if !valid_name(name) {
            return Err(format!(
                "invalid template name {name:?}: use letters, digits, '-', '_' and '.', starting with a letter or digit (at most {MAX_NAME})"
            ));
        }
    }
    let tags = match (&request.tags, name_tag) {
        (Some(tags), _) if !tags.is_empty() => tags.clone(),
        (_, Some(tag)) => vec![tag],
        _ => vec!["default".to_owned()],
    };
    if let Some(bad) = tags.iter().find(|tag| !valid_tag(tag)) {
        return Err(format!(
            "invalid tag {bad:?}: use letters, digits, '-', '_' and '.', starting with a letter or digit, not 'tb_'"
        ));
    }
    let mut unique = Vec::new();
    for tag in tags {
        if !unique.contains(&tag) {
            unique.push(tag);
        }
    }
    Ok((name, unique))
}

fn issue(code: &str, message: impl Into<String>, phase: &str) -> ValidationIssue {
    ValidationIssue { code: code.to_owned(), message: message.into(), phase: Some(phase.to_owned()) }
}

/// Whether the request is the legacy `POST /v1/templates` shape (no base: the builtin base is used).
pub fn is_legacy(request: &BuildRequest) -> bool {
    request.alias.is_some() || request.cpu_count.is_some() || request.memory_mb.is_some()
}

/// Everything wrong with `request`, and warnings.
pub fn check(request: &BuildRequest) -> (Vec<ValidationIssue>, Vec<String>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let base = request.base_image.as_deref().map(str::trim).filter(|base| !base.is_empty());
    let dockerfile = request.dockerfile.as_deref().filter(|text| !text.trim().is_empty());
    match (base, dockerfile) {
        (Some(_), Some(_)) => {
            errors.push(issue("invalid_request", "set either base_image or dockerfile, not both", "preflight"))
        }
        (None, None) if !is_legacy(request) => {
            errors.push(issue("invalid_request", "set base_image (e.g. ubuntu:22.04) or dockerfile", "preflight"))
        }
        _ => {}
    }
    if base.is_some() != dockerfile.is_some() || is_legacy(request) {
        // What the engine will run: the Dockerfile front end's refusals (with line and instruction) and
        // every malformed declarative step.
        match super::build_plan::plan(request) {
            Ok(plan) => warnings.extend(plan.warnings),
            Err(problems) => {
                errors.extend(problems.0.into_iter().map(|problem| issue(problem.code, problem.message, "preflight")))
            }
        }
    }
    if let Err(message) = name_and_tags(request) {
        errors.push(issue("invalid_request", message, "preflight"));
    }
    for secret in &request.build_secrets {
        if !valid_env_name(&secret.id) {
            errors.push(issue(
                "invalid_request",
                format!("build secret id {:?} is not an environment variable name", secret.id),
                "preflight",
            ));
        }
    }
    for key in request.build_envs.keys().chain(request.envs.keys()) {
        if !valid_env_name(key) {
            errors.push(issue("invalid_request", format!("environment variable name {key:?} is invalid"), "preflight"));
        }
    }
    let files = request.build_context.as_ref().map(|context| context.files.as_slice()).unwrap_or_default();
    for file in files {
        if !valid_context_path(&file.path) {
            errors.push(issue(
                "invalid_request",
                format!("build context path {:?} must be relative, without '..'", file.path),
                "preflight",
            ));
        }
        match file.entry_type.as_deref().unwrap_or("file") {
            "dir" => {}
            "file" => match (&file.blob_id, &file.content_base64) {
                (None, None) => errors.push(issue(
                    "invalid_request",
                    format!("build context file {:?} has neither blob_id nor content_base64; upload it through /v1/templates/blobs", file.path),
                    "preflight",
                )),
                (_, Some(content)) if base64::engine::general_purpose::STANDARD.decode(content).is_err() => {
                    errors.push(issue("invalid_request", format!("content_base64 of {:?} is not base64", file.path), "preflight"))
                }
                _ => {}
            },
            other => errors.push(issue("invalid_request", format!("entry_type {other:?} of {:?} must be file or dir", file.path), "preflight")),
        }
        if let Some(mode) = &file.mode {
            if u32::from_str_radix(mode, 8).map_or(true, |mode| mode > 0o7777) {
                errors.push(issue(
                    "invalid_request",
                    format!("mode {mode:?} of {:?} is not an octal mode", file.path),
                    "preflight",
                ));
            }
        }
    }
    for (index, step) in request.steps.iter().enumerate() {
        let sources = match step {
            Step::Copy(item) => item.all_sources(),
            Step::CopyItems { items } => items.iter().flat_map(|item| item.all_sources()).collect(),
            Step::AptInstall { packages }
            | Step::PipInstall { packages, .. }
            | Step::NpmInstall { packages, .. }
            | Step::BunInstall { packages, .. }
                if packages.is_empty() =>
            {
                warnings.push(format!("step {index} installs no packages"));
                Vec::new()
            }
            _ => Vec::new(),
        };
        for source in sources {
            let known = files.iter().any(|file| {
                file.path == source || file.path.starts_with(&format!("{}/", source.trim_end_matches('/')))
            });
            if !known {
                errors.push(ValidationIssue {
                    code: "invalid_request".into(),
                    message: format!("step {index} copies {source:?}, which is not in build_context"),
                    phase: Some("preflight".into()),
                });
            }
        }
    }
    (errors, warnings)
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `path` stays inside the build context.
pub fn valid_context_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path.split('/').all(|part| part != ".." && part != ".")
}

/// `request` as it may be stored: secret values and registry credentials removed (their ids and kinds
/// stay), inline contents removed (submit turns them into blobs first).
pub fn storable(request: &BuildRequest) -> Value {
    let mut value = serde_json::to_value(request).unwrap_or_else(|_| json!({}));
    if let Some(fields) = value.as_object_mut() {
        let secrets: Vec<Value> =
            request.build_secrets.iter().map(|s| json!({"id": s.id, "source": s.source})).collect();
        fields.insert("build_secrets".into(), Value::Array(secrets));
        let auth = request.base_image_auth.as_ref().map(|auth| json!({"kind": auth.get("kind")}));
        fields.insert("base_image_auth".into(), auth.unwrap_or(Value::Null));
    }
    if let Some(files) = value.pointer_mut("/build_context/files").and_then(Value::as_array_mut) {
        for file in files.iter_mut().filter_map(Value::as_object_mut) {
            file.remove("content_base64");
        }
    }
    value
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `declarative`, `dockerfile`, `oci_import` or `template_base`.
pub fn source_type(request: &BuildRequest) -> &'static str {
    if request.dockerfile.as_deref().is_some_and(|text| !text.trim().is_empty()) {
        return "dockerfile";
    }
    let base = request.base_image.as_deref().unwrap_or_default();
    let template_base = base.starts_with("tmpl_") || base.starts_with("nullspace/") || base.contains(":tb_");
    match (template_base, request.steps.is_empty()) {
        (true, _) => "template_base",
        (false, true) if !base.is_empty() => "oci_import",
        _ => "declarative",
    }
}

/// Digest of the build context: its sorted paths with their blobs and modes.
pub fn context_digest(request: &BuildRequest) -> Option<String> {
    let files = &request.build_context.as_ref()?.files;
    if files.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = files
        .iter()
        .map(|f| {
            format!(
                "{}\t{}\t{}\t{}",
                f.path,
                f.entry_type.as_deref().unwrap_or("file"),
                f.blob_id.as_deref().unwrap_or(""),
                f.mode.as_deref().unwrap_or("")
            )
        })
        .collect();
    lines.sort();
    Some(digest(lines.join("\n").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: Value) -> BuildRequest {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn names_tags_and_bases_are_checked() {
        let ok = request(json!({"base_image": "ubuntu:22.04", "name": "app:stable"}));
        assert!(check(&ok).0.is_empty());
        assert_eq!(name_and_tags(&ok).unwrap(), (Some("app".into()), vec!["stable".into()]));
        let tagged = request(json!({"base_image": "x", "name": "app", "tags": ["default", "staging", "default"]}));
        assert_eq!(name_and_tags(&tagged).unwrap().1, ["default", "staging"]);
        assert_eq!(name_and_tags(&request(json!({}))).unwrap(), (None, vec!["default".into()]));
        for bad in [
            json!({}),
            json!({"base_image": "a", "dockerfile": "FROM a"}),
            json!({"dockerfile": "RUN echo"}),
            json!({"base_image": "a", "name": "bad name"}),
            json!({"base_image": "a", "tags": ["tb_x"]}),
            json!({"base_image": "a", "build_context": {"files": [{"path": "../x", "entry_type": "file", "blob_id": "b"}]}}),
            json!({"base_image": "a", "build_context": {"files": [{"path": "x", "entry_type": "file"}]}}),
            json!({"base_image": "a", "steps": [{"action": "copy", "src": "missing", "dst": "/x"}]}),
            json!({"base_image": "a", "build_secrets": [{"id": "1X", "value": "v"}]}),
        ] {
            assert!(!check(&request(bad.clone())).0.is_empty(), "{bad} accepted");
        }
        assert!(check(&request(json!({"alias": "legacy", "steps": []}))).0.is_empty(), "legacy shape");
    }

    #[test]
    fn stored_requests_hold_no_secret_values() {
        let secret = request(json!({"base_image": "a", "build_secrets": [{"id": "TOKEN", "value": "s3cr3t-value"}],
            "base_image_auth": {"kind": "basic", "username": "u", "password": "p4ss-word"},
            "build_context": {"files": [{"path": "f", "entry_type": "file", "content_base64": "aGk="}]}}));
        let stored = storable(&secret).to_string();
        assert!(
            !stored.contains("s3cr3t-value") && !stored.contains("p4ss-word") && !stored.contains("aGk="),
            "{stored}"
        );
        assert!(stored.contains("TOKEN") && stored.contains("basic"));
        let back: BuildRequest = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.build_secrets[0].id, "TOKEN");
    }

    #[test]
    fn source_types_follow_the_request() {
        assert_eq!(source_type(&request(json!({"dockerfile": "FROM a"}))), "dockerfile");
        assert_eq!(source_type(&request(json!({"base_image": "nullspace/x:stable"}))), "template_base");
        assert_eq!(source_type(&request(json!({"base_image": "debian"}))), "oci_import");
        assert_eq!(
            source_type(&request(json!({"base_image": "debian", "steps": [{"action": "run", "command": "x"}]}))),
            "declarative"
        );
    }
}
