//! `vector-service serve` as a child process on a free loopback port (for the server's tests
//! and benches): started, its address read from its first stdout line, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running server.
pub struct ServerProcess {
    /// The server's process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl ServerProcess {
    /// Start `binary` (the caller's `env!("CARGO_BIN_EXE_vector-service")`) over `data_dir`
    /// with global flags (`--retrieval`, `--database`, ...)
    /// and `serve` arguments; its JSON logs (info and up) go to `log` when given, else only
    /// warnings, nowhere.
    pub fn start_with_globals(
        binary: &Path,
        data_dir: &Path,
        globals: &[&std::ffi::OsStr],
        extra: &[&std::ffi::OsStr],
        log: Option<&Path>,
    ) -> Self {
        Self::start_limited(binary, data_dir, globals, extra, log, None)
    }

    /// [`ServerProcess::start_with_globals`] under a descriptor limit (soft and hard, set by
    /// `prlimit`) when `descriptors` is given.
    pub fn start_limited(
        binary: &Path,
        data_dir: &Path,
        globals: &[&std::ffi::OsStr],
        extra: &[&std::ffi::OsStr],
        log: Option<&Path>,
        descriptors: Option<u64>,
    ) -> Self {
        Self::start_in(binary, data_dir, globals, extra, log, descriptors, &[])
    }

    /// [`ServerProcess::start_with_globals`] with these environment variables set too (e.g.
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn start_with_env(
        binary: &Path,
        data_dir: &Path,
        globals: &[&std::ffi::OsStr],
        extra: &[&std::ffi::OsStr],
        log: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_in(binary, data_dir, globals, extra, log, None, env)
    }

    fn start_in(
        binary: &Path,
        data_dir: &Path,
        globals: &[&std::ffi::OsStr],
        extra: &[&std::ffi::OsStr],
        log: Option<&Path>,
        descriptors: Option<u64>,
        env: &[(&str, &str)],
    ) -> Self {
        let (level, stderr) = match log {
            Some(path) => (
                "info",
                Stdio::from(std::fs::File::create(path).expect("creating the log file")),
            ),
            None => ("warn", Stdio::null()),
        };
        // Benchmarks may run another build of the server (e.g. one with debug info to profile).
        let binary = std::env::var_os("VECTOR_SERVICE_BINARY").unwrap_or_else(|| binary.into());
        let mut command = match descriptors {
            Some(limit) => {
                let mut prlimit = Command::new("prlimit");
                prlimit.arg(format!("--nofile={limit}:{limit}")).arg(binary);
                prlimit
            }
            None => Command::new(binary),
        };
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .args(globals)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", level)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the listening line");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Self { child, url }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
