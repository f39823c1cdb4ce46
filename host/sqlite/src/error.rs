//! What goes wrong: a store that cannot be opened (typed), and SQLite errors as the component
//! sees them.

use std::path::PathBuf;

use vector_service_runtime::api::BackendError;

use crate::pool::{is_damage, note_error};

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The file could not be opened or configured.
    #[error("opening {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A schema migration failed (the file is left at the last good version).
    #[error("migrating {path} to schema version {version}: {source}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The version that failed.
        version: usize,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer vector-service.
    #[error("{path} has schema version {found}, newer than this build's {supported}")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Version in the file.
        found: usize,
        /// Newest version this build knows.
        supported: usize,
    },
}

/// SQLite errors as the component sees them: a busy or locked database is retryable.
pub(crate) fn backend_error(error: rusqlite::Error) -> BackendError {
    note_error(&error);
    if is_damage(&error) {
        return BackendError::Failed(format!("sqlite: the database file is damaged: {error}"));
    }
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            BackendError::Unavailable(format!("sqlite: {error}"))
        }
        _ => BackendError::Failed(format!("sqlite: {error}")),
    }
}
