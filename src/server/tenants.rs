//! Who may call the server: the tenants file (TOML). Each tenant has a name (also its data
//! namespace: `<data-dir>/<name>.sqlite3`), the SHA-256 of its API key (the key itself is
//! never stored), limits, and optionally the component it is pinned to. Without a file the
//! server runs one `default` tenant with no key, on loopback only.
//!
//! ```toml
//! admin_key_sha256 = "…"           # optional: enables POST /admin/reload and all-tenant /metrics
//! memory_budget_mib = 4096         # optional: what open tenants may hold in all (--memory-budget-mib wins)
//! [[component]]                    # optional: components tenants may be pinned to
//! sha256 = "…"                     # sha256sum FILE
//! file = "plugin-v2.wasm"          # relative to this file
//! [[tenant]]
//! name = "acme"
//! api_key_sha256 = "…"             # printf %s "$KEY" | sha256sum
//! component = "…"                  # optional: a listed sha256 or the built-in one's
//! [tenant.limits]                  # every field optional; defaults shown
//! memory_mib = 64
//! call_deadline_ms = 10000
//! max_concurrent = 4
//! requests_per_second = 50000.0
//! queue_wait_ms = 1000
//! host_call_mib = 16
//! backfill_batch_deadline_ms = 60000
//! backfill_budget_ms = 3600000
//! cache_entries = 1024
//! storage_mib = 10240
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vector_service_runtime::{CacheConfig, RunLimits, SandboxLimits};

/// Per-tenant limits.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Guest linear memory cap per call.
    pub memory_mib: u64,
    /// CPU/wall deadline per call.
    pub call_deadline_ms: u64,
    /// Calls running at once; more wait up to `queue_wait_ms`, then get 503.
    pub max_concurrent: u32,
    /// Sustained request rate (burst: one second's worth); beyond it, 429.
    pub requests_per_second: f64,
    /// How long a request may wait for a free slot.
    pub queue_wait_ms: u64,
    /// Bytes one call may pass to the host through imports (log lines, queries, ids).
    pub host_call_mib: u64,
    /// Time one batch of a backfill job may take (its embedding call included).
    pub backfill_batch_deadline_ms: u64,
    /// Time a whole backfill job may take.
    pub backfill_budget_ms: u64,
    /// Answers the tenant's result cache keeps (0 turns it off).
    pub cache_entries: u64,
    /// The most its database may take on disk; a write past it is refused (`quota-exceeded`).
    pub storage_mib: u64,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            memory_mib: 64,
            call_deadline_ms: 10_000,
            max_concurrent: 4,
            requests_per_second: 50_000.0,
            queue_wait_ms: 1_000,
            host_call_mib: 16,
            backfill_batch_deadline_ms: 60_000,
            backfill_budget_ms: 3_600_000,
            cache_entries: 1024,
            storage_mib: 10_240,
        }
    }
}

impl TenantLimits {
    /// How a backfill job of this tenant is bounded (a fresh cancel flag).
    pub fn backfill_run(&self) -> RunLimits {
        RunLimits {
            budget: Some(Duration::from_millis(self.backfill_budget_ms)),
            ..RunLimits::per_batch(Duration::from_millis(self.backfill_batch_deadline_ms))
        }
    }

    /// The tenant's result cache.
    pub fn cache(&self) -> CacheConfig {
        CacheConfig {
            capacity: self.cache_entries as usize,
            ..CacheConfig::default()
        }
    }

    /// The storage quota in bytes.
    pub fn storage_bytes(&self) -> u64 {
        self.storage_mib << 20
    }

    /// The sandbox part of the limits.
    pub fn sandbox(&self) -> SandboxLimits {
        SandboxLimits {
            memory_bytes: (self.memory_mib as usize) << 20,
            call_deadline: Duration::from_millis(self.call_deadline_ms),
            host_call_bytes: (self.host_call_mib as usize) << 20,
        }
    }
}

/// One tenant as configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    /// Name, metric label and data namespace.
    pub name: String,
    /// Hex SHA-256 of the tenant's API key; `None` only for the implicit `default` tenant.
    pub api_key_sha256: Option<String>,
    /// Limits; defaults when absent.
    #[serde(default)]
    pub limits: TenantLimits,
    /// The sha256 of the component it runs: the built-in one's or one of the `[[component]]`
    /// list's. Absent: the server's component (the built-in, `--component`, or a reload's).
    #[serde(default)]
    pub component: Option<String>,
}

/// A component the operator allows: its sha256 and the file holding those bytes (relative
/// to the tenants file's directory).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueEntry {
    pub sha256: String,
    pub file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    admin_key_sha256: Option<String>,
    memory_budget_mib: Option<u64>,
    #[serde(default, rename = "component")]
    catalogue: Vec<CatalogueEntry>,
    #[serde(default, rename = "tenant")]
    tenants: Vec<TenantEntry>,
}

/// Why a tenants file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenantsError {
    /// Unreadable file.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, or unknown or mistyped fields.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// Valid TOML with a bad value.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The tenants and how to find one from a bearer key.
#[derive(Debug, Clone)]
pub struct Tenants {
    /// In file order.
    pub entries: Vec<TenantEntry>,
    by_key_hash: HashMap<String, usize>,
    admin_key_sha256: Option<String>,
    /// False for the implicit single tenant: no key is asked for.
    pub authenticated: bool,
    /// The components tenants may be pinned to, besides the built-in one (files resolved).
    pub catalogue: Vec<CatalogueEntry>,
    /// What the open tenants may hold in all, when the file sets it.
    memory_budget_mib: Option<u64>,
}

/// Hex SHA-256 of `key`.
pub fn key_hash(key: &str) -> String {
    crate::sha256_hex(key.as_bytes())
}

/// A tenant name, checked: it names files (`<name>.sqlite3`), schemas and metric labels, so
/// one safe character set everywhere (the CLI's `--tenant` too).
pub fn check_name(name: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!(
            "tenant name {name:?}: use 1-64 of a-z, 0-9, '-', '_'"
        ))
    }
}

impl TenantLimits {
    /// Why these limits are refused, if they are: each must be finite and inside its range,
    /// so no value switches a limit off or overflows it.
    pub fn check(&self) -> Result<(), String> {
        let ranges: [(&str, f64, f64, f64); 10] = [
            ("memory_mib", self.memory_mib as f64, 1.0, 4096.0),
            (
                "call_deadline_ms",
                self.call_deadline_ms as f64,
                1.0,
                3_600_000.0,
            ),
            (
                "max_concurrent",
                f64::from(self.max_concurrent),
                1.0,
                1024.0,
            ),
            ("requests_per_second", self.requests_per_second, 0.001, 1e9),
            ("queue_wait_ms", self.queue_wait_ms as f64, 0.0, 60_000.0),
            ("host_call_mib", self.host_call_mib as f64, 1.0, 1024.0),
            (
                "backfill_batch_deadline_ms",
                self.backfill_batch_deadline_ms as f64,
                1.0,
                3_600_000.0,
            ),
            (
                "backfill_budget_ms",
                self.backfill_budget_ms as f64,
                1.0,
                86_400_000.0,
            ),
            ("cache_entries", self.cache_entries as f64, 0.0, 1_000_000.0),
            ("storage_mib", self.storage_mib as f64, 1.0, 16_777_216.0),
        ];
        for (name, value, low, high) in ranges {
            if !(value.is_finite() && (low..=high).contains(&value)) {
                return Err(format!("{name} = {value} is outside {low}..={high}"));
            }
        }
        Ok(())
    }
}

fn valid_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Tenants {
    /// The implicit single tenant `default`, with no key.
    pub fn single_default() -> Self {
        Self {
            entries: vec![TenantEntry {
                name: "default".into(),
                api_key_sha256: None,
                limits: TenantLimits::default(),
                component: None,
            }],
            by_key_hash: HashMap::new(),
            admin_key_sha256: None,
            authenticated: false,
            catalogue: Vec::new(),
            memory_budget_mib: None,
        }
    }

    /// The file's `memory_budget_mib`, in bytes.
    pub fn memory_budget_bytes(&self) -> Option<usize> {
        self.memory_budget_mib.map(|mib| (mib as usize) << 20)
    }

    /// Read and check a tenants file.
    pub fn load(path: &Path) -> Result<Self, TenantsError> {
        // Named by its file name only: a reload's refusal reaches an HTTP body.
        let shown = super::config::shown(path);
        let text = std::fs::read_to_string(path).map_err(|source| TenantsError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut tenants = Self::parse(&text, &shown)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for entry in &mut tenants.catalogue {
            entry.file = dir.join(&entry.file);
        }
        Ok(tenants)
    }

    /// Check tenants from TOML text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, TenantsError> {
        let file: TenantsFile = toml::from_str(text).map_err(|e| TenantsError::Parse {
            path: source.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| TenantsError::Invalid {
            path: source.to_string(),
            message,
        };
        if file.tenants.is_empty() {
            return Err(invalid("no [[tenant]] entries".into()));
        }
        let mut catalogue = file.catalogue;
        for entry in &mut catalogue {
            entry.sha256 = entry.sha256.to_ascii_lowercase();
            if !valid_hash(&entry.sha256) {
                return Err(invalid(format!(
                    "component {}: sha256 must be 64 hex digits",
                    entry.file.display()
                )));
            }
        }
        let mut tenants = file.tenants;
        for tenant in &mut tenants {
            let Some(digest) = tenant.component.as_mut() else {
                continue;
            };
            *digest = digest.to_ascii_lowercase();
            if !super::catalogue::listed_or_builtin(&catalogue, digest) {
                return Err(invalid(format!(
                    "tenant {:?}: component {digest} is neither the built-in one nor in the [[component]] list",
                    tenant.name
                )));
            }
        }
        let mut by_key_hash = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (index, tenant) in tenants.iter().enumerate() {
            check_name(&tenant.name).map_err(invalid)?;
            if !names.insert(tenant.name.clone()) {
                return Err(invalid(format!("tenant {:?} appears twice", tenant.name)));
            }
            let hash = tenant
                .api_key_sha256
                .as_deref()
                .map(str::to_ascii_lowercase)
                .filter(|hash| valid_hash(hash))
                .ok_or_else(|| {
                    invalid(format!(
                        "tenant {:?}: api_key_sha256 must be 64 hex digits",
                        tenant.name
                    ))
                })?;
            if by_key_hash.insert(hash, index).is_some() {
                return Err(invalid(format!(
                    "tenant {:?} shares its API key with another tenant",
                    tenant.name
                )));
            }
            tenant
                .limits
                .check()
                .map_err(|reason| invalid(format!("tenant {:?}: {reason}", tenant.name)))?;
        }
        let admin_key_sha256 = match file.admin_key_sha256 {
            Some(hash) if valid_hash(&hash) => Some(hash.to_ascii_lowercase()),
            Some(_) => return Err(invalid("admin_key_sha256 must be 64 hex digits".into())),
            None => None,
        };
        // A tenant holding the admin key would be an admin: every tenant's metrics, reloads.
        if let Some(index) = admin_key_sha256
            .as_ref()
            .and_then(|admin| by_key_hash.get(admin))
        {
            return Err(invalid(format!(
                "tenant {:?} has the admin key as its API key; give one of them another key",
                tenants[*index].name
            )));
        }
        if let Some(mib) = file.memory_budget_mib {
            if !(16..=16 << 20).contains(&mib) {
                return Err(invalid(format!(
                    "memory_budget_mib = {mib} is outside 16..={}",
                    16 << 20
                )));
            }
        }
        Ok(Self {
            entries: tenants,
            by_key_hash,
            admin_key_sha256,
            authenticated: true,
            catalogue,
            memory_budget_mib: file.memory_budget_mib,
        })
    }

    /// The tenant a bearer key belongs to (index into `entries`).
    pub fn by_key(&self, key: &str) -> Option<usize> {
        self.by_key_hash.get(&key_hash(key)).copied()
    }

    /// Whether an admin key is configured (admin routes are off without one).
    pub fn has_admin_key(&self) -> bool {
        self.admin_key_sha256.is_some()
    }

    /// Whether `key` is the admin key.
    pub fn is_admin(&self, key: &str) -> bool {
        self.admin_key_sha256
            .as_deref()
            .is_some_and(|hash| hash == key_hash(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str, key: &str) -> String {
        format!(
            "[[tenant]]\nname = \"{name}\"\napi_key_sha256 = \"{}\"\n",
            key_hash(key)
        )
    }

    #[test]
    fn keys_find_their_tenant_and_limits_default() {
        let text = format!(
            "admin_key_sha256 = \"{}\"\n{}{}[tenant.limits]\nmax_concurrent = 2\n",
            key_hash("root"),
            tenant("a", "ka"),
            tenant("b", "kb")
        );
        let tenants = Tenants::parse(&text, "t.toml").unwrap();
        assert_eq!(tenants.by_key("kb"), Some(1));
        assert_eq!(tenants.by_key("nope"), None);
        assert!(tenants.is_admin("root") && !tenants.is_admin("ka"));
        assert_eq!(tenants.entries[0].limits, TenantLimits::default());
        assert_eq!(tenants.entries[1].limits.max_concurrent, 2);
    }

    #[test]
    fn tenants_pin_allowed_digests_and_listed_files_resolve_beside_the_file() {
        let digest = "AB".repeat(32);
        let text = format!(
            "[[component]]\nsha256 = \"{digest}\"\nfile = \"c/x.wasm\"\n{}component = \"{digest}\"\n{}component = \"{}\"\n{}",
            tenant("a", "ka"),
            tenant("b", "kb"),
            *crate::server::catalogue::BUILTIN_DIGEST,
            tenant("c", "kc"),
        );
        let dir = std::env::temp_dir().join(format!("tenants-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tenants.toml");
        std::fs::write(&path, text).unwrap();
        let tenants = Tenants::load(&path).unwrap();
        let lower = digest.to_ascii_lowercase();
        assert_eq!(tenants.catalogue[0].sha256, lower);
        assert_eq!(tenants.catalogue[0].file, dir.join("c/x.wasm"));
        assert_eq!(
            tenants.entries[0].component.as_deref(),
            Some(lower.as_str())
        );
        assert!(tenants.entries[1].component.is_some());
        assert_eq!(tenants.entries[2].component, None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let cases = [
            (String::new(), "no [[tenant]]"),
            (tenant("Bad Name", "k"), "tenant name"),
            (tenant("a", "k") + &tenant("a", "k2"), "appears twice"),
            (tenant("a", "k") + &tenant("b", "k"), "shares its API key"),
            (
                "[[tenant]]\nname = \"a\"\napi_key_sha256 = \"xyz\"\n".into(),
                "64 hex",
            ),
            (tenant("a", "k") + "colour = \"red\"\n", "unknown field"),
            (
                tenant("a", "k") + "[tenant.limits]\nmax_concurrent = 0\n",
                "max_concurrent = 0 is outside",
            ),
            (
                tenant("a", "k") + "[tenant.limits]\nrequests_per_second = nan\n",
                "requests_per_second = NaN",
            ),
            (
                tenant("a", "k") + "[tenant.limits]\nrequests_per_second = inf\n",
                "requests_per_second = inf",
            ),
            (
                tenant("a", "k") + "[tenant.limits]\nmemory_mib = 18446744073709551615\n",
                "memory_mib",
            ),
            (
                tenant("a", "k") + "[tenant.limits]\ncall_deadline_ms = 99999999999\n",
                "call_deadline_ms",
            ),
            (tenant("../x", "k"), "tenant name"),
            (
                format!("admin_key_sha256 = \"{}\"\n", key_hash("k")) + &tenant("a", "k"),
                "tenant \"a\" has the admin key",
            ),
            (
                tenant("a", "k") + &format!("component = \"{}\"\n", "ab".repeat(32)),
                "neither the built-in one nor in the [[component]] list",
            ),
            (
                "[[component]]\nsha256 = \"12\"\nfile = \"x.wasm\"\n".to_string()
                    + &tenant("a", "k"),
                "sha256 must be 64 hex digits",
            ),
        ];
        for (text, expected) in cases {
            let error = Tenants::parse(&text, "t.toml").unwrap_err().to_string();
            assert!(error.contains(expected), "{error} should say {expected}");
        }
    }
}
