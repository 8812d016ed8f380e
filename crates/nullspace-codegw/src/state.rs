//! The gateway's shared state: its options, the kernelspecs, the contexts (and the default context of
//! each language, recorded on disk so they outlive a restart), the artifact store, the runs, and whether
//! the default python context runs code.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jupyter_zmq_client::KernelspecDir;
use nullspace_types::code_api::CodeContext;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::artifacts::ArtifactStore;
use crate::contexts::{prepare_cwd, Context};
use crate::error::{GatewayError, GatewayResult};
use crate::kernel::spec::{canonical_language, Kernelspecs};
use crate::runs::Runs;

/// What the gateway was started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Default cwd of contexts (`/workspace`).
    pub default_cwd: PathBuf,
    /// Where connection files go.
    pub runtime_dir: PathBuf,
    /// Where the contexts are recorded, so they outlive a gateway restart (their kernels start afresh).
    pub contexts_file: PathBuf,
    /// Output bytes one execution passes on.
    pub max_output_bytes: usize,
    /// Interval of `: ping` comments on quiet execute streams.
    pub keepalive: std::time::Duration,
    /// The sandbox this gateway runs in (for runs), empty when unknown.
    pub sandbox_id: String,
    /// The sandbox's environment as guestd keeps it (see [`crate::exec::sandbox_envs`]).
    pub envs_file: PathBuf,
}

/// One context as recorded in the contexts file.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    #[serde(flatten)]
    context: CodeContext,
    #[serde(default)]
    is_default: bool,
}

/// Whether the default python context runs code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Its kernel is starting.
    Starting,
    /// It runs code.
    Ready,
    /// It could not start (why).
    Failed(String),
}

/// The gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Options.
    pub options: Options,
    /// Kernelspecs found at start.
    pub specs: Kernelspecs,
    /// Stored artifacts.
    pub artifacts: ArtifactStore,
    /// Queued and finished runs.
    pub runs: Runs,
    contexts: Mutex<Vec<Arc<Context>>>,
    defaults: tokio::sync::Mutex<HashMap<&'static str, Arc<Context>>>,
    ready: watch::Sender<Readiness>,
}

/// The shared handle routes get.
pub type Shared = Arc<Gateway>;

impl Gateway {
    /// A gateway with no contexts yet.
    pub fn new(options: Options, specs: Kernelspecs, artifacts: ArtifactStore) -> Shared {
        Arc::new(Self {
            options,
            specs,
            artifacts,
            runs: Runs::default(),
            contexts: Mutex::new(Vec::new()),
            defaults: tokio::sync::Mutex::new(HashMap::new()),
            ready: watch::Sender::new(Readiness::Starting),
        })
    }

    /// Starts the default python context's kernel and records the readiness.
    pub async fn start_default_python(&self) {
        let outcome = match self.default_context("python").await {
            Ok(context) => context.kernel().await.map(|_| ()),
            Err(error) => Err(error),
        };
        let readiness = match outcome {
            Ok(()) => Readiness::Ready,
            Err(error) => {
                tracing::error!("the default python context did not start: {}", error.message());
                Readiness::Failed(error.message())
            }
        };
        self.ready.send_replace(readiness);
    }

    /// Whether the default python context runs code.
    pub fn readiness(&self) -> Readiness {
        self.ready.borrow().clone()
    }

    /// The canonical language and kernelspec of `requested` (python when absent).
    pub fn language(&self, requested: Option<&str>) -> GatewayResult<(&'static str, KernelspecDir)> {
        let requested = requested.map(str::trim).filter(|language| !language.is_empty()).unwrap_or("python");
        let available: Vec<String> = self.specs.available_languages().into_iter().map(str::to_owned).collect();
        let language = canonical_language(requested).ok_or_else(|| GatewayError::UnknownLanguage {
            language: requested.to_owned(),
            available: available.clone(),
        })?;
        let spec = self.specs.for_language(language).ok_or_else(|| GatewayError::LanguageUnavailable {
            language: language.to_owned(),
            installed: self.specs.kernel_names(),
            available,
        })?;
        Ok((language, spec.clone()))
    }

    /// A new context (its kernel starts on first use).
    pub fn create_context(&self, language: Option<&str>, cwd: Option<&str>) -> GatewayResult<Arc<Context>> {
        self.new_context(language, cwd, false)
    }

    fn new_context(&self, language: Option<&str>, cwd: Option<&str>, is_default: bool) -> GatewayResult<Arc<Context>> {
        let (language, spec) = self.language(language)?;
        let cwd = prepare_cwd(cwd, &self.options.default_cwd)?;
        let info = CodeContext {
            id: crate::ids::new_id("ctx_"),
            language: language.to_owned(),
            cwd: cwd.display().to_string(),
        };
        let context = Context::new(info, is_default, spec, &self.options);
        self.lock_contexts().push(Arc::clone(&context));
        self.persist();
        Ok(context)
    }

    /// Brings back the contexts a previous run of the gateway recorded (ids, languages and cwds; their
    /// kernels start on first use, with fresh state). Records that no longer fit are dropped.
    pub async fn restore_contexts(&self) {
        let Ok(bytes) = std::fs::read(&self.options.contexts_file) else { return };
        let records: Vec<Recorded> = match serde_json::from_slice(&bytes) {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!("ignoring the recorded contexts: {error}");
                return;
            }
        };
        let mut defaults = self.defaults.lock().await;
        for record in records {
            let (language, spec) = match self.language(Some(&record.context.language)) {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(context = %record.context.id, "dropping a recorded context: {}", error.message());
                    continue;
                }
            };
            let info = CodeContext { language: language.to_owned(), ..record.context };
            let context = Context::new(info, record.is_default, spec, &self.options);
            if record.is_default && !defaults.contains_key(language) {
                defaults.insert(language, Arc::clone(&context));
            }
            self.lock_contexts().push(context);
        }
        tracing::info!(contexts = self.lock_contexts().len(), "recorded contexts restored");
    }

    /// Records the contexts (best effort: a failure costs only their survival of a restart).
    fn persist(&self) {
        let records: Vec<Recorded> = self
            .lock_contexts()
            .iter()
            .map(|context| Recorded { context: context.info.clone(), is_default: context.is_default })
            .collect();
        let path = &self.options.contexts_file;
        let temporary = path.with_extension("json.tmp");
        let written = serde_json::to_vec(&records)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&temporary, bytes))
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), "cannot record the contexts: {error}");
        }
    }

    /// The context `id`.
    pub fn context(&self, id: &str) -> GatewayResult<Arc<Context>> {
        self.lock_contexts()
            .iter()
            .find(|context| context.info.id == id)
            .cloned()
            .ok_or_else(|| GatewayError::ContextNotFound { id: id.to_owned() })
    }

    /// Every context, oldest first.
    pub fn list_contexts(&self) -> Vec<CodeContext> {
        self.lock_contexts().iter().map(|context| context.info.clone()).collect()
    }

    /// Removes the context `id` and stops its kernel.
    pub async fn remove_context(&self, id: &str) -> GatewayResult<()> {
        let context = {
            let mut contexts = self.lock_contexts();
            let index = contexts
                .iter()
                .position(|context| context.info.id == id)
                .ok_or_else(|| GatewayError::ContextNotFound { id: id.to_owned() })?;
            contexts.remove(index)
        };
        self.persist();
        context.remove().await;
        Ok(())
    }

    /// The default context of `language` (created when there is none, or it was removed).
    pub async fn default_context(&self, language: &str) -> GatewayResult<Arc<Context>> {
        let (language, _) = self.language(Some(language))?;
        let mut defaults = self.defaults.lock().await;
        if let Some(context) = defaults.get(language) {
            if !context.is_removed() {
                return Ok(Arc::clone(context));
            }
        }
        let context = self.new_context(Some(language), None, true)?;
        defaults.insert(language, Arc::clone(&context));
        Ok(context)
    }

    /// The context an execution names: `context_id` (whose language must match `language` when both
    /// are given), else the default context of `language` (python when absent).
    pub async fn resolve(&self, language: Option<&str>, context_id: Option<&str>) -> GatewayResult<Arc<Context>> {
        let language = language.map(str::trim).filter(|language| !language.is_empty());
        let context_id = context_id.map(str::trim).filter(|id| !id.is_empty());
        let Some(id) = context_id else {
            return self.default_context(language.unwrap_or("python")).await;
        };
        let context = self.context(id)?;
        if let Some(language) = language {
            let (language, _) = self.language(Some(language))?;
            if language != context.info.language {
                return Err(GatewayError::invalid(format!(
                    "context {id} runs {}, not {language}; omit language or use a {language} context",
                    context.info.language
                )));
            }
        }
        Ok(context)
    }

    /// Stops every kernel (the gateway is shutting down); the contexts stay recorded.
    pub async fn shutdown(&self) {
        let contexts = std::mem::take(&mut *self.lock_contexts());
        for context in contexts {
            context.remove().await;
        }
    }

    fn lock_contexts(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Context>>> {
        self.contexts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
