//! Backfill progress. The component drives a backfill batch by batch through the
//! `embedding-store` import, so counting at that import sees every batch without the component
//! knowing who watches: a terminal (a progress line) or a server job (its `progress` field).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use vector_service_runtime::api::{BackendError, EmbedReport};
use vector_service_runtime::backends::EmbeddingStore;

/// Forwards to `inner`, counting the records of each finished batch, and redrawing a progress
/// line on stderr when it has one.
pub struct ProgressStore {
    inner: Arc<dyn EmbeddingStore>,
    done: AtomicU64,
    line: Option<TerminalLine>,
}

/// A progress line towards `total` records.
struct TerminalLine {
    total: u64,
    started: Instant,
}

impl ProgressStore {
    /// Counts records, for a reader of [`ProgressStore::done`].
    pub fn counting(inner: Arc<dyn EmbeddingStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            done: AtomicU64::new(0),
            line: None,
        })
    }

    /// Progress towards `total` records on a terminal, or `None` when stderr is not one (logs
    /// and the final report say the same thing to machines).
    pub fn for_terminal(inner: Arc<dyn EmbeddingStore>, total: u64) -> Option<Arc<Self>> {
        std::io::stderr().is_terminal().then(|| {
            Arc::new(Self {
                inner,
                done: AtomicU64::new(0),
                line: Some(TerminalLine {
                    total,
                    started: Instant::now(),
                }),
            })
        })
    }

    /// Records embedded or skipped so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    fn draw(&self, done: u64) {
        let Some(line) = &self.line else { return };
        const WIDTH: u64 = 30;
        let filled = (done.min(line.total) * WIDTH)
            .checked_div(line.total)
            .unwrap_or(WIDTH);
        let rate = done as f64 / line.started.elapsed().as_secs_f64().max(1e-3);
        let bar: String = (0..WIDTH)
            .map(|i| if i < filled { '#' } else { '.' })
            .collect();
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r[{bar}] {done}/{} records  {rate:.0}/s ",
            line.total
        );
        let _ = stderr.flush();
    }

    /// End the progress line so the report starts on its own line.
    pub fn finish(&self) {
        if self.line.is_some() {
            self.draw(self.done());
            eprintln!();
        }
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
