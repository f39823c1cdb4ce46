//! The components an operator allows, by sha256: the tenants file's `[[component]]` list and
//! the built-in component, compiled onto the server's one engine. A tenant pinned to a digest
//! runs exactly those bytes, beside tenants running others. A listed file whose bytes do not
//! have the digest it is listed under, or that does not fit the WIT world, refuses the whole
//! tenants file (at start and at reload: the running tenants keep serving).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use vector_service_runtime::{sha256_hex, Plugin, PluginHandle, SandboxEngine, BUILTIN_COMPONENT};

use super::tenants::Tenants;

/// The built-in component's sha256: always allowed.
pub(super) static BUILTIN_DIGEST: LazyLock<String> =
    LazyLock::new(|| sha256_hex(BUILTIN_COMPONENT));

/// The allowed components that some tenant runs or the file lists, compiled.
#[derive(Default)]
pub(super) struct Catalogue {
    plugins: HashMap<String, Arc<Plugin>>,
}

impl Catalogue {
    /// Compile every component `tenants` lists and the built-in one if a tenant is pinned to
    /// it, reusing what `previous` compiled and the server's own component (`server`), so no
    /// bytes are compiled twice. Reads files and compiles: run it off the async threads.
    pub(super) fn load(
        tenants: &Tenants,
        engine: &SandboxEngine,
        previous: Option<&Catalogue>,
        server: &Arc<Plugin>,
    ) -> Result<Self, String> {
        let mut plugins = HashMap::new();
        let reuse = |digest: &str| {
            previous
                .and_then(|p| p.plugins.get(digest))
                .cloned()
                .or_else(|| (server.digest() == digest).then(|| server.clone()))
        };
        for entry in &tenants.catalogue {
            let plugin = match reuse(&entry.sha256) {
                Some(plugin) => plugin,
                None => {
                    let shown = entry.file.display();
                    let bytes = std::fs::read(&entry.file)
                        .map_err(|e| format!("component {shown}: {e}"))?;
                    let digest = sha256_hex(&bytes);
                    if digest != entry.sha256 {
                        return Err(format!(
                            "component {shown} has sha256 {digest}, not the {} it is allowed as",
                            entry.sha256
                        ));
                    }
                    Arc::new(
                        Plugin::new(engine.engine(), &bytes)
                            .map_err(|e| format!("component {shown}: {e:#}"))?,
                    )
                }
            };
            plugins.insert(entry.sha256.clone(), plugin);
        }
        let builtin_pinned = tenants
            .entries
            .iter()
            .any(|t| t.component.as_deref() == Some(BUILTIN_DIGEST.as_str()));
        if builtin_pinned && !plugins.contains_key(BUILTIN_DIGEST.as_str()) {
            let plugin = match reuse(&BUILTIN_DIGEST) {
                Some(plugin) => plugin,
                None => Arc::new(
                    Plugin::new(engine.engine(), BUILTIN_COMPONENT)
                        .map_err(|e| format!("the built-in component: {e:#}"))?,
                ),
            };
            plugins.insert(BUILTIN_DIGEST.clone(), plugin);
        }
        Ok(Self { plugins })
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

/// Why the server's own component (`--component`, or a reload's) may not run, if it may not:
/// once a tenants file lists components, only listed digests (and the built-in) load.
pub(super) fn check_allowed(tenants: &Tenants, digest: &str, source: &str) -> Result<(), String> {
    let listed = tenants.catalogue.iter().any(|entry| entry.sha256 == digest);
    if tenants.catalogue.is_empty() || listed || digest == BUILTIN_DIGEST.as_str() {
        Ok(())
    } else {
        Err(format!(
            "component {source} (sha256 {digest}) is not in the tenants file's [[component]] list"
        ))
    }
}
