//! The store conformance suite as public functions: every check takes a [`StoreFactory`]
//! that makes fresh, empty stores of one kind, so any [`Store`] implementation can prove it
//! behaves like the others. Each store crate runs it beside its code (`host/sqlite/tests`,
//! `host/postgres/tests`, `host/runtime/tests` for the in-memory store): a new backend adds one
//! factory and one [`conformance_suite!`] line.
//!
//! A check panics (assertion failure) when the store under test disagrees.
#![deny(missing_docs)]

use std::sync::Arc;

use serde_json::json;
use vector_service_runtime::api::{
    BackendError, ContributorRow, Destination, PatchOutcome, VectorOutcome, VectorRef,
};
use vector_service_runtime::backends::hashing_embedder::cosine;
use vector_service_runtime::backends::{Backends, Embedder, HashingEmbedder, SearchMode, Store};

pub mod embeddings_endpoint;
pub mod fixtures;
#[cfg(feature = "logs")]
pub mod logs;
mod loopback_http;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "traces")]
pub mod otlp_collector;
pub mod postgres_server;
pub mod server_process;
pub mod service;
pub mod tenants_file;

/// What a test of the service usually needs: records and requests, the service over the
/// in-memory store or a scripted retriever, and (with their features) captured logs and parsed
/// metrics.
pub mod prelude {
    pub use crate::fixtures::*;
    #[cfg(feature = "logs")]
    pub use crate::logs::*;
    #[cfg(feature = "metrics")]
    pub use crate::metrics::*;
    pub use crate::service::*;
}

/// Every check of the suite as a `#[test]` over `$factory` (an expression of a type that
/// implements [`StoreFactory`]), written where the store's tests live.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr) => {
        $crate::conformance_suite!(@checks $factory;
            upsert_counts_new_and_changed_records_only,
            databases_are_registered_once_and_listed_in_order,
            pending_pages_by_id_and_refuses_an_unknown_database,
            embedding_makes_records_current_until_their_text_changes,
            delete_removes_records_with_their_embeddings,
            a_record_is_read_back_by_database_and_id,
            storage_grows_with_what_is_written,
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
    };
    (@checks $factory:expr; $($check:ident),* $(,)?) => {
        $( #[test] fn $check() { $crate::$check(&$factory) } )*
    };
}

use fixtures::*;
use service::service;

/// Makes fresh, empty stores of the kind under test, all using the hashing embedder.
pub trait StoreFactory {
    /// A new empty store (a new file, schema, or value) that searches by `mode`.
    fn fresh(&self, mode: SearchMode) -> Arc<dyn Store>;
    /// The recall@10 its vector search must reach against an exact search: 1.0 for a store
    /// that searches exactly, less for an approximate index (e.g. pgvector's HNSW).
    fn min_recall(&self) -> f64 {
        1.0
    }
    /// Whether its data takes room in a database (files, a schema), which a storage quota
    /// counts; false for a store in process memory.
    fn on_disk(&self) -> bool {
        true
    }
}

/// One check of the suite.
pub type Check = fn(&dyn StoreFactory);

/// Every check, by name, for a harness that wants to run them all in one loop.
pub const CHECKS: &[(&str, Check)] = &[
    (
        "upsert_counts_new_and_changed_records_only",
        upsert_counts_new_and_changed_records_only,
    ),
    (
        "databases_are_registered_once_and_listed_in_order",
        databases_are_registered_once_and_listed_in_order,
    ),
    (
        "pending_pages_by_id_and_refuses_an_unknown_database",
        pending_pages_by_id_and_refuses_an_unknown_database,
    ),
    (
        "embedding_makes_records_current_until_their_text_changes",
        embedding_makes_records_current_until_their_text_changes,
    ),
    (
        "delete_removes_records_with_their_embeddings",
        delete_removes_records_with_their_embeddings,
    ),
    (
        "a_record_is_read_back_by_database_and_id",
        a_record_is_read_back_by_database_and_id,
    ),
    (
        "storage_grows_with_what_is_written",
        storage_grows_with_what_is_written,
    ),
    (
        "lexical_search_ranks_matches_filters_origins_and_ignores_query_syntax",
        lexical_search_ranks_matches_filters_origins_and_ignores_query_syntax,
    ),
    (
        "vector_search_finds_what_an_exact_search_finds",
        vector_search_finds_what_an_exact_search_finds,
    ),
    (
        "hybrid_search_fuses_both_rankings",
        hybrid_search_fuses_both_rankings,
    ),
    (
        "patch_outcomes_and_retriever_stats_are_written_together",
        patch_outcomes_and_retriever_stats_are_written_together,
    ),
    (
        "vector_outcomes_give_rates_in_the_order_asked",
        vector_outcomes_give_rates_in_the_order_asked,
    ),
    (
        "outcomes_in_either_metrics_database_count_in_rates",
        outcomes_in_either_metrics_database_count_in_rates,
    ),
    (
        "every_write_an_answer_depends_on_moves_the_generation",
        every_write_an_answer_depends_on_moves_the_generation,
    ),
    (
        "a_search_reading_the_generation_agrees_with_its_parts",
        a_search_reading_the_generation_agrees_with_its_parts,
    ),
    (
        "the_component_runs_every_operation_over_the_store",
        the_component_runs_every_operation_over_the_store,
    ),
];

/// A fresh store searching by `mode`, holding `(id, text)` records of origin `error` in the
/// database `errors`.
fn fresh_with_errors(
    stores: &dyn StoreFactory,
    mode: SearchMode,
    records_of_errors: &[(&str, &str)],
) -> Arc<dyn Store> {
    let store = stores.fresh(mode);
    let specs: Vec<_> = records_of_errors
        .iter()
        .map(|(id, text)| ("error", *id, *text))
        .collect();
    store.upsert("errors", &records(&specs)).unwrap();
    store
}

/// Upsert counts new and changed records only.
pub fn upsert_counts_new_and_changed_records_only(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Lexical);
    let batch = records(&[
        ("error", "e1", "upload failed"),
        ("error", "e2", "disk full"),
        ("error", "e3", "queue stuck"),
    ]);
    assert_eq!(store.upsert("errors", &batch).unwrap(), 3);
    assert_eq!(store.upsert("errors", &batch).unwrap(), 0, "unchanged");
    let mut changed = batch.clone();
    changed[0].text = "upload failed twice".into();
    changed[1].metadata = json!({"name": "e2", "severity": "high"});
    changed[2].origin_db = "bot".into();
    assert_eq!(store.upsert("errors", &changed).unwrap(), 3);
    let stats = store.stats().unwrap();
    assert_eq!(stats.databases, [("errors".to_string(), 3, 0)]);
    assert_eq!(stats.embedding_version, HashingEmbedder.version());
}

/// Databases are registered once and listed in order.
pub fn databases_are_registered_once_and_listed_in_order(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Lexical);
    store.register_database("zeta").unwrap();
    store.register_database("zeta").unwrap();
    store.register_database("Alpha").unwrap();
    store
        .upsert("mid", &records(&[("bot", "b1", "a bot")]))
        .unwrap();
    // Byte order, as SQLite compares text ("A" < "m" < "z").
    assert_eq!(store.databases().unwrap(), ["Alpha", "mid", "zeta"]);
}

/// Pending pages by id and refuses an unknown database.
pub fn pending_pages_by_id_and_refuses_an_unknown_database(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Lexical);
    let ids = ["r10", "r2", "R3", "r1", "r-5"];
    let batch: Vec<_> = ids
        .iter()
        .map(|id| record("bot", id, &format!("record {id}"), json!({})))
        .collect();
    store.upsert("bots", &batch).unwrap();
    assert_eq!(store.pending("bots", None, 2).unwrap(), ["R3", "r-5"]);
    assert_eq!(
        store.pending("bots", Some("r-5"), 2).unwrap(),
        ["r1", "r10"]
    );
    assert_eq!(store.pending("bots", Some("r10"), 10).unwrap(), ["r2"]);
    assert!(store.pending("bots", Some("r2"), 10).unwrap().is_empty());
    match store.pending("nowhere", None, 10) {
        Err(BackendError::Failed(message)) => assert!(message.contains("nowhere"), "{message}"),
        other => panic!("expected an unknown-database failure, got {other:?}"),
    }
}

/// Embedding makes records current until their text changes.
pub fn embedding_makes_records_current_until_their_text_changes(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Lexical);
    store
        .upsert(
            "errors",
            &records(&[
                ("error", "e1", "upload failed"),
                ("error", "e2", "disk full"),
                ("error", "blank", "   "),
            ]),
        )
        .unwrap();
    let ids: Vec<String> = ["e1", "e2", "blank", "missing"].map(String::from).into();
    let report = store.embed("errors", &ids).unwrap();
    assert_eq!((report.embedded, report.skipped), (2, 2));
    assert_eq!(store.pending("errors", None, 10).unwrap(), ["blank"]);
    assert_eq!(store.stats().unwrap().databases, [("errors".into(), 3, 2)]);

    store
        .upsert(
            "errors",
            &records(&[("error", "e1", "upload failed again")]),
        )
        .unwrap();
    assert_eq!(store.pending("errors", None, 10).unwrap(), ["blank", "e1"]);
    assert_eq!(store.stats().unwrap().databases, [("errors".into(), 3, 1)]);
    let again = store.embed("errors", &["e1".to_string()]).unwrap();
    assert_eq!(again.embedded, 1);
    assert_eq!(store.pending("errors", None, 10).unwrap(), ["blank"]);
}

/// Delete removes records with their embeddings.
pub fn delete_removes_records_with_their_embeddings(stores: &dyn StoreFactory) {
    let store = fresh_with_errors(
        stores,
        SearchMode::Vector,
        &[("e1", "upload failed"), ("e2", "upload timed out")],
    );
    store
        .embed("errors", &["e1".to_string(), "e2".to_string()])
        .unwrap();
    store.sync_index().unwrap();
    let deleted = store
        .delete("errors", &["e1".to_string(), "nope".to_string()])
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(store.stats().unwrap().databases, [("errors".into(), 1, 1)]);
    let found = store.search("upload failed", 10, &[]).unwrap();
    let ids: Vec<&str> = found.hits.iter().map(|hit| hit.id.as_str()).collect();
    assert_eq!(ids, ["e2"], "a deleted record is never found");
}

/// A record is read back by its database and id, as written; another database's record of the
/// same id, or an unknown id, is not it.
pub fn a_record_is_read_back_by_database_and_id(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Lexical);
    let error = record(
        "error",
        "e1",
        "upload failed",
        json!({"frequency": 3, "message": "upload failed"}),
    );
    store
        .upsert("errors", std::slice::from_ref(&error))
        .unwrap();
    store
        .upsert(
            "bots",
            &[record("bot", "e1", "a bot", json!({"deploy_count": 4}))],
        )
        .unwrap();
    assert_eq!(store.record("errors", "e1").unwrap(), Some(error));
    assert_eq!(
        store.record("bots", "e1").unwrap().map(|r| r.metadata),
        Some(json!({"deploy_count": 4}))
    );
    assert_eq!(store.record("errors", "e2").unwrap(), None);
    assert_eq!(store.record("workflows", "e1").unwrap(), None);
}

/// What the store reports for a storage quota grows with the records written into it.
pub fn storage_grows_with_what_is_written(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Lexical);
    let before = store.storage_bytes().unwrap();
    // Text that does not compress (PostgreSQL compresses long values): numbers of a
    // linear congruential sequence.
    let mut state = 1u64;
    let mut words = || {
        (0..100)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                format!("{:016x}", state >> 1)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let many: Vec<_> = (0..500)
        .map(|i| record("error", &format!("e{i}"), &words(), json!({})))
        .collect();
    store.upsert("errors", &many).unwrap();
    let after = store.storage_bytes().unwrap();
    if stores.on_disk() {
        // 500 records of 1.7 KB each.
        assert!(after >= before + 500 * 1_700, "{before} -> {after}");
    } else {
        assert_eq!((before, after), (0, 0));
    }
}

/// Lexical search ranks matches filters origins and ignores query syntax.
pub fn lexical_search_ranks_matches_filters_origins_and_ignores_query_syntax(
    stores: &dyn StoreFactory,
) {
    let store = stores.fresh(SearchMode::Lexical);
    store
        .upsert(
            "mixed",
            &records(&[
                ("error", "e1", "kubernetes pod crashed while uploading"),
                ("error", "e2", "upload failed: disk full"),
                ("bot", "b1", "a bot that restarts kubernetes pods"),
                ("workflow", "w1", "nightly report workflow"),
            ]),
        )
        .unwrap();
    let found = store.search("kubernetes", 10, &[]).unwrap().hits;
    let mut ids: Vec<&str> = found.iter().map(|hit| hit.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["b1", "e1"], "exactly the records with the word");
    assert_eq!(found[0].score, 1.0, "scores are relative to the best hit");
    assert!(found.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(found.iter().all(|hit| (0.0..=1.0).contains(&hit.score)));
    let bots = store
        .search("kubernetes", 10, &["bot".to_string()])
        .unwrap()
        .hits;
    assert_eq!(bots.len(), 1);
    assert_eq!(
        (bots[0].origin_db.as_str(), bots[0].id.as_str()),
        ("bot", "b1")
    );
    assert_eq!(bots[0].metadata, json!({"name": "b1"}).to_string());
    assert_eq!(
        store
            .search("upload kubernetes nightly", 2, &[])
            .unwrap()
            .hits
            .len(),
        2
    );
    assert!(store.search("zebra", 10, &[]).unwrap().hits.is_empty());
    assert!(store.search("  ;  ", 10, &[]).unwrap().hits.is_empty());
    // Quotes, operators and SQL in the query are words or nothing, never syntax.
    for hostile in [
        r#"kubernetes" OR "#,
        "kubernetes'); DROP TABLE records; --",
        "!kubernetes & | :*",
    ] {
        let hits = store.search(hostile, 10, &[]).unwrap().hits;
        assert!(hits.iter().any(|hit| hit.id == "e1"), "{hostile}: {hits:?}");
    }
    assert_eq!(
        store.stats().unwrap().databases[0].1,
        4,
        "the table survived"
    );
}

/// Vector search finds what an exact search finds.
pub fn vector_search_finds_what_an_exact_search_finds(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Vector);
    let corpus = ingest_sample_corpus(store.as_ref());
    for db in store.databases().unwrap() {
        let pending = store.pending(&db, None, 10_000).unwrap();
        store.embed(&db, &pending).unwrap();
    }
    store.sync_index().unwrap();
    let texts: Vec<&str> = corpus
        .iter()
        .map(|(_, record)| record.text.as_str())
        .collect();
    let vectors = HashingEmbedder.embed(&texts).unwrap();
    let (mut found, mut expected) = (0usize, 0usize);
    for query in sample_queries() {
        let query_vector = HashingEmbedder.embed(&[query.as_str()]).unwrap().remove(0);
        let mut exact: Vec<(f64, &str)> = vectors
            .iter()
            .zip(&corpus)
            .map(|(vector, (_, record))| (cosine(&query_vector, vector), record.id.as_str()))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let hits = store.search(&query, 10, &[]).unwrap().hits;
        assert!(hits.len() <= 10);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score), "{query}");
        expected += 10;
        found += exact[..10]
            .iter()
            .filter(|(_, id)| hits.iter().any(|hit| hit.id == *id))
            .count();
    }
    let recall = found as f64 / expected as f64;
    assert!(
        recall >= stores.min_recall(),
        "recall@10 {recall}, wanted at least {}",
        stores.min_recall()
    );
    let errors_only = store
        .search("upload failed", 10, &["error".to_string()])
        .unwrap();
    assert!(!errors_only.hits.is_empty());
    assert!(errors_only.hits.iter().all(|hit| hit.origin_db == "error"));
}

/// Hybrid search fuses both rankings.
pub fn hybrid_search_fuses_both_rankings(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Hybrid);
    store
        .upsert(
            "errors",
            &records(&[
                ("error", "e1", "upload failed: out of memory"),
                ("error", "e2", "disk full on the upload host"),
                ("error", "e3", "certificate expired"),
            ]),
        )
        .unwrap();
    let ids: Vec<String> = ["e1", "e2", "e3"].map(String::from).into();
    store.embed("errors", &ids).unwrap();
    let hits = store.search("upload failed", 3, &[]).unwrap().hits;
    assert_eq!(hits[0].id, "e1");
    assert_eq!(hits[0].score, 1.0);
    assert!(hits[0].reason.contains("rrf"), "{}", hits[0].reason);
}

/// Patch outcomes and retriever stats are written together.
pub fn patch_outcomes_and_retriever_stats_are_written_together(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Lexical);
    assert!(store.available());
    let outcome = |patch: &str, success: bool| PatchOutcome {
        patch_id: patch.into(),
        session_id: "s-1".into(),
        success,
        reverted: !success,
        label: if success { "success" } else { "failure" }.into(),
        roi_tag: "high-roi".into(),
        contributors: vec![
            ContributorRow {
                origin_db: Some("bot".into()),
                vector_id: Some("b1".into()),
            },
            ContributorRow {
                origin_db: None,
                vector_id: None,
            },
        ],
        credited_origins: vec!["bot".into(), "error".into()],
        contribution: if success { 0.75 } else { 0.0 },
    };
    store.log_patch_outcome(&outcome("p-1", true)).unwrap();
    store.log_patch_outcome(&outcome("p-2", false)).unwrap();
    let rows = store.patch_outcomes().unwrap();
    let summary: Vec<(&str, Option<&str>, bool, bool, f64)> = rows
        .iter()
        .map(|row| {
            (
                row.patch_id.as_str(),
                row.vector_id.as_deref(),
                row.success,
                row.reverted,
                row.contribution,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("p-1", Some("b1"), true, false, 0.75),
            ("p-1", None, true, false, 0.75),
            ("p-2", Some("b1"), false, true, 0.0),
            ("p-2", None, false, true, 0.0),
        ]
    );
    assert!(rows
        .iter()
        .all(|row| row.roi_tag == "high-roi" && row.ts_ms > 0));
    let stats = store.retriever_stats().unwrap();
    let stats: Vec<(&str, u64, u64)> = stats
        .iter()
        .map(|(origin, s)| (origin.as_str(), s.wins, s.regrets))
        .collect();
    assert_eq!(stats, [("bot", 1, 1), ("error", 1, 1)]);
    assert_eq!(store.stats().unwrap().patch_outcomes, 4);
}

/// Vector outcomes give rates in the order asked.
pub fn vector_outcomes_give_rates_in_the_order_asked(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Lexical);
    let outcome = |origin: &str, id: &str, win: bool| VectorOutcome {
        session_id: "s-1".into(),
        vector: VectorRef {
            origin_db: origin.into(),
            vector_id: id.into(),
        },
        contribution: 0.5,
        win,
        regret: !win,
        patch_id: "p-1".into(),
        roi_tag: "".into(),
    };
    store
        .record_outcomes(&[
            outcome("bot", "b1", true),
            outcome("bot", "b1", true),
            outcome("bot", "b1", false),
            outcome("bot", "b2", false),
            outcome("error", "e1", true),
        ])
        .unwrap();
    let vref = |origin: &str, id: &str| VectorRef {
        origin_db: origin.into(),
        vector_id: id.into(),
    };
    let rates = store
        .vector_rates(&[vref("bot", "b2"), vref("nowhere", "x"), vref("bot", "b1")])
        .unwrap();
    assert_eq!(rates.len(), 3);
    let b2 = rates[0].expect("b2 has samples");
    assert_eq!((b2.win_rate, b2.regret_rate, b2.samples), (0.0, 1.0, 1));
    assert!(rates[1].is_none());
    let b1 = rates[2].expect("b1 has samples");
    assert_eq!(b1.samples, 3);
    assert!((b1.win_rate - 2.0 / 3.0).abs() < 1e-12);
    let origins = store
        .origin_rates(&["error".into(), "workflow".into(), "bot".into()])
        .unwrap();
    assert_eq!(origins[0].map(|r| r.samples), Some(1));
    assert!(origins[1].is_none());
    assert_eq!(origins[2].map(|r| (r.samples, r.win_rate)), Some((4, 0.5)));
    assert_eq!(store.stats().unwrap().vector_outcomes, 5);
}

/// Outcomes recorded in the primary metrics DB count in rates as the vector metrics DB's do:
/// the patch logger writes each outcome to exactly one of the two.
pub fn outcomes_in_either_metrics_database_count_in_rates(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Lexical);
    let contributor = ContributorRow {
        origin_db: Some("bot".into()),
        vector_id: Some("b1".into()),
    };
    for (patch, success) in [("p-1", true), ("p-2", false), ("p-3", true)] {
        store
            .log_patch_outcome(&PatchOutcome {
                patch_id: patch.into(),
                session_id: "s-1".into(),
                success,
                reverted: !success,
                label: if success { "success" } else { "failure" }.into(),
                roi_tag: "".into(),
                contributors: vec![contributor.clone()],
                credited_origins: vec!["bot".into()],
                contribution: 0.0,
            })
            .unwrap();
    }
    store
        .record_outcomes(&[VectorOutcome {
            session_id: "s-1".into(),
            vector: VectorRef {
                origin_db: "bot".into(),
                vector_id: "b1".into(),
            },
            contribution: 1.0,
            win: false,
            regret: true,
            patch_id: "p-4".into(),
            roi_tag: "".into(),
        }])
        .unwrap();
    let b1 = VectorRef {
        origin_db: "bot".into(),
        vector_id: "b1".into(),
    };
    let rates = store.vector_rates(&[b1]).unwrap()[0].expect("b1 was tracked");
    assert_eq!(
        (rates.samples, rates.win_rate, rates.regret_rate),
        (4, 0.5, 0.5)
    );
    let origin = store.origin_rates(&["bot".into()]).unwrap()[0].expect("bot was tracked");
    assert_eq!(origin.samples, 4);
}

/// Every kind of write an answer depends on moves the store's generation (what keeps the
/// result cache coherent); reads do not.
pub fn every_write_an_answer_depends_on_moves_the_generation(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Hybrid);
    let mut last = store.generation().unwrap();
    let mut moved = |what: &str| {
        let now = store.generation().unwrap();
        assert_ne!(now, last, "{what} must move the generation");
        last = now;
    };
    store
        .upsert("errors", &records(&[("error", "e1", "upload failed")]))
        .unwrap();
    moved("an upsert");
    store.embed("errors", &["e1".to_string()]).unwrap();
    moved("an embedding");
    store
        .log_patch_outcome(&outcome_without_contributors())
        .unwrap();
    moved("a primary outcome");
    store
        .record_outcomes(&[VectorOutcome {
            session_id: "s-1".into(),
            vector: VectorRef {
                origin_db: "error".into(),
                vector_id: "e1".into(),
            },
            contribution: 1.0,
            win: true,
            regret: false,
            patch_id: "p-1".into(),
            roi_tag: "".into(),
        }])
        .unwrap();
    moved("a vector outcome");
    store.delete("errors", &["e1".to_string()]).unwrap();
    moved("a delete");
    let before = store.generation().unwrap();
    store.search("upload failed", 5, &[]).unwrap();
    store.stats().unwrap();
    assert_eq!(store.generation().unwrap(), before, "reads leave it alone");
}

/// A lexical search that reads the generation on its way (where the store can) answers the
/// hits a plain search answers and the generation a read of its own gives, also after an
/// outcome (which moves the generation, not the hits) and after a write.
pub fn a_search_reading_the_generation_agrees_with_its_parts(stores: &dyn StoreFactory) {
    let store = fresh_with_errors(
        stores,
        SearchMode::Lexical,
        &[("e1", "upload failed"), ("e2", "disk quota")],
    );
    let agrees = |what: &str| {
        let Some(found) = store.search_reading_generation("upload failed", 5, &[]) else {
            return;
        };
        let (found, generation) = found.unwrap();
        assert_eq!(
            generation,
            store.generation().unwrap(),
            "{what}: the generation"
        );
        assert_eq!(
            found.hits,
            store.search("upload failed", 5, &[]).unwrap().hits,
            "{what}: the hits"
        );
    };
    agrees("fresh");
    store
        .log_patch_outcome(&outcome_without_contributors())
        .unwrap();
    agrees("after an outcome");
    store
        .upsert(
            "errors",
            &records(&[("error", "e3", "upload failed twice")]),
        )
        .unwrap();
    agrees("after a write");
}

/// The component runs every operation over the store.
pub fn the_component_runs_every_operation_over_the_store(stores: &dyn StoreFactory) {
    let store = stores.fresh(SearchMode::Hybrid);
    let corpus = ingest_sample_corpus(store.as_ref());
    let (service, _) = service(Backends::store(store.clone()));
    let report = service.backfill("s-1", &backfill(Some(64), &[])).unwrap();
    let embedded: u64 = report.databases.iter().map(|d| d.embedded).sum();
    assert_eq!(embedded as usize, corpus.len());
    let found = service
        .search("s-1", &search("upload failed out of memory"))
        .unwrap();
    assert!(!found.hits.is_empty());
    assert_eq!(found.session_id, "s-1");
    let context = service
        .build_context("s-1", &context("upload failed"))
        .unwrap();
    assert!(!context.entries.is_empty(), "{}", context.context);
    let first = &found.hits[0];
    let vector_id = format!("{}:{}", first.origin_db, first.record_id.clone().unwrap());
    let tracked = service
        .track_contributors("s-1", &track(&[vector_id.as_str()], true, "p-1"))
        .unwrap();
    assert_eq!(tracked.written_to, Destination::Primary);
    assert_eq!(store.patch_outcomes().unwrap().len(), 1);
    assert_eq!(store.retriever_stats().unwrap()[0].1.wins, 1);
}
