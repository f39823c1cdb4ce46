//! Components pinned per tenant by sha256: the tenants file allows digests (`[[component]]`),
//! a tenant runs the one it names beside tenants running others in the same process, and a
//! digest that is not allowed, or a file whose bytes are not what it is allowed as, is refused
//! at start and at reload while what runs keeps serving.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::Digest as _;

use crate::server::Server;
use crate::support::api_key_hash as hash;
use crate::support::temp_dir;

const SEARCH: &str = r#"{"query": "anything at all"}"#;

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The second real component: the misbehaving test guest, which answers an ordinary search
/// with no hits and no fallback (the built-in one answers an empty store with a fallback).
pub(crate) fn other_component(dir: &Path) -> (PathBuf, String) {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/guest/misbehaving/misbehaving.wasm"
    ))
    .unwrap();
    std::fs::create_dir_all(dir.join("components")).unwrap();
    let path = dir.join("components/other.wasm");
    std::fs::write(&path, &bytes).unwrap();
    (path, sha256(&bytes))
}

pub(crate) fn builtin_digest() -> String {
    sha256(vector_service_runtime::BUILTIN_COMPONENT)
}

/// A tenants file allowing `other` (at `components/other.wasm`), with an admin key and the
/// tenants `(name, pinned digest)`.
pub(crate) fn tenants_file(dir: &Path, other: &str, tenants: &[(&str, Option<&str>)]) -> PathBuf {
    let mut text = format!(
        "admin_key_sha256 = \"{}\"\n\n[[component]]\nsha256 = \"{other}\"\nfile = \"components/other.wasm\"\n",
        hash("admin-key")
    );
    for (name, pinned) in tenants {
        text += &format!(
            "\n[[tenant]]\nname = \"{name}\"\napi_key_sha256 = \"{}\"\n",
            hash(&format!("{name}-key"))
        );
        if let Some(digest) = pinned {
            text += &format!("component = \"{digest}\"\n");
        }
    }
    let path = dir.join("tenants.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Which component answered: the built-in one falls back, the other one does not.
pub(crate) fn answered_by(server: &Server, tenant: &str) -> &'static str {
    let (status, answer, _) = server.post("/v1/search", Some(&format!("{tenant}-key")), SEARCH);
    assert_eq!(status, 200, "{answer}");
    if answer["fallback"].is_null() {
        "other"
    } else {
        "built-in"
    }
}

fn usage_component(server: &Server, tenant: &str) -> Value {
    let (status, text) = server.get("/v1/usage", Some(&format!("{tenant}-key")));
    assert_eq!(status, 200, "{text}");
    let usage: Value = serde_json::from_str(&text).unwrap();
    usage["components"].clone()
}

#[test]
fn tenants_run_the_components_they_are_pinned_to_side_by_side_and_reload_moves_them() {
    let dir = temp_dir("catalogue");
    let (_, other) = other_component(&dir);
    let builtin = builtin_digest();
    let tenants = tenants_file(
        &dir,
        &other,
        &[("a", Some(&other)), ("b", None), ("c", Some(&builtin))],
    );
    let server = Server::start(&dir, &["--tenants", tenants.to_str().unwrap()]);
    assert_eq!(answered_by(&server, "a"), "other");
    assert_eq!(answered_by(&server, "b"), "built-in");
    assert_eq!(answered_by(&server, "c"), "built-in");
    let (status, view) = server.get("/admin/tenants", Some("admin-key"));
    assert_eq!(status, 200, "{view}");
    let view: Value = serde_json::from_str(&view).unwrap();
    assert_eq!(view["component"], builtin.as_str());
    let shown: Vec<(&str, &str, bool)> = view["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["component"].as_str().unwrap(),
                t["pinned"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("a", other.as_str(), true),
            ("b", builtin.as_str(), false),
            ("c", builtin.as_str(), true)
        ]
    );
    assert_eq!(view["tenants"][0]["limits"]["max_concurrent"], 4);
    assert_eq!(server.get("/admin/tenants", Some("a-key")).0, 401);
    let metered = usage_component(&server, "a");
    assert_eq!(metered[0]["component"], &other[..12], "{metered}");
    assert_eq!(
        usage_component(&server, "b")[0]["component"],
        &builtin[..12]
    );

    // A reload moves a to the built-in component and b to the other one.
    tenants_file(
        &dir,
        &other,
        &[("a", None), ("b", Some(&other)), ("c", None)],
    );
    let (status, reloaded, _) = server.post("/admin/reload", Some("admin-key"), "");
    assert_eq!(status, 200, "{reloaded}");
    assert_eq!(
        reloaded["compiled"], false,
        "the same server component: {reloaded}"
    );
    let changed = &reloaded["tenants"]["changes"]["changed"];
    assert_eq!(changed, &serde_json::json!(["a", "b", "c"]), "{reloaded}");
    assert_eq!(answered_by(&server, "a"), "built-in");
    assert_eq!(answered_by(&server, "b"), "other");
}

#[test]
fn a_digest_not_allowed_or_bytes_not_matching_their_digest_are_refused_at_start_and_reload() {
    let dir = temp_dir("catalogue-refused");
    let (path, other) = other_component(&dir);
    let unknown = "ab".repeat(32);

    // At start: the server does not start, and says why.
    let refuses_to_start = |tenants: &Path, expected: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_vector-service"))
            .arg("--data-dir")
            .arg(&dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--tenants"])
            .arg(tenants)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "it started: {stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    };
    let pinned_to_unknown = tenants_file(&dir, &other, &[("a", Some(&unknown))]);
    refuses_to_start(
        &pinned_to_unknown,
        "is neither the built-in one nor in the [[component]] list",
    );
    std::fs::write(&path, b"\0asm not the allowed bytes").unwrap();
    let tampered = tenants_file(&dir, &other, &[("a", Some(&other))]);
    refuses_to_start(&tampered, "not the");

    // At reload: refused whole, and a keeps running what it ran.
    let (_, other) = other_component(&dir);
    let tenants = tenants_file(&dir, &other, &[("a", Some(&other)), ("b", None)]);
    let server = Server::start(&dir, &["--tenants", tenants.to_str().unwrap()]);
    assert_eq!(answered_by(&server, "a"), "other");
    tenants_file(&dir, &other, &[("a", Some(&unknown)), ("b", None)]);
    server.refused_reload("", "neither the built-in one");
    assert_eq!(answered_by(&server, "a"), "other");

    // The server's own component must be allowed too once the file lists components.
    tenants_file(&dir, &other, &[("a", Some(&other)), ("b", None)]);
    let elsewhere = dir.join("elsewhere.wasm");
    let mut bytes = vector_service_runtime::BUILTIN_COMPONENT.to_vec();
    // A custom section changes the digest, not the component.
    bytes.extend_from_slice(&[0, 6, 5, b'n', b'o', b't', b'e', b'!']);
    std::fs::write(&elsewhere, &bytes).unwrap();
    let body = serde_json::json!({"component": elsewhere}).to_string();
    server.refused_reload(&body, "is not in the tenants file's [[component]] list");
    assert_eq!(answered_by(&server, "b"), "built-in");
}
