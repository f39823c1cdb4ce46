//! The schema: migrations in `migrations/*.sql`, applied in order when a store opens;
//! `PRAGMA user_version` records how many ran.

use std::path::Path;

use rusqlite::Connection;

use crate::error::SqliteError;
use crate::unsigned;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Schema migrations, applied in order.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_records_embeddings_outcomes.sql"),
    include_str!("../migrations/0002_change_clock.sql"),
    include_str!("../migrations/0003_lexical_index_in_memory.sql"),
    include_str!("../migrations/0004_outcomes_in_the_generation.sql"),
    include_str!("../migrations/0005_patch_outcome_contribution.sql"),
];

pub(crate) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), SqliteError> {
    let open_error = |source| SqliteError::Open {
        path: path.to_path_buf(),
        source,
    };
    let current = connection
        .pragma_query_value(None, "user_version", |row| unsigned(row, 0))
        .map_err(open_error)? as usize;
    if current > MIGRATIONS.len() {
        return Err(SqliteError::TooNew {
            path: path.to_path_buf(),
            found: current,
            supported: MIGRATIONS.len(),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = index + 1;
        let migrate_error = |source| SqliteError::Migrate {
            path: path.to_path_buf(),
            version,
            source,
        };
        let tx = connection.transaction().map_err(migrate_error)?;
        tx.execute_batch(migration).map_err(migrate_error)?;
        tx.pragma_update(None, "user_version", version as i64)
            .map_err(migrate_error)?;
        tx.commit().map_err(migrate_error)?;
    }
    Ok(())
}
