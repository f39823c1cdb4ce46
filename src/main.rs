//! `vector-service`: the command line. Every operation goes through the component in its
//! sandbox; storage is the embedded default, one SQLite file per tenant under `--data-dir`, or
//! PostgreSQL with pgvector, one schema per tenant (`--database postgres://...`).

/// `println!` for a command's output: a reader that closed the pipe (`stats | head -1`) ends
/// the command quietly with status 0, as other tools do, instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::stdout_failed(error);
        }
    }};
}

mod answers;
mod buckets;
mod cli;
mod commands;
mod failure;
mod ingest;
mod progress;
mod server;
mod tenant;
mod traces;

use anyhow::Context as _;
use clap::Parser;
use vector_service_runtime::{BUILTIN_COMPONENT, WIT_PACKAGE};

use cli::{Cli, Command, ComponentCommand};

/// Lowercase hex SHA-256: component digests and API-key hashes.
use vector_service_runtime::sha256_hex;

/// Standard output could not be written: a closed pipe ends the command as a success (the
/// reader has what it wanted); anything else is a failure, said on stderr.
fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing to standard output: {error}");
    std::process::exit(1);
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => failure::report(&error, json),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // `--tenant` names the one tenant a command works on; a server's tenants come from its
    // tenants file, and without one it serves `default`: silently serving `default` for
    // `--tenant acme` would hand acme's callers another tenant's data.
    if matches!(cli.command, Some(Command::Serve { tenants: None, .. }))
        && cli.global.tenant != "default"
    {
        anyhow::bail!(
            "--tenant {} does not apply to `serve`: a server's tenants come from --tenants FILE (without one it serves the single `default` tenant)",
            cli.global.tenant
        );
    }
    if let Some(Command::Serve {
        listen,
        tenants,
        component,
        max_body_bytes,
        max_component_bytes,
        max_connections,
        header_timeout_ms,
        max_open_tenants,
        memory_budget_mib,
        idle_close_secs,
        postgres_pool_size,
    }) = cli.command
    {
        // Dropped last: the exporter posts what is queued once the server has stopped.
        let (log_drops, _flush_on_exit, exporting) = traces::install_for_server()?;
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
            trace_stats: exporting.stats.clone(),
            max_open_tenants,
            memory_budget_bytes: memory_budget_mib.map(|mib| (mib as usize) << 20),
            idle_close: std::time::Duration::from_secs(idle_close_secs),
        };
        let stores = tenant::ServerStores::new(&global, postgres_pool_size)?;
        return server::serve(options, move |tenant, connections| {
            stores.open(tenant, connections)
        });
    }
    let _exporting = traces::install_for_command()?;
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
                out!("vector-service {}", env!("CARGO_PKG_VERSION"));
                out!("component: {} bytes", BUILTIN_COMPONENT.len());
                out!("sha256:    {}", sha256_hex(BUILTIN_COMPONENT));
                out!("wit:       {WIT_PACKAGE}");
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
                out!(
                    "wrote {} ({} bytes)",
                    path.display(),
                    BUILTIN_COMPONENT.len()
                );
                out!("sha256: {}", sha256_hex(BUILTIN_COMPONENT));
                out!("wit:    {WIT_PACKAGE}");
            })?;
            commands::print_answer(global, answer, None)?;
        }
        command => traces::in_command_scope(command.name(), || commands::run(global, command))?,
    }
    Ok(())
}
