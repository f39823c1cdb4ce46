//! One conformance suite for every tenant store, from `vector-service-testkit`: each check runs
//! against SQLite (a real file), PostgreSQL with pgvector (a real server,
//! `postgres_server.rs`) and the in-memory store, and expects the same results. Only where an
//! index is approximate (pgvector's HNSW) may results differ; there recall against an exact
//! search is checked instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vector_service_postgres::PostgresStore;
use vector_service_runtime::backends::memory::MemoryStore;
use vector_service_runtime::backends::{Embedder, HashingEmbedder, SearchMode, Store};
use vector_service_sqlite::SqliteStore;
use vector_service_testkit::StoreFactory;

use crate::postgres_server::postgres;
use crate::support::*;

/// A new SQLite file per store.
struct Sqlite;

impl StoreFactory for Sqlite {
    fn fresh(&self, mode: SearchMode) -> Arc<dyn Store> {
        let embedder: Arc<dyn Embedder> = Arc::new(HashingEmbedder);
        let path = temp_dir("conformance").join("tenant.sqlite3");
        Arc::new(
            SqliteStore::open(&path, embedder)
                .expect("the SQLite store opens")
                .with_search_mode(mode),
        )
    }
}

/// A new schema per store on the test server.
struct Postgres;

impl StoreFactory for Postgres {
    fn fresh(&self, mode: SearchMode) -> Arc<dyn Store> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let embedder: Arc<dyn Embedder> = Arc::new(HashingEmbedder);
        Arc::new(
            PostgresStore::connect(&postgres().url, &format!("conformance_{n}"), embedder, 4)
                .expect("the PostgreSQL store connects")
                .with_search_mode(mode),
        )
    }

    /// pgvector's HNSW is approximate.
    fn min_recall(&self) -> f64 {
        0.9
    }
}

/// A new in-memory store.
struct Memory;

impl StoreFactory for Memory {
    fn fresh(&self, mode: SearchMode) -> Arc<dyn Store> {
        Arc::new(MemoryStore::new().with_search_mode(mode))
    }
}

/// Each check, as a test per backend: `sqlite::name`, `postgres::name` and `memory::name`.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $check() { vector_service_testkit::$check(&super::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $check() { vector_service_testkit::$check(&super::Postgres) } )*
        }
        mod memory {
            $( #[test] fn $check() { vector_service_testkit::$check(&super::Memory) } )*
        }
    };
}

conformance!(
    upsert_counts_new_and_changed_records_only,
    databases_are_registered_once_and_listed_in_order,
    pending_pages_by_id_and_refuses_an_unknown_database,
    embedding_makes_records_current_until_their_text_changes,
    delete_removes_records_with_their_embeddings,
    lexical_search_ranks_matches_filters_origins_and_ignores_query_syntax,
    vector_search_finds_what_an_exact_search_finds,
    hybrid_search_fuses_both_rankings,
    patch_outcomes_and_retriever_stats_are_written_together,
    vector_outcomes_give_rates_in_the_order_asked,
    outcomes_in_either_metrics_database_count_in_rates,
    every_write_an_answer_depends_on_moves_the_generation,
    a_search_reading_the_generation_agrees_with_its_parts,
    the_component_runs_every_operation_over_the_store,
);

/// PostgreSQL only: what sharing one database between hosts needs.
mod postgres_hosts {
    use super::*;
    use crate::postgres_server::psql;
    use vector_service_runtime::api::BackendError;

    #[test]
    fn hosts_starting_together_migrate_a_new_schema_once() {
        let tenant = "migrating_together";
        let stores: Vec<PostgresStore> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    scope.spawn(|| {
                        PostgresStore::connect(
                            &postgres().url,
                            tenant,
                            Arc::new(HashingEmbedder),
                            1,
                        )
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
}
