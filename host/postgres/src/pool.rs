//! The connection pool: each connection in the tenant's schema, the pool closed apart from
//! any async runtime.

use postgres::NoTls;
use r2d2::{CustomizeConnection, Pool};
use r2d2_postgres::PostgresConnectionManager;

/// Sets each pooled connection's `search_path` to the tenant schema (then `public`, where the
/// `vector` type lives).
#[derive(Debug)]
pub(crate) struct TenantSchema(pub(crate) String);

impl CustomizeConnection<postgres::Client, postgres::Error> for TenantSchema {
    fn on_acquire(&self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        client.batch_execute(&format!("SET search_path TO {}, public", self.0))
    }
}

pub(crate) type PgPool = Pool<PostgresConnectionManager<NoTls>>;

/// The connection pool, closed on a thread of its own when the store is dropped: a
/// `postgres::Client` closes its connection by blocking on a runtime of its own, which panics
/// (and, inside a destructor, aborts the process) on a thread already inside a tokio runtime,
/// as an async server's workers and blocking pool are.
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
            // Joined, so the connections are closed when the store's drop returns.
            let closing = std::thread::Builder::new()
                .name("postgres-close".into())
                .spawn(move || drop(pool));
            if let Ok(closing) = closing {
                let _ = closing.join();
            }
        }
    }
}
