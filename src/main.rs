//! `vector-service`: the command-line front end.
//!
//! Today it reports what is built in and exports the component as a distributable artifact;
//! the operations are driven through the host library (see `examples/embed.rs`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use vector_service_host::{Plugin, BUILTIN_COMPONENT, WIT_PACKAGE};

#[derive(Parser)]
#[command(
    name = "vector-service",
    version,
    about = "A sandboxed, portable vector service plugin"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The built-in component: size, sha256, WIT package (the default command).
    Info,
    /// The component as an artifact for other hosts.
    #[command(subcommand)]
    Component(ComponentCommand),
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

fn main() -> anyhow::Result<()> {
    match Cli::parse().command.unwrap_or(Command::Info) {
        Command::Info => {
            let plugin = Plugin::builtin().context("loading the built-in component")?;
            println!("vector-service {}", env!("CARGO_PKG_VERSION"));
            println!("component: {} bytes", plugin.component_size());
            println!("sha256:    {}", sha256_hex(BUILTIN_COMPONENT));
            println!("wit:       {WIT_PACKAGE}");
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
        }
    }
    Ok(())
}
