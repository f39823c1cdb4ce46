//! The command line: clap's types, and the flag values parsed into types of their own
//! (`--embedder`, `--database`), so a bad value is refused before anything runs.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};
use vector_service_runtime::backends::SearchMode;

use crate::server;

#[derive(Parser)]
#[command(
    name = "vector-service",
    version,
    about = "A sandboxed, portable vector service plugin"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Where tenants' databases live. Default: $VECTOR_SERVICE_DATA_DIR, else
    /// $XDG_DATA_HOME/vector-service, else ~/.local/share/vector-service.
    #[arg(long, global = true, help_heading = "Global options")]
    pub data_dir: Option<PathBuf>,
    /// Where tenants' data lives: `sqlite:DIR`, one file per tenant (`DIR/<tenant>.sqlite3`;
    /// the default is `sqlite:<data-dir>`), or a PostgreSQL URL (`postgres://USER@HOST:PORT/DB`,
    /// pgvector installed), one schema per tenant (`vs_<tenant>`), shared by any number of hosts.
    #[arg(long, global = true, help_heading = "Global options")]
    pub database: Option<DatabaseSpec>,
    /// The tenant whose database (SQLite file or PostgreSQL schema) is used: 1-64 of a-z,
    /// 0-9, '-', '_'.
    #[arg(long, global = true, help_heading = "Global options", default_value = "default", value_parser = server::tenants::check_name)]
    pub tenant: String,
    /// Carried into every log line; generated when empty.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value = ""
    )]
    pub session_id: String,
    /// Machine-readable output.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Print the Prometheus metrics text after the command.
    #[arg(long, global = true, help_heading = "Global options")]
    pub metrics: bool,
    /// How search ranks records: `lexical` (BM25, needs no backfill; best with the hashing
    /// embedder), `vector` (cosine over the embeddings) or `hybrid` (both fused by rank; best
    /// with `--embedder minilm`). Measured in BENCHMARKS.md.
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = Retrieval::Lexical)]
    pub retrieval: Retrieval,
    /// What turns text into vectors: `hashing` (offline, deterministic); `minilm` or
    /// `minilm:DIR` (all-MiniLM-L6-v2 on the CPU; default DIR from scripts/fetch-minilm.sh);
    /// or the base URL of an OpenAI-compatible endpoint up to `/v1` (TEI, vLLM, Ollama,
    /// OpenAI), whose API key is read from $VECTOR_SERVICE_EMBEDDING_API_KEY. Changing it
    /// re-embeds on the next backfill.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value = "hashing"
    )]
    pub embedder: EmbedderSpec,
    /// The model name sent to an HTTP embedder.
    #[arg(long, global = true, help_heading = "Global options")]
    pub embedding_model: Option<String>,
    /// Vector length of an HTTP embedder's model (checked on every response).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value_t = 384
    )]
    pub embedding_dimensions: usize,
    /// Per SQLite tenant, MiB of its records' hit fields (origin, ids, metadata) kept in memory
    /// beside the lexical index, so a lexical search reads no records back from the file;
    /// records past it are read from the file. 0 keeps none.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        default_value_t = 64
    )]
    pub hit_copies_mib: u32,
    /// Per SQLite tenant, read the change clock with its statement on every read instead of
    /// reusing the last read while the WAL-index header shows no commit: one connection (three
    /// descriptors) fewer per tenant, for 4-25% fewer searches per second.
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_wal_watch: bool,
}

/// What `--embedder` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedderSpec {
    /// `hashing`: offline, deterministic feature hashing.
    Hashing,
    /// `minilm` or `minilm:DIR`: all-MiniLM-L6-v2 on the CPU, from DIR or the default one.
    MiniLm(Option<PathBuf>),
    /// An OpenAI-compatible endpoint's base URL, up to `/v1`.
    Http(String),
}

impl FromStr for EmbedderSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec == "hashing" {
            return Ok(Self::Hashing);
        }
        if spec.starts_with("http://") || spec.starts_with("https://") {
            return Ok(Self::Http(spec.to_string()));
        }
        match spec.strip_prefix("minilm") {
            Some("") => Ok(Self::MiniLm(None)),
            Some(dir) if dir.len() > 1 && dir.starts_with(':') => {
                Ok(Self::MiniLm(Some(PathBuf::from(&dir[1..]))))
            }
            _ => Err(format!(
                "unknown --embedder {spec:?}: expected `hashing`, `minilm[:DIR]` or an http(s):// base URL"
            )),
        }
    }
}

/// What `--database` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSpec {
    /// `sqlite:DIR`: one SQLite file per tenant in DIR.
    Sqlite(PathBuf),
    /// `postgres://...`: one schema per tenant in this PostgreSQL database.
    Postgres(String),
}

impl FromStr for DatabaseSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return Ok(Self::Postgres(spec.to_string()));
        }
        match spec.strip_prefix("sqlite:") {
            Some(dir) if !dir.is_empty() => Ok(Self::Sqlite(PathBuf::from(dir))),
            _ => Err(format!(
                "unknown --database {spec:?}: expected `sqlite:DIR` or `postgres://USER@HOST:PORT/DB`"
            )),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Retrieval {
    Lexical,
    Vector,
    Hybrid,
}

impl From<Retrieval> for SearchMode {
    fn from(retrieval: Retrieval) -> Self {
        match retrieval {
            Retrieval::Lexical => SearchMode::Lexical,
            Retrieval::Vector => SearchMode::Vector,
            Retrieval::Hybrid => SearchMode::Hybrid,
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// The built-in component: size, sha256, WIT package (the default command).
    Info,
    /// The component as an artifact for other hosts.
    #[command(subcommand)]
    Component(ComponentCommand),
    /// Add or update records from a file: JSON lines, a JSON array, or CSV (a .csv file).
    Ingest {
        /// The records (see the README's "Records").
        file: PathBuf,
        /// Database for records without a "db" field.
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
        /// What to look for.
        query: String,
        /// Hits wanted, 1-1000 [default: 5].
        #[arg(long)]
        top_k: Option<u32>,
        /// Confidence below which the search is retried wider, then falls back [default: 0.1].
        #[arg(long)]
        threshold: Option<f64>,
        /// Only these origins (repeatable).
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
    /// Build a compact context for a task.
    Context {
        /// The task to build a context for.
        task: String,
        /// Entries per bucket, 1-1000 [default: 5].
        #[arg(long)]
        top_k: Option<u32>,
        /// Token budget of the context (4 characters a token; 0: none) [default: 800].
        #[arg(long)]
        max_tokens: Option<u32>,
        /// A bucket for an origin, as ORIGIN=BUCKET (repeatable, in output order); given
        /// any, they replace the five defaults (error=errors, bot=bots, workflow=workflows,
        /// code=code, discrepancy=discrepancies).
        #[arg(long = "bucket", value_parser = crate::buckets::parse)]
        buckets: Vec<vector_service_runtime::api::BucketRule>,
    },
    /// Record which vectors (origin:id) contributed to a patch and whether it succeeded.
    Track {
        /// The patch whose outcome this is.
        #[arg(long)]
        patch_id: String,
        /// The patch failed (default: it succeeded).
        #[arg(long)]
        failure: bool,
        /// Each vector's contribution, recorded with a fallback outcome [default: 0].
        #[arg(long)]
        contribution: Option<f64>,
        /// success, high-roi, low-roi, bug-introduced, needs-review or blocked [default: success].
        #[arg(long)]
        roi_tag: Option<String>,
        /// The contributing vectors, each `origin:id`.
        vector_ids: Vec<String>,
    },
    /// Delete records (and their embeddings) from a database.
    Delete {
        /// The database to delete from.
        #[arg(long)]
        db: String,
        /// Record ids.
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
        /// Largest component file read, at start and at reload (bytes); only regular files
        /// are read.
        #[arg(long, default_value_t = crate::server::DEFAULT_MAX_COMPONENT_BYTES)]
        max_component_bytes: u64,
        /// Open connections at most; past it new connections are closed at once (counted in
        /// vector_service_connections_refused_total). Keep it under the descriptor limit.
        #[arg(long, default_value_t = 1024)]
        max_connections: usize,
        /// Milliseconds a client has to send a request's headers; a kept-alive connection
        /// idle this long is closed.
        #[arg(long, default_value_t = 10_000)]
        header_timeout_ms: u64,
        /// Tenants open at once at most: a tenant opens (its store, indexes, connections) on
        /// its first request and the least recently used close to make room. Lowered to what
        /// the descriptor limit holds.
        #[arg(long, default_value_t = 1024)]
        max_open_tenants: usize,
        /// MiB the open tenants may hold in all (indexes, hit copies, result caches); past it
        /// the least recently used close. Default: the tenants file's `memory_budget_mib`,
        /// else a quarter of the machine's (or the cgroup's) memory.
        #[arg(long, value_parser = clap::value_parser!(u64).range(16..=16 << 20))]
        memory_budget_mib: Option<u64>,
        /// Seconds a tenant stays open without requests before it is closed.
        #[arg(long, default_value_t = 300)]
        idle_close_secs: u64,
        /// With `--database postgres://…`: connections this server holds at most, shared by
        /// every tenant (each transaction sets its tenant's schema). Hosts sharing one
        /// PostgreSQL hold this many each: keep hosts x size under its max_connections.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
        postgres_pool_size: u32,
    },
}

impl Command {
    /// The command's name, as typed (the `command` attribute of its trace's root span).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Component(_) => "component",
            Self::Ingest { .. } => "ingest",
            Self::Backfill { .. } => "backfill",
            Self::Search { .. } => "search",
            Self::Context { .. } => "context",
            Self::Track { .. } => "track",
            Self::Delete { .. } => "delete",
            Self::Stats => "stats",
            Self::Serve { .. } => "serve",
        }
    }
}

#[derive(Subcommand)]
pub enum ComponentCommand {
    /// Write the built-in component to PATH (default: vector-service.wasm) and print its sha256
    /// and WIT package; the matching WIT is the repository's `wit/` directory.
    Export {
        #[arg(default_value = "vector-service.wasm")]
        path: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedder_specs_parse_or_name_what_is_expected() {
        assert_eq!("hashing".parse(), Ok(EmbedderSpec::Hashing));
        assert_eq!("minilm".parse(), Ok(EmbedderSpec::MiniLm(None)));
        assert_eq!(
            "minilm:/m".parse(),
            Ok(EmbedderSpec::MiniLm(Some(PathBuf::from("/m"))))
        );
        assert_eq!(
            "http://localhost:8080/v1".parse(),
            Ok(EmbedderSpec::Http("http://localhost:8080/v1".into()))
        );
        for bad in ["", "minilm:", "minilmx", "word2vec"] {
            let error = bad.parse::<EmbedderSpec>().unwrap_err();
            assert!(error.contains("minilm[:DIR]"), "{bad}: {error}");
        }
    }

    #[test]
    fn database_specs_parse_or_name_what_is_expected() {
        assert_eq!(
            "sqlite:/d".parse(),
            Ok(DatabaseSpec::Sqlite(PathBuf::from("/d")))
        );
        assert_eq!(
            "postgresql://u@h/db".parse(),
            Ok(DatabaseSpec::Postgres("postgresql://u@h/db".into()))
        );
        for bad in ["sqlite:", "mysql://x", "/d"] {
            let error = bad.parse::<DatabaseSpec>().unwrap_err();
            assert!(error.contains("sqlite:DIR"), "{bad}: {error}");
        }
    }
}
