//! A backfill progress line for a terminal. The component drives the backfill batch by batch
//! through the `embedding-store` import, so counting at that import sees every batch without
//! the component knowing a terminal exists.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use vector_service_host::api::{BackendError, EmbedReport};
use vector_service_host::backends::EmbeddingStore;

/// Forwards to `inner`, redrawing a progress line on stderr after each embedded batch.
pub struct ProgressStore {
    inner: Arc<dyn EmbeddingStore>,
    total: u64,
    done: AtomicU64,
    started: Instant,
}

impl ProgressStore {
    /// Progress towards `total` records, or `None` when stderr is not a terminal (logs and the
    /// final report say the same thing to machines).
    pub fn for_terminal(inner: Arc<dyn EmbeddingStore>, total: u64) -> Option<Arc<Self>> {
        std::io::stderr().is_terminal().then(|| {
            Arc::new(Self {
                inner,
                total,
                done: AtomicU64::new(0),
                started: Instant::now(),
            })
        })
    }

    fn draw(&self, done: u64) {
        const WIDTH: u64 = 30;
        let filled = (done.min(self.total) * WIDTH)
            .checked_div(self.total)
            .unwrap_or(WIDTH);
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let bar: String = (0..WIDTH)
            .map(|i| if i < filled { '#' } else { '.' })
            .collect();
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r[{bar}] {done}/{} records  {rate:.0}/s ",
            self.total
        );
        let _ = stderr.flush();
    }

    /// End the progress line so the report starts on its own line.
    pub fn finish(&self) {
        self.draw(self.done.load(Ordering::Relaxed));
        eprintln!();
    }
}

impl EmbeddingStore for ProgressStore {
    fn databases(&self) -> Result<Vec<String>, BackendError> {
        self.inner.databases()
    }

    fn pending(
        &self,
        db: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError> {
        self.inner.pending(db, after, limit)
    }

    fn embed(&self, db: &str, ids: &[String]) -> Result<EmbedReport, BackendError> {
        let report = self.inner.embed(db, ids)?;
        let batch = u64::from(report.embedded + report.skipped);
        self.draw(self.done.fetch_add(batch, Ordering::Relaxed) + batch);
        Ok(report)
    }
}
