//! `vector-service`: the command line. Every operation goes through the component in its
//! sandbox; storage is the embedded default, one SQLite file per tenant under `--data-dir`, or
//! PostgreSQL with pgvector, one schema per tenant (`--database postgres://...`).

mod answers;
mod buckets;
mod cli;
mod commands;
mod failure;
mod ingest;
mod progress;
mod server;
mod tenant;

use anyhow::Context as _;
use clap::Parser;
use vector_service_runtime::{BUILTIN_COMPONENT, WIT_PACKAGE};

use cli::{Cli, Command, ComponentCommand};

/// Lowercase hex SHA-256: component digests and API-key hashes.
use vector_service_runtime::sha256_hex;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => failure::report(&error, json),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Serve {
        listen,
        tenants,
        component,
        max_body_bytes,
        max_component_bytes,
        max_connections,
        header_timeout_ms,
    }) = cli.command
    {
        // A server logs JSON lines (info and up unless RUST_LOG says otherwise), formatted on
        // the thread that logs and written to stderr in batches by a thread of their own, so
        // a slow stderr never blocks a request. Lines past the buffer's bound are dropped and
        // counted (vector_service_log_lines_dropped_total).
        let (log_drops, _flush_on_exit) = vector_service_json_logs::install(
            std::io::stderr(),
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .context("starting the log writer thread")?;
        let global = cli.global.clone();
        let options = server::ServeOptions {
            listen,
            tenants,
            component,
            max_body_bytes,
            max_component_bytes,
            max_connections,
            header_timeout: std::time::Duration::from_millis(header_timeout_ms),
            rollouts: Some(tenant::data_dir(&global).join("rollouts.json")),
            log_drops: Some(log_drops),
        };
        return server::serve(options, move |tenant, connections| {
            tenant::open_store(&global, tenant, connections)
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
            let info = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "component_bytes": BUILTIN_COMPONENT.len(),
                "sha256": sha256_hex(BUILTIN_COMPONENT),
                "wit": WIT_PACKAGE,
            });
            let answer = commands::emit(global, &info, |_| {
                println!("vector-service {}", env!("CARGO_PKG_VERSION"));
                println!("component: {} bytes", BUILTIN_COMPONENT.len());
                println!("sha256:    {}", sha256_hex(BUILTIN_COMPONENT));
                println!("wit:       {WIT_PACKAGE}");
            })?;
            commands::print_answer(global, answer, None)?;
        }
        Command::Component(ComponentCommand::Export { path }) => {
            std::fs::write(&path, BUILTIN_COMPONENT)
                .with_context(|| format!("writing {}", path.display()))?;
            let written = serde_json::json!({
                "path": path,
                "bytes": BUILTIN_COMPONENT.len(),
                "sha256": sha256_hex(BUILTIN_COMPONENT),
                "wit": WIT_PACKAGE,
            });
            let answer = commands::emit(global, &written, |_| {
                println!(
                    "wrote {} ({} bytes)",
                    path.display(),
                    BUILTIN_COMPONENT.len()
                );
                println!("sha256: {}", sha256_hex(BUILTIN_COMPONENT));
                println!("wit:    {WIT_PACKAGE}");
            })?;
            commands::print_answer(global, answer, None)?;
        }
        command => commands::run(global, command)?,
    }
    Ok(())
}
