//! The vector-service component, prebuilt.
//!
//! `vector_service.wasm` next to this crate's manifest is the component built from `guest/`
//! by `scripts/build-component.sh` with the pinned toolchain, and checked in, so that a host
//! depending on it needs no wasm toolchain. CI rebuilds it and fails when the rebuild's bytes
//! differ from the checked-in file (`scripts/build-component.sh --check`).
#![deny(missing_docs)]

/// The component binary (WebAssembly component model), exporting the four operations of the
/// `vector-service` world and importing only what `wit/` declares.
pub static COMPONENT: &[u8] = include_bytes!("../vector_service.wasm");

/// The sha256 of [`COMPONENT`], lowercase hex: how a deployment names the bytes it runs.
pub const COMPONENT_SHA256: &str = include_str!("../vector_service.wasm.sha256");

/// The WIT package (name and version) the component implements.
pub const WIT_PACKAGE: &str = "vector-service:plugin@0.4.0";

/// The world file the component was built against (`wit/vector-service.wit`), for hosts that
/// generate their own bindings or show the contract.
pub const WIT: &str = include_str!("../../../wit/vector-service.wit");

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn the_digest_names_the_bytes() {
        let digest: String = Sha256::digest(COMPONENT)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(digest, COMPONENT_SHA256);
    }

    #[test]
    fn the_package_is_the_world_files() {
        let declared = WIT
            .lines()
            .find_map(|line| line.trim().strip_prefix("package "))
            .map(|rest| rest.trim_end_matches(';').trim());
        assert_eq!(declared, Some(WIT_PACKAGE));
    }
}
