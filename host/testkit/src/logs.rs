//! `tracing` events captured per thread, so a test sees the log lines its own calls made
//! while other tests run in parallel.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One captured `tracing` event.
#[derive(Debug, Clone)]
pub struct LogEvent {
    /// The event's level.
    pub level: tracing::Level,
    /// Its target (the module, or `vector_service::guest` for the component).
    pub target: String,
    /// Its `message` field.
    pub message: String,
    /// Every other field, as text.
    pub fields: BTreeMap<String, String>,
}

impl LogEvent {
    /// A field's text, if the event has it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

thread_local! {
    /// Where this thread's events go while `capture_logs` runs.
    static SINK: std::cell::RefCell<Option<Vec<LogEvent>>> = const { std::cell::RefCell::new(None) };
}

/// A process-wide subscriber that hands each event to its thread's sink. (Scoped subscribers
/// race with `tracing`'s callsite interest cache when tests run in parallel; one global
/// subscriber that is always interested does not.)
struct ThreadCapture;

struct FieldVisitor<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for ThreadCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        SINK.with(|sink| {
            if let Some(events) = sink.borrow_mut().as_mut() {
                let mut fields = BTreeMap::new();
                event.record(&mut FieldVisitor(&mut fields));
                let message = fields.remove("message").unwrap_or_default();
                events.push(LogEvent {
                    level: *event.metadata().level(),
                    target: event.metadata().target().to_string(),
                    message,
                    fields,
                });
            }
        });
    }
}

/// Installed before the first component call, so no callsite is ever cached as uninteresting.
pub(crate) fn install_log_capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(ThreadCapture))
            .expect("no other global subscriber in the test binary");
    });
}

/// Run `body` with every `tracing` event of this thread captured.
pub fn capture_logs<T>(body: impl FnOnce() -> T) -> (T, Vec<LogEvent>) {
    install_log_capture();
    SINK.with(|sink| *sink.borrow_mut() = Some(Vec::new()));
    let output = body();
    let events = SINK
        .with(|sink| sink.borrow_mut().take())
        .unwrap_or_default();
    (output, events)
}

/// The events the component logged (target `vector_service::guest`).
pub fn guest_events(events: &[LogEvent]) -> Vec<&LogEvent> {
    events
        .iter()
        .filter(|e| e.target == vector_service_runtime::GUEST_TARGET)
        .collect()
}
