//! What the server runs, loaded and checked one way for start and for reload: the server's
//! component and the components the tenants file lists. Every listed file is read and hashed
//! each time (bytes compiled before are reused only once the file is seen to hold them still),
//! only regular files are read and only up to a size cap, so a reload accepts exactly what the
//! next start would. Refusals name a file by its name only: they reach an HTTP body.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vector_service_runtime::{sha256_hex, Plugin, SandboxEngine, BUILTIN_COMPONENT};

use super::catalogue::{self, Catalogue};
use super::tenants::Tenants;

/// The default of `--max-component-bytes`: far above the built-in component (under 300 KiB),
/// far below what would hurt a server to hold while compiling.
pub const DEFAULT_MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// How component files are read: regular files only, at most `max_bytes`, and no further once
/// `gone` is set (the caller of a reload hung up).
pub(super) struct ComponentFiles<'a> {
    pub(super) max_bytes: u64,
    pub(super) gone: &'a AtomicBool,
}

/// Why a component file was not read.
#[derive(Debug, thiserror::Error)]
pub(super) enum FileRefused {
    #[error("component {0}: {1}")]
    Io(String, std::io::Error),
    #[error("component {0}: not a regular file")]
    NotRegular(String),
    #[error("component {0}: larger than the {1} bytes allowed (--max-component-bytes)")]
    TooLarge(String, u64),
    #[error("component {0}: not read, the caller went away")]
    Abandoned(String),
}

/// A file's name without its directory: what an HTTP answer may show of a path.
pub(super) fn shown(path: &Path) -> String {
    path.file_name().map_or_else(
        || "(unnamed)".into(),
        |name| name.to_string_lossy().into_owned(),
    )
}

impl ComponentFiles<'_> {
    /// The bytes of the component file at `path`, within the bounds.
    pub(super) fn read(&self, path: &Path) -> Result<Vec<u8>, FileRefused> {
        let name = shown(path);
        let io = |error| FileRefused::Io(name.clone(), error);
        // Non-blocking, so a FIFO put where a file was does not hold the open forever.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(path)
            .map_err(io)?;
        let metadata = file.metadata().map_err(io)?;
        if !metadata.is_file() {
            return Err(FileRefused::NotRegular(name));
        }
        if metadata.len() > self.max_bytes {
            return Err(FileRefused::TooLarge(name, self.max_bytes));
        }
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        let mut chunk = vec![0; 256 << 10];
        loop {
            if self.gone.load(Ordering::Relaxed) {
                return Err(FileRefused::Abandoned(name));
            }
            let read = file.read(&mut chunk).map_err(io)?;
            if read == 0 {
                return Ok(bytes);
            }
            // The file may grow while it is read: the cap holds for what is read.
            if (bytes.len() + read) as u64 > self.max_bytes {
                return Err(FileRefused::TooLarge(name, self.max_bytes));
            }
            bytes.extend_from_slice(&chunk[..read]);
        }
    }
}

/// The components a load may reuse instead of compiling the same bytes again.
#[derive(Default)]
pub(super) struct Compiled<'a> {
    pub(super) catalogue: Option<&'a Catalogue>,
    pub(super) plugins: Vec<Arc<Plugin>>,
}

impl Compiled<'_> {
    /// The compiled component with `digest`, if there is one.
    pub(super) fn find(&self, digest: &str) -> Option<Arc<Plugin>> {
        self.catalogue
            .and_then(|catalogue| catalogue.get(digest))
            .or_else(|| {
                self.plugins
                    .iter()
                    .find(|plugin| plugin.digest() == digest)
                    .cloned()
            })
    }
}

/// A loaded configuration's components, checked and compiled.
pub(super) struct Components {
    /// The server's component (for tenants not pinned to one).
    pub(super) server: Arc<Plugin>,
    /// Where it came from: its file's name, or `built-in`.
    pub(super) source: String,
    /// Its size.
    pub(super) bytes: usize,
    /// Whether it was compiled now (false: the same bytes were compiled before).
    pub(super) compiled: bool,
    /// The components the tenants file lists (and the built-in one when a tenant is pinned to
    /// it), compiled.
    pub(super) catalogue: Catalogue,
}

/// Read, check and compile the server's component (`component`, else the built-in one) and
/// every component `tenants` lists. Reads files and compiles: run it off the async threads.
pub(super) fn load_components(
    tenants: &Tenants,
    component: Option<&Path>,
    engine: &SandboxEngine,
    compiled: &Compiled<'_>,
    files: &ComponentFiles<'_>,
) -> Result<Components, String> {
    let (bytes, source) = match component {
        Some(path) => (files.read(path).map_err(|e| e.to_string())?, shown(path)),
        None => (BUILTIN_COMPONENT.to_vec(), "built-in".to_string()),
    };
    let digest = sha256_hex(&bytes);
    catalogue::check_allowed(tenants, &digest, &source)?;
    let (server, fresh) = match compiled.find(&digest) {
        Some(plugin) => (plugin, false),
        None => (compile(engine, &bytes, &source)?, true),
    };
    let reuse = Compiled {
        catalogue: compiled.catalogue,
        plugins: [compiled.plugins.clone(), vec![server.clone()]].concat(),
    };
    let catalogue = Catalogue::load(tenants, engine, &reuse, files)?;
    Ok(Components {
        server,
        source,
        bytes: bytes.len(),
        compiled: fresh,
        catalogue,
    })
}

/// Compile `bytes` onto the server's engine. A refusal says which check failed; the compiler's
/// own detail (which may quote the file's bytes) goes to the log only.
pub(super) fn compile(
    engine: &SandboxEngine,
    bytes: &[u8],
    source: &str,
) -> Result<Arc<Plugin>, String> {
    Plugin::new(engine.engine(), bytes)
        .map(Arc::new)
        .map_err(|error| {
            tracing::warn!(component = %source, error = %format!("{error:#}"), "a component was refused");
            format!("component {source}: {error}")
        })
}
