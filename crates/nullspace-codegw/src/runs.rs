//! Code runs: code queued on a context, executed by the gateway in arrival order (the context's turn),
//! with its collected execution kept on the run; cancelling a queued run drops it, a running one is
//! interrupted. Finished runs are forgotten after a day, and beyond the newest 1000.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nullspace_types::code_api::{CodeRun, CreateRunRequest, ListRunsQuery, Page, RunExecution};
use tokio::sync::mpsc;

use crate::cursor;
use crate::error::{GatewayError, GatewayResult};
use crate::exec::envs::env_snippets;
use crate::exec::execution::Job;
use crate::state::Shared;

/// Timeout of a run whose request names none.
pub const DEFAULT_RUN_TIMEOUT_SECS: u64 = 300;
/// How long finished runs are kept.
const RETENTION: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// How many runs are kept at most (the oldest finished ones go first).
const MAX_RUNS: usize = 1000;
/// Statuses a run can have.
const STATUSES: [&str; 5] = ["queued", "running", "succeeded", "failed", "cancelled"];

/// The runs of this gateway.
#[derive(Default)]
pub struct Runs {
    inner: Mutex<Inner>,
    /// One queue per context: runs are handed over at creation, so they run in creation order.
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<QueuedRun>>>,
}

type QueuedRun = Pin<Box<dyn Future<Output = ()> + Send>>;

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs").field("inner", &self.inner).finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_seq: BTreeMap<u64, CodeRun>,
    next_seq: u64,
}

impl Runs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update<T>(&self, id: &str, change: impl FnOnce(&mut CodeRun) -> T) -> GatewayResult<T> {
        let mut inner = self.lock();
        let run = inner
            .by_seq
            .values_mut()
            .find(|run| run.id == id)
            .ok_or_else(|| GatewayError::RunNotFound { id: id.to_owned() })?;
        Ok(change(run))
    }

    /// The run `id`.
    pub fn get(&self, id: &str) -> GatewayResult<CodeRun> {
        self.update(id, |run| run.clone())
    }

    /// One page of runs matching `query`, newest first.
    pub fn list(&self, query: &ListRunsQuery) -> GatewayResult<Page<CodeRun>> {
        let limit = cursor::limit(query.limit)?;
        if let Some(status) = query.status.as_deref().filter(|status| !STATUSES.contains(status)) {
            return Err(GatewayError::invalid(format!(
                "unknown run status {status:?}; use one of {}",
                STATUSES.join(", ")
            )));
        }
        let inner = self.lock();
        let matching = inner.by_seq.iter().rev().filter(|(_, run)| {
            query.status.as_ref().is_none_or(|status| &run.status == status)
                && query.context_id.as_ref().is_none_or(|id| &run.context_id == id)
        });
        let (items, next_cursor) =
            cursor::page(matching.map(|(seq, run)| (*seq, run.clone())), query.cursor.as_deref(), limit)?;
        Ok(Page { items, next_cursor })
    }

    /// Appends `run` to the queue of `context_id` (started on first use).
    fn enqueue(&self, context_id: &str, run: QueuedRun) {
        let mut queues = self.queues.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let queue = queues.entry(context_id.to_owned()).or_insert_with(|| {
            let (queue, mut runs) = mpsc::unbounded_channel::<QueuedRun>();
            tokio::spawn(async move {
                while let Some(run) = runs.recv().await {
                    run.await;
                }
            });
            queue
        });
        if let Err(mpsc::error::SendError(run)) = queue.send(run) {
            tokio::spawn(run);
        }
    }

    fn insert(&self, run: CodeRun) {
        let mut inner = self.lock();
        let now = chrono::Utc::now();
        inner.by_seq.retain(|_, run| !finished(run) || expires(run).is_none_or(|at| at > now));
        while inner.by_seq.len() >= MAX_RUNS {
            let oldest_finished = inner.by_seq.iter().find(|(_, run)| finished(run)).map(|(seq, _)| *seq);
            match oldest_finished {
                Some(seq) => inner.by_seq.remove(&seq),
                None => break,
            };
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.by_seq.insert(seq, run);
    }
}

/// Queues `request` on its context and returns the queued run.
pub fn create(gateway: &Shared, request: CreateRunRequest) -> GatewayResult<CodeRun> {
    if request.context_id.trim().is_empty() {
        return Err(GatewayError::invalid("context_id is required; create a context with POST /code/contexts"));
    }
    let context = gateway.context(request.context_id.trim())?;
    let envs = env_snippets(&context.info.language, &request.envs).map_err(GatewayError::invalid)?;
    let timeout_secs = request.timeout.unwrap_or(DEFAULT_RUN_TIMEOUT_SECS).max(1);
    let now = chrono::Utc::now();
    let run = CodeRun {
        id: crate::ids::new_id("run_"),
        sandbox_id: gateway.options.sandbox_id.clone(),
        context_id: context.info.id.clone(),
        status: "queued".into(),
        timeout_secs,
        created_at: crate::ids::rfc3339(now),
        expires_at: crate::ids::rfc3339(now + RETENTION),
        started_at: None,
        completed_at: None,
        cancel_requested_at: None,
        execution: None,
        failure_reason: None,
    };
    gateway.runs.insert(run.clone());
    let job = Job { code: request.code, envs, timeout: Some(Duration::from_secs(timeout_secs)) };
    let queued = Box::pin(execute(Arc::clone(gateway), Arc::clone(&context), run.id.clone(), job));
    gateway.runs.enqueue(&context.info.id, queued);
    Ok(run)
}

/// Cancels the run `id`: a queued run is cancelled at once, a running one is interrupted (and ends
/// `cancelled`); a finished run is left as it is.
pub async fn cancel(gateway: &Shared, id: &str) -> GatewayResult<CodeRun> {
    let now = crate::ids::now_rfc3339();
    let running_in = gateway.runs.update(id, |run| match run.status.as_str() {
        "queued" => {
            run.status = "cancelled".into();
            run.cancel_requested_at = Some(now.clone());
            run.completed_at = Some(now.clone());
            None
        }
        "running" => {
            run.cancel_requested_at.get_or_insert(now.clone());
            Some(run.context_id.clone())
        }
        _ => None,
    })?;
    if let Some(context_id) = running_in {
        if let Ok(context) = gateway.context(&context_id) {
            context.interrupt().await;
        }
    }
    gateway.runs.get(id)
}

async fn execute(gateway: Shared, context: Arc<crate::contexts::Context>, id: String, job: Job) {
    let (events, mut received) = mpsc::channel(256);
    let collector = tokio::spawn(async move {
        let mut execution = RunExecution::default();
        while let Some(event) = received.recv().await {
            execution.absorb(&event);
        }
        execution
    });
    let admit = || {
        gateway
            .runs
            .update(&id, |run| {
                if run.status != "queued" {
                    return false;
                }
                run.status = "running".into();
                run.started_at = Some(crate::ids::now_rfc3339());
                true
            })
            .unwrap_or(false)
    };
    let ran = context.execute(&job, &events, &gateway.artifacts, gateway.options.max_output_bytes, admit).await;
    drop(events);
    let execution = collector.await.unwrap_or_default();
    if !ran {
        return;
    }
    let _ = gateway.runs.update(&id, |run| {
        run.completed_at = Some(crate::ids::now_rfc3339());
        run.status = match (&run.cancel_requested_at, &execution.error) {
            (Some(_), _) => "cancelled".into(),
            (None, Some(_)) => "failed".into(),
            (None, None) => "succeeded".into(),
        };
        run.failure_reason = match (&run.cancel_requested_at, &execution.error) {
            (None, Some(error)) => Some(format!("{}: {}", error.name, error.value)),
            _ => None,
        };
        run.execution = Some(execution);
    });
}

fn finished(run: &CodeRun) -> bool {
    matches!(run.status.as_str(), "succeeded" | "failed" | "cancelled")
}

fn expires(run: &CodeRun) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(&run.expires_at).ok().map(|at| at.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, context: &str, status: &str) -> CodeRun {
        CodeRun {
            id: id.into(),
            sandbox_id: String::new(),
            context_id: context.into(),
            status: status.into(),
            timeout_secs: 1,
            created_at: crate::ids::now_rfc3339(),
            expires_at: crate::ids::rfc3339(chrono::Utc::now() + RETENTION),
            started_at: None,
            completed_at: None,
            cancel_requested_at: None,
            execution: None,
            failure_reason: None,
        }
    }

    #[test]
    fn runs_are_listed_newest_first_with_filters_and_cursor() {
        let runs = Runs::default();
        runs.insert(run("run_1", "ctx_a", "succeeded"));
        runs.insert(run("run_2", "ctx_b", "queued"));
        runs.insert(run("run_3", "ctx_a", "failed"));
        let ids = |page: Page<CodeRun>| page.items.into_iter().map(|run| run.id).collect::<Vec<_>>();
        assert_eq!(ids(runs.list(&ListRunsQuery::default()).unwrap()), ["run_3", "run_2", "run_1"]);
        let by_context = ListRunsQuery { context_id: Some("ctx_a".into()), ..Default::default() };
        assert_eq!(ids(runs.list(&by_context).unwrap()), ["run_3", "run_1"]);
        let by_status = ListRunsQuery { status: Some("queued".into()), ..Default::default() };
        assert_eq!(ids(runs.list(&by_status).unwrap()), ["run_2"]);
        let first = runs.list(&ListRunsQuery { limit: Some(2), ..Default::default() }).unwrap();
        let next = ListRunsQuery { limit: Some(2), cursor: first.next_cursor.clone(), ..Default::default() };
        assert_eq!(ids(runs.list(&next).unwrap()), ["run_1"]);
        assert!(runs.list(&ListRunsQuery { status: Some("done".into()), ..Default::default() }).is_err());
        assert!(matches!(runs.get("run_9"), Err(GatewayError::RunNotFound { .. })));
    }

    #[test]
    fn expired_finished_runs_are_forgotten_but_queued_ones_are_not() {
        let runs = Runs::default();
        let mut old = run("run_old", "ctx", "succeeded");
        old.expires_at = "2000-01-01T00:00:00Z".into();
        let mut old_queued = run("run_queued", "ctx", "queued");
        old_queued.expires_at = "2000-01-01T00:00:00Z".into();
        runs.insert(old);
        runs.insert(old_queued);
        runs.insert(run("run_new", "ctx", "queued"));
        assert!(runs.get("run_old").is_err());
        assert!(runs.get("run_queued").is_ok());
    }
}
