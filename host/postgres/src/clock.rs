//! The change clock: the result cache's generation, advanced by every write as its last
//! statement.

use postgres::Transaction;
use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::ChangeClock;

use crate::error::backend_error;
use crate::PostgresStore;

impl ChangeClock for PostgresStore {
    /// One round trip, outside a transaction: a read of one row by its key.
    fn generation(&self) -> Result<u64, BackendError> {
        let mut client = self.client()?;
        let messages = client
            .simple_query(&format!(
                "SELECT generation FROM {}.change_clock",
                self.schema
            ))
            .map_err(backend_error)?;
        messages
            .iter()
            .find_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
                _ => None,
            })
            .ok_or_else(|| BackendError::Failed("postgres: change_clock has no row".into()))
    }
}

/// Advance the change clock: a write's last statement, so the clock's row lock is held only
/// while the transaction commits.
pub(crate) fn advance_generation(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    tx.execute("UPDATE change_clock SET generation = generation + 1", &[])
        .map(drop)
}
