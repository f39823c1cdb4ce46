//! Export over OTLP/HTTP with protobuf bodies, configured by OpenTelemetry's standard
//! environment variables ([`OtlpConfig::from_env`]). Spans wait in a bounded queue; a thread
//! of its own posts them in batches. A full queue drops the span and counts it, and an export
//! that fails drops its batch and counts it: a request never waits for the collector.

mod config;
mod protobuf;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

pub use config::{ConfigError, OtlpConfig};
pub use protobuf::{export_request, Origin};

use crate::layer::{SpanRecord, SpanSink};

/// What became of the spans handed to the exporter (for `/metrics`).
#[derive(Clone, Default)]
pub struct ExportStats(Arc<Counters>);

#[derive(Default)]
struct Counters {
    exported: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_export_failed: AtomicU64,
    failed_exports: AtomicU64,
}

impl ExportStats {
    /// Spans the collector accepted.
    pub fn exported(&self) -> u64 {
        self.0.exported.load(Ordering::Relaxed)
    }

    /// Spans dropped because the queue was full (the collector slow or down).
    pub fn dropped_queue_full(&self) -> u64 {
        self.0.dropped_queue_full.load(Ordering::Relaxed)
    }

    /// Spans dropped because their batch's export failed.
    pub fn dropped_export_failed(&self) -> u64 {
        self.0.dropped_export_failed.load(Ordering::Relaxed)
    }

    /// Exports (posts of a batch) that failed.
    pub fn failed_exports(&self) -> u64 {
        self.0.failed_exports.load(Ordering::Relaxed)
    }
}

/// The queue between the threads that close spans and the exporter's thread.
struct Queue {
    state: Mutex<Waiting>,
    wake: Condvar,
    capacity: usize,
    batch: usize,
    stats: ExportStats,
}

#[derive(Default)]
struct Waiting {
    spans: VecDeque<SpanRecord>,
    stopping: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SpanSink for Queue {
    fn finished(&self, span: SpanRecord) {
        let mut waiting = self.lock();
        if waiting.spans.len() >= self.capacity {
            drop(waiting);
            self.stats
                .0
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        waiting.spans.push_back(span);
        let full_batch = waiting.spans.len() >= self.batch;
        drop(waiting);
        if full_batch {
            self.wake.notify_one();
        }
    }
}

/// The exporter's thread. Dropping this stops it after it has posted what is queued (each
/// post bounded by the configured timeout).
pub struct Exporter {
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Start the thread for `config`: the sink to give [`crate::TraceLayer::recording`], the
    /// counters, and this guard.
    pub fn start(config: OtlpConfig) -> std::io::Result<(Self, Arc<dyn SpanSink>, ExportStats)> {
        let stats = ExportStats::default();
        let queue = Arc::new(Queue {
            state: Mutex::default(),
            wake: Condvar::new(),
            capacity: config.max_queue_size,
            batch: config.max_export_batch_size,
            stats: stats.clone(),
        });
        let worker = queue.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-exporter".into())
            .spawn(move || export_loop(&worker, &config))?;
        let sink: Arc<dyn SpanSink> = queue.clone();
        Ok((
            Self {
                queue,
                thread: Some(thread),
            },
            sink,
            stats,
        ))
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.queue.lock().stopping = true;
        self.queue.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn export_loop(queue: &Queue, config: &OtlpConfig) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build(),
    );
    let origin = config.origin();
    loop {
        let (batch, stopping) = {
            let mut waiting = queue.lock();
            let until = Instant::now() + config.schedule_delay;
            while waiting.spans.len() < queue.batch && !waiting.stopping {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                waiting = queue
                    .wake
                    .wait_timeout(waiting, until - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            let take = waiting.spans.len().min(queue.batch);
            let batch: Vec<SpanRecord> = waiting.spans.drain(..take).collect();
            (batch, waiting.stopping && waiting.spans.is_empty())
        };
        if !batch.is_empty() {
            post(&agent, config, &origin, &batch, &queue.stats);
        }
        if stopping {
            return;
        }
    }
}

/// One batch to the collector; a failure is counted, its spans dropped, and told once per
/// kind of failure in the log.
fn post(
    agent: &ureq::Agent,
    config: &OtlpConfig,
    origin: &Origin,
    batch: &[SpanRecord],
    stats: &ExportStats,
) {
    let body = export_request(origin, batch);
    let mut request = agent
        .post(&config.endpoint)
        .header("Content-Type", "application/x-protobuf");
    for (name, value) in &config.headers {
        request = request.header(name, value);
    }
    let outcome = match request.send(&body[..]) {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!("the collector answered {}", response.status())),
        Err(error) => Err(error.to_string()),
    };
    let counters = &stats.0;
    match outcome {
        Ok(()) => {
            counters
                .exported
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        Err(reason) => {
            counters
                .dropped_export_failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if counters.failed_exports.fetch_add(1, Ordering::Relaxed) == 0 {
                // Only the first: a collector that is down would fill the log otherwise
                // (vector_service_trace_spans_dropped_total counts every one).
                tracing::warn!(target: "vector_service::trace", endpoint = %config.endpoint, %reason, "exporting spans failed; they are dropped and counted");
            }
        }
    }
}
