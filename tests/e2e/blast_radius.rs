//! One tenant, one operator mistake or one damaged file must not take the others down: reload
//! and start agree on every way a configuration can be wrong, a damaged rollouts file never
//! stops a start, a damaged store or a full disk is reported at once and refuses writes with a
//! typed error while its neighbours keep working, every documented range is accepted at its
//! ends and refused past them before work starts, errors name no path, file byte or backend
//! body, SIGTERM exits 0 with calls and jobs in flight on SQLite and on PostgreSQL, and the
//! descriptor limit is checked before anything is opened.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::catalogue::{answered_by, other_component, tenants_file};
use crate::server::{error_kind, Server};
use crate::support::api_key_hash as hash;
use crate::support::{record_ids, temp_dir, write_numbered_tenants, write_tenants, Metrics};
use vector_service_testkit::embeddings_endpoint::{EmbeddingsEndpoint as EmbeddingServer, Reply};
use vector_service_testkit::postgres_server::postgres;

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `vector-service --data-dir DIR ARGS...` run to its end (at most 30 s).
fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vector-service"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// Start a server that must refuse to start: its stderr, once it has exited non-zero (it is
/// killed and the test fails if it is still running after 30 s).
fn refused_start(dir: &Path, serve_args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vector-service"))
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(serve_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started with {serve_args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "it exited 0: {stderr}");
    stderr
}

/// An admin request's (status, message of its error).
fn reload(server: &Server, body: &str) -> (u16, String) {
    let (status, answer, _) = server.post("/admin/reload", Some("admin-key"), body);
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, message)
}

/// One way an operator can get the configuration wrong: what it does to the files, and what
/// the refusal says.
struct Mistake {
    what: &'static str,
    make: Box<dyn Fn()>,
    says: &'static str,
}

#[test]
fn reload_and_start_agree_on_every_config_mistake() {
    let dir = temp_dir("blast-config");
    let (component, other) = other_component(&dir);
    let tenants = tenants_file(&dir, &other, &[("a", Some(&other)), ("b", None)]);
    let good_tenants = std::fs::read_to_string(&tenants).unwrap();
    let good_component = std::fs::read(&component).unwrap();
    let args = [
        "--tenants",
        tenants.to_str().unwrap(),
        "--max-component-bytes",
        "1000000",
    ];
    let server = Server::start(&dir, &args);
    assert_eq!(answered_by(&server, "a"), "other");

    let restore = || {
        if component.is_dir() {
            std::fs::remove_dir(&component).unwrap();
        }
        let _ = std::fs::remove_file(&component);
        std::fs::write(&component, &good_component).unwrap();
        std::fs::write(&tenants, &good_tenants).unwrap();
    };
    let (c, t) = (component.clone(), tenants.clone());
    let junk = b"\0asm\x01\0\0\0 these bytes are listed, but are no component".to_vec();
    let junk_digest = sha256(&junk);
    let mistakes = [
        Mistake {
            what: "other bytes in a listed file",
            make: Box::new({
                let c = c.clone();
                move || std::fs::write(&c, vector_service_runtime::BUILTIN_COMPONENT).unwrap()
            }),
            says: "not the",
        },
        Mistake {
            what: "a listed file missing",
            make: Box::new({
                let c = c.clone();
                move || std::fs::remove_file(&c).unwrap()
            }),
            says: "No such file",
        },
        Mistake {
            what: "a directory where a listed file was",
            make: Box::new({
                let c = c.clone();
                move || {
                    std::fs::remove_file(&c).unwrap();
                    std::fs::create_dir(&c).unwrap();
                }
            }),
            says: "not a regular file",
        },
        Mistake {
            what: "a FIFO where a listed file was",
            make: Box::new({
                let c = c.clone();
                move || {
                    std::fs::remove_file(&c).unwrap();
                    assert!(Command::new("mkfifo").arg(&c).status().unwrap().success());
                }
            }),
            says: "not a regular file",
        },
        Mistake {
            what: "a listed file over --max-component-bytes",
            make: Box::new({
                let c = c.clone();
                move || std::fs::write(&c, vec![0u8; 1_500_000]).unwrap()
            }),
            says: "larger than the 1000000 bytes allowed",
        },
        Mistake {
            what: "listed bytes that are not a component",
            make: Box::new({
                let (c, dir) = (c.clone(), dir.clone());
                let (junk, digest) = (junk.clone(), junk_digest.clone());
                move || {
                    std::fs::write(&c, &junk).unwrap();
                    tenants_file(&dir, &digest, &[("a", Some(&digest)), ("b", None)]);
                }
            }),
            says: "compiling the component",
        },
        Mistake {
            what: "a tenants file that is not TOML",
            make: Box::new({
                let t = t.clone();
                move || std::fs::write(&t, "[[tenant]\nname = \"a\"\n").unwrap()
            }),
            says: "tenants.toml",
        },
        Mistake {
            what: "a tenant holding the admin key",
            make: Box::new({
                let (t, text) = (t.clone(), good_tenants.clone());
                move || {
                    let text = text.replacen(&hash("b-key"), &hash("admin-key"), 1);
                    std::fs::write(&t, text).unwrap()
                }
            }),
            says: "tenant \"b\" has the admin key",
        },
    ];
    let shown_dir = dir.to_str().unwrap().to_string();
    for mistake in &mistakes {
        (mistake.make)();
        let (status, message) = reload(&server, "");
        assert_eq!(status, 400, "{}: reload refused: {message}", mistake.what);
        assert!(
            message.contains(mistake.says) && message.contains("nothing changed"),
            "{}: {message}",
            mistake.what
        );
        assert!(
            !message.contains(&shown_dir),
            "{}: no path: {message}",
            mistake.what
        );
        assert_eq!(answered_by(&server, "a"), "other", "{}", mistake.what);
        let stderr = refused_start(&dir, &args);
        assert!(
            stderr.contains(mistake.says),
            "{}: the start says so too: {stderr}",
            mistake.what
        );
        restore();
    }
    assert_eq!(reload(&server, "").0, 200, "the good configuration reloads");
    assert_eq!(answered_by(&server, "a"), "other");

    // A reload names any file: only regular files within the cap are read, and what is read
    // is never quoted back (a tenants file without a [[component]] list, so it is compiled).
    let open_dir = temp_dir("blast-config-open");
    let open = write_tenants(&open_dir, Some("admin-key"), &[("a", "a-key", "")]);
    let server = Server::start(&open_dir, &["--tenants", open.to_str().unwrap()]);
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let fifo = dir.join("fifo.wasm");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (file, says) in [
        (PathBuf::from("/dev/zero"), "not a regular file"),
        (fifo, "not a regular file"),
        (passwd, "compiling the component"),
    ] {
        let started = Instant::now();
        let (status, message) = reload(&server, &json!({ "component": file }).to_string());
        assert_eq!(status, 400, "{message}");
        assert!(message.contains(says), "{message}");
        for leak in ["root", "0x72", &shown_dir] {
            assert!(!message.contains(leak), "{leak} in {message}");
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{file:?}");
    }
    assert_eq!(
        reload(&server, "").0,
        200,
        "the server's own component still loads"
    );
}

/// Admin calls of the rollout API: (status, answer).
fn admin(server: &Server, path: &str, body: &str) -> (u16, Value) {
    let (status, answer, _) = server.post(path, Some("admin-key"), body);
    (status, answer)
}

/// `tenant` promoted to `component` through a full canary.
fn promote(server: &Server, tenant: &str, component: &str) {
    let canary = json!({"component": component, "share_percent": 100.0}).to_string();
    let path = format!("/admin/tenants/{tenant}");
    assert_eq!(admin(server, &format!("{path}/canary"), &canary).0, 200);
    assert_eq!(admin(server, &format!("{path}/promote"), "").0, 200);
}

/// What `/readyz` tells the admin key.
fn readiness(server: &Server) -> (u16, Value) {
    let (status, text) = server.get("/readyz", Some("admin-key"));
    (status, serde_json::from_str(&text).unwrap())
}

#[test]
fn a_damaged_rollouts_file_never_stops_a_start() {
    let dir = temp_dir("blast-rollouts");
    let (_, other) = other_component(&dir);
    let tenants = tenants_file(&dir, &other, &[("a", None), ("b", None)]);
    let args = ["--tenants", tenants.to_str().unwrap()];
    let file = dir.join("rollouts.json");
    {
        let server = Server::start(&dir, &args);
        promote(&server, "a", &other);
        assert_eq!(answered_by(&server, "a"), "other");
    }
    let kept = std::fs::read_to_string(&file).unwrap();

    // Damaged: the server starts on the version kept before the last write, and says so.
    std::fs::write(&file, &kept[..kept.len() / 2]).unwrap();
    {
        let server = Server::start(&dir, &args);
        let (status, ready) = readiness(&server);
        assert_eq!(status, 200, "{ready}");
        let warning = ready["warnings"][0].as_str().unwrap_or_default();
        assert!(warning.contains("previous version"), "{ready}");
        assert!(dir.join("rollouts.json.damaged").exists(), "kept aside");
        assert_eq!(answered_by(&server, "b"), "built-in");
        // The previous version holds `a`'s canary (the write before the promotion).
        assert_eq!(answered_by(&server, "a"), "other");
    }

    // Damaged, and no previous version reads: every tenant runs its own component.
    std::fs::write(&file, "{ not json").unwrap();
    std::fs::write(dir.join("rollouts.json.previous"), "neither").unwrap();
    {
        let server = Server::start(&dir, &args);
        let (status, ready) = readiness(&server);
        assert_eq!(status, 200, "{ready}");
        assert!(
            ready["warnings"][0]
                .as_str()
                .unwrap_or_default()
                .contains("no previous version"),
            "{ready}"
        );
        assert_eq!(answered_by(&server, "a"), "built-in");
    }

    // One tenant's entry damaged: only that tenant loses its rollout.
    let rollout = json!({"file_pin": null, "active": other, "previous": null, "canary": null});
    std::fs::write(&file, json!({"a": {"active": 5}, "b": rollout}).to_string()).unwrap();
    let server = Server::start(&dir, &args);
    let (_, ready) = readiness(&server);
    let warning = ready["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("the rollout of a did not read"), "{ready}");
    assert_eq!(answered_by(&server, "a"), "built-in");
    assert_eq!(answered_by(&server, "b"), "other");
}

/// Overwrite 8 KiB in the middle of a SQLite file (its WAL checkpointed into it first).
fn damage_middle(path: &Path) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(connection);
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    for (i, byte) in bytes[middle..middle + 8192].iter_mut().enumerate() {
        *byte = (i * 7 + 13) as u8;
    }
    std::fs::write(path, bytes).unwrap();
}

/// Poll the admin's `/readyz` until `done` says yes (at most 20 s): its last answer.
fn readiness_until(server: &Server, done: impl Fn(&Value) -> bool) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, ready) = readiness(server);
        if done(&ready) || Instant::now() > deadline {
            return (status, ready);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn not_ready_reason(ready: &Value, tenant: &str) -> Option<String> {
    ready["not_ready_tenants"]
        .as_array()?
        .iter()
        .find(|entry| entry["tenant"] == tenant)
        .map(|entry| entry["reason"].as_str().unwrap_or_default().to_string())
}

const RECORD: &str =
    r#"{"db": "errors", "origin_db": "error", "id": "n-1", "text": "a new record about uploads"}"#;
const TRACK: &str = r#"{"vector_ids": ["error:e1"], "success": true, "patch_id": "p-1"}"#;

#[test]
fn a_damaged_store_is_reported_at_once_refuses_writes_and_its_neighbour_keeps_working() {
    let dir = temp_dir("blast-damaged");
    let ingest = cli(
        &dir,
        &["--tenant", "hurt", "ingest", "examples/data/records.jsonl"],
    );
    assert!(ingest.status.success());
    damage_middle(&dir.join("hurt.sqlite3"));

    // Every command that touches the store says so, with the kind the server answers.
    for command in [
        &["stats"][..],
        &["track", "--patch-id", "p-1", "bot:bot-005"],
        &["search", "upload failed"],
        &["backfill"],
    ] {
        let args = [&["--json", "--tenant", "hurt"][..], command].concat();
        let output = cli(&dir, &args);
        assert!(!output.status.success(), "{command:?} exits non-zero");
        let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            error_kind(&answer),
            "store-damaged",
            "{command:?}: {answer}"
        );
    }

    let tenants = write_tenants(
        &dir,
        Some("admin-key"),
        &[("hurt", "hurt-key", ""), ("fine", "fine-key", "")],
    );
    let server = Server::start(&dir, &["--tenants", tenants.to_str().unwrap()]);
    // Tenants open on their first request; the check a store gets at its first open finds
    // the damage before anything reads or writes it.
    let (status, first, _) = server.post("/v1/records", Some("hurt-key"), RECORD);
    assert_eq!(
        (status, error_kind(&first)),
        (503, "store-damaged"),
        "{first}"
    );
    let (status, ready) =
        readiness_until(&server, |ready| not_ready_reason(ready, "hurt").is_some());
    assert_eq!(status, 200, "the server serves its other tenant: {ready}");
    let reason = not_ready_reason(&ready, "hurt").unwrap_or_default();
    assert!(reason.contains("damaged"), "{ready}");
    let (_, mine) = server.get("/readyz", Some("hurt-key"));
    assert!(mine.contains("damaged"), "a tenant sees its own: {mine}");
    let (_, theirs) = server.get("/readyz", Some("fine-key"));
    assert!(!theirs.contains("hurt"), "and not another's: {theirs}");
    for (path, body) in [
        ("/v1/records", RECORD),
        ("/v1/contributors", TRACK),
        ("/v1/backfill", "{}"),
    ] {
        let (status, answer, _) = server.post(path, Some("hurt-key"), body);
        assert_eq!(
            (status, error_kind(&answer)),
            (503, "store-damaged"),
            "{path}: {answer}"
        );
    }
    let (_, view) = server.get("/admin/tenants", Some("admin-key"));
    let view: Value = serde_json::from_str(&view).unwrap();
    let hurt = view["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "hurt")
        .unwrap();
    assert_eq!(hurt["ready"], false, "{view}");
    assert!(hurt["reason"].as_str().unwrap().contains("damaged"));
    // The neighbour writes and reads as ever.
    assert_eq!(server.post("/v1/records", Some("fine-key"), RECORD).0, 200);
    let (status, found, _) = server.post("/v1/search", Some("fine-key"), r#"{"query": "uploads"}"#);
    assert_eq!(status, 200, "{found}");
}

/// A tmpfs of `mib` mounted on `dir` for the test's life (the test runs as root, as CI does).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, mib: u32) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a {mib} MiB tmpfs (this test needs root, as CI has)"
        );
        Self(dir.to_path_buf())
    }

    /// Fill what is left with a ballast file.
    fn fill(&self) -> PathBuf {
        let ballast = self.0.join("ballast");
        let mut file = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![7u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.write_all(&[7]);
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_a_typed_error_named_in_readiness_and_writes_resume_when_there_is_room() {
    let dir = temp_dir("blast-full");
    let disk = SmallDisk::mount(&dir, 24);
    let tenants = write_tenants(
        &dir,
        Some("admin-key"),
        &[("a", "a-key", ""), ("b", "b-key", "")],
    );
    let server = Server::start(&dir, &["--tenants", tenants.to_str().unwrap()]);
    assert_eq!(server.post("/v1/records", Some("a-key"), RECORD).0, 200);
    let ballast = disk.fill();

    let big: String = (0..200)
        .map(|i| {
            json!({"db": "errors", "origin_db": "error", "id": format!("big-{i}"), "text": "x".repeat(4000)})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (status, answer) = {
        let status = server.post_raw(
            "/v1/records",
            big.as_bytes(),
            &[
                ("Content-Type", "application/x-ndjson"),
                ("Authorization", "Bearer a-key"),
            ],
        );
        (status, readiness(&server).1)
    };
    assert_eq!(status, 507, "a write on a full disk: {answer}");
    let reason = not_ready_reason(&answer, "a").unwrap_or_default();
    assert!(reason.contains("full"), "named at once: {answer}");
    // Reads go on.
    let (status, found, _) = server.post("/v1/search", Some("a-key"), r#"{"query": "uploads"}"#);
    assert_eq!(status, 200, "{found}");
    let (status, answer, retry) = server.post("/v1/contributors", Some("a-key"), TRACK);
    assert_eq!(
        (status, error_kind(&answer)),
        (507, "storage-full"),
        "{answer}"
    );
    assert!(retry.is_some());
    assert!(
        !answer.to_string().contains(dir.to_str().unwrap()),
        "{answer}"
    );

    // Room again: the next probe sees a write go through, and writes are taken again.
    std::fs::remove_file(ballast).unwrap();
    let (_, ready) = readiness_until(&server, |ready| not_ready_reason(ready, "a").is_none());
    assert!(not_ready_reason(&ready, "a").is_none(), "{ready}");
    assert_eq!(server.post("/v1/contributors", Some("a-key"), TRACK).0, 200);
}

/// SIGTERM with a search and a backfill job in flight (each held by an embedder that takes
/// 1.5 s a request): the server drains and exits 0.
fn sigterm_exits_0_with_calls_and_jobs_in_flight(database: &[&str], tenant: &str) {
    let slow = EmbeddingServer::start(&vec![Reply::Slow(Duration::from_millis(1500)); 64]);
    let dir = temp_dir(&format!("blast-term-{tenant}"));
    let key = format!("{tenant}-key");
    let tenants = write_tenants(&dir, None, &[(tenant, &key, "")]);
    let globals = [database, &slow.vector_search_flags()[..]].concat();
    let server =
        Server::start_with_globals(&dir, &globals, &["--tenants", tenants.to_str().unwrap()]);
    let records: String = (0..20)
        .map(|i| {
            json!({"db": "errors", "origin_db": "error", "id": format!("e-{i}"), "text": format!("failure number {i}")})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        server.post_lines("/v1/records", Some(&key), &records).0,
        200
    );
    let (status, job, _) = server.post("/v1/backfill", Some(&key), r#"{"batch_size": 2}"#);
    assert_eq!(status, 202, "{job}");
    let in_flight = server.search_in_flight(&key, r#"{"query": "failure"}"#);
    std::thread::sleep(Duration::from_millis(500));
    server.terminate();
    let exit = server
        .wait_for_exit(Duration::from_secs(30))
        .expect("the server exited");
    assert!(exit.success(), "SIGTERM ends the server cleanly: {exit:?}");
    in_flight.join().unwrap();
}

#[test]
fn sigterm_exits_0_with_calls_and_jobs_in_flight_on_sqlite() {
    sigterm_exits_0_with_calls_and_jobs_in_flight(&[], "term_sqlite");
}

#[test]
fn sigterm_exits_0_with_calls_and_jobs_in_flight_on_postgres() {
    let url = postgres().url.clone();
    sigterm_exits_0_with_calls_and_jobs_in_flight(&["--database", &url], "term_pg");
}

/// One documented bound of a route's field: a body at the bound (answered 2xx) and one past it
/// (refused 400 before any work), each made from the bound's value.
struct Bound {
    route: &'static str,
    field: &'static str,
    at: Value,
    past: Vec<Value>,
}

/// A body for `route` with `field` set to `value` (the rest valid).
fn body(route: &str, field: &str, value: &Value) -> String {
    let mut body = match route {
        "/v1/search" => json!({"query": "upload failed"}),
        "/v1/context" => json!({"task": "fix failing tests"}),
        "/v1/contributors" => {
            json!({"vector_ids": ["bot:bot-005"], "success": false, "patch_id": "p-1"})
        }
        "/v1/backfill" => json!({}),
        other => panic!("no body for {other}"),
    };
    body[field] = value.clone();
    body.to_string()
}

fn words(count: usize) -> String {
    (0..count)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_documented_range_is_accepted_at_its_ends_and_refused_past_them() {
    let dir = temp_dir("blast-ranges");
    assert!(cli(&dir, &["ingest", "examples/data/records.jsonl"])
        .status
        .success());
    let server = Server::start(&dir, &[]);
    let session = |bytes: usize| json!("s".repeat(bytes));
    let mut bounds = Vec::new();
    for route in [
        "/v1/search",
        "/v1/context",
        "/v1/contributors",
        "/v1/backfill",
    ] {
        bounds.push(Bound {
            route,
            field: "session_id",
            at: session(256),
            past: vec![session(257), session(8 << 10)],
        });
    }
    for route in ["/v1/search", "/v1/context"] {
        // 0 asks for the default, as the original read it.
        bounds.push(Bound {
            route,
            field: "top_k",
            at: json!(0),
            past: vec![],
        });
        bounds.push(Bound {
            route,
            field: "top_k",
            at: json!(1000),
            past: vec![json!(1001), json!(4_294_967_295u64)],
        });
    }
    let ids = |count: usize| json!((0..count).map(|i| format!("bot:b-{i}")).collect::<Vec<_>>());
    bounds.push(Bound {
        route: "/v1/contributors",
        field: "vector_ids",
        at: ids(1000),
        past: vec![ids(1001)],
    });
    bounds.push(Bound {
        route: "/v1/backfill",
        field: "batch_size",
        at: json!(1),
        past: vec![json!(0)],
    });
    bounds.push(Bound {
        route: "/v1/backfill",
        field: "batch_size",
        at: json!(1000),
        past: vec![json!(1001), json!(4_294_967_295u64)],
    });
    let dbs = |count: usize| json!((0..count).map(|i| format!("db{i}")).collect::<Vec<_>>());
    bounds.push(Bound {
        route: "/v1/backfill",
        field: "dbs",
        at: dbs(64),
        past: vec![dbs(65), dbs(20_000)],
    });

    for bound in &bounds {
        let (status, answer, _) = server.post(
            bound.route,
            None,
            &body(bound.route, bound.field, &bound.at),
        );
        assert!(
            (200..300).contains(&status),
            "{} {} at its bound: {status} {answer}",
            bound.route,
            bound.field
        );
        if bound.route == "/v1/backfill" {
            server.wait_for_job(None, answer["job"].as_str().unwrap());
        }
        for past in &bound.past {
            let (status, answer, _) =
                server.post(bound.route, None, &body(bound.route, bound.field, past));
            assert_eq!(
                (status, error_kind(&answer)),
                (400, "malformed-prompt"),
                "{} {} past its bound: {answer}",
                bound.route,
                bound.field
            );
        }
    }

    // A query or task past its bound is cut there, not refused (the original took any size and
    // its callers pass whole logs): answered, with a warning, and counted.
    for (route, field, function) in [
        ("/v1/search", "query", "Retriever.search"),
        ("/v1/context", "task", "ContextBuilder.build"),
    ] {
        let texts = [
            (words(512), words(513)),
            (
                format!("upload {}", "x".repeat(16 * 1024 - 7)),
                format!("upload {}", "x".repeat(16 * 1024 - 6)),
            ),
        ];
        for (at, past) in texts {
            let (status, answer, _) = server.post(route, None, &body(route, field, &json!(at)));
            assert_eq!(status, 200, "{route} {field} at its bound: {answer}");
            assert!(answer.get("warnings").is_none(), "{answer}");
            let (status, answer, _) = server.post(route, None, &body(route, field, &json!(past)));
            assert_eq!(status, 200, "{route} {field} past its bound: {answer}");
            let warnings = answer["warnings"].as_array().expect("a warning");
            assert_eq!(warnings.len(), 1, "{answer}");
            let warning = warnings[0].as_str().unwrap();
            assert!(
                warning.starts_with(&format!("{field} cut to its first ")),
                "{warning}"
            );
        }
        let (_, text) = server.get("/metrics", None);
        let cut = Metrics::parse(text)
            .counter("vector_service_inputs_cut_total", &[("function", function)]);
        assert_eq!(cut, 2.0, "{function}");
    }
    // A path that does not decode gets the JSON error shape like every other answer.
    let (status, text) = server.get("/v1/backfill/bf-%ff-1", None);
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(
        (status, error_kind(&answer)),
        (400, "bad-request"),
        "{text}"
    );
}

#[test]
fn backend_words_never_reach_a_tenant() {
    // The embedder refuses with a body of its own words: the tenant sees the status only.
    let refusing = EmbeddingServer::start(&vec![Reply::Status(400, ""); 8]);
    let dir = temp_dir("blast-words");
    let server = Server::start_with_globals(&dir, &refusing.vector_search_flags(), &[]);
    let (status, answer, _) = server.post("/v1/search", None, r#"{"query": "upload failed"}"#);
    assert!(status >= 400, "{answer}");
    assert!(
        !answer.to_string().contains("scripted"),
        "the embedder's body stays in the log: {answer}"
    );
}

/// 2,000 tenants start under a descriptor limit of 1,024 (before tenants opened on first use,
/// they did not), and more tenants are used than the limit lets stay open at once: each opens
/// on its request, the least recently used close, and one closed answers with what it was
/// given before.
#[test]
fn thousands_of_tenants_start_under_a_low_descriptor_limit_and_open_as_they_are_used() {
    let dir = temp_dir("blast-descriptors");
    let (tenants, entries) = write_numbered_tenants(&dir, Some("admin-key"), "t", 2000);
    let server =
        Server::start_under_descriptor_limit(&dir, &["--tenants", tenants.to_str().unwrap()], 1024);
    assert!(
        !dir.join("t0.sqlite3").exists(),
        "start-up opens no tenant's store"
    );
    let (status, ready) = server.get("/readyz", None);
    assert_eq!(status, 200, "{ready}");
    // Half of what the server's own 72 descriptors leave, at 5 per open tenant.
    let max_open = 95;
    let used = max_open + 25;
    for (name, key) in &entries[..used] {
        let record = format!(
            r#"{{"db": "errors", "origin_db": "error", "id": "{name}-1", "text": "a record only {name} has"}}"#
        );
        let (status, answer, _) = server.post("/v1/records", Some(key), &record);
        assert_eq!(status, 200, "{name}: {answer}");
    }
    // The first tenants were closed for room; each finds its own record, and no other's.
    for (name, key) in entries[..used].iter().step_by(10) {
        let (status, found, _) = server.post(
            "/v1/search",
            Some(key),
            &format!(r#"{{"query": "record only {name}"}}"#),
        );
        assert_eq!(status, 200, "{name}: {found}");
        assert_eq!(record_ids(&found), [format!("{name}-1")], "{name}: {found}");
    }
    let (_, metrics) = server.get("/metrics", Some("admin-key"));
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} in {metrics}"))
    };
    assert_eq!(value("vector_service_tenants_open_max"), max_open as f64);
    assert!(value("vector_service_tenants_open") <= max_open as f64);
    assert!(value(r#"vector_service_tenant_evictions_total{reason="open-cap"}"#) >= 25.0);
    // A closed tenant's series went with it: the registry grows with the tenants in use.
    assert!(!metrics.contains(r#"tenant="t1""#), "t1 was closed");
    assert!(metrics.contains(r#"tenant="t119""#), "t119 is open");
    // The operator opens a closed tenant ahead of its traffic.
    let (status, warmed, _) = server.post("/admin/tenants/t1/warm", Some("admin-key"), "");
    assert_eq!(
        (status, &warmed["open"]),
        (200, &Value::Bool(true)),
        "{warmed}"
    );
    assert!(warmed["resident_bytes"].as_u64().unwrap() > 0, "{warmed}");
    let (_, metrics) = server.get("/metrics", Some("admin-key"));
    assert!(
        metrics.contains(r#"vector_service_tenant_ready{tenant="t1"} 1"#),
        "{metrics}"
    );
    let descriptors = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .count();
    assert!(descriptors < 1024, "{descriptors} descriptors open");
}

/// A tenant at its storage quota cannot fill the disk for the others: the write past it is
/// refused whole with `quota-exceeded`, its reads go on, and its neighbour keeps writing.
#[test]
fn a_write_past_the_storage_quota_is_refused_whole_and_the_others_keep_writing() {
    let dir = temp_dir("blast-quota");
    let tenants = write_tenants(
        &dir,
        None,
        &[
            ("small", "small-key", "storage_mib = 1"),
            ("roomy", "roomy-key", ""),
        ],
    );
    let server = Server::start(&dir, &["--tenants", tenants.to_str().unwrap()]);
    // 250 records of about 2 KB each: half a MiB of body per batch.
    let batch = |first: usize| -> String {
        (first..first + 250)
            .map(|i| {
                let text = format!("record {i} about uploads {}", "and more words ".repeat(130));
                json!({"db": "errors", "origin_db": "error", "id": format!("r-{i}"), "text": text})
                    .to_string()
                    + "\n"
            })
            .collect()
    };
    let (status, first, _) = server.post_lines("/v1/records", Some("small-key"), &batch(0));
    assert_eq!(status, 200, "{first}");
    let (status, refused, _) = server.post_lines("/v1/records", Some("small-key"), &batch(250));
    assert_eq!(
        (status, error_kind(&refused)),
        (507, "quota-exceeded"),
        "{refused}"
    );
    let (status, usage) = server.get("/v1/usage", Some("small-key"));
    assert_eq!(status, 200, "{usage}");
    let usage: Value = serde_json::from_str(&usage).unwrap();
    assert_eq!(usage["storage_quota_bytes"], 1 << 20, "{usage}");
    let used = usage["storage_bytes"].as_u64().unwrap();
    assert!(used > 0 && used <= 1 << 20, "{usage}");
    // Nothing of the refused batch was written; what was there still answers.
    let (status, found, _) = server.post(
        "/v1/search",
        Some("small-key"),
        // No threshold: the query's distinctive word is in no record, so its confidence is low
        // whatever was written; the hits themselves are what this checks.
        r#"{"query": "record 260 about uploads", "top_k": 50, "threshold": 0.0}"#,
    );
    assert_eq!(status, 200, "{found}");
    let ids = record_ids(&found);
    assert!(!ids.is_empty(), "{found}");
    assert!(
        ids.iter()
            .all(|id| id["r-".len()..].parse::<usize>().unwrap() < 250),
        "{ids:?}"
    );
    // The neighbour, under the default quota, writes both batches.
    for first in [0, 250] {
        let (status, answer, _) =
            server.post_lines("/v1/records", Some("roomy-key"), &batch(first));
        assert_eq!(status, 200, "{answer}");
    }
    let (_, metrics) = server.get("/metrics", Some("small-key"));
    assert!(
        metrics.contains(r#"vector_service_tenant_storage_quota_bytes{tenant="small"} 1048576"#),
        "{metrics}"
    );
}
