//! Builds the guest crate for wasm, turns the core module into a component with
//! `wit-component`, and leaves it in `OUT_DIR` for `include_bytes!`. How the toolchain is
//! picked: `guest_build.rs`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "guest_build.rs"]
mod guest_build;

use guest_build::{build_component, detect_toolchain, INSTALL_HINT};

const GUEST_ARTIFACT: &str = "vector_service_guest.wasm";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the repository root")
        .to_path_buf();
    let guest_dir = root.join("guest");
    for watched in ["guest/src", "guest/Cargo.toml", "guest/Cargo.lock", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    println!("cargo:rerun-if-env-changed=CARGO_HOME");

    // One guest target dir for every host profile, so std is compiled once.
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("guest");
    let toolchain = detect_toolchain().unwrap_or_else(|| fail(INSTALL_HINT));
    let component = build_component(&toolchain, &guest_dir, &target_dir, GUEST_ARTIFACT)
        .unwrap_or_else(|message| fail(&message));

    let wit_package = wit_package(&root.join("wit/vector-service.wit"));
    println!("cargo:rustc-env=VECTOR_SERVICE_WIT_PACKAGE={wit_package}");

    let out =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("vector_service.wasm");
    fs::write(&out, &component)
        .unwrap_or_else(|e| fail(&format!("writing {}: {e}", out.display())));
    println!(
        "cargo:warning=vector-service component: {} bytes ({:.1} KiB), guest built with {}",
        component.len(),
        component.len() as f64 / 1024.0,
        toolchain.describe()
    );
}

fn fail(message: &str) -> ! {
    panic!("vector-service guest build: {message}");
}

/// The `package` declaration of the world file, e.g. `vector-service:plugin@0.1.0`.
fn wit_package(world_file: &Path) -> String {
    let text = fs::read_to_string(world_file)
        .unwrap_or_else(|e| fail(&format!("reading {}: {e}", world_file.display())));
    text.lines()
        .find_map(|line| line.trim().strip_prefix("package "))
        .map(|rest| rest.trim_end_matches(';').trim().to_string())
        .unwrap_or_else(|| {
            fail(&format!(
                "{} has no package declaration",
                world_file.display()
            ))
        })
}
