//! From the template flags to the build request the official client would send: the base, the
//! steps (copy sources become build-context entries), runtime defaults and readiness, build secrets
//! and registry credentials read from the environment (`credentials`), and the build options. Secrets
//! are kept beside the request so every printed form can redact them.

use std::path::Path;

use nullspace_client::types::template_api::{BuildConfig, BuildRequest, CopyItem, Readiness, Step};
use nullspace_client::LocalContextEntry;

use super::spec::{BackendArg, SpecArgs};
use super::steps::StepFlag;
use super::{context, credentials};
use crate::exit::UserError;

/// Readiness probe defaults of the official client.
const READY_TIMEOUT_SECS: u64 = 30;
const READY_INTERVAL_MS: u64 = 500;
const READY_GRACE_SECS: u64 = 2;

/// A build request with what it needs from disk.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The request (its `build_context` is filled after the upload).
    pub request: BuildRequest,
    /// Context entries to upload (copy sources or the Dockerfile's directory).
    pub context: Vec<LocalContextEntry>,
    /// Secret values, to redact from anything printed.
    pub secrets: Vec<String>,
    /// The steps as given (local copy sources), for `render dockerfile`.
    pub flags: Vec<StepFlag>,
}

/// Builds the request; `env` looks up environment variables (the process environment in the CLI).
pub fn prepare(spec: &SpecArgs, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Prepared> {
    let base = &spec.base;
    let selectors = [
        base.from_image.is_some(),
        base.from_ubuntu_image.is_some(),
        base.from_debian_image.is_some(),
        base.from_python_image.is_some(),
        base.from_node_image.is_some(),
        base.from_template.is_some(),
        base.from_dockerfile.is_some(),
        base.file.is_some(),
    ];
    if selectors.iter().filter(|set| **set).count() != 1 {
        return Err(UserError::new(
            "name exactly one base: --from-image, --from-ubuntu-image, --from-debian-image, --from-python-image, \
             --from-node-image, --from-template, --from-dockerfile or --file",
            Some("e.g. --from-template nullspace/base"),
        )
        .into());
    }
    let mut request = match &spec.base.file {
        Some(path) => read_request_file(path)?,
        None => BuildRequest::default(),
    };
    let mut context = Vec::new();
    let image = base
        .from_image
        .clone()
        .or_else(|| base.from_ubuntu_image.as_ref().map(|v| format!("ubuntu:{v}")))
        .or_else(|| base.from_debian_image.as_ref().map(|v| format!("debian:{v}")))
        .or_else(|| base.from_python_image.as_ref().map(|v| format!("python:{v}")))
        .or_else(|| base.from_node_image.as_ref().map(|v| format!("node:{v}")))
        .or_else(|| base.from_template.as_deref().map(template_base));
    if let Some(image) = image {
        request.base_image = Some(image);
    }
    if let Some(dockerfile) = &base.from_dockerfile {
        if spec.backend == Some(BackendArg::Native) {
            return Err(UserError::new(
                "Dockerfile builds use the buildkit backend; --backend native is refused for them",
                Some("drop --backend, or pass --backend buildkit"),
            )
            .into());
        }
        if !spec.steps.steps.is_empty() {
            return Err(UserError::new(
                "step flags (--run, --copy, …) cannot be combined with --from-dockerfile",
                Some("put the steps in the Dockerfile"),
            )
            .into());
        }
        let (text, entries) = context::dockerfile_context(dockerfile)?;
        request.dockerfile = Some(text);
        context = entries;
    }
    let mut runtime = request.runtime_config.take().unwrap_or_default();
    let offset = request.steps.len();
    for (index, flag) in spec.steps.steps.iter().enumerate() {
        match flag {
            StepFlag::Workdir(path) => runtime.default_workdir = Some(path.clone()),
            StepFlag::User(user) => runtime.default_user = Some(user.clone()),
            _ => {}
        }
        let step = match (flag, flag.to_step()) {
            (_, Some(step)) => step,
            (StepFlag::Copy { src, dst }, None) => {
                let (source_ref, entries) = context::copy_source(Path::new(src), offset + index)?;
                context.extend(entries);
                Step::Copy(CopyItem { sources: vec![source_ref], dst: dst.clone(), ..Default::default() })
            }
            (other, None) => unreachable!("every step flag but --copy maps directly: {other:?}"),
        };
        request.steps.push(step);
    }
    runtime.default_envs.extend(spec.envs.iter().cloned());
    runtime.readiness = readiness(spec).or(runtime.readiness);
    let runtime_set = runtime.default_user.is_some()
        || runtime.default_workdir.is_some()
        || !runtime.default_envs.is_empty()
        || runtime.readiness.is_some();
    request.runtime_config = runtime_set.then_some(runtime);
    request.build_envs.extend(spec.build_envs.iter().cloned());
    if spec.start_cmd.is_some() {
        request.start_cmd = spec.start_cmd.clone();
    }
    if spec.name.is_some() {
        request.name = spec.name.clone();
    }
    if !spec.tags.is_empty() {
        request.tags = Some(spec.tags.clone());
    }
    let defaults = request.build_config.take().unwrap_or_default();
    request.build_config = Some(BuildConfig {
        vcpus: spec.cpu_count.or(defaults.vcpus).or(Some(2)),
        memory_mib: spec.memory_mb.or(defaults.memory_mib).or(Some(512)),
        internet_access: if spec.no_internet_access { Some(false) } else { defaults.internet_access },
        disk_mb: spec.disk_mb.or(defaults.disk_mb),
    });
    if spec.skip_cache {
        request.skip_cache = Some(true);
    }
    if let Some(backend) = spec.backend {
        request.build_backend = Some(match backend {
            BackendArg::Native => "native".into(),
            BackendArg::Buildkit => "buildkit".into(),
        });
    }
    let added = credentials::secrets_from_env(&spec.build_secret_env, &request.build_secrets, &env)?;
    request.build_secrets.extend(added);
    if let Some(auth) = credentials::registry_auth(&spec.registry, &env)? {
        request.base_image_auth = Some(auth);
    }
    let mut secrets: Vec<String> = request.build_secrets.iter().map(|s| s.value.clone()).collect();
    secrets.extend(credentials::auth_secrets(request.base_image_auth.as_ref()));
    if request.base_image.is_none() && request.dockerfile.is_none() {
        return Err(UserError::new("the request names no base image", Some("pass --from-image IMAGE")).into());
    }
    secrets.retain(|s| !s.is_empty());
    Ok(Prepared { request, context, secrets, flags: spec.steps.steps.clone() })
}

/// `--from-template REF` as the official client normalises it: `name` → `nullspace/name:latest`,
/// `name:tag` → `nullspace/name:tag`; ids, exact builds and namespaced refs pass unchanged.
pub fn template_base(reference: &str) -> String {
    let reference = reference.trim();
    if reference.contains('/') || (reference.starts_with("tmpl_") && !reference.contains(':')) {
        return reference.to_owned();
    }
    match reference.rsplit_once(':') {
        Some((_, qualifier)) if qualifier.starts_with("tb_") => reference.to_owned(),
        Some((name, tag)) => format!("nullspace/{name}:{tag}"),
        None => format!("nullspace/{reference}:latest"),
    }
}

fn readiness(spec: &SpecArgs) -> Option<Readiness> {
    let (timeout_secs, interval_ms, startup_grace_secs) =
        (Some(spec.ready_timeout_secs.unwrap_or(READY_TIMEOUT_SECS)), Some(READY_INTERVAL_MS), Some(READY_GRACE_SECS));
    if let Some(port) = spec.ready_tcp {
        return Some(Readiness::Tcp { port, timeout_secs, interval_ms, startup_grace_secs });
    }
    if let Some((port, path)) = &spec.ready_http {
        return Some(Readiness::Http {
            port: *port,
            path: Some(path.clone()),
            timeout_secs,
            interval_ms,
            startup_grace_secs,
        });
    }
    spec.ready_cmd.clone().map(|command| Readiness::Command { command, timeout_secs, interval_ms, startup_grace_secs })
}

fn read_request_file(path: &Path) -> anyhow::Result<BuildRequest> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UserError::new(format!("cannot read {}: {e}", path.display()), None))?;
    let request: BuildRequest = serde_json::from_str(&text).map_err(|e| {
        UserError::new(
            format!("{} is not a build request: {e}", path.display()),
            Some("write one with `nullspace template init` or `nullspace template render json …`"),
        )
    })?;
    if request.build_context.as_ref().is_some_and(|c| {
        c.files
            .iter()
            .any(|f| f.blob_id.is_none() && f.content_base64.is_none() && f.entry_type.as_deref() != Some("dir"))
    }) {
        return Err(UserError::new(
            format!("{} names build-context files without content", path.display()),
            Some("pass the copies as --copy SRC:DST flags instead"),
        )
        .into());
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::super::render;
    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        spec: SpecArgs,
    }

    fn spec(args: &[&str]) -> SpecArgs {
        Probe::try_parse_from(std::iter::once("probe").chain(args.iter().copied())).unwrap().spec
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn each_step_flag_becomes_its_step() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hello.txt");
        std::fs::write(&file, "hi").unwrap();
        let copy = format!("{}:/srv/hello.txt", file.display());
        let prepared = prepare(
            &spec(&[
                "--from-template",
                "nullspace/base",
                "--apt-install",
                "git,curl",
                "--pip-install",
                "humanize",
                "--npm-install",
                "left-pad",
                "--run",
                "echo built > /built",
                "--workdir",
                "/srv",
                "--user",
                "user",
                "--copy",
                &copy,
            ]),
            no_env,
        )
        .unwrap();
        let body = render::redacted_json(&prepared);
        assert_eq!(body["base_image"], "nullspace/base");
        assert_eq!(
            body["steps"],
            json!([
                {"action": "apt_install", "packages": ["git", "curl"]},
                {"action": "pip_install", "packages": ["humanize"]},
                {"action": "npm_install", "packages": ["left-pad"]},
                {"action": "run", "command": "echo built > /built"},
                {"action": "workdir", "path": "/srv"},
                {"action": "user", "user": "user"},
                {"action": "copy", "sources": ["builder-context/step-6/src-0/hello.txt"], "dst": "/srv/hello.txt"},
            ])
        );
        assert_eq!(body["runtime_config"], json!({"default_user": "user", "default_workdir": "/srv"}));
        assert_eq!(body["build_config"], json!({"vcpus": 2, "memory_mib": 512}));
        assert_eq!(prepared.context.len(), 1);
        assert_eq!(prepared.context[0].entry.path, "builder-context/step-6/src-0/hello.txt");
        assert_eq!(prepared.context[0].size_bytes, Some(2));
    }

    #[test]
    fn runtime_build_options_and_readiness_map_to_their_fields() {
        let prepared = prepare(
            &spec(&[
                "--from-python-image",
                "3.12",
                "--env",
                "MODE=prod",
                "--build-env",
                "PIP_INDEX=x",
                "--start-cmd",
                "python -m http.server 8000",
                "--ready-http",
                "8000:/health",
                "--name",
                "web",
                "--tag",
                "stable",
                "--tag",
                "v1",
                "--cpu-count",
                "4",
                "--memory-mb",
                "2048",
                "--no-internet-access",
                "--skip-cache",
                "--backend",
                "native",
            ]),
            no_env,
        )
        .unwrap();
        let body = render::redacted_json(&prepared);
        assert_eq!(body["base_image"], "python:3.12");
        assert_eq!(body["build_envs"], json!({"PIP_INDEX": "x"}));
        assert_eq!(body["start_cmd"], "python -m http.server 8000");
        assert_eq!(body["runtime_config"]["default_envs"], json!({"MODE": "prod"}));
        assert_eq!(
            body["runtime_config"]["readiness"],
            json!({"kind": "http", "port": 8000, "path": "/health", "timeout_secs": 30, "interval_ms": 500, "startup_grace_secs": 2})
        );
        assert_eq!((body["name"].clone(), body["tags"].clone()), (json!("web"), json!(["stable", "v1"])));
        assert_eq!(body["build_config"], json!({"vcpus": 4, "memory_mib": 2048, "internet_access": false}));
        assert_eq!((body["skip_cache"].clone(), body["build_backend"].clone()), (json!(true), json!("native")));
        let tcp = prepare(&spec(&["--from-image", "a", "--ready-tcp", "9000"]), no_env).unwrap();
        assert!(matches!(tcp.request.runtime_config.unwrap().readiness, Some(Readiness::Tcp { port: 9000, .. })));
        let cmd = prepare(&spec(&["--from-image", "a", "--ready-cmd", "test -f /ok"]), no_env).unwrap();
        assert!(matches!(cmd.request.runtime_config.unwrap().readiness, Some(Readiness::Command { .. })));
    }

    #[test]
    fn bases_follow_the_official_names() {
        let base = |args: &[&str]| prepare(&spec(args), no_env).unwrap().request.base_image.unwrap();
        assert_eq!(base(&["--from-ubuntu-image"]), "ubuntu:22.04");
        assert_eq!(base(&["--from-debian-image"]), "debian:stable-slim");
        assert_eq!(base(&["--from-node-image", "20"]), "node:20");
        assert_eq!(base(&["--from-template", "app"]), "nullspace/app:latest");
        assert_eq!(base(&["--from-template", "app:stable"]), "nullspace/app:stable");
        assert_eq!(base(&["--from-template", "app:tb_1"]), "app:tb_1");
        assert_eq!(base(&["--from-template", "tmpl_9"]), "tmpl_9");
        assert_eq!(base(&["--from-template", "team/app:v1"]), "team/app:v1");
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_never_printed() {
        let env = |name: &str| (name == "NPM_TOKEN" || name == "pypi").then(|| format!("s3cret-{name}"));
        let prepared = prepare(
            &spec(&[
                "--from-image",
                "node:20",
                "--build-secret-env",
                "npm=NPM_TOKEN",
                "--build-secret-env",
                "pypi",
                "--run",
                "echo s3cret-NPM_TOKEN | npm login",
            ]),
            env,
        )
        .unwrap();
        assert_eq!(prepared.request.build_secrets.len(), 2);
        assert_eq!(prepared.request.build_secrets[0].value, "s3cret-NPM_TOKEN");
        assert_eq!(prepared.request.build_secrets[1].source.as_deref(), Some("env"));
        let json_text = render::redacted_json(&prepared).to_string();
        let dockerfile = render::dockerfile(&prepared);
        for shown in [&json_text, &dockerfile] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert!(json_text.contains(r#""id":"npm""#) && json_text.contains(render::REDACTED));
        assert!(dockerfile.contains("RUN echo [REDACTED] | npm login"));
        assert!(prepare(&spec(&["--from-image", "a", "--build-secret-env", "x=MISSING"]), env).is_err());
        let no_base = prepare(&spec(&["--run", "x"]), env).unwrap_err();
        assert!(no_base.downcast_ref::<UserError>().is_some());
        assert!(prepare(&spec(&["--from-image", "a", "--build-secret-env", "bad id=NPM_TOKEN"]), env).is_err());
        assert!(prepare(
            &spec(&["--from-image", "a", "--build-secret-env", "npm=NPM_TOKEN", "--build-secret-env", "npm=pypi"]),
            env
        )
        .is_err());
    }

    #[test]
    fn registry_logins_disk_and_readiness_timeout_reach_the_request_and_passwords_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "a").unwrap();
        let copy = format!("{}:/a.txt", file.display());
        let env = |name: &str| (name == "REG_PW").then(|| "hunter2-registry".to_owned());
        let prepared = prepare(
            &spec(&[
                "--from-image",
                "127.0.0.1:5000/private/app:1",
                "--registry-username",
                "bob",
                "--registry-password-env",
                "REG_PW",
                "--git-clone",
                "https://example.com/r.git",
                "--git-depth",
                "1",
                "--copy",
                &copy,
                "--remove",
                "/tmp/x",
                "--remove-recursive",
                "--disk-mb",
                "4096",
                "--ready-tcp",
                "8080",
                "--ready-timeout",
                "90",
                "--run",
                "echo hunter2-registry",
            ]),
            env,
        )
        .unwrap();
        assert_eq!(
            prepared.request.base_image_auth,
            Some(json!({"kind": "basic", "username": "bob", "password": "hunter2-registry"}))
        );
        let body = render::redacted_json(&prepared);
        assert_eq!(body["base_image_auth"], json!({"kind": "basic", "username": "bob", "password": "[REDACTED]"}));
        assert_eq!(body["build_config"]["disk_mb"], 4096);
        assert_eq!(body["runtime_config"]["readiness"]["timeout_secs"], 90);
        let actions: Vec<&str> =
            body["steps"].as_array().unwrap().iter().map(|s| s["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["git_clone", "copy", "remove", "run"]);
        assert_eq!(body["steps"][1]["sources"], json!(["builder-context/step-1/src-0/a.txt"]));
        assert_eq!(body["steps"][3]["command"], "echo [REDACTED]");
        for shown in [body.to_string(), render::dockerfile(&prepared)] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let unset = prepare(
            &spec(&["--from-image", "a", "--registry-username", "bob", "--registry-password-env", "NOPE"]),
            env,
        );
        assert!(unset.unwrap_err().downcast_ref::<UserError>().is_some_and(|e| e.hint.is_some()));
    }

    #[test]
    fn dockerfiles_render_step_by_step() {
        let prepared = prepare(
            &spec(&[
                "--from-ubuntu-image",
                "24.04",
                "--apt-install",
                "git",
                "--pip-install",
                "a,b",
                "--run",
                "make",
                "--workdir",
                "/app",
                "--user",
                "app",
                "--build-env",
                "A=1",
                "--start-cmd",
                "echo \"hi\"",
            ]),
            no_env,
        )
        .unwrap();
        assert_eq!(
            render::dockerfile(&prepared),
            "FROM ubuntu:24.04\n\
             RUN apt-get update && apt-get install -y git && rm -rf /var/lib/apt/lists/*\n\
             RUN pip install --no-cache-dir a b\n\
             RUN make\n\
             WORKDIR /app\n\
             USER app\n\
             ENV A=1\n\
             CMD [\"sh\", \"-c\", \"echo \\\"hi\\\"\"]\n"
        );
    }

    #[test]
    fn dockerfile_builds_carry_the_file_and_its_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM nullspace/base\nCOPY app.txt /app.txt\n").unwrap();
        std::fs::write(dir.path().join("app.txt"), "a").unwrap();
        let path = dir.path().join("Dockerfile");
        let path = path.to_str().unwrap();
        let prepared = prepare(&spec(&["--from-dockerfile", path]), no_env).unwrap();
        assert_eq!(prepared.request.dockerfile.as_deref(), Some("FROM nullspace/base\nCOPY app.txt /app.txt\n"));
        assert_eq!(prepared.context.iter().map(|e| e.entry.path.as_str()).collect::<Vec<_>>(), ["app.txt"]);
        assert_eq!(render::dockerfile(&prepared), "FROM nullspace/base\nCOPY app.txt /app.txt\n");
        assert!(prepare(&spec(&["--from-dockerfile", path, "--backend", "native"]), no_env).is_err());
        assert!(prepare(&spec(&["--from-dockerfile", path, "--run", "x"]), no_env).is_err());
    }

    #[test]
    fn request_files_are_a_base_the_flags_add_to() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.json");
        std::fs::write(&file, serde_json::to_string(&super::super::refs::starter()).unwrap()).unwrap();
        let prepared =
            prepare(&spec(&["--file", file.to_str().unwrap(), "--name", "starter", "--run", "echo more"]), no_env)
                .unwrap();
        assert_eq!(prepared.request.steps.len(), 2);
        assert_eq!(prepared.request.name.as_deref(), Some("starter"));
        assert!(prepared.request.start_cmd.is_some());
        std::fs::write(&file, "{\"steps\": 3}").unwrap();
        assert!(prepare(&spec(&["--file", file.to_str().unwrap()]), no_env).is_err());
    }
}
