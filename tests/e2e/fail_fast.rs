//! A store known to be down fails requests at once: PostgreSQL behind a TCP relay that the test
//! cuts (a fault double: the relay, not the database), so requests answer 503 `unavailable`
//! with `Retry-After` as soon as a health check has seen it, instead of after the whole call
//! deadline, and are served again once a check sees it back.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::{error_kind, Server};
use crate::support::{temp_dir, write_tenants, Metrics};
use vector_service_testkit::postgres_server::postgres;

/// A TCP relay to `target` that can be cut (every connection closed, new ones refused) and
/// restored.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn to(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (thread_cut, thread_open) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if thread_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused as it arrives
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut open = thread_open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                pump(client.try_clone().unwrap(), server.try_clone().unwrap());
                pump(server, client);
            }
        });
        Self { port, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Copy `from` into `to` on a thread until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 << 10];
        while let Ok(read) = from.read(&mut buffer) {
            if read == 0 || to.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// Poll `/readyz` with the admin key until `done` (at most 30 s).
fn until_ready_says(server: &Server, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = server.get("/readyz", Some("admin-key"));
        let ready: Value = serde_json::from_str(&text).unwrap();
        if done(&ready) {
            return ready;
        }
        assert!(Instant::now() < deadline, "{ready}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn with_its_database_down_a_tenant_fails_fast_and_recovers_when_it_is_back() {
    let target = postgres()
        .url
        .rsplit('@')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    let relay = Relay::to(target);
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", relay.port);
    let dir = temp_dir("fail-fast");
    let tenants = write_tenants(&dir, Some("admin-key"), &[("fastfail", "ff-key", "")]);
    let server = Server::start_with_globals(
        &dir,
        &["--database", &url],
        &["--tenants", tenants.to_str().unwrap()],
    );
    let search = || {
        server.post(
            "/v1/search",
            Some("ff-key"),
            r#"{"query": "upload failed"}"#,
        )
    };
    assert_eq!(search().0, 200);

    relay.cut();
    until_ready_says(&server, |ready| ready["status"] == "not ready");
    let started = Instant::now();
    let (status, answer, retry) = search();
    assert_eq!(
        (status, error_kind(&answer)),
        (503, "unavailable"),
        "{answer}"
    );
    assert!(retry.is_some(), "with Retry-After");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "at once, not after the 10 s deadline: {:?}",
        started.elapsed()
    );
    let metrics = Metrics::parse(server.get("/metrics", Some("admin-key")).1);
    assert!(
        metrics.counter(
            "vector_service_store_fast_failures_total",
            &[("tenant", "fastfail")]
        ) >= 1.0
    );

    relay.restore();
    until_ready_says(&server, |ready| ready["status"] == "ready");
    let (status, answer, _) = search();
    assert_eq!(status, 200, "served again: {answer}");
}
