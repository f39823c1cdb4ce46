//! [`Plugin`]: a component compiled onto an engine, linked against our imports and checked
//! against the `vector-service` world, ready to instantiate cheaply; and what names it, the
//! sha256 of its bytes.

use std::path::Path;

use anyhow::Context as _;
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use crate::bindings::VectorServicePre;
use crate::engine::{anyhow_result, SandboxEngine};
use crate::exports::Exports;
use crate::linker::{add_to_linker, VectorServiceCtx};
use crate::BUILTIN_COMPONENT;

/// A component compiled onto an engine and linked against the host's imports, ready to
/// instantiate cheaply.
pub struct Plugin {
    engine: Engine,
    pre: VectorServicePre<VectorServiceCtx>,
    exports: Exports,
    size: usize,
    /// The sha256 of its bytes, hex.
    digest: String,
}

impl Plugin {
    /// Compile `bytes` onto `engine` (configured with [`crate::configure`]) and check that the
    /// component fits the `vector-service` world.
    pub fn new(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Self> {
        let component =
            anyhow_result(Component::new(engine, bytes)).context("compiling the component")?;
        let mut linker = Linker::<VectorServiceCtx>::new(engine);
        add_to_linker(&mut linker)?;
        let instance_pre = anyhow_result(linker.instantiate_pre(&component))
            .context("the component does not match the vector-service world")?;
        let pre = anyhow_result(VectorServicePre::new(instance_pre))
            .context("the component does not export the vector-service interfaces")?;
        let exports = Exports::new(&component)?;
        Ok(Self {
            engine: engine.clone(),
            pre,
            exports,
            size: bytes.len(),
            digest: sha256_hex(bytes),
        })
    }

    /// The built-in component, on the process-wide engine ([`SandboxEngine::shared`]).
    pub fn builtin() -> anyhow::Result<Self> {
        Self::from_bytes(BUILTIN_COMPONENT).context("loading the built-in vector-service component")
    }

    /// A component file (binary `.wasm`), e.g. one exported earlier or built by another
    /// toolchain, on the process-wide engine.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("reading component {}", path.display()))?;
        Self::from_bytes(&bytes).with_context(|| format!("loading component {}", path.display()))
    }

    /// [`Plugin::new`] on the process-wide engine.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        Self::new(SandboxEngine::shared()?.engine(), bytes)
    }

    /// The sha256 of the component's bytes, hex: which bytes run.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The digest's first [`crate::metering::SHORT_DIGEST`] hex digits: the `component`
    /// label of the metering families.
    pub fn short_digest(&self) -> &str {
        &self.digest[..crate::metering::SHORT_DIGEST]
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn pre(&self) -> &VectorServicePre<VectorServiceCtx> {
        &self.pre
    }

    pub(crate) fn exports(&self) -> &Exports {
        &self.exports
    }

    /// Size of the component binary in bytes.
    pub fn component_size(&self) -> usize {
        self.size
    }
}

/// `bytes`' sha256 as lowercase hex. The server hashes every request's API key, so the hex is
/// written by table: `write!` per byte cost several times the digest itself in its profile.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(bytes) {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::sha256_hex;

    #[test]
    fn sha256_is_lowercase_hex_of_the_standard_digest() {
        // FIPS 180-2's test vectors.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
