//! The components an operator allows, by sha256: the tenants file's `[[component]]` list and
//! the built-in component, compiled onto the server's one engine. A tenant pinned to a digest
//! runs exactly those bytes, beside tenants running others. A listed file whose bytes do not
//! have the digest it is listed under, or that does not fit the WIT world, refuses the whole
//! tenants file (at start and at reload alike: the running tenants keep serving). Every listed
//! file is read again at each load (`config`), so what was compiled before is reused only for
//! bytes still on disk.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use vector_service_runtime::{sha256_hex, Plugin, PluginHandle, SandboxEngine, BUILTIN_COMPONENT};

use super::config::{self, Compiled, ComponentFiles};
use super::tenants::{CatalogueEntry, Tenants};

/// The built-in component's sha256: always allowed.
pub(super) static BUILTIN_DIGEST: LazyLock<String> =
    LazyLock::new(|| sha256_hex(BUILTIN_COMPONENT));

/// The allowed components that some tenant runs or the file lists, compiled.
#[derive(Default)]
pub(super) struct Catalogue {
    plugins: HashMap<String, Arc<Plugin>>,
}

impl Catalogue {
    /// Read every component `tenants` lists and check it holds the bytes it is listed as, then
    /// compile it (or reuse what `compiled` has for those bytes); the built-in one too if a
    /// tenant is pinned to it. Reads files and compiles: run it off the async threads.
    pub(super) fn load(
        tenants: &Tenants,
        engine: &SandboxEngine,
        compiled: &Compiled<'_>,
        files: &ComponentFiles<'_>,
    ) -> Result<Self, String> {
        let mut plugins = HashMap::new();
        for entry in &tenants.catalogue {
            let shown = config::shown(&entry.file);
            let bytes = files.read(&entry.file).map_err(|e| e.to_string())?;
            let digest = sha256_hex(&bytes);
            if digest != entry.sha256 {
                return Err(format!(
                    "component {shown} has sha256 {digest}, not the {} it is allowed as",
                    entry.sha256
                ));
            }
            let plugin = match compiled.find(&digest) {
                Some(plugin) => plugin,
                None => config::compile(engine, &bytes, &shown)?,
            };
            plugins.insert(entry.sha256.clone(), plugin);
        }
        let builtin_pinned = tenants
            .entries
            .iter()
            .any(|t| t.component.as_deref() == Some(BUILTIN_DIGEST.as_str()));
        if builtin_pinned && !plugins.contains_key(BUILTIN_DIGEST.as_str()) {
            let plugin = match compiled.find(&BUILTIN_DIGEST) {
                Some(plugin) => plugin,
                None => config::compile(engine, BUILTIN_COMPONENT, "built-in")?,
            };
            plugins.insert(BUILTIN_DIGEST.clone(), plugin);
        }
        Ok(Self { plugins })
    }

    /// The compiled component with `digest`, if the catalogue has it.
    pub(super) fn get(&self, digest: &str) -> Option<Arc<Plugin>> {
        self.plugins.get(digest).cloned()
    }

    /// The component with `digest` a tenant may run: an allowed one, or the server's own
    /// (`server`).
    pub(super) fn resolve(&self, digest: &str, server: &PluginHandle) -> Option<Arc<Plugin>> {
        if let Some(plugin) = self.plugins.get(digest) {
            return Some(plugin.clone());
        }
        let server = server.active();
        (server.digest() == digest).then_some(server)
    }
}

/// The rule of which components may run: the built-in one, and those the tenants file lists.
pub(super) fn listed_or_builtin(catalogue: &[CatalogueEntry], digest: &str) -> bool {
    digest == BUILTIN_DIGEST.as_str() || catalogue.iter().any(|entry| entry.sha256 == digest)
}

/// Why the server's own component (`--component`, or a reload's) may not run, if it may not:
/// once a tenants file lists components, only listed digests (and the built-in) load.
pub(super) fn check_allowed(tenants: &Tenants, digest: &str, source: &str) -> Result<(), String> {
    if tenants.catalogue.is_empty() || listed_or_builtin(&tenants.catalogue, digest) {
        Ok(())
    } else {
        Err(format!(
            "component {source} (sha256 {digest}) is not in the tenants file's [[component]] list"
        ))
    }
}
