//! Building a guest crate into a component: pick a wasm-capable toolchain, run its cargo with
//! a clean environment, and encode the core module with `wit-component`.
//!
//! The pinned toolchain is Debian's `rustc-web` 1.85 with its std source (`rust-web-src`) and
//! `wasm-ld-19`, building std from source (`scripts/install-toolchain.sh` installs exactly
//! that): the checked-in components are its output, byte for byte. Where it is missing, the
//! current toolchain's official `wasm32-unknown-unknown` target builds a working component
//! whose bytes differ.
//!
//! `wasm32-wasip2` is deliberately not used: its std imports WASI interfaces, and the component
//! must import nothing but what `wit/` declares (that is the sandbox).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest's target: no WASI, so the component imports only `wit/`.
pub const TARGET: &str = "wasm32-unknown-unknown";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_STD_SOURCE: &str = "/usr/lib/rustlib/src/rust/library/Cargo.lock";
const DEBIAN_LINKER: &str = "wasm-ld-19";
const PINNED_VERSION: &str = "1.85.0";
/// Every component's linear memory begins with its shadow stack. Rust's default of 1 MiB made
/// every instance's memory 1,088 KiB, and a pooled slot scans and resets all of it when it is
/// freed (docs/decisions/0006-instances.md). 128 KiB is four times a stack on which the whole
/// test suite passed (32 KiB); an overflow runs below address 0 and traps, never writing over
/// the guest's data. The test and bench components get the same, so they start with the same
/// memory as the product.
const STACK_SIZE: &str = "-Clink-arg=-zstack-size=131072";
/// What to do when no toolchain is found.
pub const INSTALL_HINT: &str = "no wasm toolchain for the guest. Install one with `bash scripts/install-toolchain.sh` \
     (Debian's rustc-web 1.85, rust-web-src and lld-19), or `rustup target add wasm32-unknown-unknown` \
     where rustup can reach its server";

/// How the guest gets compiled.
pub enum Toolchain {
    /// The toolchain building this crate has the official wasm target.
    Official { cargo: PathBuf, rustc: PathBuf },
    /// Debian's rustc 1.85 with std built from source.
    Debian,
}

/// The pinned toolchain when it is installed, else the current one with the official target.
pub fn detect_toolchain() -> Option<Toolchain> {
    pinned().or_else(official)
}

/// Debian's rustc 1.85 with its std source and `wasm-ld-19`, when all are installed.
pub fn pinned() -> Option<Toolchain> {
    let ready = Path::new(DEBIAN_CARGO).exists()
        && Path::new(DEBIAN_STD_SOURCE).exists()
        && command_output(Command::new(DEBIAN_LINKER).arg("--version")).is_some()
        && command_output(Command::new(DEBIAN_RUSTC).arg("--version"))
            .is_some_and(|version| version.contains(PINNED_VERSION));
    ready.then_some(Toolchain::Debian)
}

fn official() -> Option<Toolchain> {
    let cargo = PathBuf::from(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let rustc = PathBuf::from(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    let sysroot = command_output(Command::new(&rustc).args(["--print", "sysroot"]))?;
    let target_lib = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib");
    target_lib
        .is_dir()
        .then_some(Toolchain::Official { cargo, rustc })
}

impl Toolchain {
    pub fn describe(&self) -> String {
        match self {
            Toolchain::Official { rustc, .. } => {
                format!("{} (official {TARGET} target)", rustc.display())
            }
            Toolchain::Debian => format!(
                "the pinned toolchain: Debian's {DEBIAN_RUSTC} {PINNED_VERSION} (std built from source)"
            ),
        }
    }

    /// A cargo command with none of the outer build's variables: they describe the host build
    /// (its rustc, flags, profile, jobserver) and would confuse the inner one. `sources` is the
    /// repository the guests live in.
    fn cargo(&self, sources: &Path) -> Command {
        let (cargo, rustc) = match self {
            Toolchain::Official { cargo, rustc } => (cargo.clone(), rustc.clone()),
            Toolchain::Debian => (PathBuf::from(DEBIAN_CARGO), PathBuf::from(DEBIAN_RUSTC)),
        };
        let mut command = Command::new(cargo);
        for (key, _) in env::vars_os() {
            let key = key.to_string_lossy();
            let inherited = ["CARGO", "RUSTC", "RUSTUP", "RUSTFLAGS", "RUSTDOC"]
                .iter()
                .any(|prefix| key.starts_with(prefix));
            if inherited && key != "CARGO_HOME" && key != "CARGO_NET_OFFLINE" {
                command.env_remove(key.as_ref());
            }
        }
        command.env("RUSTC", rustc);
        let mut rustflags = vec![STACK_SIZE.to_string()];
        // Panic locations embed source paths: map the machine-specific ones to fixed names so
        // the component's digest does not depend on where the registry or the clone lives
        // (cargo names a workspace member outside the workspace's folder by its absolute path).
        rustflags.push(format!(
            "--remap-path-prefix={}=/vector-service",
            sources.display()
        ));
        let cargo_home = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
        if let Some(cargo_home) = cargo_home {
            rustflags.push(format!(
                "--remap-path-prefix={}=/cargo",
                cargo_home.display()
            ));
        }
        // With `--target`, these reach only the guest's own artifacts, not build scripts.
        command.env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"));
        if let Toolchain::Debian = self {
            command
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", DEBIAN_LINKER)
                .arg("build")
                .arg("-Zbuild-std=std,panic_abort");
        } else {
            command.arg("build");
        }
        command
    }
}

/// Build the cdylib crate in `crate_dir` (under `sources`, the repository) for wasm (release,
/// `--locked`) into `target_dir` and encode its core module `artifact` (e.g. `my_guest.wasm`)
/// as a component.
pub fn build_component(
    toolchain: &Toolchain,
    sources: &Path,
    crate_dir: &Path,
    target_dir: &Path,
    artifact: &str,
) -> Result<Vec<u8>, String> {
    let output = toolchain
        .cargo(sources)
        .current_dir(crate_dir)
        .args(["--release", "--locked", "--target", TARGET, "--target-dir"])
        .arg(target_dir)
        .output()
        .map_err(|e| format!("starting cargo for {}: {e}", crate_dir.display()))?;
    if !output.status.success() {
        return Err(format!(
            "building {} failed ({}) with {}:\n{}",
            crate_dir.display(),
            output.status,
            toolchain.describe(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let core_module = target_dir.join(TARGET).join("release").join(artifact);
    let core =
        fs::read(&core_module).map_err(|e| format!("reading {}: {e}", core_module.display()))?;
    wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("turning {} into a component: {e:#}", core_module.display()))
}

fn command_output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
