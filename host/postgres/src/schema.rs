//! The tenant schema's migrations, in `migrations/*.sql`, applied in order when a store
//! connects; `schema_migrations` records them. Text keys use the "C" collation so ids sort
//! byte-wise, as in SQLite.

/// Schema migrations of a tenant schema, applied in order.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_records_embeddings_outcomes.sql"),
    include_str!("../migrations/0002_change_clock.sql"),
    include_str!("../migrations/0003_patch_outcome_contribution.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The advisory lock held while creating the `vector` extension ("vs-migr" in ASCII).
pub(crate) const EXTENSION_LOCK: i64 = 0x0076_732d_6d69_6772;

/// The first key of a schema's migration lock (`pg_advisory_xact_lock(class, hashtext(schema))`):
/// one lock per schema, so schemas migrate side by side ("vsmg" in ASCII).
pub(crate) const MIGRATION_LOCK_CLASS: i32 = 0x7673_6d67;
