//! The server's JSON log line:
//! `{"timestamp":"2026-11-27T01:02:03.456789Z","level":"INFO","fields":{"message":..,..},"target":".."}`,
//! the shape of `tracing_subscriber`'s JSON format, with the trace's `trace_id` and `span_id`
//! among the fields of a line logged inside a request or a job. That format
//! builds a map of the fields and serialises it through serde for every line. Here each line is
//! appended to one `String` with plain pushes (digits and escapes written by hand; only float
//! values and the message's arguments go through `core::fmt`) and handed to the writer whole:
//! the cost of a line is priced by `cargo bench --bench overhead` (docs/decisions/0005-log-writer.md).

use std::fmt::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use vector_service_trace::scope;

/// Room for a typical line (a guest call line is ~300 bytes), so it is allocated once.
const LINE_CAPACITY: usize = 512;

/// The event formatter (`tracing_subscriber::fmt().event_format(JsonLines)`).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = String::with_capacity(LINE_CAPACITY);
        line.push_str("{\"timestamp\":\"");
        push_rfc3339(&mut line, SystemTime::now());
        line.push_str("\",\"level\":\"");
        line.push_str(metadata.level().as_str());
        line.push_str("\",\"fields\":{");
        let mut fields = Fields {
            line: &mut line,
            first: true,
        };
        event.record(&mut fields);
        let first = fields.first;
        scope::with_current(|scope| {
            if let Some(scope) = scope {
                // Hex digits need no escape.
                line.push_str(if first {
                    "\"trace_id\":\""
                } else {
                    ",\"trace_id\":\""
                });
                scope.context.trace_id.push_hex(&mut line);
                line.push_str("\",\"span_id\":\"");
                scope.context.span_id.push_hex(&mut line);
                line.push('"');
            }
        });
        line.push_str("},\"target\":");
        push_json_string(&mut line, metadata.target());
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// Span fields are not written into log lines (the trace ids come from the thread's scope), so
/// a span costs the log layer no formatting.
pub struct NoSpanFields;

impl<'writer> FormatFields<'writer> for NoSpanFields {
    fn format_fields<R: RecordFields>(&self, _: Writer<'writer>, _: R) -> fmt::Result {
        Ok(())
    }
}

/// Appends each field as `"name":value` (numbers and booleans bare, everything else a string).
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
}

impl Fields<'_> {
    /// The field's name and colon; the caller appends the value.
    fn name(&mut self, field: &Field) -> &mut String {
        if !std::mem::take(&mut self.first) {
            self.line.push(',');
        }
        push_json_string(self.line, field.name());
        self.line.push(':');
        self.line
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let line = self.name(field);
        if value.is_finite() {
            // Writing into a String cannot fail.
            let _ = write!(line, "{value}");
        } else {
            line.push_str("null");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let line = self.name(field);
        if value < 0 {
            line.push('-');
        }
        push_decimal(line, value.unsigned_abs(), 1);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        push_decimal(self.name(field), value, 1);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field)
            .push_str(if value { "true" } else { "false" });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        push_json_string(self.name(field), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let line = self.name(field);
        line.push('"');
        let _ = write!(Escaped(line), "{value:?}");
        line.push('"');
    }
}

/// Escapes what is formatted into it for a JSON string's inside.
struct Escaped<'a>(&'a mut String);

impl Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        push_escaped(self.0, text);
        Ok(())
    }
}

fn push_json_string(line: &mut String, text: &str) {
    line.push('"');
    push_escaped(line, text);
    line.push('"');
}

/// `text` with `"`, `\` and control characters escaped as JSON requires.
fn push_escaped(line: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Most values (ids, names, numbers as text) need no escape: copy them whole.
    let clean = clean_prefix(text.as_bytes());
    line.push_str(&text[..clean]);
    let mut plain = clean;
    for (at, byte) in text.bytes().enumerate().skip(clean) {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        line.push_str(&text[plain..at]);
        if escape.is_empty() {
            line.push_str("\\u00");
            line.push(char::from(HEX[usize::from(byte >> 4)]));
            line.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            line.push_str(escape);
        }
        plain = at + 1;
    }
    line.push_str(&text[plain..]);
}

/// How many leading bytes of `bytes` need no escape (a whole multiple of 8, or all of them),
/// checked eight bytes at a time: a byte needs one when it is below 0x20, `"` or `\`.
fn clean_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// Whether any byte of `word` is zero (the classic bit trick; exact for "any").
    fn has_zero_byte(word: u64) -> bool {
        word.wrapping_sub(ONES) & !word & HIGHS != 0
    }
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_ne_bytes(chunk.try_into().expect("chunks of eight"));
        // A byte is below 0x20 exactly when its top three bits are clear.
        if has_zero_byte(word & u64::from_ne_bytes([0xe0; 8]))
            || has_zero_byte(word ^ u64::from_ne_bytes([b'"'; 8]))
            || has_zero_byte(word ^ u64::from_ne_bytes([b'\\'; 8]))
        {
            return clean;
        }
        clean += 8;
    }
    if bytes[clean..]
        .iter()
        .all(|&byte| byte >= 0x20 && byte != b'"' && byte != b'\\')
    {
        bytes.len()
    } else {
        clean
    }
}

/// `value` in decimal, zero-padded to at least `width` digits.
fn push_decimal(line: &mut String, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while value > 0 || digits.len() - start < width {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    for &digit in &digits[start..] {
        line.push(char::from(digit));
    }
}

/// `time` as RFC 3339 in UTC with microseconds (`2026-11-27T01:02:03.456789Z`).
fn push_rfc3339(line: &mut String, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let second_of_day = seconds % 86_400;
    push_decimal(line, year.max(0) as u64, 4);
    line.push('-');
    push_decimal(line, u64::from(month), 2);
    line.push('-');
    push_decimal(line, u64::from(day), 2);
    line.push('T');
    push_decimal(line, second_of_day / 3600, 2);
    line.push(':');
    push_decimal(line, second_of_day / 60 % 60, 2);
    line.push(':');
    push_decimal(line, second_of_day % 60, 2);
    line.push('.');
    push_decimal(line, u64::from(since.subsec_micros()), 6);
    line.push('Z');
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let mut text = String::new();
        let time = UNIX_EPOCH + Duration::from_micros(1_795_741_323_456_789);
        push_rfc3339(&mut text, time);
        assert_eq!(text, "2026-11-27T01:02:03.456789Z");
    }

    #[test]
    fn every_byte_that_needs_an_escape_stops_the_clean_prefix() {
        for at in 0..20 {
            for special in (0u8..0x20).chain([b'"', b'\\']) {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = special;
                let clean = clean_prefix(&bytes);
                assert!(clean <= at, "{special:#x} at {at}: clean {clean}");
            }
            // UTF-8 and the printable range never stop it.
            let mut text = "é".repeat(10).into_bytes();
            text[at] = b'~';
            assert_eq!(clean_prefix(&text), text.len());
        }
        let mut escaped = String::new();
        push_escaped(&mut escaped, "0123456789\u{1}\"x\\y\u{1f}é");
        assert_eq!(escaped, r#"0123456789\u0001\"x\\y\u001fé"#);
    }

    #[test]
    fn decimals_are_padded_and_whole() {
        let decimal = |value, width| {
            let mut text = String::new();
            push_decimal(&mut text, value, width);
            text
        };
        assert_eq!(decimal(0, 1), "0");
        assert_eq!(decimal(7, 2), "07");
        assert_eq!(decimal(123, 2), "123");
        assert_eq!(decimal(42, 6), "000042");
        assert_eq!(decimal(u64::MAX, 1), u64::MAX.to_string());
    }

    /// Lines a subscriber with this format writes, each parsed by a real JSON parser.
    fn lines_of(log: impl FnOnce()) -> Vec<serde_json::Value> {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer({
                let sink = sink.clone();
                move || sink.clone()
            })
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn lines_have_the_json_format_shape_and_every_field_type() {
        let lines = lines_of(|| {
            let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
            tracing::info!(target: "vector_service::guest", tenant = "acme", latency_seconds = 0.25,
                result_size = 5u32, delta = -3i64, most = i64::MIN, zero = 0u64, ok = true, nan = f64::NAN, error = %awkward,
                "Retriever.search end");
            tracing::warn!(name = awkward, "second");
        });
        assert_eq!(lines.len(), 2);
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["target"], "vector_service::guest");
        let fields = &first["fields"];
        assert_eq!(fields["message"], "Retriever.search end");
        assert_eq!(fields["tenant"], "acme");
        assert_eq!(fields["latency_seconds"], 0.25);
        assert_eq!(fields["result_size"], 5);
        assert_eq!(fields["delta"], -3);
        assert_eq!(fields["most"], i64::MIN);
        assert_eq!(fields["zero"], 0);
        assert_eq!(fields["ok"], true);
        assert!(fields["nan"].is_null());
        assert_eq!(
            fields["error"],
            "quote \" backslash \\ newline \n tab \t bell \u{7} é"
        );
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["fields"]["name"], fields["error"]);
        let timestamp = first["timestamp"].as_str().unwrap();
        assert_eq!(
            (timestamp.len(), &timestamp[10..11]),
            (27, "T"),
            "{timestamp}"
        );
        assert!(timestamp.ends_with('Z'));
    }
}
