//! How a failure is named: one stable `kind` per failure and a message for people, shared by
//! the server's error bodies and the CLI's (`{"error": {"kind", "message"}}` on stdout under
//! `--json`, `error: MESSAGE` on stderr otherwise).

use serde::Serialize;
use utoipa::ToSchema;
use vector_service_runtime::api::{BackendError, Error as ComponentError};
use vector_service_runtime::{SandboxFailure, ServiceError};

/// A named failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Stable and documented: scripts branch on it.
    pub kind: &'static str,
    /// For people; may change between versions.
    pub message: String,
}

impl Failure {
    /// A failure of `kind`.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// As the JSON error body: `{"error": {"kind", "message"}}`.
    pub fn body(&self) -> FailureBody {
        FailureBody {
            error: self.detail(),
        }
    }

    /// As the error body's inner object: `{"kind", "message"}`.
    pub fn detail(&self) -> FailureDetail {
        FailureDetail {
            kind: self.kind.to_string(),
            message: self.message.clone(),
        }
    }

    /// The error body as a JSON value.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }

    /// A call that failed: the component's typed error, or the sandbox's reason for stopping
    /// it. A host failure keeps its whole chain here; the server logs it and answers less.
    pub fn of_service(error: &ServiceError) -> Self {
        match error {
            ServiceError::Rejected(error) => match error {
                ComponentError::MalformedPrompt(m) => Self::new("malformed-prompt", m),
                ComponentError::RateLimited(m) => Self::new("rate-limited", m),
                ComponentError::Backend(m) => Self::new("backend", m),
                ComponentError::LimitExceeded(m) => Self::new("limit-exceeded", m),
                ComponentError::Unavailable(m) => Self::new("unavailable", m),
            },
            ServiceError::Sandbox { reason, .. } => match reason {
                SandboxFailure::Deadline => Self::new(
                    "deadline-exceeded",
                    "the call ran past the tenant's deadline",
                ),
                SandboxFailure::Memory => {
                    Self::new("memory-limit", "the call hit the tenant's memory cap")
                }
                SandboxFailure::HostCallBytes => Self::new(
                    "host-call-limit",
                    "the call passed more data to the host than the tenant's cap allows",
                ),
                SandboxFailure::Trap => Self::new("internal", "the component trapped"),
                SandboxFailure::Cancelled => Self::new("cancelled", "the run was cancelled"),
            },
            ServiceError::Host(error) => Self::new("internal", format!("{error:#}")),
        }
    }

    /// A command's failure, whatever raised it: a [`CommandFailed`], a call's error, a store's
    /// error, or anything else (`failed`, with its whole context chain).
    pub fn of_command(error: &anyhow::Error) -> Self {
        if let Some(failed) = error.downcast_ref::<CommandFailed>() {
            return failed.failure.clone();
        }
        if let Some(error) = error.downcast_ref::<ServiceError>() {
            return Self::of_service(error);
        }
        if let Some(error) = error.downcast_ref::<BackendError>() {
            return match error {
                BackendError::RateLimited(m) => Self::new("rate-limited", m),
                BackendError::Unavailable(m) => Self::new("unavailable", m),
                BackendError::Failed(m) => Self::new("backend", m),
            };
        }
        Self::new("failed", format!("{error:#}"))
    }
}

/// Every error answer of the API (and of the CLI under `--json`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct FailureBody {
    pub error: FailureDetail,
}

/// What failed: a stable kind to branch on and a message for people.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ErrorDetail)]
pub struct FailureDetail {
    /// Stable: `bad-request`, `malformed-prompt`, `unauthorized`, `admin-disabled`,
    /// `forbidden-origin`, `forbidden-host`, `not-found`,
    /// `method-not-allowed`, `conflict`, `too-large`, `unsupported-media-type`,
    /// `request-timeout`, `rate-limited`, `overloaded`, `unavailable`, `store-damaged`,
    /// `storage-full`, `backend`, `limit-exceeded`, `deadline-exceeded`, `memory-limit`,
    /// `host-call-limit`, `cancelled`, `internal` (and on the CLI `failed`, `backfill-failed`).
    #[schema(example = "malformed-prompt")]
    pub kind: String,
    /// For people; may change between versions.
    pub message: String,
}

/// A command that failed in a way it names itself, possibly with an answer that says so
/// (a backfill's report with `status: failure`): `--json` prints that answer instead of the
/// error object.
#[derive(Debug, thiserror::Error)]
#[error("{}", failure.message)]
pub struct CommandFailed {
    /// What failed.
    pub failure: Failure,
    /// The command's JSON answer, when it has one despite failing.
    pub answer: Option<serde_json::Value>,
}

impl CommandFailed {
    /// Bad input to a command (`bad-request`, as the server names it).
    pub fn bad_input(error: anyhow::Error) -> anyhow::Error {
        Self {
            failure: Failure::new("bad-request", format!("{error:#}")),
            answer: None,
        }
        .into()
    }
}

/// Report a failed command the one way it is documented, and the exit status: under
/// `--json` its JSON answer or `{"error": {"kind", "message"}}` on stdout, otherwise
/// `error: MESSAGE` on stderr; exit status 1 (clap exits 2 on a usage error).
pub fn report(error: &anyhow::Error, json: bool) -> std::process::ExitCode {
    let failure = Failure::of_command(error);
    if json {
        let answer = error
            .downcast_ref::<CommandFailed>()
            .and_then(|failed| failed.answer.clone())
            .unwrap_or_else(|| failure.to_json());
        out!(
            "{}",
            serde_json::to_string_pretty(&answer).unwrap_or_default()
        );
    } else {
        eprintln!("error: {}", failure.message);
    }
    std::process::ExitCode::FAILURE
}
