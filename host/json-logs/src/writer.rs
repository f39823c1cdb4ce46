//! The server's log sink: lines are appended to one bounded buffer and written to stderr by a
//! thread of its own in batches, every [`FLUSH_INTERVAL`] while lines keep coming (sooner when
//! [`WAKE_AT_BYTES`] are waiting). A request never waits for stderr, and a busy server wakes
//! the writer at most once per interval rather than once per line. Past [`MAX_BUFFERED_BYTES`]
//! lines are dropped and counted.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line waits at most before the writer thread writes it (while the server logs).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(5);
/// Waiting bytes that wake the writer thread before its interval is up.
pub const WAKE_AT_BYTES: usize = 256 << 10;
/// Waiting bytes past which new lines are dropped (and counted) instead of buffered.
pub const MAX_BUFFERED_BYTES: usize = 16 << 20;

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The writer thread waits for a first line with no timeout: an idle server costs nothing.
    writer_idle: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How many lines were dropped because the buffer was full (`vector_service_log_lines_dropped_total`).
#[derive(Clone)]
pub struct DroppedLines(Arc<Shared>);

impl DroppedLines {
    /// Lines dropped since the writer started.
    pub fn get(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

/// The `MakeWriter` for `tracing_subscriber`: each event's formatted line is appended whole.
#[derive(Clone)]
pub struct BatchingWriter {
    shared: Arc<Shared>,
}

/// Writes what is left when dropped (at the end of `main`).
pub struct FlushOnDrop {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchingWriter {
    /// A writer into `sink` (stderr for the server) and its thread.
    pub fn spawn(
        sink: impl Write + Send + 'static,
    ) -> std::io::Result<(Self, DroppedLines, FlushOnDrop)> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("vector-service-log".into())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, sink)
            })?;
        Ok((
            Self {
                shared: shared.clone(),
            },
            DroppedLines(shared.clone()),
            FlushOnDrop {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

/// The writer thread: wait for lines (or the interval), take them all, write them at once.
fn write_batches(shared: &Shared, mut sink: impl Write) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut pending = shared.lock();
            if pending.bytes.is_empty() && !pending.closed {
                pending.writer_idle = true;
                while pending.writer_idle && !pending.closed {
                    pending = shared.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
                }
            }
            // Gather what arrives within the interval: one write (and one wake) per batch.
            if pending.bytes.len() < WAKE_AT_BYTES && !pending.closed {
                pending = shared
                    .wake
                    .wait_timeout(pending, FLUSH_INTERVAL)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            std::mem::swap(&mut pending.bytes, &mut batch);
            pending.closed
        };
        if !batch.is_empty() {
            // Nowhere to report a failed log write: the line is lost, the server goes on.
            let _ = sink.write_all(&batch).and_then(|()| sink.flush());
            batch.clear();
        }
        if closed && shared.lock().bytes.is_empty() {
            return;
        }
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One event's line on its way into the buffer.
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.lock();
        if pending.bytes.len() + line.len() > MAX_BUFFERED_BYTES {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        pending.bytes.extend_from_slice(line);
        let wake = pending.writer_idle || pending.bytes.len() >= WAKE_AT_BYTES;
        pending.writer_idle = false;
        drop(pending);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchingWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A sink that hands each batch to the test.
    struct Batches(mpsc::Sender<Vec<u8>>);

    impl Write for Batches {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_and_the_rest_at_close() {
        let (sender, batches) = mpsc::channel();
        let (writer, dropped, flush) = BatchingWriter::spawn(Batches(sender)).unwrap();
        writer.make_writer().write_all(b"one\n").unwrap();
        // An idle writer is woken by the first line.
        let first = batches.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(first, b"one\n");
        for i in 0..1000 {
            writer
                .make_writer()
                .write_all(format!("line {i}\n").as_bytes())
                .unwrap();
        }
        drop(flush);
        let rest: Vec<u8> = batches.try_iter().flatten().collect();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(rest).unwrap(), expected);
        assert_eq!(dropped.get(), 0);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_lines() {
        /// A sink that says when a write starts and then waits for the test to release it.
        struct Stuck {
            entered: mpsc::Sender<()>,
            release: mpsc::Receiver<()>,
        }
        impl Write for Stuck {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                let _ = self.entered.send(());
                let _ = self.release.recv();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (entered_tx, entered) = mpsc::channel();
        let (release_tx, release) = mpsc::channel();
        let (writer, dropped, flush) = BatchingWriter::spawn(Stuck {
            entered: entered_tx,
            release,
        })
        .unwrap();
        // Declared after `flush`, so it is dropped first even if an assertion fails: the
        // writer thread is released before anything joins it.
        let release = release_tx;
        let line = vec![b'x'; 1 << 20];
        writer.make_writer().write_all(&line).unwrap();
        entered.recv_timeout(Duration::from_secs(5)).unwrap();
        // The writer thread is stuck writing the first line: 16 more fill the buffer, the
        // other 24 are dropped.
        for _ in 0..40 {
            writer.make_writer().write_all(&line).unwrap();
        }
        assert_eq!(dropped.get(), 24);
        drop(release);
        drop(flush);
    }
}
