//! The template build engine: runs one build's plan (pull or resolve each stage's base, run each step
//! in a build sandbox, turn each step's writes into a cached layer) and returns the template it made.
//! The build's record, its status and its log entries belong to the caller (`template_builds`); this
//! module only appends log lines and honours cancellation. Layers are content-addressed: a step's layer
//! id is the hash of its parent's id, the step and the files it copies, so an unchanged step is a hit.

use std::collections::BTreeMap;

use nullspace_node::images::{LayerId, LayerSource, LayerStore};
use nullspace_node::network::NetworkPolicy;
use nullspace_node::{BindMount, RootImage};
use nullspace_types::template_api::{BuildRequest, Readiness};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::build_plan::{self, Base, BuildPlan, Command, CopyFrom, Meta, Op};
use super::build_step::{self, StepPosition, StepSpec};
use super::template_builds::{BuildLog, CacheNote, LogKind, LogLine};
use super::Control;

/// Where a copy's context is mounted in a build sandbox (inside the guest's control dir, which is on
/// the host and never part of a layer).
const CONTEXT_MOUNT: &str = "/run/nullspace/inputs/context";
/// Where a copied-from stage is mounted.
const STAGE_MOUNT: &str = "/run/nullspace/inputs/stage";

/// What a built template is: its layers and the defaults its sandboxes start with. Stored with the
/// template record as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateImage {
    /// Layer ids (`sha256:<hex>`), bottom first.
    pub layers: Vec<String>,
    /// Defaults of the template's sandboxes.
    pub runtime: TemplateRuntime,
    /// What the base image and Dockerfile declared (labels, exposed ports, volumes, healthcheck), in the
    /// protocol's `oci_metadata` shape.
    pub oci_metadata: Option<serde_json::Value>,
}

/// Defaults of a template's sandboxes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TemplateRuntime {
    /// Environment of every process (image ENV, Dockerfile ENV, `runtime_config.default_envs`).
    pub envs: BTreeMap<String, String>,
    /// User processes run as.
    pub default_user: Option<String>,
    /// Working directory of processes.
    pub default_workdir: Option<String>,
    /// Command run once at sandbox start.
    pub start_cmd: Option<String>,
    /// Environment only the start command sees (the build envs), never any other process.
    pub start_envs: BTreeMap<String, String>,
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
    pub tenant: crate::store::Tenant,
    /// The request, with its secrets (held in memory only).
    pub request: BuildRequest,
    /// Where the engine writes its log lines.
    pub log: BuildLog,
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
    /// Structured facts for the failure's `details` (e.g. a refused file's path and type).
    pub details: Option<serde_json::Value>,
}

impl BuildFailure {
    /// A failure in `phase` outside any step, without details.
    pub fn new(code: &str, phase: &str, message: impl Into<String>) -> Self {
        Self { code: code.into(), phase: phase.into(), message: message.into(), step_index: None, details: None }
    }
}

/// A stage while it is being built.
#[derive(Debug, Clone, Default)]
struct StageState {
    /// Layers, bottom first.
    layers: Vec<LayerId>,
    env: BTreeMap<String, String>,
    user: Option<String>,
    workdir: Option<String>,
    /// Cache key of the stack so far.
    key: String,
    /// A `skip_cache` step was passed.
    skip_cache: bool,
    cmd: Option<Command>,
    entrypoint: Option<Command>,
    healthcheck: Option<build_plan::Healthcheck>,
    labels: BTreeMap<String, String>,
    exposed: Vec<String>,
    volumes: Vec<String>,
}

/// Runs `job` to completion or failure. Cancellation ends it with a failure whose code is `cancelled`.
///
/// The future is boxed as `Send` here, where its lifetimes are concrete: the compiler cannot prove the
/// engine's borrows `Send` for every lifetime when the caller spawns it.
pub fn run<'a>(
    control: &'a Control,
    job: &'a BuildJob,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<TemplateImage, BuildFailure>> + Send + 'a>> {
    Box::pin(async move {
        let plan = build_plan::plan(&job.request)
            .map_err(|errors| BuildFailure::new("invalid_request", "validate", errors.to_string()))?;
        job.log.line(LogLine::info(format!(
            "planned {} stage(s), {} layer step(s) for template {}",
            plan.needed.iter().filter(|n| **n).count(),
            plan.layer_ops(),
            job.template_id
        )));
        for warning in &plan.warnings {
            job.log.line(LogLine { kind: LogKind::Warning, ..LogLine::info(warning.clone()) });
        }
        let mut engine = Engine::new(control, job, &plan)?;
        engine.run().await
    })
}

struct Engine<'a> {
    control: &'a Control,
    job: &'a BuildJob,
    plan: &'a BuildPlan,
    layers: &'a LayerStore,
    /// Finished stages.
    stages: Vec<Option<StageState>>,
    /// Layer steps done so far, and in all.
    done: usize,
    total: usize,
    /// Build-only environment of every step: build envs and secrets.
    step_envs: BTreeMap<String, String>,
    network: NetworkPolicy,
    vcpus: u32,
    memory_mb: u32,
    /// Host files of the context's uploaded blobs, looked up once.
    blobs: Option<std::collections::HashMap<String, std::path::PathBuf>>,
}

impl<'a> Engine<'a> {
    fn new(control: &'a Control, job: &'a BuildJob, plan: &'a BuildPlan) -> Result<Self, BuildFailure> {
        let config = job.request.build_config.clone().unwrap_or_default();
        let vcpus = config.vcpus.or(job.request.cpu_count).unwrap_or(2).max(1);
        let memory_mb = config.memory_mib.or(job.request.memory_mb).unwrap_or(1024).max(128);
        control.check_build_size(vcpus, memory_mb).map_err(|e| BuildFailure::new("invalid_request", "validate", e))?;
        let mut step_envs = job.request.build_envs.clone();
        step_envs.extend(job.request.build_secrets.iter().map(|s| (s.id.clone(), s.value.clone())));
        let network =
            NetworkPolicy { internet_access: config.internet_access.unwrap_or(true), ..NetworkPolicy::default() };
        Ok(Self {
            control,
            job,
            plan,
            layers: control.node().layers(),
            stages: vec![None; plan.stages.len()],
            done: 0,
            total: plan.layer_ops(),
            step_envs,
            network,
            vcpus,
            memory_mb,
            blobs: None,
        })
    }

    /// The host files of the context's blobs (those this tenant uploaded).
    async fn blobs(&mut self) -> &std::collections::HashMap<String, std::path::PathBuf> {
        if self.blobs.is_none() {
            let mut found = std::collections::HashMap::new();
            let ids: Vec<String> = match &self.job.request.build_context {
                Some(context) => context.files.iter().filter_map(|f| f.blob_id.clone()).collect(),
                None => Vec::new(),
            };
            for id in ids {
                if let Some(path) = self.control.template_blob_path(&self.job.tenant.id, &id).await {
                    found.insert(id, path);
                }
            }
            self.blobs = Some(found);
        }
        self.blobs.as_ref().expect("just filled")
    }

    async fn run(&mut self) -> Result<TemplateImage, BuildFailure> {
        for index in 0..self.plan.stages.len() {
            if !self.plan.needed[index] {
                continue;
            }
            // Owned copies: nothing borrowed from the plan is held across the awaits below.
            let (base, planned) = (self.plan.stages[index].base.clone(), self.plan.stages[index].ops.clone());
            self.job.log.line(LogLine {
                phase: Some("base".into()),
                ..LogLine::info(format!("stage {}/{}: from {}", index + 1, self.plan.stages.len(), base_name(&base)))
            });
            let mut state = self.base(&base).await?;
            if matches!(base, Base::Image(_)) {
                self.name_numeric_user(&mut state).await?;
            }
            let ops = match &self.plan.dockerfile {
                Some(dockerfile) => {
                    super::build_dockerfile::resolve(dockerfile, index, &state.env, state.workdir.as_deref())
                        .map_err(|e| BuildFailure::new("dockerfile_invalid", "validate", e.to_string()))?
                        .ops
                }
                None => planned,
            };
            for op in &ops {
                if self.job.cancel.is_cancelled() {
                    return Err(BuildFailure::new("cancelled", "step", "the build was cancelled"));
                }
                self.apply(&mut state, op).await?;
            }
            self.stages[index] = Some(state);
        }
        let target = self.stages.pop().flatten().expect("the target stage was built");
        Ok(self.image(target))
    }

    /// The state a stage starts from.
    async fn base(&self, base: &Base) -> Result<StageState, BuildFailure> {
        match base {
            Base::Stage(index) => self.stages.get(*index).cloned().flatten().ok_or_else(|| {
                BuildFailure::new("invalid_request", "base", format!("stage {index} is used before it is built"))
            }),
            Base::Scratch => {
                let empty = self.empty_layer()?;
                Ok(StageState { key: digest(&["scratch"]), layers: vec![empty], ..StageState::default() })
            }
            Base::Image(reference) => {
                let auth = self.job.request.base_image_auth.as_ref();
                let resolved =
                    self.control.resolve_build_base(&self.job.tenant, reference, auth, &self.job.log).await.map_err(
                        |e| BuildFailure { details: e.details, ..BuildFailure::new(&e.code, "base", e.message) },
                    )?;
                let mut state = match resolved {
                    super::template_base::BuildBase::Template { layers, runtime } => StageState {
                        layers,
                        env: runtime.envs,
                        user: runtime.default_user,
                        workdir: runtime.default_workdir,
                        ..StageState::default()
                    },
                    super::template_base::BuildBase::Image { layers, config } => {
                        StageState {
                            layers,
                            env: build_plan::env_map(&config.env),
                            user: config.user.filter(|u| !u.is_empty()),
                            workdir: config.working_dir.filter(|w| !w.is_empty()),
                            entrypoint: config.entrypoint.filter(|e| !e.is_empty()).map(Command::Exec),
                            cmd: config.cmd.filter(|c| !c.is_empty()).map(Command::Exec),
                            labels: config.labels,
                            exposed: config.exposed_ports,
                            volumes: config.volumes,
                            healthcheck: config.healthcheck.map(|h| build_plan::Healthcheck {
                                test: h.test,
                                // The image config's 0 means "Docker's default".
                                interval_ns: Some(h.interval_ns).filter(|ns| *ns > 0),
                                timeout_ns: Some(h.timeout_ns).filter(|ns| *ns > 0),
                                start_period_ns: Some(h.start_period_ns).filter(|ns| *ns > 0),
                                retries: u32::try_from(h.retries).ok().filter(|r| *r > 0),
                            }),
                            ..StageState::default()
                        }
                    }
                };
                let ids: Vec<&str> = state.layers.iter().map(LayerId::hex).collect();
                state.key = digest(&ids);
                Ok(state)
            }
        }
    }

    async fn apply(&mut self, state: &mut StageState, op: &Op) -> Result<(), BuildFailure> {
        match op {
            Op::Env(pairs) => state.env.extend(pairs.iter().cloned()),
            Op::User(user) => state.user = Some(user.clone()),
            Op::SkipCache => state.skip_cache = true,
            Op::Meta(meta) => apply_meta(state, meta),
            Op::Workdir(path) => {
                let path = join_workdir(state.workdir.as_deref(), path);
                let script = format!("mkdir -p -- {}", build_plan::quote(&path));
                let argv = vec!["/bin/sh".into(), "-c".into(), script];
                let step = LayerStep::new(argv, Some("root".into()), format!("WORKDIR {path}"));
                // Made from the previous working directory; later steps run in the new one.
                self.layer_step(state, step).await?;
                state.workdir = Some(path);
            }
            Op::Run { command, user, display, envs } => {
                let argv = match command {
                    Command::Shell(script) => vec!["/bin/sh".into(), "-c".into(), script.clone()],
                    Command::Exec(argv) => argv.clone(),
                };
                let envs: BTreeMap<String, String> = envs.iter().cloned().collect();
                let step = LayerStep {
                    copied: Some((digest_map(&envs), None)),
                    envs,
                    ..LayerStep::new(argv, user.clone(), display.clone())
                };
                self.layer_step(state, step).await?;
            }
            Op::Copy { from, items, force_upload, display } => {
                // A staging dir of the layer store, never published: removed when dropped, and by the
                // store's leftover sweep if the server dies first.
                let staging = self.layers.stage().map_err(|e| {
                    BuildFailure::new("build_error", "step", format!("cannot stage the copy's files: {e}"))
                })?;
                let staging_dir = staging.path();
                let (inputs, sources_digest, script) = match from {
                    CopyFrom::Context => {
                        let blobs = self.blobs().await.clone();
                        self.context_copy(items, &staging_dir, &blobs)?
                    }
                    CopyFrom::Stage(index) => self.stage_copy(*index, items, &staging_dir)?,
                };
                let argv = vec!["/bin/sh".into(), "-c".into(), script];
                let bypass = force_upload.then_some("force_upload");
                let step = LayerStep {
                    copied: Some((sources_digest, bypass)),
                    inputs,
                    ..LayerStep::new(argv, Some("root".into()), display.clone())
                };
                let result = self.layer_step(state, step).await;
                self.release_stage_view(&staging_dir);
                drop(staging);
                result?;
            }
        }
        Ok(())
    }

    /// An image whose `USER` is numeric (`1234` or `1234:2345`) with no account of that uid gets one,
    /// `nullspace-imported-<uid>` with that gid (and a group for the gid), so that the guest and tools that
    /// resolve names find the user; the template's default user is then the uid.
    async fn name_numeric_user(&mut self, state: &mut StageState) -> Result<(), BuildFailure> {
        let Some((uid, gid)) = state.user.as_deref().and_then(numeric_user) else { return Ok(()) };
        let (user, group) = (format!("nullspace-imported-{uid}"), format!("nullspace-imported-{gid}"));
        let script = format!(
            "grep -q '^[^:]*:[^:]*:{gid}:' /etc/group || echo '{group}:x:{gid}:' >> /etc/group\n\
             grep -q '^[^:]*:[^:]*:{uid}:' /etc/passwd || echo '{user}:x:{uid}:{gid}::/:/bin/sh' >> /etc/passwd"
        );
        let argv = vec!["/bin/sh".into(), "-c".into(), script];
        let step = LayerStep::new(argv, Some("root".into()), format!("account for USER {uid}:{gid}"));
        self.total += 1;
        self.layer_step(state, step).await?;
        // By uid: the account of that uid, ours or one the image had.
        state.user = Some(uid.to_string());
        Ok(())
    }

    /// Runs one layer-writing step, or reuses its cached layer.
    async fn layer_step(&mut self, state: &mut StageState, step: LayerStep) -> Result<(), BuildFailure> {
        let LayerStep { argv, user, display, copied, inputs, envs: extra_envs } = step;
        let position = StepPosition { index: self.done, total: self.total };
        self.done += 1;
        let user = user.or_else(|| state.user.clone()).unwrap_or_else(|| "root".into());
        let cwd = state.workdir.clone().unwrap_or_else(|| "/".into());
        let envs_digest = digest_map(&self.job.request.build_envs);
        let env_digest = digest_map(&state.env);
        let copied_digest = copied.as_ref().map(|(d, _)| d.clone()).unwrap_or_default();
        let key = digest(&[
            &state.key,
            &serde_json::to_string(&argv).unwrap_or_default(),
            &user,
            &cwd,
            &env_digest,
            &envs_digest,
            &copied_digest,
        ]);
        let bypass = if self.job.request.skip_cache == Some(true) {
            Some("whole_build_skip_cache")
        } else if state.skip_cache {
            Some("builder_cache_boundary")
        } else {
            copied.as_ref().and_then(|(_, reason)| *reason)
        };
        self.job.log.line(position.line(format!("step {}/{}: {display}", position.index + 1, position.total)));
        let cached = LayerId::for_cache_key(&key);
        if bypass.is_none() && self.layers.contains(&cached) {
            self.layers.mark_used(&cached);
            self.cache_line(position, "hit", None, &cached, &display);
            state.layers.push(cached);
            state.key = key;
            return Ok(());
        }
        self.cache_line(
            position,
            if bypass.is_some() { "bypass" } else { "miss" },
            bypass.or(Some("missing_or_incompatible")),
            &cached,
            &display,
        );
        // A bypassed step makes a new layer even when one of this key exists; what follows it keys on it.
        let key = if bypass.is_some() { digest(&[&key, &self.job.build_id, &position.index.to_string()]) } else { key };
        let id = LayerId::for_cache_key(&key);
        let staging = self.layers.stage().map_err(|e| position.failure("build_error", e.to_string()))?;
        let spec = StepSpec {
            root: self.root(state),
            argv,
            user,
            cwd,
            envs: self.step_envs.clone().into_iter().chain(extra_envs).collect(),
            inputs,
            network: self.network.clone(),
            vcpus: self.vcpus,
            memory_mb: self.memory_mb,
        };
        build_step::run(self.control, spec, position, &self.job.log, &self.job.cancel, &staging.path()).await?;
        staging
            .publish(&id, LayerSource::Step { cache_key: key.clone() })
            .map_err(|e| position.failure("build_error", format!("cannot store the step's layer: {e}")))?;
        self.cache_line(position, "stored", None, &id, &display);
        state.layers.push(id);
        state.key = key;
        Ok(())
    }

    fn cache_line(
        &self,
        position: StepPosition,
        status: &'static str,
        reason: Option<&'static str>,
        id: &LayerId,
        display: &str,
    ) {
        let message = match status {
            "hit" => format!("cache hit: {display} (layer {})", id.short()),
            "stored" => format!("layer {} stored", id.short()),
            "bypass" => format!("cache bypassed ({}): {display}", reason.unwrap_or_default()),
            _ => format!("cache miss: {display}"),
        };
        self.job.log.line(LogLine {
            kind: LogKind::Cache,
            cache: Some(CacheNote { kind: "layer", status, reason, subject: Some(id.to_string()) }),
            ..position.line(message)
        });
    }

    /// The root filesystem of a build sandbox on `state`'s layers.
    fn root(&self, state: &StageState) -> RootImage {
        RootImage {
            layers: state.layers.iter().rev().map(|id| self.layers.path(id)).collect(),
            envs: state.env.clone(),
            default_user: state.user.clone().unwrap_or_else(|| "root".into()),
            default_cwd: "/".into(),
        }
    }

    /// Lays out a context copy's files under `staging` and returns the mount, their digest and the script.
    fn context_copy(
        &self,
        items: &[build_plan::Copy],
        staging: &std::path::Path,
        blobs: &std::collections::HashMap<String, std::path::PathBuf>,
    ) -> Result<(Vec<BindMount>, String, String), BuildFailure> {
        let context = self.job.request.build_context.clone().unwrap_or_default();
        let upload =
            |e: super::build_context::ContextError| BuildFailure::new("file_upload_error", "step", e.to_string());
        let blob = |id: &str| blobs.get(id).cloned();
        let mut digests = Vec::new();
        let mut script = copy_prelude();
        for item in items {
            let mut sources = Vec::new();
            for source in &item.sources {
                let matched = super::build_context::matches(&context, source).map_err(upload)?;
                digests.push(super::build_context::lay_out(&context, &matched, &blob, staging).map_err(upload)?);
                sources.extend(matched.into_iter().map(|m| (format!("{CONTEXT_MOUNT}/{}", m.path), m.is_dir)));
            }
            script.push_str(&copy_script(&sources, item));
        }
        let mount = BindMount { source: staging.to_path_buf(), destination: CONTEXT_MOUNT.into(), read_only: true };
        Ok((vec![mount], digest(&digests.iter().map(String::as_str).collect::<Vec<_>>()), script))
    }

    /// Mounts stage `index`'s filesystem read-only under `staging` for a `COPY --from`.
    fn stage_copy(
        &self,
        index: usize,
        items: &[build_plan::Copy],
        staging: &std::path::Path,
    ) -> Result<(Vec<BindMount>, String, String), BuildFailure> {
        let stage = self.stages.get(index).cloned().flatten().ok_or_else(|| {
            BuildFailure::new("invalid_request", "step", format!("COPY --from stage {index}, which is not built yet"))
        })?;
        let view = staging.join("view");
        let layers: Vec<_> = stage.layers.iter().rev().map(|id| self.layers.path(id)).collect();
        self.control
            .node()
            .mount_layers_read_only(&layers, &view)
            .map_err(|e| BuildFailure::new("build_error", "step", format!("cannot mount stage {index}: {e}")))?;
        let mut script = copy_prelude();
        for item in items {
            let sources: Vec<(String, bool)> = item
                .sources
                .iter()
                .map(|source| {
                    let clean = super::build_context::clean_context_path(source).unwrap_or_default();
                    let is_dir = nullspace_node::is_dir_in_view(&view, &clean);
                    (format!("{STAGE_MOUNT}/{clean}"), is_dir)
                })
                .collect();
            script.push_str(&copy_script(&sources, item));
        }
        let mount = BindMount { source: view, destination: STAGE_MOUNT.into(), read_only: true };
        // The stage's own key names its content.
        Ok((vec![mount], stage.key.clone(), script))
    }

    fn release_stage_view(&self, staging: &std::path::Path) {
        let view = staging.join("view");
        if view.exists() {
            if let Err(error) = self.control.node().unmount_layers(&view) {
                tracing::warn!(view = %view.display(), %error, "cannot unmount a stage view");
            }
        }
    }

    /// An empty layer (`FROM scratch`).
    fn empty_layer(&self) -> Result<LayerId, BuildFailure> {
        let id = LayerId::for_cache_key("nullspace scratch layer");
        if !self.layers.contains(&id) {
            let staging = self.layers.stage().map_err(|e| BuildFailure::new("build_error", "base", e.to_string()))?;
            staging
                .publish(&id, LayerSource::Step { cache_key: "scratch".into() })
                .map_err(|e| BuildFailure::new("build_error", "base", e.to_string()))?;
        }
        Ok(id)
    }

    /// The template `state` makes, with the request's runtime configuration over what the build declared.
    fn image(&self, state: StageState) -> TemplateImage {
        let request = &self.job.request;
        let config = request.runtime_config.clone().unwrap_or_default();
        let mut envs = state.env.clone();
        envs.extend(request.envs.clone());
        envs.extend(config.default_envs.clone());
        // As a container of the image would: the request's start command, else the image's ENTRYPOINT and
        // CMD (declared by the Dockerfile or inherited from the base image).
        let start_cmd = request
            .start_cmd
            .clone()
            .filter(|c| !c.trim().is_empty())
            .or_else(|| start_command(state.entrypoint.as_ref(), state.cmd.as_ref()));
        let readiness = config.readiness.clone().or_else(|| state.healthcheck.as_ref().and_then(healthcheck_readiness));
        let oci_metadata = serde_json::json!({
            "labels": state.labels,
            "exposed_ports": state.exposed,
            "volumes": state.volumes,
            "healthcheck": state.healthcheck.as_ref().map(|h| serde_json::json!({
                "test": h.test,
                "interval_ns": h.interval_ns,
                "timeout_ns": h.timeout_ns,
                "start_period_ns": h.start_period_ns,
                "retries": h.retries,
                "mapped_readiness": healthcheck_readiness(h),
            })),
        });
        TemplateImage {
            layers: state.layers.iter().map(LayerId::to_string).collect(),
            runtime: TemplateRuntime {
                envs,
                default_user: config.default_user.or(state.user),
                default_workdir: config.default_workdir.or(state.workdir),
                start_cmd,
                start_envs: request.build_envs.clone(),
                readiness,
            },
            oci_metadata: Some(oci_metadata),
        }
    }
}

/// One layer-writing step as the engine runs it.
struct LayerStep {
    argv: Vec<String>,
    /// User for this step only (the stage's otherwise).
    user: Option<String>,
    /// What the log shows.
    display: String,
    /// Extra cache-key material (the digest of copied files or of RUN build args) and, for copies, a
    /// reason to bypass the cache.
    copied: Option<(String, Option<&'static str>)>,
    /// Read-only mounts.
    inputs: Vec<BindMount>,
    /// Variables for this step only.
    envs: BTreeMap<String, String>,
}

impl LayerStep {
    fn new(argv: Vec<String>, user: Option<String>, display: String) -> Self {
        Self { argv, user, display, copied: None, inputs: Vec::new(), envs: BTreeMap::new() }
    }
}

fn apply_meta(state: &mut StageState, meta: &Meta) {
    match meta {
        Meta::Cmd(command) => state.cmd = Some(command.clone()),
        Meta::Entrypoint(command) => {
            state.entrypoint = Some(command.clone());
            state.cmd = None; // Docker: a new ENTRYPOINT resets the inherited CMD
        }
        Meta::Healthcheck(check) => state.healthcheck = check.clone(),
        Meta::Labels(labels) => state.labels.extend(labels.iter().cloned()),
        Meta::Expose(ports) => state.exposed.extend(ports.iter().cloned()),
        Meta::Volumes(volumes) => state.volumes.extend(volumes.iter().cloned()),
    }
}

/// The shell command CMD/ENTRYPOINT make, as Docker combines them.
fn start_command(entrypoint: Option<&Command>, cmd: Option<&Command>) -> Option<String> {
    let words = |command: &Command| match command {
        Command::Shell(script) => vec!["/bin/sh".to_owned(), "-c".to_owned(), script.clone()],
        Command::Exec(argv) => argv.clone(),
    };
    let mut argv = entrypoint.map(words).unwrap_or_default();
    if !matches!(entrypoint, Some(Command::Shell(_))) {
        argv.extend(cmd.map(words).unwrap_or_default());
    }
    (!argv.is_empty()).then(|| argv.iter().map(|w| build_plan::quote(w)).collect::<Vec<_>>().join(" "))
}

/// A Docker HEALTHCHECK as the template's readiness: its command must exit 0.
fn healthcheck_readiness(check: &build_plan::Healthcheck) -> Option<Readiness> {
    let command = match check.test.split_first()? {
        (kind, rest) if kind == "CMD-SHELL" => rest.join(" "),
        (kind, rest) if kind == "CMD" => rest.iter().map(|w| build_plan::quote(w)).collect::<Vec<_>>().join(" "),
        _ => return None,
    };
    let interval_ms = check.interval_ns.map(|ns| (ns / 1_000_000).max(100));
    let start_grace = check.start_period_ns.map(|ns| ns / 1_000_000_000);
    let timeout_secs = {
        let interval_s = interval_ms.unwrap_or(1_000).div_ceil(1_000);
        Some(start_grace.unwrap_or(0) + interval_s * u64::from(check.retries.unwrap_or(3).max(1)) + 30)
    };
    Some(Readiness::Command { command, timeout_secs, interval_ms, startup_grace_secs: Some(0) })
}

/// Shell functions every copy script starts with. `copy_into SRC DST` copies a file or a directory's
/// contents into directory DST; `copy_to SRC DST` copies a file to path DST (into it when DST is a
/// directory). Files are staged in the control dir first so owner and mode apply to them only.
fn copy_prelude() -> String {
    String::from(
        "set -eu\nS=/run/nullspace/copy-staging\n\
         prepare() { rm -rf \"$S\"; mkdir -p \"$S\"; }\n\
         finish() { if [ -n \"$1\" ]; then chown -R \"$1\" \"$S\"; fi; \
         if [ -n \"$2\" ]; then find \"$S\" -mindepth 1 -type f -exec chmod \"$2\" {} +; fi; }\n",
    )
}

/// The script of one copy item: every source into the staging dir, owner and mode, then into place.
fn copy_script(sources: &[(String, bool)], item: &build_plan::Copy) -> String {
    use build_plan::quote;
    let to_dir = item.dst.ends_with('/')
        || sources.len() > 1
        || sources.iter().any(|(_, is_dir)| *is_dir)
        || item.extract_archives;
    let owner =
        item.owner.as_deref().map(|o| if o.contains(':') { o.to_owned() } else { format!("{o}:") }).unwrap_or_default();
    let mode = item.mode.clone().unwrap_or_default();
    let dst = quote(&item.dst);
    let mut script = String::from("prepare\n");
    for (source, is_dir) in sources {
        let archive =
            [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz"].iter().any(|ext| source.ends_with(ext));
        let source = quote(source);
        if item.extract_archives && archive && !is_dir {
            script.push_str(&format!("tar -xf {source} -C \"$S\"\n"));
            continue;
        }
        if *is_dir {
            script.push_str(&format!("cp -a {source}/. \"$S\"/\n"));
        } else if to_dir {
            script.push_str(&format!("cp -a {source} \"$S\"/\n"));
        } else {
            script.push_str(&format!("cp -a {source} \"$S/.file\"\n"));
        }
    }
    script.push_str(&format!("finish {} {}\n", quote(&owner), quote(&mode)));
    if to_dir {
        script.push_str(&format!("mkdir -p {dst}\ncp -a \"$S\"/. {dst}/\n"));
    } else {
        let name =
            sources.first().map(|(s, _)| s.rsplit('/').next().unwrap_or_default().to_owned()).unwrap_or_default();
        script.push_str(&format!(
            "if [ -d {dst} ]; then cp -a \"$S/.file\" {dst}/{}; else mkdir -p \"$(dirname {dst})\"; cp -a \"$S/.file\" {dst}; fi\n",
            quote(&name)
        ));
    }
    script.push_str("rm -rf \"$S\"\n");
    script
}

/// `(uid, gid)` of a numeric `USER` (`1234` means gid 1234 too, as the kernel sees it without a group).
fn numeric_user(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    Some((uid.parse().ok()?, gid.parse().ok()?)).filter(|(uid, _)| *uid != 0)
}

/// `path` resolved against the current working directory, as Docker resolves a relative WORKDIR.
fn join_workdir(current: Option<&str>, path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", current.unwrap_or("").trim_end_matches('/'))
    }
}

fn base_name(base: &Base) -> String {
    match base {
        Base::Image(reference) => reference.clone(),
        Base::Stage(index) => format!("stage {}", index + 1),
        Base::Scratch => "scratch".into(),
    }
}

/// sha256 of a map's entries.
fn digest_map(map: &BTreeMap<String, String>) -> String {
    digest(&map.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>())
}

/// sha256 of the parts, each length-prefixed so that no two lists collide.
pub(super) fn digest<S: AsRef<str>>(parts: &[S]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        let part = part.as_ref();
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_and_entrypoint_combine_as_docker_does() {
        let exec = |words: &[&str]| Command::Exec(words.iter().map(|w| w.to_string()).collect());
        assert_eq!(start_command(None, Some(&exec(&["python3", "app.py"]))).unwrap(), "python3 app.py");
        assert_eq!(
            start_command(Some(&exec(&["/entry.sh"])), Some(&exec(&["--port", "8080"]))).unwrap(),
            "/entry.sh --port 8080"
        );
        assert_eq!(
            start_command(Some(&Command::Shell("run me".into())), Some(&exec(&["ignored"]))).unwrap(),
            "/bin/sh -c 'run me'"
        );
        assert_eq!(start_command(None, None), None);
    }

    #[test]
    fn a_shell_healthcheck_becomes_a_command_readiness() {
        let check = build_plan::Healthcheck {
            test: vec!["CMD-SHELL".into(), "curl -f http://localhost/ || exit 1".into()],
            interval_ns: Some(2_000_000_000),
            timeout_ns: None,
            start_period_ns: None,
            retries: Some(3),
        };
        let Some(Readiness::Command { command, interval_ms, .. }) = healthcheck_readiness(&check) else { panic!() };
        assert_eq!(command, "curl -f http://localhost/ || exit 1");
        assert_eq!(interval_ms, Some(2000));
        assert_eq!(healthcheck_readiness(&build_plan::Healthcheck { test: vec!["NONE".into()], ..check }), None);
    }

    #[test]
    fn digests_separate_their_parts() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_eq!(digest(&["x"]), digest(&["x".to_owned()]));
    }

    #[test]
    fn numeric_users_are_recognised() {
        assert_eq!(numeric_user("1234:2345"), Some((1234, 2345)));
        assert_eq!(numeric_user("1234"), Some((1234, 1234)));
        assert_eq!(numeric_user("0"), None, "root has an account everywhere");
        assert_eq!(numeric_user("nobody"), None);
        assert_eq!(numeric_user("app:2345"), None);
    }

    #[test]
    fn relative_workdirs_resolve_against_the_current_one() {
        assert_eq!(join_workdir(Some("/app"), "src"), "/app/src");
        assert_eq!(join_workdir(None, "src"), "/src");
        assert_eq!(join_workdir(Some("/app"), "/opt"), "/opt");
    }

    /// Runs a copy script against real directories (the sandbox's paths replaced by temp dirs).
    #[test]
    fn copy_scripts_copy_files_and_directory_contents_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("payload/sub")).unwrap();
        std::fs::write(src.join("payload/hello.txt"), "hi").unwrap();
        std::fs::write(src.join("payload/sub/deep.txt"), "deep").unwrap();
        std::fs::write(src.join("one.txt"), "one").unwrap();
        let out = dir.path().join("out");
        let item = |dst: &str, mode: Option<&str>| build_plan::Copy {
            sources: vec![],
            dst: out.join(dst).display().to_string() + if dst.ends_with('/') { "/" } else { "" },
            owner: None,
            mode: mode.map(str::to_owned),
            extract_archives: false,
        };
        let staging = dir.path().join("staging");
        let prelude = copy_prelude().replace("/run/nullspace/copy-staging", &staging.display().to_string());
        let script = [
            copy_script(&[(src.join("payload").display().to_string(), true)], &item("opt/qa/", None)),
            copy_script(&[(src.join("one.txt").display().to_string(), false)], &item("file.txt", Some("0640"))),
            copy_script(&[(src.join("one.txt").display().to_string(), false)], &item("opt/qa", None)),
        ]
        .concat();
        let status = std::process::Command::new("sh").arg("-c").arg(prelude + &script).status().unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read_to_string(out.join("opt/qa/hello.txt")).unwrap(), "hi");
        assert_eq!(std::fs::read_to_string(out.join("opt/qa/sub/deep.txt")).unwrap(), "deep");
        assert_eq!(std::fs::read_to_string(out.join("opt/qa/one.txt")).unwrap(), "one", "a file into an existing dir");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(out.join("file.txt")).unwrap().permissions().mode() & 0o777, 0o640);
        assert!(!staging.exists());
    }
}
