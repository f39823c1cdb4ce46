//! `build-component [--check]`: build every checked-in component from its guest crate.
//!
//! Without `--check` it writes the artifacts (and the product component's sha256 file); with
//! `--check` it writes nothing and fails when a rebuild differs from the checked-in bytes. A
//! check needs the pinned toolchain, because only its output is reproducible byte for byte.
//! Run it through `scripts/build-component.sh`, which installs that toolchain when missing.

mod toolchain;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use toolchain::{build_component, Toolchain, INSTALL_HINT};

/// A guest crate and where its component is checked in, relative to the repository root.
struct Artifact {
    crate_dir: &'static str,
    core_module: &'static str,
    checked_in: &'static str,
    /// Where the sha256 of the bytes is kept for `include_str!`, if anywhere.
    digest_file: Option<&'static str>,
}

const ARTIFACTS: [Artifact; 3] = [
    Artifact {
        crate_dir: "guest",
        core_module: "vector_service_guest.wasm",
        checked_in: "host/component/vector_service.wasm",
        digest_file: Some("host/component/vector_service.wasm.sha256"),
    },
    Artifact {
        crate_dir: "guest/misbehaving",
        core_module: "misbehaving_guest.wasm",
        checked_in: "guest/misbehaving/misbehaving.wasm",
        digest_file: None,
    },
    Artifact {
        crate_dir: "guest/floor",
        core_module: "floor_guest.wasm",
        checked_in: "guest/floor/floor.wasm",
        digest_file: None,
    },
];

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!(
                "build-component: unknown argument {other:?}; usage: build-component [--check]"
            );
            return ExitCode::from(2);
        }
    };
    match run(check) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("build-component: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Build (and write or compare) every artifact; `Ok(false)` when a check found a difference.
fn run(check: bool) -> anyhow::Result<bool> {
    let root = repository_root();
    let toolchain = if check {
        toolchain::pinned().with_context(|| {
            format!("--check compares bytes, so it needs the pinned toolchain: {INSTALL_HINT}")
        })?
    } else {
        toolchain::detect_toolchain().context(INSTALL_HINT)?
    };
    if !matches!(toolchain, Toolchain::Debian) {
        eprintln!(
            "build-component: building with {}; the checked-in bytes come from the pinned \
             toolchain, so CI's check will report a difference",
            toolchain.describe()
        );
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guest");
    let mut current = true;
    for artifact in &ARTIFACTS {
        let built = build_component(
            &toolchain,
            &root,
            &root.join(artifact.crate_dir),
            &target_dir,
            artifact.core_module,
        )
        .map_err(anyhow::Error::msg)?;
        let path = root.join(artifact.checked_in);
        if check {
            current &= compare(&path, artifact, &built, &toolchain)?;
        } else {
            write(&root, &path, artifact, &built)?;
        }
    }
    Ok(current)
}

fn compare(
    path: &Path,
    artifact: &Artifact,
    built: &[u8],
    toolchain: &Toolchain,
) -> anyhow::Result<bool> {
    let checked_in = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let same = checked_in == built;
    println!(
        "{}: {} ({} bytes, sha256 {}) vs a rebuild of {}/ with {} ({} bytes, sha256 {})",
        if same { "current" } else { "STALE" },
        artifact.checked_in,
        checked_in.len(),
        sha256_hex(&checked_in),
        artifact.crate_dir,
        toolchain.describe(),
        built.len(),
        sha256_hex(built),
    );
    if !same {
        println!("  rebuild it with `bash scripts/build-component.sh` and commit the result");
    }
    Ok(same)
}

fn write(root: &Path, path: &Path, artifact: &Artifact, built: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, built).with_context(|| format!("writing {}", path.display()))?;
    let digest = sha256_hex(built);
    if let Some(digest_file) = artifact.digest_file {
        let digest_path = root.join(digest_file);
        // No newline: the crate reads it with `include_str!`.
        std::fs::write(&digest_path, &digest)
            .with_context(|| format!("writing {}", digest_path.display()))?;
    }
    println!(
        "wrote {} ({} bytes, sha256 {digest})",
        artifact.checked_in,
        built.len()
    );
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The repository root: two levels above this crate's manifest.
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("host/component-builder sits two levels below the repository root")
        .to_path_buf()
}
