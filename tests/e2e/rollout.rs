//! Rolling a component out to one tenant through the admin API: a canary gets its share of
//! the tenant's calls (within binomial bounds), promotion and rollback switch every new call
//! at once, none of it fails a request under load, other tenants are untouched, and a restart
//! serves what was promoted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::catalogue::{answered_by, builtin_digest, other_component, tenants_file};
use crate::server::Server;
use crate::support::temp_dir;

fn admin(server: &Server, path: &str, body: &str) -> (u16, Value) {
    let (status, answer, _) = server.post(path, Some("admin-key"), body);
    (status, answer)
}

fn view_of(server: &Server, tenant: &str) -> Value {
    let (status, text) = server.get("/admin/tenants", Some("admin-key"));
    assert_eq!(status, 200, "{text}");
    let view: Value = serde_json::from_str(&text).unwrap();
    view["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == tenant)
        .cloned()
        .unwrap()
}

#[test]
fn a_canary_takes_its_share_then_promote_and_rollback_switch_every_call_and_survive_a_restart() {
    let dir = temp_dir("rollout");
    let (_, other) = other_component(&dir);
    let builtin = builtin_digest();
    let tenants = tenants_file(&dir, &other, &[("a", None), ("b", None)]);
    let args = ["--tenants", tenants.to_str().unwrap()];
    let server = Server::start(&dir, &args);

    // Refused: an unknown tenant, a component not allowed, a share out of range, nothing to
    // promote or roll back.
    let canary =
        |digest: &str, share: f64| json!({"component": digest, "share_percent": share}).to_string();
    assert_eq!(
        admin(
            &server,
            "/admin/tenants/nobody/canary",
            &canary(&other, 10.0)
        )
        .0,
        404
    );
    assert_eq!(
        admin(
            &server,
            "/admin/tenants/a/canary",
            &canary(&"ab".repeat(32), 10.0)
        )
        .0,
        400
    );
    assert_eq!(
        admin(&server, "/admin/tenants/a/canary", &canary(&other, 101.0)).0,
        400
    );
    assert_eq!(admin(&server, "/admin/tenants/a/promote", "").0, 409);
    assert_eq!(admin(&server, "/admin/tenants/a/rollback", "").0, 409);
    assert_eq!(
        server.post("/admin/tenants/a/promote", Some("a-key"), "").0,
        401
    );

    // A 30% canary: over 400 calls, within four standard deviations of 120.
    let (status, set) = admin(&server, "/admin/tenants/a/canary", &canary(&other, 30.0));
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["canary"]["component"], other.as_str());
    assert_eq!(set["component"], builtin.as_str());
    let calls = 400;
    let on_canary = (0..calls)
        .filter(|_| answered_by(&server, "a") == "other")
        .count() as f64;
    let (expected, sigma) = (calls as f64 * 0.3, (calls as f64 * 0.3 * 0.7).sqrt());
    assert!(
        (on_canary - expected).abs() <= 4.0 * sigma,
        "{on_canary} of {calls} calls on the canary"
    );
    assert!((0..20).all(|_| answered_by(&server, "b") == "built-in"));

    // Promote: every call of a; rollback: every call back on the built-in one.
    let (status, promoted) = admin(&server, "/admin/tenants/a/promote", "");
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["component"], other.as_str());
    assert_eq!(promoted["previous"], builtin.as_str());
    assert!(promoted["canary"].is_null());
    assert!((0..20).all(|_| answered_by(&server, "a") == "other"));
    let (status, rolled) = admin(&server, "/admin/tenants/a/rollback", "");
    assert_eq!(status, 200, "{rolled}");
    assert_eq!(rolled["component"], builtin.as_str());
    assert!((0..20).all(|_| answered_by(&server, "a") == "built-in"));
    // A retried rollback has nothing left to undo: 409, and the bad component stays out.
    let (status, again) = admin(&server, "/admin/tenants/a/rollback", "");
    assert_eq!(status, 409, "{again}");
    assert_eq!(view_of(&server, "a")["component"], builtin.as_str());
    assert!((0..20).all(|_| answered_by(&server, "a") == "built-in"));

    // Promoted again, then restarted: a still runs the promoted component.
    admin(&server, "/admin/tenants/a/canary", &canary(&other, 0.0));
    assert!(
        (0..20).all(|_| answered_by(&server, "a") == "built-in"),
        "share 0"
    );
    assert_eq!(admin(&server, "/admin/tenants/a/promote", "").0, 200);
    drop(server);
    assert!(dir.join("rollouts.json").exists());
    let server = Server::start(&dir, &args);
    assert_eq!(view_of(&server, "a")["component"], other.as_str());
    assert!((0..10).all(|_| answered_by(&server, "a") == "other"));
    assert!((0..10).all(|_| answered_by(&server, "b") == "built-in"));

    // Pinning a in the tenants file wins over its rollout.
    tenants_file(&dir, &other, &[("a", Some(&builtin)), ("b", None)]);
    let (status, reloaded) = admin(&server, "/admin/reload", "");
    assert_eq!(status, 200, "{reloaded}");
    assert!((0..10).all(|_| answered_by(&server, "a") == "built-in"));
    assert!(view_of(&server, "a")["previous"].is_null());
    // ... and for good: unpinning it again does not bring the old rollout back.
    tenants_file(&dir, &other, &[("a", None), ("b", None)]);
    assert_eq!(admin(&server, "/admin/reload", "").0, 200);
    assert!((0..10).all(|_| answered_by(&server, "a") == "built-in"));
    let kept = std::fs::read_to_string(dir.join("rollouts.json")).unwrap();
    assert!(!kept.contains("\"a\""), "{kept}");
}

#[test]
fn canary_promote_and_rollback_fail_no_request_under_load() {
    let dir = temp_dir("rollout-load");
    let (_, other) = other_component(&dir);
    let tenants = tenants_file(&dir, &other, &[("a", None)]);
    let server = Arc::new(Server::start(
        &dir,
        &["--tenants", tenants.to_str().unwrap()],
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (server, stop, served, failed) =
                (server.clone(), stop.clone(), served.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (status, _, _) =
                        server.post("/v1/search", Some("a-key"), r#"{"query": "q"}"#);
                    let counter = if status == 200 { &served } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let steps = [
        (
            "canary",
            json!({"component": other, "share_percent": 50.0}).to_string(),
        ),
        ("promote", String::new()),
        ("rollback", String::new()),
        (
            "canary",
            json!({"component": other, "share_percent": 100.0}).to_string(),
        ),
        ("rollback", String::new()),
    ];
    for (step, body) in steps {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (status, answer) = admin(&server, &format!("/admin/tenants/a/{step}"), &body);
        assert_eq!(status, 200, "{step}: {answer}");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(served.load(Ordering::Relaxed) > 20, "{served:?}");
}
