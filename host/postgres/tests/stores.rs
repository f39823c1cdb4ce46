//! The store conformance suite (`vector-service-testkit`) on PostgreSQL with pgvector (a real
//! server, `vector_service_testkit::postgres_server`), and what sharing one database between
//! hosts needs: migrations applied once, transient failures retried before the commit and never
//! after it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use vector_service_postgres::{PostgresPool, PostgresStore};
use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::{Embedder, HashingEmbedder, Retriever, SearchMode, Store};
use vector_service_testkit::fixtures::records;
use vector_service_testkit::postgres_server::{postgres, psql};
use vector_service_testkit::{conformance_suite, StoreFactory};

/// One pool for every store of the suite, as a server shares one between its tenants.
fn shared_pool() -> &'static Arc<PostgresPool> {
    static POOL: OnceLock<Arc<PostgresPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(PostgresPool::new(&postgres().url, 8, Duration::from_secs(10)).unwrap())
    })
}

/// A new schema per store on the test server, all over one shared pool.
struct Postgres;

impl StoreFactory for Postgres {
    fn fresh(&self, mode: SearchMode) -> Arc<dyn Store> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let embedder: Arc<dyn Embedder> = Arc::new(HashingEmbedder);
        Arc::new(
            PostgresStore::open(shared_pool(), &format!("conformance_{n}"), embedder)
                .expect("the PostgreSQL store opens")
                .with_search_mode(mode),
        )
    }

    /// pgvector's HNSW is approximate.
    fn min_recall(&self) -> f64 {
        0.9
    }
}

conformance_suite!(Postgres);

#[test]
fn hosts_starting_together_migrate_a_new_schema_once() {
    let tenant = "migrating_together";
    let stores: Vec<PostgresStore> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    PostgresStore::connect(&postgres().url, tenant, Arc::new(HashingEmbedder), 1)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap().expect("every host connects"))
            .collect()
    });
    for store in &stores {
        assert_eq!(
            store.schema_version().unwrap(),
            vector_service_postgres::SCHEMA_VERSION
        );
    }
    let rows = psql(&format!(
        "SELECT COUNT(*) FROM \"vs_{tenant}\".schema_migrations"
    ));
    assert_eq!(
        rows.trim(),
        vector_service_postgres::SCHEMA_VERSION.to_string(),
        "each migration recorded once"
    );
}

#[test]
fn one_pool_serves_many_schemas_without_crossing_them_or_growing() {
    let pool = Arc::new(PostgresPool::new(&postgres().url, 2, Duration::from_secs(10)).unwrap());
    let tenants: Vec<String> = (0..24).map(|n| format!("shared_{n}")).collect();
    let stores: Vec<PostgresStore> = tenants
        .iter()
        .map(|tenant| PostgresStore::open(&pool, tenant, Arc::new(HashingEmbedder)).unwrap())
        .collect();
    // Every tenant writes a record only it has, from threads racing for two connections.
    std::thread::scope(|scope| {
        for (tenant, store) in tenants.iter().zip(&stores) {
            scope.spawn(move || {
                let text = format!("deploy {tenant} failed");
                let batch = records(&[("error", tenant, &text)]);
                assert_eq!(store.upsert("errors", &batch).unwrap(), 1);
            });
        }
    });
    assert!(pool.state().connections <= 2, "{:?}", pool.state());
    for (tenant, store) in tenants.iter().zip(&stores) {
        let hits = store.search("deploy failed", 50, &[]).unwrap().hits;
        let ids: Vec<&str> = hits.iter().map(|hit| hit.id.as_str()).collect();
        assert_eq!(ids, [tenant.as_str()], "{tenant} sees only its own row");
        assert_eq!(store.stats().unwrap().databases, [("errors".into(), 1, 0)]);
    }
    // Opened again in this process, a schema is not migrated again: no connection is taken.
    let idle_before = pool.state();
    let again = PostgresStore::open(&pool, "shared_0", Arc::new(HashingEmbedder)).unwrap();
    assert_eq!(pool.state(), idle_before);
    assert_eq!(
        again.schema_version().unwrap(),
        vector_service_postgres::SCHEMA_VERSION
    );
}

#[test]
fn a_lost_connection_is_retried_and_nothing_acknowledged_is_lost() {
    // Its own database, so that killing its connections leaves the other tests' alone.
    psql("DROP DATABASE IF EXISTS retry_test");
    psql("CREATE DATABASE retry_test");
    let (server, _) = postgres()
        .url
        .rsplit_once('/')
        .expect("a database in the URL");
    let url = format!("{server}/retry_test");
    let store = PostgresStore::connect(&url, "retry", Arc::new(HashingEmbedder), 2).unwrap();
    let batch = records(&[("error", "e1", "upload failed")]);
    assert_eq!(store.upsert("errors", &batch).unwrap(), 1);
    // Kill every connection the store holds, as a failover or a proxy restart would.
    psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = 'retry_test' AND pid <> pg_backend_pid()",
    );
    let more = records(&[("error", "e2", "disk full"), ("error", "e3", "queue stuck")]);
    assert_eq!(
        store.upsert("errors", &more).unwrap(),
        2,
        "retried on a new connection"
    );
    assert_eq!(store.stats().unwrap().databases, [("errors".into(), 3, 0)]);
}

/// A store on a fresh schema whose `records` inserts raise `sqlstate` (from a trigger) for
/// the first `failures` attempts, counted by a sequence (sequences ignore rollbacks). With
/// `at_commit`, the trigger is deferred: the failure comes from the COMMIT itself.
fn store_failing_with(
    tenant: &str,
    sqlstate: &str,
    failures: u32,
    at_commit: bool,
) -> PostgresStore {
    let store =
        PostgresStore::connect(&postgres().url, tenant, Arc::new(HashingEmbedder), 2).unwrap();
    let schema = format!("\"vs_{tenant}\"");
    let (kind, timing) = if at_commit {
        (
            "CONSTRAINT TRIGGER",
            "AFTER INSERT ON {s}.records DEFERRABLE INITIALLY DEFERRED",
        )
    } else {
        ("TRIGGER", "BEFORE INSERT ON {s}.records")
    };
    let timing = timing.replace("{s}", &schema);
    psql(&format!(
        "CREATE SEQUENCE {schema}.attempts;
         CREATE FUNCTION {schema}.inject() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF nextval('{schema}.attempts') <= {failures} THEN
             RAISE EXCEPTION 'injected failure' USING ERRCODE = '{sqlstate}';
           END IF;
           RETURN NEW;
         END $$;
         CREATE {kind} inject {timing} FOR EACH ROW EXECUTE FUNCTION {schema}.inject();"
    ));
    store
}

/// How many times the trigger ran (one per attempt of a one-record upsert).
fn attempts(tenant: &str) -> u32 {
    psql(&format!("SELECT last_value FROM \"vs_{tenant}\".attempts"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn serialization_failures_and_deadlocks_are_retried_before_the_commit() {
    for (tenant, sqlstate) in [("retry_40001", "40001"), ("retry_40p01", "40P01")] {
        let store = store_failing_with(tenant, sqlstate, 2, false);
        let batch = records(&[("error", "e1", "upload failed")]);
        assert_eq!(store.upsert("errors", &batch).unwrap(), 1, "{sqlstate}");
        assert_eq!(
            attempts(tenant),
            3,
            "{sqlstate}: two failures, then success"
        );
        assert_eq!(store.stats().unwrap().databases, [("errors".into(), 1, 0)]);
    }
    // A failure that persists is given up after a bounded number of attempts, typed as
    // unavailable (the caller may retry later), with nothing written.
    let store = store_failing_with("retry_forever", "40001", u32::MAX / 2, false);
    let batch = records(&[("error", "e1", "upload failed")]);
    match store.upsert("errors", &batch) {
        Err(BackendError::Unavailable(message)) => {
            assert!(message.contains("injected failure"), "{message}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert_eq!(attempts("retry_forever"), 4, "bounded attempts");
    assert!(store.stats().unwrap().databases.is_empty());
}

#[test]
fn a_commit_with_unknown_outcome_is_reported_unavailable_and_never_retried() {
    // The deferred trigger fails the COMMIT with a retryable state: even so, the store must
    // not retry, because it cannot know whether a commit that failed in flight landed.
    let tenant = "commit_unknown";
    let store = store_failing_with(tenant, "40001", 1, true);
    let batch = records(&[("error", "e1", "upload failed")]);
    match store.upsert("errors", &batch) {
        Err(BackendError::Unavailable(message)) => {
            assert!(message.contains("outcome is unknown"), "{message}")
        }
        other => panic!("expected an unknown-outcome failure, got {other:?}"),
    }
    assert_eq!(attempts(tenant), 1, "the commit was not retried");
    // This commit did fail (the trigger raised): nothing was written, and the next upsert
    // (the trigger now passes) writes the record once.
    assert!(store.stats().unwrap().databases.is_empty());
    assert_eq!(store.upsert("errors", &batch).unwrap(), 1);
    assert_eq!(store.stats().unwrap().databases, [("errors".into(), 1, 0)]);
}

#[test]
fn a_bad_url_or_tenant_is_a_typed_error() {
    use vector_service_postgres::PostgresError;
    let embedder = || Arc::new(HashingEmbedder) as Arc<dyn Embedder>;
    assert!(matches!(
        PostgresStore::connect("postgres://nobody@127.0.0.1:1/none", "t", embedder(), 1),
        Err(PostgresError::Connect(message)) if message.contains("refused")
    ));
    assert!(matches!(
        PostgresStore::connect(
            &postgres().url,
            "bad\"; DROP SCHEMA public; --",
            embedder(),
            1
        ),
        Err(PostgresError::Tenant(_))
    ));
    assert!(matches!(
        PostgresStore::connect("postgres://host:notaport/db", "t", embedder(), 1),
        Err(PostgresError::Url(_))
    ));
}
