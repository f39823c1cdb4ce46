//! Builds the guest crate for wasm, turns the core module into a component with
//! `wit-component`, and leaves it in `OUT_DIR` for `include_bytes!`.
//!
//! The guest needs a wasm-capable Rust toolchain, which is picked in this order:
//! 1. the current toolchain's official `wasm32-unknown-unknown` target (`rustup target add`);
//! 2. Debian's `rustc-web` 1.85 with its std source (`rust-web-src`) and `wasm-ld-19`, building
//!    std from source (`scripts/install-toolchain.sh` installs exactly that).
//!
//! `wasm32-wasip2` is deliberately not used: its std imports WASI interfaces, and the component
//! must import nothing but what `wit/` declares (that is the sandbox).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";
const GUEST_ARTIFACT: &str = "vector_service_guest.wasm";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_STD_SOURCE: &str = "/usr/lib/rustlib/src/rust/library/Cargo.lock";
const DEBIAN_LINKER: &str = "wasm-ld-19";
const INSTALL_HINT: &str = "no wasm toolchain for the guest. Install one with `bash scripts/install-toolchain.sh` \
     (Debian's rustc-web 1.85, rust-web-src and lld-19), or `rustup target add wasm32-unknown-unknown` \
     where rustup can reach its server";

/// How the guest gets compiled.
enum Toolchain {
    /// The toolchain building this crate has the official wasm target.
    Official { cargo: PathBuf, rustc: PathBuf },
    /// Debian's rustc 1.85 with std built from source.
    Debian,
}

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
    let core_module = build_guest(&toolchain, &guest_dir, &target_dir);

    let core = fs::read(&core_module)
        .unwrap_or_else(|e| fail(&format!("reading {}: {e}", core_module.display())));
    let component = wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| fail(&format!("turning the guest into a component: {e:#}")));

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

fn detect_toolchain() -> Option<Toolchain> {
    let cargo = PathBuf::from(env::var_os("CARGO")?);
    let rustc = PathBuf::from(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    if let Some(sysroot) = command_output(Command::new(&rustc).args(["--print", "sysroot"])) {
        let target_lib = Path::new(sysroot.trim())
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib");
        if target_lib.is_dir() {
            return Some(Toolchain::Official { cargo, rustc });
        }
    }
    let debian_ready = Path::new(DEBIAN_CARGO).exists()
        && Path::new(DEBIAN_STD_SOURCE).exists()
        && command_output(Command::new(DEBIAN_LINKER).arg("--version")).is_some()
        && command_output(Command::new(DEBIAN_RUSTC).arg("--version"))
            .is_some_and(|version| version.contains("1.85"));
    debian_ready.then_some(Toolchain::Debian)
}

impl Toolchain {
    fn describe(&self) -> String {
        match self {
            Toolchain::Official { rustc, .. } => {
                format!("{} (official {TARGET} target)", rustc.display())
            }
            Toolchain::Debian => format!("Debian's {DEBIAN_RUSTC} 1.85 (std built from source)"),
        }
    }

    /// A cargo command with none of the outer build's variables: they describe the host build
    /// (its rustc, flags, profile, jobserver) and would confuse the inner one.
    fn cargo(&self) -> Command {
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
        // Panic locations embed source paths: map the machine-specific ones to fixed names so
        // the component's digest does not depend on where the registry lives.
        let cargo_home = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
        if let Some(cargo_home) = cargo_home {
            command.env(
                "CARGO_ENCODED_RUSTFLAGS",
                format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
            );
        }
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

fn build_guest(toolchain: &Toolchain, guest_dir: &Path, target_dir: &Path) -> PathBuf {
    let output = toolchain
        .cargo()
        .current_dir(guest_dir)
        .args(["--release", "--locked", "--target", TARGET, "--target-dir"])
        .arg(target_dir)
        .output()
        .unwrap_or_else(|e| fail(&format!("starting cargo for the guest: {e}")));
    if !output.status.success() {
        fail(&format!(
            "guest build failed ({}) with {}:\n{}",
            output.status,
            toolchain.describe(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    target_dir.join(TARGET).join("release").join(GUEST_ARTIFACT)
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

fn command_output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
