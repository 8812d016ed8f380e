//! Template build requests as the official client sends them (`POST /v1/templates/build`, `…/builds`,
//! `…/validate`, `…/plan`, the legacy `POST /v1/templates`): the base, the declarative steps, the build
//! context, runtime configuration and readiness. Unknown fields are ignored, as everywhere in the protocol.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::template_wire::TemplateInfo;

/// A template build request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildRequest {
    /// Base image or template ref (`debian:stable-slim`, `host:5000/app:1`, `nullspace/base`, `tmpl_…`).
    pub base_image: Option<String>,
    /// Dockerfile text (exclusive with `base_image`).
    pub dockerfile: Option<String>,
    /// Declarative steps run in order on top of the base.
    pub steps: Vec<Step>,
    /// Environment of build steps only; never reaches a sandbox, a layer or a log line.
    pub build_envs: BTreeMap<String, String>,
    /// Command run once at sandbox start.
    pub start_cmd: Option<String>,
    /// Defaults of sandboxes created from the template.
    pub runtime_config: Option<RuntimeConfig>,
    /// Credentials of the base image's registry.
    pub base_image_auth: Option<serde_json::Value>,
    /// Secrets visible to build steps as environment variables (never stored, never logged).
    pub build_secrets: Vec<BuildSecret>,
    /// Files the copy steps and Dockerfile COPY/ADD read.
    pub build_context: Option<BuildContext>,
    /// Template name (`name` or `name:tag`).
    pub name: Option<String>,
    /// Tags the build gets (default `["default"]`).
    pub tags: Option<Vec<String>>,
    /// Resources and network of the build sandboxes.
    pub build_config: Option<BuildConfig>,
    /// `native` or `buildkit` (both run on the same engine here).
    pub build_backend: Option<String>,
    /// Bypass the layer cache for every step.
    pub skip_cache: Option<bool>,
    /// Legacy name of the template (`POST /v1/templates`).
    pub alias: Option<String>,
    /// Legacy CPU count.
    pub cpu_count: Option<u32>,
    /// Legacy memory size.
    pub memory_mb: Option<u32>,
    /// Legacy runtime environment (`POST /v1/templates`).
    pub envs: BTreeMap<String, String>,
}

/// One declarative build step, tagged by `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Step {
    /// `apt-get install -y` the packages.
    AptInstall {
        /// Debian package names.
        packages: Vec<String>,
    },
    /// `pip install` the packages (`g: false` installs for the step's user only).
    PipInstall {
        /// Requirement specifiers.
        packages: Vec<String>,
        /// System-wide (default true).
        #[serde(default)]
        g: Option<bool>,
    },
    /// `npm install` the packages (`g: true` installs globally).
    NpmInstall {
        /// Package specifiers.
        packages: Vec<String>,
        /// Global install (default false).
        #[serde(default)]
        g: Option<bool>,
    },
    /// `bun add` the packages (`g: true` installs globally).
    BunInstall {
        /// Package specifiers.
        packages: Vec<String>,
        /// Global install (default false).
        #[serde(default)]
        g: Option<bool>,
    },
    /// A shell command.
    Run {
        /// Run with `/bin/sh -c`.
        command: String,
        /// User to run as (the build's current user when absent).
        #[serde(default)]
        user: Option<String>,
    },
    /// Every step after this one bypasses the layer cache.
    SkipCache {},
    /// Copies build-context sources to `dst`.
    Copy(CopyItem),
    /// Several copies in one step.
    CopyItems {
        /// The copies.
        items: Vec<CopyItem>,
    },
    /// `git clone` into `path`.
    GitClone {
        /// Repository URL.
        url: String,
        /// Destination directory.
        #[serde(default)]
        path: Option<String>,
        /// Branch or tag.
        #[serde(default)]
        branch: Option<String>,
        /// Shallow clone depth.
        #[serde(default)]
        depth: Option<u32>,
    },
    /// Sets the working directory of later steps (created when missing).
    Workdir {
        /// Absolute path.
        path: String,
    },
    /// Sets the user of later steps.
    User {
        /// User name or uid.
        user: String,
    },
    /// Removes a path.
    Remove {
        /// Path.
        path: String,
        /// Remove directories recursively.
        #[serde(default)]
        recursive: bool,
        /// Ignore a missing path.
        #[serde(default)]
        force: bool,
    },
    /// Renames a path.
    Rename {
        /// Source path.
        src: String,
        /// Destination path.
        dst: String,
        /// Overwrite an existing destination.
        #[serde(default)]
        force: bool,
    },
    /// Creates a directory and its parents.
    MakeDir {
        /// Path.
        path: String,
        /// Octal mode, e.g. `0755`.
        #[serde(default)]
        mode: Option<String>,
    },
    /// Creates a symbolic link at `path` pointing to `target`.
    MakeSymlink {
        /// Link target.
        target: String,
        /// Link path.
        path: String,
    },
}

/// One copy: build-context sources to a destination in the image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CopyItem {
    /// Build-context paths (`builder-context/step-<i>/src-<j>/…`).
    pub sources: Vec<String>,
    /// Legacy single source.
    pub src: Option<String>,
    /// Destination path (a directory when it ends with `/` or when there are several sources).
    pub dst: String,
    /// Owner of the copied files.
    pub user: Option<String>,
    /// Octal mode of the copied files.
    pub mode: Option<String>,
    /// Upload the sources again even if the server has their blobs.
    pub force_upload: Option<bool>,
}

impl CopyItem {
    /// The sources, including the legacy `src`.
    pub fn all_sources(&self) -> Vec<String> {
        self.sources.iter().cloned().chain(self.src.clone()).collect()
    }
}

/// A build secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildSecret {
    /// Name (the environment variable build steps see).
    pub id: String,
    /// The secret.
    pub value: String,
    /// Where the client read it from (`value`, `env`, `file`).
    pub source: Option<String>,
}

/// Files of the build context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildContext {
    /// Entries, files and directories.
    pub files: Vec<ContextFile>,
}

/// One entry of the build context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContextFile {
    /// Path inside the context.
    pub path: String,
    /// `file` or `dir`.
    pub entry_type: Option<String>,
    /// Blob uploaded through `/v1/templates/blobs`.
    pub blob_id: Option<String>,
    /// Octal mode, e.g. `0644`.
    pub mode: Option<String>,
    /// Inline content (small contexts, validate and plan).
    pub content_base64: Option<String>,
}

/// Defaults of sandboxes created from a template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    /// User processes run as.
    pub default_user: Option<String>,
    /// Working directory of processes.
    pub default_workdir: Option<String>,
    /// Environment of every process.
    pub default_envs: BTreeMap<String, String>,
    /// What must hold before a create returns.
    pub readiness: Option<Readiness>,
}

/// A readiness check of a template's sandboxes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Readiness {
    /// A TCP port accepts connections.
    Tcp {
        /// Port inside the sandbox.
        port: u16,
        /// Give up after this long.
        #[serde(default)]
        timeout_secs: Option<u64>,
        /// Pause between attempts.
        #[serde(default)]
        interval_ms: Option<u64>,
        /// Wait before the first attempt.
        #[serde(default)]
        startup_grace_secs: Option<u64>,
    },
    /// An HTTP GET answers 2xx/3xx.
    Http {
        /// Port inside the sandbox.
        port: u16,
        /// Request path.
        #[serde(default)]
        path: Option<String>,
        /// Give up after this long.
        #[serde(default)]
        timeout_secs: Option<u64>,
        /// Pause between attempts.
        #[serde(default)]
        interval_ms: Option<u64>,
        /// Wait before the first attempt.
        #[serde(default)]
        startup_grace_secs: Option<u64>,
    },
    /// A shell command exits 0.
    Command {
        /// The command.
        command: String,
        /// Give up after this long.
        #[serde(default)]
        timeout_secs: Option<u64>,
        /// Pause between attempts.
        #[serde(default)]
        interval_ms: Option<u64>,
        /// Wait before the first attempt.
        #[serde(default)]
        startup_grace_secs: Option<u64>,
    },
    /// A fixed wait.
    Timeout {
        /// How long.
        timeout_ms: u64,
    },
}

/// Resources and network of the build sandboxes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildConfig {
    /// CPUs (default 2).
    pub vcpus: Option<u32>,
    /// Memory in MiB (default 512).
    pub memory_mib: Option<u32>,
    /// Whether steps reach the internet (default true).
    pub internet_access: Option<bool>,
    /// Disk size in MB.
    pub disk_mb: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_declarative_payload_parses() {
        let body = r#"{"base_image":"debian:stable-slim","steps":[
            {"action":"apt_install","packages":["curl"]},
            {"action":"pip_install","packages":["humanize"],"g":false},
            {"action":"run","command":"echo hi","user":"user"},
            {"action":"skip_cache"},
            {"action":"copy","sources":["builder-context/step-4/src-0/a.txt"],"dst":"/app/","mode":"0640"},
            {"action":"copy_items","items":[{"sources":["x"],"dst":"/y"}]},
            {"action":"git_clone","url":"https://x/y.git","path":"/w","depth":1},
            {"action":"workdir","path":"/app"},{"action":"user","user":"user"},
            {"action":"remove","path":"/tmp/x","recursive":true,"force":false},
            {"action":"rename","src":"/a","dst":"/b","force":true},
            {"action":"make_dir","path":"/d","mode":"0700"},
            {"action":"make_symlink","target":"/d","path":"/l"}],
            "runtime_config":{"readiness":{"kind":"tcp","port":8080,"timeout_secs":30,"interval_ms":100,"startup_grace_secs":0}},
            "build_config":{"vcpus":2,"memory_mib":1024},"unknown":1}"#;
        let request: BuildRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.steps.len(), 13);
        assert!(matches!(&request.steps[1], Step::PipInstall { g: Some(false), .. }));
        assert!(matches!(&request.steps[4], Step::Copy(item) if item.dst == "/app/"));
        let readiness = request.runtime_config.unwrap().readiness.unwrap();
        assert!(matches!(readiness, Readiness::Tcp { port: 8080, .. }));
    }

    #[test]
    fn the_legacy_copy_with_src_parses() {
        let step: Step = serde_json::from_str(r#"{"action":"copy","src":"a","dst":"/b"}"#).unwrap();
        let Step::Copy(item) = step else { panic!("not a copy") };
        assert_eq!(item.all_sources(), vec!["a".to_owned()]);
    }
}
