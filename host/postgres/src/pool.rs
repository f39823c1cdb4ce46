//! One connection pool per host and database, shared by every tenant schema the host serves:
//! a connection belongs to no tenant; each transaction names its schema (`SET LOCAL
//! search_path`), so the connections a host holds are bounded by the pool's size, not by its
//! tenant count. The pool also remembers which schemas it has migrated, so a schema is
//! migrated once per process, at its first use.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use postgres::NoTls;
use r2d2::Pool;
use r2d2_postgres::PostgresConnectionManager;

use crate::error::PostgresError;

pub(crate) type PgPool = Pool<PostgresConnectionManager<NoTls>>;

/// Connections to one PostgreSQL database, for any number of tenant schemas.
pub struct PostgresPool {
    pool: ClosedApart,
    /// `(schema, embedding dimensions)` already migrated by this process.
    migrated: Mutex<HashSet<(String, usize)>>,
    /// Whether the `vector` extension is known to exist.
    extension_ready: Mutex<bool>,
}

/// How many connections a pool holds at once, and how many of them are idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Open connections, busy or idle.
    pub connections: u32,
    /// Open connections not checked out.
    pub idle: u32,
}

impl PostgresPool {
    /// A pool of at most `size` connections to `url`. No connection is made until one is
    /// needed: a database that is down makes a store fail to open (with the reason), never
    /// the pool.
    pub fn new(url: &str, size: u32, checkout_timeout: Duration) -> Result<Self, PostgresError> {
        let config: postgres::Config = url.parse().map_err(PostgresError::Url)?;
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(0))
            // No round trip per checkout: a connection found broken is retried (`transaction`).
            .test_on_check_out(false)
            .connection_timeout(checkout_timeout)
            .build_unchecked(manager);
        Ok(Self {
            pool: ClosedApart(Some(pool)),
            migrated: Mutex::new(HashSet::new()),
            extension_ready: Mutex::new(false),
        })
    }

    /// The most connections this pool opens.
    pub fn size(&self) -> u32 {
        self.pool.max_size()
    }

    /// The connections open now.
    pub fn state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
        }
    }

    pub(crate) fn connections(&self) -> &PgPool {
        &self.pool
    }

    /// Whether `schema` at `dims` still needs [`crate::PostgresStore`]'s migration here.
    pub(crate) fn needs_migration(&self, schema: &str, dims: usize) -> bool {
        !self
            .migrated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&(schema.to_string(), dims))
    }

    pub(crate) fn mark_migrated(&self, schema: &str, dims: usize) {
        self.migrated
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((schema.to_string(), dims));
    }

    /// Run `create` unless the extension is already known to exist; held under a lock so one
    /// thread of this process does it.
    pub(crate) fn ensure_extension(
        &self,
        create: impl FnOnce() -> Result<(), PostgresError>,
    ) -> Result<(), PostgresError> {
        let mut ready = self
            .extension_ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !*ready {
            create()?;
            *ready = true;
        }
        Ok(())
    }
}

impl std::fmt::Debug for PostgresPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresPool")
            .field("size", &self.size())
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// The connection pool, closed on a thread of its own when dropped: a `postgres::Client`
/// closes its connection by blocking on a runtime of its own, which panics (and, inside a
/// destructor, aborts the process) on a thread already inside a tokio runtime, as an async
/// server's workers and blocking pool are.
pub(crate) struct ClosedApart(pub(crate) Option<PgPool>);

impl std::ops::Deref for ClosedApart {
    type Target = PgPool;

    fn deref(&self) -> &PgPool {
        self.0.as_ref().expect("present until drop")
    }
}

impl Drop for ClosedApart {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            // Joined, so the connections are closed when the pool's drop returns.
            let closing = std::thread::Builder::new()
                .name("postgres-close".into())
                .spawn(move || drop(pool));
            if let Ok(closing) = closing {
                let _ = closing.join();
            }
        }
    }
}
