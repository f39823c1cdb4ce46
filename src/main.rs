//! `vector-service`: the command line. Every operation goes through the component in its
//! sandbox; storage is the embedded default, one SQLite file per tenant under `--data-dir`.

mod ingest;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use sha2::{Digest, Sha256};
use vector_service_host::api::{
    BackfillRequest, ContextRequest, Destination, SearchRequest, TrackRequest,
};
use vector_service_host::backends::sqlite::{SearchMode, SqliteStore};
use vector_service_host::backends::{Backends, HashingEmbedder};
use vector_service_host::{
    Plugin, ServiceConfig, Telemetry, VectorService, BUILTIN_COMPONENT, WIT_PACKAGE,
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
    /// The tenant whose database (<data-dir>/<tenant>.sqlite3) is used.
    #[arg(long, global = true, default_value = "default")]
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
    /// How search ranks records: BM25 over the text (needs no backfill; the better of the two
    /// on real text, see BENCHMARKS.md) or cosine over the embeddings.
    #[arg(long, global = true, value_enum, default_value_t = Retrieval::Lexical)]
    retrieval: Retrieval,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Retrieval {
    Lexical,
    Vector,
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
    /// Embed every record that lacks an up-to-date embedding.
    Backfill {
        #[arg(long)]
        batch_size: Option<u32>,
        /// Only these databases (repeatable).
        #[arg(long = "db")]
        databases: Vec<String>,
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
    /// Record, embedding and outcome counts of the tenant's database.
    Stats,
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

/// The tenant's store and a service over it.
struct Tenant {
    store: Arc<SqliteStore>,
    service: VectorService,
    telemetry: Telemetry,
}

fn open_tenant(global: &Global) -> anyhow::Result<Tenant> {
    let dir = global.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.sqlite3", global.tenant));
    let mode = match global.retrieval {
        Retrieval::Lexical => SearchMode::Lexical,
        Retrieval::Vector => SearchMode::Vector,
    };
    let store =
        Arc::new(SqliteStore::open(&path, Arc::new(HashingEmbedder))?.with_search_mode(mode));
    let backends = Backends {
        retriever: store.clone(),
        metrics_db: store.clone(),
        vector_metrics_db: store.clone(),
        embedding_store: store.clone(),
    };
    let plugin = Arc::new(Plugin::builtin()?);
    let telemetry = Telemetry::new();
    let config = ServiceConfig {
        tenant: global.tenant.clone(),
        ..ServiceConfig::default()
    };
    let service = VectorService::new(plugin, backends, telemetry.clone(), config);
    Ok(Tenant {
        store,
        service,
        telemetry,
    })
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
    let tenant = open_tenant(global)?;
    let session = global.session_id.as_str();
    match command {
        Command::Info | Command::Component(_) => unreachable!("handled without a tenant"),
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
        } => {
            let response = tenant.service.backfill(
                session,
                &BackfillRequest {
                    batch_size,
                    databases,
                },
            )?;
            emit(global, &response, |r| {
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
            })?;
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
            let response = tenant.service.search(session, &request)?;
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
            let response = tenant.service.build_context(session, &request)?;
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
            let response = tenant.service.track_contributors(session, &request)?;
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
