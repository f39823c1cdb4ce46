//! Stateless hosts over one PostgreSQL: two server processes on different ports share a
//! tenant's schema. Records ingested through one are searchable through the other, and patch
//! outcomes written through both, concurrently, are all there.

use std::sync::Arc;

use serde_json::{json, Value};
use vector_service_postgres::PostgresStore;
use vector_service_runtime::backends::{HashingEmbedder, Store};

use crate::server::Server;
use crate::support::api_key_hash;
use crate::support::{record_ids, temp_dir, write_numbered_tenants};
use vector_service_testkit::postgres_server::{postgres, psql};

fn hit_ids(answer: &Value) -> Vec<String> {
    answer["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|hit| {
                    format!(
                        "{}:{}",
                        hit["origin_db"].as_str().unwrap(),
                        hit["record_id"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_hosts_sharing_postgres_serve_one_tenant_consistently() {
    let url = &postgres().url;
    let tenant = "scale_acme";
    let key = Some("acme-key");
    let hosts: Vec<Server> = (0..2)
        .map(|host| {
            // Each host has its own (empty) data directory: nothing is kept on the host.
            let dir = temp_dir(&format!("host-{host}"));
            let tenants = dir.join("tenants.toml");
            std::fs::write(
                &tenants,
                format!(
                    "[[tenant]]\nname = \"{tenant}\"\napi_key_sha256 = \"{}\"\n",
                    api_key_hash("acme-key")
                ),
            )
            .unwrap();
            Server::start(
                &dir,
                &["--database", url, "--tenants", tenants.to_str().unwrap()],
            )
        })
        .collect();
    assert_ne!(hosts[0].url, hosts[1].url);

    let records = r#"{"db": "errors", "origin_db": "error", "id": "e-42", "text": "the payment gateway rejected the idempotency key", "metadata": {"message": "gateway rejected key"}}
{"db": "bots", "origin_db": "bot", "id": "b-7", "text": "a bot that rotates idempotency keys for the payment gateway", "metadata": {"name": "key rotator"}}"#;
    let (status, body, _) = hosts[0].post_lines("/v1/records", key, records);
    assert_eq!(status, 200, "{body}");

    let query = json!({"query": "payment gateway idempotency key", "top_k": 5}).to_string();
    let (status, via_b, _) = hosts[1].post("/v1/search", key, &query);
    assert_eq!(status, 200, "{via_b}");
    let mut found = hit_ids(&via_b);
    found.sort();
    assert_eq!(
        found,
        ["bot:b-7", "error:e-42"],
        "ingested on A, found on B"
    );
    let (_, via_a, _) = hosts[0].post("/v1/search", key, &query);
    assert_eq!(hit_ids(&via_a), hit_ids(&via_b), "both hosts rank alike");

    // Backfill through B, then both hosts see the embeddings as current.
    let job = hosts[1].run_backfill(key, "{}");
    assert_eq!(job["status"], "succeeded", "{job}");

    // Patch outcomes through both hosts at once.
    let per_host = 10;
    std::thread::scope(|scope| {
        for (h, host) in hosts.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..per_host {
                    let body = json!({
                        "vector_ids": ["error:e-42", "bot:b-7"],
                        "success": i % 2 == 0,
                        "patch_id": format!("patch-{h}-{i}"),
                    })
                    .to_string();
                    let (status, answer, _) = host.post("/v1/contributors", key, &body);
                    assert_eq!(status, 200, "{answer}");
                    assert_eq!(answer["written_to"], "primary");
                }
            });
        }
    });

    let store = PostgresStore::connect(url, tenant, Arc::new(HashingEmbedder), 1).unwrap();
    let rows = store.patch_outcomes().unwrap();
    assert_eq!(
        rows.len(),
        2 * per_host * 2,
        "two contributor rows per patch, none lost"
    );
    for h in 0..2 {
        for i in 0..per_host {
            let patch = format!("patch-{h}-{i}");
            assert_eq!(
                rows.iter().filter(|row| row.patch_id == patch).count(),
                2,
                "{patch}"
            );
        }
    }
    let stats = store.stats().unwrap();
    assert!(
        stats
            .databases
            .iter()
            .all(|(_, records, embedded)| records == embedded),
        "{stats:?}"
    );
    let credited: u64 = store
        .retriever_stats()
        .unwrap()
        .iter()
        .map(|(_, s)| s.wins + s.regrets)
        .sum();
    assert_eq!(
        credited,
        (2 * per_host * 2) as u64,
        "every patch credited both origins"
    );
}

#[test]
fn one_host_serves_many_postgres_tenants_over_one_pool_without_crossing_them() {
    // A database of its own, so the connections counted are this server's only.
    psql("DROP DATABASE IF EXISTS shared_pool_test");
    psql("CREATE DATABASE shared_pool_test");
    let (server_url, _) = postgres().url.rsplit_once('/').unwrap();
    let url = format!("{server_url}/shared_pool_test");
    let dir = temp_dir("shared-pool");
    let (tenants, entries) = write_numbered_tenants(&dir, None, "pool_", 30);
    let pool_size = 2;
    let server = Server::start(
        &dir,
        &[
            "--database",
            &url,
            "--tenants",
            tenants.to_str().unwrap(),
            "--postgres-pool-size",
            &pool_size.to_string(),
        ],
    );
    let connections = || -> usize {
        psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'shared_pool_test'")
            .trim()
            .parse()
            .unwrap()
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let most = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                most = most.max(connections());
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            most
        });
        // Every tenant writes a record only it has and finds it, from six clients at once.
        let entries = &entries;
        let clients: Vec<_> = (0..6)
            .map(|client| {
                let server = &server;
                scope.spawn(move || {
                    for (name, key) in entries.iter().skip(client).step_by(6) {
                        let record = format!(
                            r#"{{"db": "errors", "origin_db": "error", "id": "{name}-1", "text": "a record only {name} has"}}"#
                        );
                        let (status, answer, _) = server.post("/v1/records", Some(key), &record);
                        assert_eq!(status, 200, "{name}: {answer}");
                        let query = format!(r#"{{"query": "record only {name} has"}}"#);
                        let (status, found, _) = server.post("/v1/search", Some(key), &query);
                        assert_eq!(status, 200, "{name}: {found}");
                        assert_eq!(record_ids(&found), [format!("{name}-1")], "{name}: {found}");
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        watcher.join().unwrap()
    });
    assert!(most >= 1, "the server used the database");
    assert!(
        most <= pool_size,
        "{most} connections to the database from a pool of {pool_size}"
    );
}
