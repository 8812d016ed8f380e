//! Auto-resume: a paused sandbox created with `auto_resume` starts again, under its own id, when a request
//! that uses it arrives (exec, files, PTY, code and desktop relays, ports, preview traffic: everything
//! that reaches the guest through [`Control::guest`], the preview proxy and preview ports). Lifecycle
//! routes (get, list, kill, hibernate, resume) read the record and never wake it.
//!
//! One resume per sandbox: the first caller starts it in its own task (a caller that gives up does not
//! cancel it) and every caller in this process waits on the same outcome; the store's `paused → resuming`
//! compare-and-set makes sure nothing else resumes the same row. A resume that fails releases what it
//! started, leaves the sandbox `paused` and gives every waiter `sandbox_not_ready` saying why; a caller
//! waits at most [`RESUME_WAIT`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use super::events::NewEvent;
use super::service::ControlResult;
use super::{Control, ControlError, SandboxState};
use crate::clock;
use crate::store::SandboxRecord;

/// Longest a request waits for the resume it triggered or joined.
pub const RESUME_WAIT: Duration = Duration::from_secs(120);

/// How a resume ended: `None` while it runs, then `Ok` or the reason it failed.
type Outcome = Option<Result<(), String>>;

/// Resumes in flight, by sandbox id.
#[derive(Default)]
pub struct Resumes {
    inflight: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
}

impl Resumes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<Outcome>>> {
        self.inflight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Control {
    /// The visible sandbox `id` of tenant `tenant_id`, running again if it was paused with auto-resume
    /// (the caller waits for the resume). Any other sandbox is returned as it is: callers that need it
    /// running refuse it as they always did.
    pub async fn ensure_running_for_access(&self, tenant_id: &str, id: &str) -> ControlResult<SandboxRecord> {
        let record = self.get_for_tenant_id(tenant_id, id).await?;
        if !record.auto_resume {
            return Ok(record);
        }
        let outcome = match record.state {
            SandboxState::Paused | SandboxState::Resuming => Some(self.join_resume(&record)),
            // Running already, but its template may still be starting again: wait for that too.
            _ => self.resumes.lock().get(id).cloned(),
        };
        let Some(mut outcome) = outcome else { return Ok(record) };
        let failed = |reason: String| ControlError::ResumeFailed { sandbox_id: id.to_owned(), reason };
        let finished = match tokio::time::timeout(RESUME_WAIT, outcome.wait_for(Option::is_some)).await {
            Err(_) => return Err(failed(format!("it did not finish within {} s", RESUME_WAIT.as_secs()))),
            Ok(Err(_)) => return Err(failed("the resume was abandoned".into())),
            Ok(Ok(finished)) => finished.clone(),
        };
        match finished {
            Some(Ok(())) => self.get_for_tenant_id(tenant_id, id).await,
            Some(Err(reason)) => Err(failed(reason)),
            None => Err(failed("the resume ended without an outcome".into())),
        }
    }

    /// What preview ports of sandbox `id` run before each connection: [`Self::ensure_running_for_access`].
    pub(super) fn waker(&self, tenant_id: &str, id: &str) -> crate::preview::Wake {
        let (control, tenant_id, id) = (self.clone(), tenant_id.to_owned(), id.to_owned());
        std::sync::Arc::new(move || -> crate::preview::WakeFuture {
            let (control, tenant_id, id) = (control.clone(), tenant_id.clone(), id.clone());
            Box::pin(async move {
                let record = control.ensure_running_for_access(&tenant_id, &id).await;
                match record {
                    Ok(record) if record.state.serves_requests() => Ok(()),
                    Ok(record) => Err(format!("sandbox {id} is {}", record.state.as_str())),
                    Err(error) => Err(crate::error_chain(&error)),
                }
            })
        })
    }

    /// The outcome of the resume of `record` in flight, starting one if none is.
    fn join_resume(&self, record: &SandboxRecord) -> watch::Receiver<Outcome> {
        let mut inflight = self.resumes.lock();
        if let Some(outcome) = inflight.get(&record.id) {
            return outcome.clone();
        }
        let (sender, outcome) = watch::channel(None);
        inflight.insert(record.id.clone(), outcome.clone());
        drop(inflight);
        let control = self.clone();
        let record = record.clone();
        tokio::spawn(async move {
            let result = control.resume_in_place(&record).await.map(|_| ()).map_err(|error| {
                tracing::warn!(sandbox = %record.id, error = %crate::error_chain(&error), "auto-resume failed");
                crate::error_chain(&error)
            });
            // Published before the entry goes: a caller arriving in between still sees the outcome.
            sender.send_replace(Some(result));
            control.resumes.lock().remove(&record.id);
        });
        outcome
    }

    /// Starts paused sandbox `record` again under its own id on the layers of its snapshot, with a fresh
    /// deadline of its lifetime; on failure it is left paused with nothing running.
    async fn resume_in_place(&self, record: &SandboxRecord) -> ControlResult<SandboxRecord> {
        let id = record.id.as_str();
        let snapshot_id = record.snapshot_id.clone().ok_or_else(|| ControlError::NotRunning {
            sandbox_id: id.to_owned(),
            state: "paused without a snapshot",
        })?;
        let snapshot = self
            .store
            .get_snapshot(&record.tenant_id, &snapshot_id)
            .await?
            .ok_or_else(|| ControlError::SnapshotNotFound { snapshot_id: snapshot_id.clone() })?;
        {
            let _admission = self.admission.lock().await;
            self.admit(record.vcpus, record.memory_mb).await?;
            if !self.store.transition(id, &[SandboxState::Paused], SandboxState::Resuming, None).await? {
                // Resumed, killed or resumed explicitly meanwhile.
                let now = self.get_for_tenant_id(&record.tenant_id, id).await?;
                return match now.state {
                    SandboxState::Running => Ok(now),
                    state => Err(ControlError::NotRunning { sandbox_id: id.to_owned(), state: state.as_str() }),
                };
            }
        }
        let event = |status| {
            let mut event = NewEvent::sandbox("resume_from_snapshot", status, "system", id)
                .reason("auto_resume")
                .snapshot(&snapshot.id);
            event.source_sandbox_id = Some(id.to_owned());
            event.target_sandbox_id = Some(id.to_owned());
            event
        };
        self.events.emit(&record.tenant_id, event("requested")).await;
        let mut resumed = record.clone();
        resumed.layers = snapshot.layers.clone();
        self.store.set_sandbox_layers(id, &resumed.layers).await?;
        let memory = self.memory_of(&snapshot);
        let from_files = memory.is_none();
        let launched = match self.launch_spec(&resumed, memory).await {
            Ok(spec) => self.node.launch(&spec).await.map_err(ControlError::from),
            Err(error) => Err(error),
        };
        if let Err(error) = launched {
            // The node released what the launch acquired; the sandbox stays paused in its snapshot.
            let message = error.to_string();
            self.store.set_sandbox_layers(id, &record.layers).await?;
            self.store.transition(id, &[SandboxState::Resuming], SandboxState::Paused, Some(&message)).await?;
            let mut failed = event("failed");
            failed.error_message = Some(message);
            self.events.emit(&record.tenant_id, failed).await;
            return Err(error);
        }
        let deadline = clock::now_ms().saturating_add(i64::try_from(record.timeout_ms).unwrap_or(i64::MAX));
        self.store.set_timeout(id, record.timeout_ms, deadline, &record.timeout_action).await?;
        if !self.store.transition(id, &[SandboxState::Resuming], SandboxState::Running, None).await? {
            // Killed while resuming: release what the launch acquired.
            self.release(id).await?;
            return Err(ControlError::SandboxNotFound { sandbox_id: id.to_owned() });
        }
        self.store.set_sandbox_snapshot(id, None).await?;
        if from_files {
            self.restart_template(&resumed).await;
        }
        self.events.emit(&record.tenant_id, event("succeeded")).await;
        self.get_for_tenant_id(&record.tenant_id, id).await
    }
}
