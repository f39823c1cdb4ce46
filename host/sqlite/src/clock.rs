//! The change clock: one read gives the `seq` the indexes catch up to and the result cache's
//! generation (`seq + outcomes`).

use rusqlite::Connection;
use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::ChangeClock;

use crate::error::backend_error;
use crate::{unsigned, SqliteStore};

/// The change clock as one read: the `seq` the indexes catch up to, and the result cache's
/// generation (`seq + outcomes`).
#[derive(Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) seq: i64,
    pub(crate) generation: u64,
}

pub(crate) fn current_clock(connection: &Connection) -> Result<Clock, BackendError> {
    connection
        .prepare_cached("SELECT seq, seq + outcomes FROM change_clock")
        .and_then(|mut statement| {
            statement.query_row([], |row| {
                Ok(Clock {
                    seq: row.get(0)?,
                    generation: unsigned(row, 1)?,
                })
            })
        })
        .map_err(backend_error)
}

impl ChangeClock for SqliteStore {
    fn generation(&self) -> Result<u64, BackendError> {
        self.watched_clock(|| {
            self.connection()
                .and_then(|connection| current_clock(&connection))
        })
        .map(|clock| clock.generation)
    }
}
