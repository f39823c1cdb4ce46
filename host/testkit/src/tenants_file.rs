//! Tenants files as the server reads them, written for tests and benches.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

/// The hash the tenants file stores for an API key (`printf %s KEY | sha256sum`).
pub fn api_key_hash(key: &str) -> String {
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Write `dir/tenants.toml`: an optional admin key, then one `[[tenant]]` per
/// `(name, key, limits)`, where `limits` are TOML lines for `[tenant.limits]` (may be empty).
/// Keys are stored hashed, as the server expects.
pub fn write_tenants(
    dir: &Path,
    admin_key: Option<&str>,
    tenants: &[(&str, &str, &str)],
) -> PathBuf {
    let mut text = admin_key
        .map(|key| format!("admin_key_sha256 = \"{}\"\n", api_key_hash(key)))
        .unwrap_or_default();
    for (name, key, limits) in tenants {
        text += &format!(
            "\n[[tenant]]\nname = \"{name}\"\napi_key_sha256 = \"{}\"\n[tenant.limits]\n{limits}\n",
            api_key_hash(key)
        );
    }
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).expect("writing the tenants file");
    path
}

/// `count` tenants `{prefix}{i}` with keys `k{i}` and default limits, written as
/// [`write_tenants`] does: the file, and each tenant's name and key.
pub fn write_numbered_tenants(
    dir: &Path,
    admin_key: Option<&str>,
    prefix: &str,
    count: usize,
) -> (PathBuf, Vec<(String, String)>) {
    let entries: Vec<(String, String)> = (0..count)
        .map(|i| (format!("{prefix}{i}"), format!("k{i}")))
        .collect();
    let listed: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|(name, key)| (name.as_str(), key.as_str(), ""))
        .collect();
    (write_tenants(dir, admin_key, &listed), entries)
}
