//! What goes wrong: a store that cannot be opened (typed), PostgreSQL errors as the component
//! sees them, and whether an attempt may be retried.

use postgres::error::SqlState;
use vector_service_runtime::api::BackendError;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The URL does not parse as a PostgreSQL connection string.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(postgres::Error),
    /// The tenant name cannot be a schema name.
    #[error("tenant {0:?} cannot name a schema: use letters, digits, '_' and '-' (at most 50)")]
    Tenant(String),
    /// No connection could be made.
    #[error("connecting to PostgreSQL: {0}")]
    Connect(String),
    /// A migration failed (the schema is left at the last good version).
    #[error("migrating schema {schema}: {source}")]
    Migrate {
        /// The tenant schema.
        schema: String,
        /// PostgreSQL's error.
        source: postgres::Error,
    },
    /// The schema was written by a newer vector-service.
    #[error("schema {schema} has version {found}, newer than this build's {supported}")]
    TooNew {
        /// The tenant schema.
        schema: String,
        /// Version in the database.
        found: usize,
        /// Newest version this build knows.
        supported: usize,
    },
}

/// Whether retrying can help: the connection went away, or PostgreSQL asks for a retry.
pub(crate) fn is_transient(error: &postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || code.code().starts_with("08")
        }
        // No SQL state: an I/O error on the socket.
        None => true,
    }
}

/// The error typed by whether retrying can help, with the server's own message (postgres'
/// `Display` alone says only "db error").
pub(crate) fn backend_error(error: postgres::Error) -> BackendError {
    let message = format!("postgres: {}", with_causes(&error));
    if is_transient(&error) {
        BackendError::Unavailable(message)
    } else {
        BackendError::Failed(message)
    }
}

/// How one attempt failed: before the commit was sent (safe to retry), or while committing
/// (the outcome is unknown, so it is never retried: retrying could write twice).
pub(crate) enum AttemptError {
    Statement(postgres::Error),
    Commit(postgres::Error),
    Backend(BackendError),
}

impl From<postgres::Error> for AttemptError {
    fn from(error: postgres::Error) -> Self {
        AttemptError::Statement(error)
    }
}

impl From<BackendError> for AttemptError {
    fn from(error: BackendError) -> Self {
        AttemptError::Backend(error)
    }
}

/// An error and every cause under it, on one line.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
