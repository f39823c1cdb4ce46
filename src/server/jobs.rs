//! Backfills as jobs. `POST /v1/backfill` starts one and answers at once (202, its id); the
//! job runs on the blocking pool holding one of the tenant's call slots, bounded per batch by
//! the tenant's `backfill_batch_deadline_ms` and in all by `backfill_budget_ms`. A tenant runs
//! one backfill at a time. `GET /v1/backfill/{id}` reads its progress and outcome, `DELETE`
//! cancels it (it stops at its next batch boundary).
//!
//! Jobs live in memory, the last [`KEPT`] per tenant: a restart forgets them. A job running at
//! shutdown is cancelled; the batches it committed stay, and the next backfill resumes from
//! what the database says is still pending.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use vector_service_runtime::api::BackfillResponse;
use vector_service_runtime::backends::records::unix_ms;
use vector_service_runtime::CancelFlag;

use crate::progress::ProgressStore;

/// Finished jobs a tenant keeps to be read back.
pub const KEPT: usize = 16;

/// How a job ended.
pub enum Outcome {
    /// The run finished (some databases may report errors: see `status`).
    Finished(BackfillResponse),
    /// The run was stopped: cancelled, over its budget or a batch over its deadline, a trap.
    Stopped {
        /// The error kind, as the API names it.
        kind: &'static str,
        /// For humans.
        message: String,
    },
}

/// One backfill job.
pub struct Job {
    /// Unique in the process and across restarts.
    pub id: String,
    /// The session id the run logs with.
    pub session_id: String,
    /// Set to stop the run between batches.
    pub cancel: CancelFlag,
    /// Records done so far.
    pub progress: Arc<ProgressStore>,
    started_ms: u64,
    finished: Mutex<Option<(u64, Outcome)>>,
}

impl Job {
    /// Record how the job ended.
    pub fn finish(&self, outcome: Outcome) {
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) = Some((unix_ms(), outcome));
    }

    fn is_running(&self) -> bool {
        self.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// The job as `GET /v1/backfill/{id}` shows it.
    pub fn view(&self) -> Value {
        let finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        let mut view = json!({
            "job": self.id,
            "session_id": self.session_id,
            "started_ms": self.started_ms,
            "records_done": self.progress.done(),
        });
        match &*finished {
            None => {
                let status = if self.cancel.is_cancelled() {
                    "cancelling"
                } else {
                    "running"
                };
                view["status"] = status.into();
            }
            Some((at, Outcome::Finished(response))) => {
                let failed = response.databases.iter().any(|d| d.error.is_some());
                view["status"] = if failed { "failed" } else { "succeeded" }.into();
                view["finished_ms"] = (*at).into();
                view["result"] = serde_json::to_value(response).unwrap_or(Value::Null);
            }
            Some((at, Outcome::Stopped { kind, message })) => {
                let status = if *kind == "cancelled" {
                    "cancelled"
                } else {
                    "failed"
                };
                view["status"] = status.into();
                view["finished_ms"] = (*at).into();
                view["error"] = json!({"kind": kind, "message": message});
            }
        }
        view
    }
}

/// A tenant's jobs, newest last.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<VecDeque<Arc<Job>>>,
    next: AtomicU64,
}

impl Jobs {
    /// The job running now, if any.
    pub fn running(&self) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|job| job.is_running())
            .cloned()
    }

    /// A new running job, or the one already running.
    pub fn start(
        &self,
        session_id: String,
        progress: Arc<ProgressStore>,
    ) -> Result<Arc<Job>, Arc<Job>> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = jobs.iter().find(|job| job.is_running()) {
            return Err(running.clone());
        }
        let started_ms = unix_ms();
        let number = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Arc::new(Job {
            id: format!("bf-{started_ms:x}-{number}"),
            session_id,
            cancel: CancelFlag::default(),
            progress,
            started_ms,
            finished: Mutex::new(None),
        });
        if jobs.len() >= KEPT {
            jobs.pop_front();
        }
        jobs.push_back(job.clone());
        Ok(job)
    }

    /// The job `id`, if this tenant has it.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|job| job.id == id)
            .cloned()
    }

    /// Cancel every running job (shutdown).
    pub fn cancel_all(&self) {
        for job in self.jobs.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            job.cancel.cancel();
        }
    }
}
