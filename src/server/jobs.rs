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

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use vector_service_runtime::api::BackfillResponse;
use vector_service_runtime::backends::records::unix_ms;
use vector_service_runtime::CancelFlag;

use crate::answers::BackfillAnswer;
use crate::failure::{Failure, FailureDetail};
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
    pub fn view(&self) -> JobView {
        let finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        let mut view = JobView {
            job: self.id.clone(),
            session_id: self.session_id.clone(),
            status: JobStatus::Running,
            started_ms: self.started_ms,
            finished_ms: None,
            records_done: self.progress.done(),
            result: None,
            error: None,
        };
        match &*finished {
            None if self.cancel.is_cancelled() => view.status = JobStatus::Cancelling,
            None => {}
            Some((at, Outcome::Finished(response))) => {
                let failed = response.databases.iter().any(|d| d.error.is_some());
                view.status = if failed {
                    JobStatus::Failed
                } else {
                    JobStatus::Succeeded
                };
                view.finished_ms = Some(*at);
                view.result = serde_json::to_value(BackfillAnswer::of(response)).ok();
            }
            Some((at, Outcome::Stopped { kind, message })) => {
                view.status = if *kind == "cancelled" {
                    JobStatus::Cancelled
                } else {
                    JobStatus::Failed
                };
                view.finished_ms = Some(*at);
                view.error = Some(Failure::new(kind, message.clone()).detail());
            }
        }
        view
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Running,
    /// Asked to stop; it stops at its next batch boundary.
    Cancelling,
    /// Every database was backfilled.
    Succeeded,
    /// A database failed (see `result`), or the run was stopped (see `error`).
    Failed,
    Cancelled,
}

impl JobStatus {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Cancelling => "cancelling",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A backfill job's progress and outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// The job's id, for `GET` and `DELETE /v1/backfill/{job}`.
    pub job: String,
    pub session_id: String,
    pub status: JobStatus,
    /// Milliseconds since the Unix epoch.
    pub started_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Records embedded so far.
    pub records_done: u64,
    /// The run's report, once it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BackfillAnswer>)]
    pub result: Option<Value>,
    /// Why the run stopped, when it was stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<FailureDetail>,
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
