//! `vector-service`: the command-line front end. For now it reports what is built in; the
//! operations are driven through the host library (see `examples/embed.rs`).

use anyhow::Context as _;
use vector_service_host::{Plugin, WIT_PACKAGE};

fn main() -> anyhow::Result<()> {
    let plugin = Plugin::builtin().context("loading the built-in component")?;
    println!(
        "vector-service {}: built-in component {} bytes, WIT package {WIT_PACKAGE}",
        env!("CARGO_PKG_VERSION"),
        plugin.component_size()
    );
    Ok(())
}
