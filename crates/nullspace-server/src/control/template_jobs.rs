//! Template builds as jobs: submit (validate, record `waiting`, queue), the task that runs each build
//! through the engine one at a time and publishes its template, cancel, retry, promote, and the
//! reconcile at start that fails builds a previous process left unfinished.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nullspace_types::template_api::{BuildRequest, BuildSecret};
use nullspace_types::template_wire::{BuildData, BuildStatus, FailureDetail, TemplateInfo};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::build_runner::{self, BuildFailure, BuildJob, TemplateImage};
use super::service::ControlResult;
use super::template_builds::{secret_values, BuildLog, LogKind, LogLevel, LogLine};
use super::template_validate as validate;
use super::{Control, ControlError};
use crate::clock;
use crate::store::template_builds::{BuildOutcome, BuildRecord};
use crate::store::templates::TemplateRecord;
use crate::store::{Store, Tenant};

/// Message of builds the server restart interrupted.
pub const RESTARTED: &str = "the server restarted during the build";

/// Template builds in flight and where blobs live.
pub(crate) struct TemplateState {
    /// `<data>/template-blobs`.
    pub(super) blob_root: PathBuf,
    /// Builds queued or running in this process.
    live: Mutex<HashMap<String, LiveBuild>>,
    /// Builds that may run at once.
    slots: Arc<Semaphore>,
}

impl TemplateState {
    /// Whether a build is queued or running now.
    pub(super) fn any_live(&self) -> bool {
        !self.live.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    pub(super) fn new(blob_root: PathBuf, concurrent_builds: usize) -> Self {
        Self { blob_root, live: Mutex::default(), slots: Arc::new(Semaphore::new(concurrent_builds.max(1))) }
    }
}

/// A build queued or running in this process.
#[derive(Clone)]
pub struct LiveBuild {
    /// Its log.
    pub log: BuildLog,
    /// Cancels it.
    pub cancel: CancellationToken,
    /// Cancelled when its task is over (status and log final).
    pub finished: CancellationToken,
}

/// What a retry may change.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct RetryRequest {
    /// New tags.
    pub tags: Option<Vec<String>>,
    /// Credentials of the base image's registry (never stored, so given again).
    pub base_image_auth: Option<Value>,
    /// Build secrets (never stored, so given again).
    pub build_secrets: Vec<BuildSecret>,
}

/// Waits for a build slot; `None` when the build is cancelled first (it leaves the queue at once).
async fn queue_slot(slots: &Arc<Semaphore>, cancel: &CancellationToken) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        slot = slots.clone().acquire_owned() => slot.ok(),
    }
}

/// The protocol's failure phase for an engine phase.
pub fn failure_phase(phase: &str) -> &'static str {
    match phase {
        "auth" => "auth",
        "preflight" => "preflight",
        "blob_upload" => "blob_upload",
        "step" | "build_step" => "build_step",
        "readiness" => "readiness",
        "snapshot" => "snapshot",
        "publish" | "finalize" => "finalize",
        "interrupted" => "interrupted",
        _ => "prepare",
    }
}

fn failure_detail(failure: &BuildFailure, build_id: &str, log: &BuildLog) -> FailureDetail {
    let retryable = matches!(failure.code.as_str(), "build_interrupted" | "registry_unavailable" | "timeout");
    let suggested_action = match failure.code.as_str() {
        "file_upload_error" => "upload the build context again (the client does this on a new build) and retry",
        "image_not_found" => "check the base image name and tag, and the registry credentials",
        "build_interrupted" => "retry the build",
        _ => "read the build log, fix the failing step and build again",
    };
    FailureDetail {
        code: failure.code.clone(),
        message: log.redact(&failure.message),
        phase: failure_phase(&failure.phase).to_owned(),
        retryable,
        suggested_action: suggested_action.to_owned(),
        step_index: failure.step_index.map(|index| index as u64),
        build_id: Some(build_id.to_owned()),
        details: failure.details.clone(),
    }
}

fn build_not_found(build_id: &str) -> ControlError {
    ControlError::BuildNotFound { build_id: build_id.to_owned() }
}

impl Control {
    /// Sets where build-context blobs are stored (`<data>/template-blobs`).
    pub fn with_template_dir(mut self, blob_root: PathBuf) -> Self {
        self.templates = Arc::new(TemplateState::new(blob_root, 1));
        self
    }

    /// The build `build_id` if `tenant` owns it.
    pub async fn build_record(&self, tenant: &Tenant, build_id: &str) -> ControlResult<BuildRecord> {
        match self.store.get_build(build_id).await? {
            Some(build) if build.tenant_id == tenant.id => Ok(build),
            _ => Err(build_not_found(build_id)),
        }
    }

    /// The build queued or running in this process, if any.
    pub fn live_build(&self, build_id: &str) -> Option<LiveBuild> {
        self.templates.live.lock().unwrap_or_else(|p| p.into_inner()).get(build_id).cloned()
    }

    /// Validates `request`, records a `waiting` build with its `start` entry and queues it.
    pub async fn submit_build(
        &self,
        tenant: &Tenant,
        mut request: BuildRequest,
        retry_of: Option<String>,
    ) -> ControlResult<BuildRecord> {
        let (errors, _) = validate::check(&request);
        if !errors.is_empty() {
            let message = errors.iter().map(|issue| issue.message.as_str()).collect::<Vec<_>>().join("; ");
            return Err(ControlError::InvalidRequest { message });
        }
        let (name, tags) =
            validate::name_and_tags(&request).map_err(|message| ControlError::InvalidRequest { message })?;
        if request.base_image.is_none() && request.dockerfile.is_none() {
            request.base_image = Some("nullspace/base".to_owned());
        }
        self.inline_files_to_blobs(&tenant.id, &mut request).await?;
        let namespace = self.store.ensure_namespace(&tenant.id, &tenant.name).await?;
        let template_id = crate::ids::template_id();
        let build_id = crate::ids::build_id();
        let stored = validate::storable(&request);
        let now = clock::now_rfc3339();
        let record = BuildRecord {
            id: build_id.clone(),
            template_id: template_id.clone(),
            tenant_id: tenant.id.clone(),
            namespace,
            name: name.unwrap_or_else(|| template_id.clone()),
            tags,
            status: BuildStatus::Waiting,
            source_type: validate::source_type(&request).to_owned(),
            source_digest: Some(validate::digest(stored.to_string().as_bytes())),
            context_digest: validate::context_digest(&request),
            dockerfile_digest: request.dockerfile.as_deref().map(|text| validate::digest(text.as_bytes())),
            request: stored,
            created_at: now.clone(),
            updated_at: now.clone(),
            queued_at: Some(now),
            started_at: None,
            finished_at: None,
            error: None,
            error_detail: None,
            failure_phase: None,
            cancel_requested_at: None,
            cancel_requested_by: None,
            cancellation_reason: None,
            retry_of_build_id: retry_of,
            cache_summary: Default::default(),
        };
        self.store.insert_build(&record).await?;
        let log = BuildLog::open(self.store.clone(), &build_id, &template_id, 0, secret_values(&request));
        log.line(LogLine::new(LogKind::Start, LogLevel::Info, format!("build {build_id} of {} queued", record.name)));
        let live = LiveBuild { log, cancel: CancellationToken::new(), finished: CancellationToken::new() };
        self.templates.live.lock().unwrap_or_else(|p| p.into_inner()).insert(build_id.clone(), live.clone());
        let control = self.clone();
        let job_record = record.clone();
        let owner = tenant.clone();
        tokio::spawn(async move {
            control.run_build(job_record, request, live.clone(), owner).await;
            control.templates.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&live.log.build_id().to_owned());
            live.finished.cancel();
        });
        Ok(record)
    }

    async fn run_build(&self, record: BuildRecord, request: BuildRequest, live: LiveBuild, tenant: Tenant) {
        let log = live.log.clone();
        let slot = queue_slot(&self.templates.slots, &live.cancel).await;
        if slot.is_none() {
            end_cancelled(&self.store, &record, &log).await;
            return;
        }
        if let Err(error) = self.store.start_build(&record.id, &clock::now_rfc3339()).await {
            tracing::error!(build_id = %record.id, error = %crate::error_chain(&error), "starting a build failed");
        }
        log.line(LogLine::info("build started").in_phase("preflight"));
        if let Err(failure) = self.check_blobs(&record.tenant_id, &request).await {
            end_failed(&self.store, &record, &log, &failure).await;
            return;
        }
        let job = BuildJob {
            build_id: record.id.clone(),
            template_id: record.template_id.clone(),
            tenant,
            request,
            log: log.clone(),
            cancel: live.cancel.clone(),
        };
        let result = build_runner::run(self, &job).await;
        match result {
            _ if live.cancel.is_cancelled() => end_cancelled(&self.store, &record, &log).await,
            Err(failure) if failure.code == "cancelled" => end_cancelled(&self.store, &record, &log).await,
            Err(failure) => end_failed(&self.store, &record, &log, &failure).await,
            Ok(image) => {
                if let Err(error) = self.publish(&record, &log, image).await {
                    let message = format!("publishing the template failed: {}", crate::error_chain(&error));
                    end_failed(&self.store, &record, &log, &BuildFailure::new("build_error", "finalize", message))
                        .await;
                }
            }
        }
    }

    /// Checks every blob the request references exists for the tenant.
    async fn check_blobs(&self, tenant_id: &str, request: &BuildRequest) -> Result<(), BuildFailure> {
        let files = request.build_context.as_ref().map(|context| context.files.as_slice()).unwrap_or_default();
        for file in files {
            let Some(blob_id) = &file.blob_id else { continue };
            if self.template_blob_path(tenant_id, blob_id).await.is_none() {
                let message =
                    format!("build context file {} references blob {blob_id}, which was never uploaded", file.path);
                return Err(BuildFailure {
                    details: Some(json!({"reason": "unknown_blob", "blob_id": blob_id, "path": file.path})),
                    ..BuildFailure::new("file_upload_error", "preflight", message)
                });
            }
        }
        Ok(())
    }

    /// Records the template, moves the tags, writes `end`, then marks the build ready.
    async fn publish(&self, record: &BuildRecord, log: &BuildLog, image: TemplateImage) -> ControlResult<()> {
        let now = clock::now_rfc3339();
        let template = TemplateRecord {
            id: record.template_id.clone(),
            tenant_id: record.tenant_id.clone(),
            namespace: record.namespace.clone(),
            name: record.name.clone(),
            visibility: "private".to_owned(),
            description: format!("built by {}", record.id),
            image: serde_json::to_string(&image).unwrap_or_else(|_| "{}".into()),
            build_id: record.id.clone(),
            created_at: now.clone(),
            updated_at: now,
        };
        save_cache_summary(&self.store, record, log).await;
        let template = self.store.insert_template(&template, &record.tags).await?;
        let info: TemplateInfo = self.template_info(&template).await?;
        let mut extra = Map::new();
        extra.insert("result".into(), serde_json::to_value(&info).unwrap_or_default());
        extra.insert(
            "result_metadata".into(),
            json!({"runtime_defaults": info.runtime_defaults, "oci_metadata": image.oci_metadata}),
        );
        log.entry(LogLine::new(LogKind::End, LogLevel::Info, format!("template {} is ready", template.id)), extra);
        log.flush().await;
        let outcome = BuildOutcome { status: BuildStatus::Ready, error: None, error_detail: None, failure_phase: None };
        self.store.finish_build(&record.id, &outcome, &clock::now_rfc3339()).await?;
        Ok(())
    }

    /// Cancels build `build_id`: a waiting build ends at once, a running one when the engine stops.
    pub async fn cancel_build(
        &self,
        tenant: &Tenant,
        build_id: &str,
        reason: Option<&str>,
    ) -> ControlResult<BuildRecord> {
        let build = self.build_record(tenant, build_id).await?;
        if build.status.is_terminal() {
            return Ok(build);
        }
        self.store.request_build_cancel(build_id, &clock::now_rfc3339(), &tenant.name, reason).await?;
        if let Some(live) = self.live_build(build_id) {
            live.cancel.cancel();
            if build.status == BuildStatus::Waiting {
                // The task leaves the queue at once; wait for it so the answer shows `cancelled`.
                let _ = tokio::time::timeout(Duration::from_secs(10), live.finished.cancelled()).await;
            }
        }
        self.build_record(tenant, build_id).await
    }

    /// A new build from the stored request of `build_id`, with the retry's tags, credentials and secrets.
    pub async fn retry_build(
        &self,
        tenant: &Tenant,
        build_id: &str,
        retry: RetryRequest,
    ) -> ControlResult<BuildRecord> {
        let build = self.build_record(tenant, build_id).await?;
        let mut request: BuildRequest =
            serde_json::from_value(build.request.clone()).map_err(|error| ControlError::InvalidRequest {
                message: format!("the stored request of {build_id} cannot be read: {error}"),
            })?;
        request.name = Some(build.name.clone());
        request.alias = None;
        request.tags = Some(retry.tags.unwrap_or(build.tags));
        request.base_image_auth = retry.base_image_auth;
        request.build_secrets = retry.build_secrets;
        self.submit_build(tenant, request, Some(build_id.to_owned())).await
    }

    /// Moves `tag` of the build's name to the template the build produced.
    pub async fn promote_build(&self, tenant: &Tenant, build_id: &str, tag: &str) -> ControlResult<TemplateInfo> {
        if !validate::valid_tag(tag) {
            return Err(ControlError::InvalidRequest { message: format!("invalid tag {tag:?}") });
        }
        let build = self.build_record(tenant, build_id).await?;
        let template = match self.store.get_template(&build.template_id).await? {
            Some(template) if build.status == BuildStatus::Ready => template,
            _ => {
                return Err(ControlError::TemplateConflict {
                    message: format!("build {build_id} is {} and has no template to promote", build.status.as_str()),
                })
            }
        };
        self.store.assign_tags(&template, &[tag.to_owned()]).await?;
        self.template_info(&template).await
    }

    /// Fails the builds a previous process left waiting or building.
    pub(super) async fn reconcile_builds(&self) -> ControlResult<()> {
        fail_interrupted_builds(&self.store).await
    }

    /// The wire form of `build`.
    pub async fn build_data(&self, build: &BuildRecord) -> ControlResult<BuildData> {
        let template = self.store.get_template(&build.template_id).await?;
        let image = template.as_ref().map(super::template_refs::image_of);
        let visibility = match &template {
            Some(template) => template.visibility.clone(),
            None => "private".to_owned(),
        };
        let duration_ms = match (&build.started_at, &build.finished_at) {
            (Some(start), Some(end)) => {
                match (chrono::DateTime::parse_from_rfc3339(start), chrono::DateTime::parse_from_rfc3339(end)) {
                    (Ok(start), Ok(end)) => u64::try_from((end - start).num_milliseconds()).ok(),
                    _ => None,
                }
            }
            _ => None,
        };
        Ok(BuildData {
            build_id: build.id.clone(),
            template_id: build.template_id.clone(),
            name: build.name.clone(),
            tags: build.tags.clone(),
            status: build.status,
            build_backend: "native".to_owned(),
            source_type: build.source_type.clone(),
            source_digest: build.source_digest.clone(),
            context_digest: build.context_digest.clone(),
            dockerfile_digest: build.dockerfile_digest.clone(),
            queued_at: build.queued_at.clone(),
            started_at: build.started_at.clone(),
            finished_at: build.finished_at.clone(),
            duration_ms,
            failure_phase: build.failure_phase.clone(),
            build_config: build.request.get("build_config").filter(|value| value.is_object()).cloned(),
            cache_summary: build.cache_summary.clone(),
            artifact_ids: image.as_ref().map(|image| image.layers.clone()).unwrap_or_default(),
            runtime_defaults: image.as_ref().map(super::template_refs::runtime_defaults),
            oci_metadata: image.and_then(|image| image.oci_metadata),
            error: build.error.clone(),
            error_detail: build.error_detail.clone().and_then(|detail| serde_json::from_value(detail).ok()),
            retry_of_build_id: build.retry_of_build_id.clone(),
            cancel_requested_at: build.cancel_requested_at.clone(),
            cancel_requested_by: build.cancel_requested_by.clone(),
            cancellation_reason: build.cancellation_reason.clone(),
            canonical_ref: format!("{}/{}", build.namespace, build.name),
            namespace_slug: build.namespace.clone(),
            visibility,
            created_at: build.created_at.clone(),
            updated_at: build.updated_at.clone(),
        })
    }
}

async fn end_failed(store: &Store, record: &BuildRecord, log: &BuildLog, failure: &BuildFailure) {
    save_cache_summary(store, record, log).await;
    let detail = failure_detail(failure, &record.id, log);
    let mut extra = Map::new();
    extra.insert("error_detail".into(), serde_json::to_value(&detail).unwrap_or_default());
    let mut line = LogLine::new(LogKind::Error, LogLevel::Error, detail.message.clone()).in_phase(detail.phase.clone());
    line.step_index = failure.step_index;
    log.entry(line, extra);
    log.flush().await;
    let outcome = BuildOutcome {
        status: BuildStatus::Error,
        error: Some(detail.message.clone()),
        failure_phase: Some(detail.phase.clone()),
        error_detail: serde_json::to_value(&detail).ok(),
    };
    if let Err(error) = store.finish_build(&record.id, &outcome, &clock::now_rfc3339()).await {
        tracing::error!(build_id = %record.id, error = %crate::error_chain(&error), "recording a failed build failed");
    }
}

async fn save_cache_summary(store: &Store, record: &BuildRecord, log: &BuildLog) {
    let summary = log.cache_summary();
    if summary.is_empty() {
        return;
    }
    if let Err(error) = store.set_build_cache_summary(&record.id, &summary).await {
        tracing::error!(build_id = %record.id, error = %crate::error_chain(&error), "storing cache counters failed");
    }
}

async fn end_cancelled(store: &Store, record: &BuildRecord, log: &BuildLog) {
    save_cache_summary(store, record, log).await;
    log.line(LogLine::new(LogKind::Cancelled, LogLevel::Warn, "build cancelled"));
    log.flush().await;
    let outcome = BuildOutcome { status: BuildStatus::Cancelled, error: None, error_detail: None, failure_phase: None };
    if let Err(error) = store.finish_build(&record.id, &outcome, &clock::now_rfc3339()).await {
        tracing::error!(build_id = %record.id, error = %crate::error_chain(&error), "recording a cancelled build failed");
    }
}

/// Fails the builds a previous process left waiting or building.
pub(super) async fn fail_interrupted_builds(store: &Store) -> ControlResult<()> {
    let builds = store.builds_in_status(&[BuildStatus::Waiting, BuildStatus::Building]).await?;
    for build in builds {
        let next = store.next_build_log_offset(&build.id).await?;
        let log = BuildLog::open(store.clone(), &build.id, &build.template_id, next, Vec::new());
        end_failed(store, &build, &log, &BuildFailure::new("build_interrupted", "interrupted", RESTARTED)).await;
        tracing::warn!(build_id = %build.id, "failed a build the restart interrupted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builds_a_restart_interrupted_end_as_errors_with_a_final_log_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite")).await.unwrap();
        let tenant = store.ensure_tenant("t").await.unwrap();
        let mut ids = Vec::new();
        for (index, status) in [BuildStatus::Waiting, BuildStatus::Building, BuildStatus::Ready].into_iter().enumerate()
        {
            let id = format!("tb_{index}");
            let now = clock::now_rfc3339();
            let record = BuildRecord {
                id: id.clone(),
                template_id: format!("tmpl_{index}"),
                tenant_id: tenant.id.clone(),
                namespace: "t".into(),
                name: "app".into(),
                tags: vec!["default".into()],
                status,
                source_type: "declarative".into(),
                source_digest: None,
                context_digest: None,
                dockerfile_digest: None,
                request: json!({}),
                created_at: now.clone(),
                updated_at: now,
                queued_at: None,
                started_at: None,
                finished_at: None,
                error: None,
                error_detail: None,
                failure_phase: None,
                cancel_requested_at: None,
                cancel_requested_by: None,
                cancellation_reason: None,
                retry_of_build_id: None,
                cache_summary: Default::default(),
            };
            store.insert_build(&record).await.unwrap();
            store.insert_build_log(&id, 0, r#"{"kind":"start"}"#).await.unwrap();
            ids.push(id);
        }
        fail_interrupted_builds(&store).await.unwrap();
        for id in &ids[..2] {
            let build = store.get_build(id).await.unwrap().unwrap();
            assert_eq!(build.status, BuildStatus::Error, "{id}");
            assert_eq!(build.error.as_deref(), Some(RESTARTED));
            assert_eq!(build.failure_phase.as_deref(), Some("interrupted"));
            let detail: FailureDetail = serde_json::from_value(build.error_detail.unwrap()).unwrap();
            assert_eq!(
                (detail.code.as_str(), detail.retryable, detail.build_id.as_deref()),
                ("build_interrupted", true, Some(id.as_str()))
            );
            let entries = store.build_logs(id, 0).await.unwrap();
            assert_eq!(entries.iter().map(|(offset, _)| *offset).collect::<Vec<_>>(), [0, 1]);
            let last: Value = serde_json::from_str(&entries[1].1).unwrap();
            assert_eq!(
                (last["kind"].as_str(), last["error_detail"]["phase"].as_str()),
                (Some("error"), Some("interrupted"))
            );
        }
        let ready = store.get_build(&ids[2]).await.unwrap().unwrap();
        assert_eq!(ready.status, BuildStatus::Ready, "finished builds are left alone");
        assert_eq!(store.next_build_log_offset(&ids[2]).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_queued_build_waits_for_the_slot_and_leaves_the_queue_when_cancelled() {
        let slots = Arc::new(Semaphore::new(1));
        let running = queue_slot(&slots, &CancellationToken::new()).await.expect("a free slot");
        let cancel = CancellationToken::new();
        let waiting = tokio::spawn({
            let (slots, cancel) = (slots.clone(), cancel.clone());
            async move { queue_slot(&slots, &cancel).await.is_some() }
        });
        cancel.cancel();
        assert!(!waiting.await.unwrap(), "cancelled while the slot was taken");
        assert_eq!(slots.available_permits(), 0, "the running build still holds the slot");
        drop(running);
        assert!(queue_slot(&slots, &CancellationToken::new()).await.is_some(), "the slot is free again");
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        assert!(queue_slot(&slots, &cancelled).await.is_none(), "a cancelled build never takes a slot");
    }

    #[test]
    fn engine_phases_map_to_the_protocols_failure_phases() {
        assert_eq!(failure_phase("step"), "build_step");
        assert_eq!(failure_phase("base"), "prepare");
        assert_eq!(failure_phase("publish"), "finalize");
        assert_eq!(failure_phase("preflight"), "preflight");
    }
}
