//! Code contexts: each is one kernel (started from its language's kernelspec in its cwd) whose state
//! persists between executions. Executions in a context run one at a time in arrival order; a kernel
//! that dies or is restarted is replaced by a fresh one; removal stops it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use jupyter_zmq_client::KernelspecDir;
use nullspace_types::code_api::{CodeContext, ExecutionError, ExecutionEvent};
use nullspace_types::rel_path::resolve_under;
use tokio::sync::{mpsc, watch, Mutex};

use crate::artifacts::ArtifactStore;
use crate::error::{GatewayError, GatewayResult};
use crate::exec::execution::{self, Job, Outcome, Sinks};
use crate::exec::{envs, sandbox_envs};
use crate::kernel::{Channels, Kernel};

/// The directory no context may work in (the gateway's own state lives there).
pub const RESERVED_DIR: &str = "/workspace/.nullspace";

/// One code context.
#[derive(Debug)]
pub struct Context {
    /// Its id, language and cwd.
    pub info: CodeContext,
    /// Whether it is the default context of its language.
    pub is_default: bool,
    spec: KernelspecDir,
    runtime_dir: PathBuf,
    /// The sandbox's environment file (see [`crate::exec::sandbox_envs`]).
    envs_file: PathBuf,
    kernel: Mutex<Option<Arc<Kernel>>>,
    turn: Mutex<()>,
    interrupts: watch::Sender<u64>,
    starts: AtomicU64,
    removed: AtomicBool,
}

impl Context {
    /// A context for `info` served by `spec`; its kernel starts on first use (or [`Context::kernel`]).
    pub fn new(info: CodeContext, is_default: bool, spec: KernelspecDir, dirs: &crate::state::Options) -> Arc<Self> {
        Arc::new(Self {
            info,
            is_default,
            spec,
            runtime_dir: dirs.runtime_dir.clone(),
            envs_file: dirs.envs_file.clone(),
            kernel: Mutex::new(None),
            turn: Mutex::new(()),
            interrupts: watch::Sender::new(0),
            starts: AtomicU64::new(0),
            removed: AtomicBool::new(false),
        })
    }

    /// The running kernel, started when there is none.
    pub async fn kernel(&self) -> GatewayResult<Arc<Kernel>> {
        let mut slot = self.kernel.lock().await;
        if let Some(kernel) = slot.as_ref() {
            if kernel.process.exited().is_none() {
                return Ok(Arc::clone(kernel));
            }
        }
        let kernel = self.start().await?;
        *slot = Some(Arc::clone(&kernel));
        Ok(kernel)
    }

    /// Replaces the kernel by a fresh one (state cleared); an execution running on the old one ends
    /// with an error saying so.
    pub async fn restart(&self) -> GatewayResult<()> {
        let mut slot = self.kernel.lock().await;
        if let Some(old) = slot.take() {
            old.stop("the context was restarted while this code ran");
        }
        let kernel = self.start().await?;
        *slot = Some(kernel);
        Ok(())
    }

    /// Interrupts the running execution (if any); its stream ends within seconds.
    pub async fn interrupt(&self) {
        let kernel = self.kernel.lock().await.clone();
        if let Some(kernel) = kernel {
            kernel.interrupt().await;
        }
        self.interrupts.send_modify(|count| *count += 1);
    }

    /// Stops the kernel for good.
    pub async fn remove(&self) {
        self.removed.store(true, Ordering::SeqCst);
        if let Some(kernel) = self.kernel.lock().await.take() {
            kernel.stop("the context was removed while this code ran");
        }
    }

    /// Whether the context was removed.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// Runs `job` when the context's turn comes (after `admit` agrees: a queued run may have been
    /// cancelled meanwhile), sending its events to `events`. False when `admit` refused.
    pub async fn execute(
        &self,
        job: &Job,
        events: &mpsc::Sender<ExecutionEvent>,
        artifacts: &ArtifactStore,
        max_output_bytes: usize,
        admit: impl FnOnce() -> bool,
    ) -> bool {
        let _turn = self.turn.lock().await;
        if !admit() {
            return false;
        }
        if self.is_removed() {
            let error = ExecutionError {
                name: "ContextRemoved".into(),
                value: format!("code context {} was removed before this code ran", self.info.id),
                traceback: String::new(),
            };
            let _ = events.send(ExecutionEvent::Error(error)).await;
            return true;
        }
        let kernel = match self.kernel().await {
            Ok(kernel) => kernel,
            Err(error) => {
                let error = ExecutionError {
                    name: "KernelStartError".into(),
                    value: error.message(),
                    traceback: String::new(),
                };
                let _ = events.send(ExecutionEvent::Error(error)).await;
                return true;
            }
        };
        let sinks = Sinks {
            events,
            artifacts,
            context_id: &self.info.id,
            max_output_bytes,
            interrupts: self.interrupts.subscribe(),
        };
        let outcome = {
            let mut channels = kernel.channels().await;
            self.catch_up_envs(&kernel, &mut channels).await;
            execution::execute(&kernel, &mut channels, job, sinks).await
        };
        if outcome == Outcome::KernelLost {
            self.replace_lost(&kernel).await;
        }
        true
    }

    /// Sets in `kernel`, silently, the entries of the sandbox's environment it lacks (a create's envs
    /// given after it started). Java kernels cannot change their environment: they only get the
    /// environment of their start.
    async fn catch_up_envs(&self, kernel: &Kernel, channels: &mut Channels) {
        let mut pending = kernel.unseen_envs(&sandbox_envs::read(&self.envs_file));
        pending.retain(|name, _| envs::valid_name(name));
        if pending.is_empty() {
            return;
        }
        match envs::env_snippets(&self.info.language, &pending) {
            Ok(Some(snippets)) => match channels.send_execute(&snippets.before, true).await {
                Ok(_) => kernel.saw_envs(pending),
                Err(error) => {
                    tracing::warn!(context = %self.info.id, "cannot set the sandbox's envs in the kernel: {}", error.message())
                }
            },
            Ok(None) => {}
            Err(why) => {
                tracing::debug!(context = %self.info.id, %why, "the kernel keeps the environment it started with");
                kernel.saw_envs(pending);
            }
        }
    }

    /// Starts a new kernel in place of `lost` (unless a restart or removal already dealt with it).
    async fn replace_lost(&self, lost: &Arc<Kernel>) {
        let mut slot = self.kernel.lock().await;
        let current = slot.as_ref().is_some_and(|kernel| Arc::ptr_eq(kernel, lost));
        if !current || self.is_removed() {
            return;
        }
        lost.stop("the kernel was replaced");
        *slot = None;
        match self.start().await {
            Ok(kernel) => *slot = Some(kernel),
            Err(error) => tracing::warn!(context = %self.info.id, "cannot restart the kernel: {}", error.message()),
        }
    }

    async fn start(&self) -> GatewayResult<Arc<Kernel>> {
        let n = self.starts.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}-{n}", self.info.id);
        let startup = crate::exec::startup_code(&self.info.language);
        // pydevd (ipykernel's debugger) otherwise fills the kernel's stderr, which errors quote.
        let mut envs: Vec<(String, String)> = sandbox_envs::read(&self.envs_file).into_iter().collect();
        envs.push(("PYDEVD_DISABLE_FILE_VALIDATION".to_owned(), "1".to_owned()));
        let spec = with_private_history(&self.spec);
        Kernel::start(&spec, &self.runtime_dir, &tag, Path::new(&self.info.cwd), &envs, startup.as_deref())
            .await
            .map_err(|error| GatewayError::KernelUnavailable {
                message: format!(
                    "cannot start the {} kernel ({}): {}",
                    self.info.language,
                    self.spec.kernel_name,
                    error.message()
                ),
            })
    }
}

/// `spec` with, for ipykernel, an in-memory IPython history: kernels sharing the on-disk history
/// database collide ("Session/line number was not unique in database" printed into the user's output).
fn with_private_history(spec: &KernelspecDir) -> KernelspecDir {
    let mut spec = spec.clone();
    if spec.kernelspec.argv.iter().any(|arg| arg.contains("ipykernel")) {
        spec.kernelspec.argv.push("--HistoryManager.hist_file=:memory:".into());
    }
    spec
}

/// The working directory `requested` (absolute, or relative to `default`) checked and created: refused
/// inside [`RESERVED_DIR`] (also through symlinks) or when it cannot be a directory.
pub fn prepare_cwd(requested: Option<&str>, default: &Path) -> GatewayResult<PathBuf> {
    let requested = requested.map(str::trim).filter(|cwd| !cwd.is_empty());
    let default = default.to_string_lossy();
    let path = PathBuf::from(resolve_under(&default, requested.unwrap_or(".")));
    if is_reserved(&path) {
        return Err(GatewayError::CwdReserved { cwd: path.display().to_string() });
    }
    std::fs::create_dir_all(&path).map_err(|error| {
        GatewayError::invalid(format!(
            "cwd {} cannot be used as a directory: {}",
            path.display(),
            error.to_string().to_lowercase()
        ))
    })?;
    if let Ok(real) = std::fs::canonicalize(&path) {
        if is_reserved(&real) {
            return Err(GatewayError::CwdReserved { cwd: path.display().to_string() });
        }
    }
    Ok(path)
}

fn is_reserved(path: &Path) -> bool {
    path.starts_with(RESERVED_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_cwds_are_refused_however_they_are_spelled() {
        let default = Path::new("/workspace");
        for cwd in
            ["/workspace/.nullspace", "/workspace/.nullspace/runtime", "/workspace/x/../.nullspace", ".nullspace/a"]
        {
            let error = prepare_cwd(Some(cwd), default).unwrap_err();
            assert!(error.message().contains("cwd is reserved"), "{cwd}: {}", error.message());
        }
    }

    #[test]
    fn cwds_are_normalized_created_and_relative_to_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let made = prepare_cwd(Some("a/./b/../c"), dir.path()).unwrap();
        assert_eq!(made, dir.path().join("a/c"));
        assert!(made.is_dir());
        assert_eq!(prepare_cwd(None, dir.path()).unwrap(), dir.path());
        assert_eq!(prepare_cwd(Some("/tmp"), dir.path()).unwrap(), Path::new("/tmp"));
        assert_eq!(prepare_cwd(Some("../../.."), dir.path()).unwrap(), Path::new("/"));
    }

    #[test]
    fn only_ipykernel_gets_an_in_memory_history() {
        let spec = |argv: &[&str]| KernelspecDir {
            kernel_name: "k".into(),
            path: PathBuf::from("/k"),
            kernelspec: jupyter_protocol::JupyterKernelspec {
                argv: argv.iter().map(|arg| arg.to_string()).collect(),
                display_name: "k".into(),
                language: "python".into(),
                metadata: None,
                interrupt_mode: None,
                env: None,
            },
        };
        let python = with_private_history(&spec(&["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]));
        assert_eq!(python.kernelspec.argv.last().unwrap(), "--HistoryManager.hist_file=:memory:");
        let bash = with_private_history(&spec(&["python3", "-m", "bash_kernel", "-f", "{connection_file}"]));
        assert_eq!(bash.kernelspec.argv.len(), 5);
    }

    #[test]
    fn a_file_is_not_a_cwd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "").unwrap();
        let error = prepare_cwd(Some("f"), dir.path()).unwrap_err();
        assert_eq!(error.envelope().1.code, "invalid_request");
    }
}
