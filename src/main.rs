//! `vector-service`: the command line. Every operation goes through the component in its
//! sandbox; storage is the embedded default, one SQLite file per tenant under `--data-dir`, or
//! PostgreSQL with pgvector, one schema per tenant (`--database postgres://...`).

mod ingest;
mod progress;
mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use sha2::{Digest, Sha256};
use vector_service_host::api::{
    BackfillRequest, ContextRequest, Destination, SearchRequest, TrackRequest,
};
use vector_service_host::backends::http_embedder::{HttpEmbedder, HttpEmbedderConfig};
use vector_service_host::backends::postgres::PostgresStore;
use vector_service_host::backends::sqlite::SqliteStore;
use vector_service_host::backends::{
    Backends, Embedder, EmbeddingStore, HashingEmbedder, SearchMode, Store,
};
use vector_service_host::{
    Plugin, RunLimits, ServiceConfig, Telemetry, VectorService, BUILTIN_COMPONENT, WIT_PACKAGE,
};

#[derive(Parser)]
#[command(
    name = "vector-service",
    version,
    about = "A sandboxed, portable vector service plugin"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct Global {
    /// Where tenants' databases live. Default: $VECTOR_SERVICE_DATA_DIR, else
    /// $XDG_DATA_HOME/vector-service, else ~/.local/share/vector-service.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Where tenants' data lives: `sqlite:DIR`, one file per tenant (`DIR/<tenant>.sqlite3`;
    /// the default is `sqlite:<data-dir>`), or a PostgreSQL URL (`postgres://USER@HOST:PORT/DB`,
    /// pgvector installed), one schema per tenant (`vs_<tenant>`), shared by any number of hosts.
    #[arg(long, global = true)]
    database: Option<String>,
    /// The tenant whose database (SQLite file or PostgreSQL schema) is used: 1-64 of a-z,
    /// 0-9, '-', '_'.
    #[arg(long, global = true, default_value = "default", value_parser = server::tenants::check_name)]
    tenant: String,
    /// Carried into every log line; generated when empty.
    #[arg(long, global = true, default_value = "")]
    session_id: String,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    /// Print the Prometheus metrics text after the command.
    #[arg(long, global = true)]
    metrics: bool,
    /// How search ranks records: `lexical` (BM25, needs no backfill; best with the hashing
    /// embedder), `vector` (cosine over the embeddings) or `hybrid` (both fused by rank; best
    /// with `--embedder minilm`). Measured in BENCHMARKS.md.
    #[arg(long, global = true, value_enum, default_value_t = Retrieval::Lexical)]
    retrieval: Retrieval,
    /// What turns text into vectors: `hashing` (offline, deterministic); `minilm` or
    /// `minilm:DIR` (all-MiniLM-L6-v2 on the CPU; default DIR from scripts/fetch-minilm.sh);
    /// or the base URL of an OpenAI-compatible endpoint up to `/v1` (TEI, vLLM, Ollama,
    /// OpenAI), whose API key is read from $VECTOR_SERVICE_EMBEDDING_API_KEY. Changing it
    /// re-embeds on the next backfill.
    #[arg(long, global = true, default_value = "hashing")]
    embedder: String,
    /// The model name sent to an HTTP embedder.
    #[arg(long, global = true)]
    embedding_model: Option<String>,
    /// Vector length of an HTTP embedder's model (checked on every response).
    #[arg(long, global = true, default_value_t = 384)]
    embedding_dimensions: usize,
}

/// The embedder named by `--embedder`.
fn embedder(global: &Global) -> anyhow::Result<Arc<dyn Embedder>> {
    let spec = global.embedder.as_str();
    if spec == "hashing" {
        return Ok(Arc::new(HashingEmbedder));
    }
    if spec.starts_with("http://") || spec.starts_with("https://") {
        let model = global
            .embedding_model
            .clone()
            .context("an HTTP embedder needs --embedding-model")?;
        let config = HttpEmbedderConfig {
            api_key: std::env::var("VECTOR_SERVICE_EMBEDDING_API_KEY").ok(),
            dimensions: global.embedding_dimensions,
            ..HttpEmbedderConfig::new(spec, model)
        };
        return Ok(Arc::new(HttpEmbedder::new(config)));
    }
    if let Some(dir) = spec.strip_prefix("minilm") {
        return minilm(dir.strip_prefix(':'));
    }
    anyhow::bail!(
        "unknown --embedder {spec:?}: expected `hashing`, `minilm[:DIR]` or an http(s):// base URL"
    )
}

#[cfg(feature = "neural")]
fn minilm(dir: Option<&str>) -> anyhow::Result<Arc<dyn Embedder>> {
    use vector_service_host::backends::minilm_embedder::MiniLmEmbedder;
    let dir = dir.map_or_else(MiniLmEmbedder::default_dir, PathBuf::from);
    Ok(Arc::new(MiniLmEmbedder::load(&dir)?))
}

#[cfg(not(feature = "neural"))]
fn minilm(_dir: Option<&str>) -> anyhow::Result<Arc<dyn Embedder>> {
    anyhow::bail!("this build has no neural embedder: rebuild with the `neural` feature")
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Retrieval {
    Lexical,
    Vector,
    Hybrid,
}

#[derive(Subcommand)]
enum Command {
    /// The built-in component: size, sha256, WIT package (the default command).
    Info,
    /// The component as an artifact for other hosts.
    #[command(subcommand)]
    Component(ComponentCommand),
    /// Add or update records from a JSON-lines file.
    Ingest {
        file: PathBuf,
        /// Database for lines without a "db" field.
        #[arg(long)]
        db: Option<String>,
    },
    /// Embed every record that lacks an up-to-date embedding, in one run however long it
    /// takes (each batch is bounded, the run is not unless --max-seconds says so). Interrupted
    /// (Ctrl-C, SIGTERM), it leaves whole batches committed and the next run resumes.
    Backfill {
        /// Records per batch (default 100, at most 1000).
        #[arg(long)]
        batch_size: Option<u32>,
        /// Only these databases (repeatable).
        #[arg(long = "db")]
        databases: Vec<String>,
        /// Seconds one batch may take (its embedding call and the component's work on it).
        #[arg(long, default_value_t = 300)]
        batch_deadline_secs: u64,
        /// Seconds the whole run may take; default: no limit.
        #[arg(long)]
        max_seconds: Option<u64>,
    },
    /// Search the records.
    Search {
        query: String,
        #[arg(long)]
        top_k: Option<u32>,
        #[arg(long)]
        threshold: Option<f64>,
        /// Only these origins (repeatable).
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
    /// Build a compact context for a task.
    Context {
        task: String,
        #[arg(long)]
        top_k: Option<u32>,
        #[arg(long)]
        max_tokens: Option<u32>,
    },
    /// Record which vectors (origin:id) contributed to a patch and whether it succeeded.
    Track {
        #[arg(long)]
        patch_id: String,
        /// The patch failed (default: it succeeded).
        #[arg(long)]
        failure: bool,
        #[arg(long)]
        contribution: Option<f64>,
        #[arg(long)]
        roi_tag: Option<String>,
        vector_ids: Vec<String>,
    },
    /// Delete records (and their embeddings) from a database.
    Delete {
        #[arg(long)]
        db: String,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Record, embedding and outcome counts of the tenant's database.
    Stats,
    /// Serve the JSON API for every tenant (see the README's "Server" section).
    Serve {
        /// Address to bind; port 0 picks a free port (the address is printed on stdout).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Tenants file (TOML): names, hashed API keys, limits. Without one: a single
        /// `default` tenant, no authentication, loopback only.
        #[arg(long)]
        tenants: Option<PathBuf>,
        /// Serve this component file instead of the built-in one (reloads re-read it).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Largest request body accepted (bytes); larger ones get 413.
        #[arg(long, default_value_t = 8 << 20)]
        max_body_bytes: usize,
        /// Open connections at most; past it new connections are closed at once (counted in
        /// vector_service_connections_refused_total). Keep it under the descriptor limit.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Milliseconds a client has to send a request's headers; a kept-alive connection
        /// idle this long is closed.
        #[arg(long, default_value_t = 10_000)]
        header_timeout_ms: u64,
    },
}

#[derive(Subcommand)]
enum ComponentCommand {
    /// Write the built-in component to PATH (default: vector-service.wasm) and print its sha256
    /// and WIT package; the matching WIT is the repository's `wit/` directory.
    Export {
        #[arg(default_value = "vector-service.wasm")]
        path: PathBuf,
    },
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VECTOR_SERVICE_DATA_DIR") {
        return dir.into();
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data_home.join("vector-service")
}

/// The tenant's store, and what is needed to run the component over it.
struct Tenant {
    store: Arc<dyn Store>,
    plugin: Arc<Plugin>,
    telemetry: Telemetry,
    config: ServiceConfig,
}

/// Where the data lives (`--database`).
enum Database {
    /// One SQLite file per tenant in this directory.
    Sqlite(PathBuf),
    /// One schema per tenant in this PostgreSQL database.
    Postgres(String),
}

impl Database {
    fn from_flags(global: &Global) -> anyhow::Result<Self> {
        match global.database.as_deref() {
            None => Ok(Self::Sqlite(
                global.data_dir.clone().unwrap_or_else(default_data_dir),
            )),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Self::Postgres(url.to_string()))
            }
            Some(spec) => match spec.strip_prefix("sqlite:") {
                Some(dir) if !dir.is_empty() => Ok(Self::Sqlite(PathBuf::from(dir))),
                _ => anyhow::bail!(
                    "unknown --database {spec:?}: expected `sqlite:DIR` or `postgres://USER@HOST:PORT/DB`"
                ),
            },
        }
    }
}

/// The store of `tenant` with the configured embedder and retrieval; `connections` bounds a
/// PostgreSQL store's pool.
fn open_store(global: &Global, tenant: &str, connections: u32) -> anyhow::Result<Arc<dyn Store>> {
    let mode = match global.retrieval {
        Retrieval::Lexical => SearchMode::Lexical,
        Retrieval::Vector => SearchMode::Vector,
        Retrieval::Hybrid => SearchMode::Hybrid,
    };
    match Database::from_flags(global)? {
        Database::Sqlite(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join(format!("{tenant}.sqlite3"));
            Ok(Arc::new(
                SqliteStore::open(&path, embedder(global)?)?
                    .with_connections(connections as usize)
                    .with_search_mode(mode),
            ))
        }
        Database::Postgres(url) => Ok(Arc::new(
            PostgresStore::connect(&url, tenant, embedder(global)?, connections)?
                .with_search_mode(mode),
        )),
    }
}

impl Tenant {
    fn open(global: &Global) -> anyhow::Result<Self> {
        let store = open_store(global, &global.tenant, 2)?;
        Ok(Self {
            store,
            plugin: Arc::new(Plugin::builtin()?),
            telemetry: Telemetry::new(),
            config: ServiceConfig {
                tenant: global.tenant.clone(),
                ..ServiceConfig::default()
            },
        })
    }

    /// The component over the tenant's store, optionally with another embedding store in front.
    fn service(&self, embedding_store: Option<Arc<dyn EmbeddingStore>>) -> VectorService {
        let mut backends = Backends::store(self.store.clone());
        if let Some(embedding_store) = embedding_store {
            backends.embedding_store = embedding_store;
        }
        VectorService::new(
            self.plugin.clone(),
            backends,
            self.telemetry.clone(),
            self.config.clone(),
        )
    }

    /// Records without a current embedding (what a backfill has to do).
    fn pending_records(&self, databases: &[String]) -> anyhow::Result<u64> {
        let stats = self.store.stats()?;
        Ok(stats
            .databases
            .iter()
            .filter(|(db, _, _)| databases.is_empty() || databases.contains(db))
            .map(|(_, records, embedded)| records.saturating_sub(*embedded))
            .sum())
    }
}

/// JSON for `--json`, else the human rendering.
fn emit<T: Serialize>(global: &Global, value: &T, human: impl FnOnce(&T)) -> anyhow::Result<()> {
    if global.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Serve {
        listen,
        tenants,
        component,
        max_body_bytes,
        max_connections,
        header_timeout_ms,
    }) = cli.command
    {
        // A server logs JSON lines (info and up unless RUST_LOG says otherwise).
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .init();
        let global = &cli.global;
        let options = server::ServeOptions {
            listen,
            tenants,
            component,
            max_body_bytes,
            max_connections,
            header_timeout: std::time::Duration::from_millis(header_timeout_ms),
        };
        return server::serve(options, |tenant, connections| {
            open_store(global, tenant, connections)
        });
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let global = &cli.global;
    match cli.command.unwrap_or(Command::Info) {
        Command::Info => {
            println!("vector-service {}", env!("CARGO_PKG_VERSION"));
            println!("component: {} bytes", BUILTIN_COMPONENT.len());
            println!("sha256:    {}", sha256_hex(BUILTIN_COMPONENT));
            println!("wit:       {WIT_PACKAGE}");
            return Ok(());
        }
        Command::Component(ComponentCommand::Export { path }) => {
            std::fs::write(&path, BUILTIN_COMPONENT)
                .with_context(|| format!("writing {}", path.display()))?;
            println!(
                "wrote {} ({} bytes)",
                path.display(),
                BUILTIN_COMPONENT.len()
            );
            println!("sha256: {}", sha256_hex(BUILTIN_COMPONENT));
            println!("wit:    {WIT_PACKAGE}");
            return Ok(());
        }
        command => run(global, command)?,
    }
    Ok(())
}

/// The commands that need the tenant's database.
fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    let tenant = Tenant::open(global)?;
    let session = global.session_id.as_str();
    match command {
        Command::Info | Command::Component(_) | Command::Serve { .. } => {
            unreachable!("handled without a tenant")
        }
        Command::Ingest { file, db } => {
            let by_db = ingest::read_records(&file, db.as_deref())?;
            let mut report = Vec::new();
            for (db, records) in &by_db {
                let changed = tenant.store.upsert(db, records)?;
                report.push(serde_json::json!({"db": db, "records": records.len(), "new_or_changed": changed}));
            }
            emit(global, &report, |report| {
                for row in report {
                    println!(
                        "{:<14} {:>6} records, {:>6} new or changed",
                        row["db"].as_str().unwrap_or(""),
                        row["records"],
                        row["new_or_changed"]
                    );
                }
            })?;
        }
        Command::Backfill {
            batch_size,
            databases,
            batch_deadline_secs,
            max_seconds,
        } => {
            let total = tenant.pending_records(&databases)?;
            let progress = progress::ProgressStore::for_terminal(tenant.store.clone(), total);
            let service = tenant.service(progress.clone().map(|p| p as Arc<dyn EmbeddingStore>));
            // Ctrl-C and SIGTERM keep their default (the process ends): each batch commits in
            // one transaction, so what was done is whole batches, and the next run resumes.
            let run = RunLimits {
                budget: max_seconds.map(std::time::Duration::from_secs),
                ..RunLimits::per_batch(std::time::Duration::from_secs(batch_deadline_secs))
            };
            let response = service.backfill_with(
                session,
                &BackfillRequest {
                    batch_size,
                    databases,
                },
                &run,
            )?;
            if let Some(progress) = progress {
                progress.finish();
            }
            // Leave the vector index current so the first vector search pays nothing.
            let started = std::time::Instant::now();
            let indexed = tenant.store.sync_index()?;
            let mut report = serde_json::to_value(&response)?;
            report["index_changes"] = indexed.into();
            emit(global, &report, |_| {
                let r = &response;
                println!("backfill {} (session {})", r.status, r.session_id);
                for d in &r.databases {
                    let error = d
                        .error
                        .as_ref()
                        .map(|e| format!("  error: {e}"))
                        .unwrap_or_default();
                    println!(
                        "  {:<14} embedded {:>6}  skipped {:>4}  batches {:>4}{error}",
                        d.name, d.embedded, d.skipped, d.batches
                    );
                }
                println!(
                    "vector index: {indexed} change(s) applied in {:.2} s",
                    started.elapsed().as_secs_f64()
                );
            })?;
            // A database that could not be backfilled (unreadable, damaged, embedder down) is
            // a failure for scripts and cron jobs, even though the others were done.
            let failed: Vec<&str> = response
                .databases
                .iter()
                .filter(|d| d.error.is_some())
                .map(|d| d.name.as_str())
                .collect();
            if !failed.is_empty() {
                anyhow::bail!(
                    "backfill failed for {} database(s): {}",
                    failed.len(),
                    failed.join(", ")
                );
            }
        }
        Command::Search {
            query,
            top_k,
            threshold,
            origins,
        } => {
            let request = SearchRequest {
                query,
                top_k,
                similarity_threshold: threshold,
                origins,
            };
            let response = tenant.service(None).search(session, &request)?;
            emit(global, &response, |r| {
                if let Some(fallback) = &r.fallback {
                    println!(
                        "no confident result ({}, confidence {:.3})",
                        fallback.reason, fallback.confidence
                    );
                }
                println!("{:<10} {:<12} {:>6}  metadata", "origin", "id", "score");
                for hit in &r.hits {
                    println!(
                        "{:<10} {:<12} {:>6.3}  {}",
                        hit.origin_db,
                        hit.record_id.as_deref().unwrap_or("-"),
                        hit.score,
                        hit.metadata
                    );
                }
            })?;
        }
        Command::Context {
            task,
            top_k,
            max_tokens,
        } => {
            let request = ContextRequest {
                task,
                top_k,
                max_tokens,
                db_weights: vec![],
            };
            let response = tenant.service(None).build_context(session, &request)?;
            emit(global, &response, |r| {
                println!("{}", r.context);
                for e in &r.entries {
                    let reliability = e
                        .reliability
                        .map(|r| {
                            format!(
                                "win {:.2} regret {:.2} ({})",
                                r.win_rate, r.regret_rate, r.samples
                            )
                        })
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "  {:<14} {:<12} score {:>7.3}  reliability {reliability}",
                        e.bucket, e.id, e.score
                    );
                }
            })?;
        }
        Command::Track {
            patch_id,
            failure,
            contribution,
            roi_tag,
            vector_ids,
        } => {
            let request = TrackRequest {
                vector_ids,
                success: !failure,
                patch_id,
                contribution,
                roi_tag,
            };
            let response = tenant.service(None).track_contributors(session, &request)?;
            emit(global, &response, |r| {
                let destination = match r.written_to {
                    Destination::Primary => "primary metrics db",
                    Destination::Fallback => "vector metrics db (fallback)",
                };
                println!(
                    "{} recorded in the {destination}: {} row(s), roi {}",
                    r.status, r.rows, r.roi_tag
                );
                for warning in &r.warnings {
                    println!("  warning: {warning}");
                }
            })?;
        }
        Command::Delete { db, ids } => {
            let deleted = tenant.store.delete(&db, &ids)?;
            let report = serde_json::json!({"db": db, "requested": ids.len(), "deleted": deleted});
            emit(global, &report, |_| {
                println!("{db}: deleted {deleted} of {} record(s)", ids.len());
            })?;
        }
        Command::Stats => {
            let stats = tenant.store.stats()?;
            emit(global, &stats, |s| {
                println!("embedder: {}", s.embedding_version);
                for (db, records, embedded) in &s.databases {
                    println!("  {db:<14} {records:>6} records  {embedded:>6} embedded");
                }
                println!(
                    "patch outcomes: {}  vector outcomes: {}",
                    s.patch_outcomes, s.vector_outcomes
                );
            })?;
        }
    }
    if global.metrics {
        print!("{}", tenant.telemetry.render());
    }
    Ok(())
}
