//! The template build engine's entry point: runs one build (pull or resolve the base, run each step in a
//! build sandbox, turn each step's writes into a cached layer) and returns the template it produced. The
//! build's record, its status and its log entries belong to the caller (`template_builds`); this module
//! only appends log lines and honours cancellation.

use std::collections::BTreeMap;

use nullspace_types::template_api::{BuildRequest, Readiness};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Control;

/// What a built template is: its layers and the defaults its sandboxes start with. Stored with the
/// template record as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateImage {
    /// Layer ids (`nullspace_image::layers::LayerId` as 64 hex), bottom first.
    pub layers: Vec<String>,
    /// Defaults of the template's sandboxes.
    pub runtime: TemplateRuntime,
    /// What the base image and Dockerfile declared (labels, exposed ports, volumes, healthcheck), in the
    /// protocol's `oci_metadata` shape.
    pub oci_metadata: Option<serde_json::Value>,
}

/// Defaults of a template's sandboxes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateRuntime {
    /// Environment of every process (image ENV, Dockerfile ENV, `runtime_config.default_envs`).
    pub envs: BTreeMap<String, String>,
    /// User processes run as.
    pub default_user: Option<String>,
    /// Working directory of processes.
    pub default_workdir: Option<String>,
    /// Command run once at sandbox start.
    pub start_cmd: Option<String>,
    /// What must hold before a create returns.
    pub readiness: Option<Readiness>,
}

/// One build to run.
pub struct BuildJob {
    /// `tb_…`.
    pub build_id: String,
    /// `tmpl_…` the build produces.
    pub template_id: String,
    /// Owner.
    pub tenant_id: String,
    /// The request, with its secrets (held in memory only).
    pub request: BuildRequest,
    /// Where the engine writes its log lines.
    pub log: super::template_builds::BuildLog,
    /// Cancelled when the build is cancelled or the server stops.
    pub cancel: CancellationToken,
}

/// Why a build failed, in the protocol's `TemplateFailureDetail` terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFailure {
    /// Stable code, e.g. `build_error`, `image_not_found`, `file_upload_error`.
    pub code: String,
    /// Phase, e.g. `base`, `step`, `preflight`, `publish`.
    pub phase: String,
    /// What happened and what to do.
    pub message: String,
    /// Step index (0-based) when a step failed.
    pub step_index: Option<usize>,
}

/// Runs `job` to completion or failure. Cancellation ends it with a failure whose code is `cancelled`.
pub async fn run(control: &Control, job: &BuildJob) -> Result<TemplateImage, BuildFailure> {
    let _ = (control, job);
    Err(BuildFailure {
        code: "build_error".to_owned(),
        phase: "base".to_owned(),
        message: "the build engine is being connected".to_owned(),
        step_index: None,
    })
}
