//! Reading records to ingest, one contract for the CLI (`ingest FILE`) and the server
//! (`POST /v1/records`), by what the content type or the file's name says: one JSON document
//! (a record or an array of records, laid out any way), JSON lines (one record per line), or
//! CSV with a header row.
//!
//! `{"db": "bots", "origin_db": "bot", "id": "bot-1", "text": "...", "metadata": {...}}`.
//! `db` may come from `--db` (`?db=`); `origin_db` defaults to the singular of a known
//! database name; `text` defaults to the metadata's descriptive fields joined. Any other field
//! is refused, named. CSV columns `db`, `origin_db`, `id` and `text` are those fields; every
//! other column is a metadata field (numbers as numbers), empty cells left out.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::{Record, Store};

/// Metadata fields that describe a record, used as its text when it has none.
const TEXT_FIELDS: [&str; 8] = [
    "name",
    "title",
    "purpose",
    "description",
    "message",
    "summary",
    "code",
    "text",
];

/// The origin the context builder expects for the usual database names.
pub fn default_origin(db: &str) -> Option<&'static str> {
    Some(match db {
        "bots" => "bot",
        "workflows" => "workflow",
        "errors" => "error",
        "code" => "code",
        "discrepancies" => "discrepancy",
        _ => return None,
    })
}

/// One database's share of an ingest, as the CLI prints it and the server answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestReport {
    /// The database written.
    pub db: String,
    /// Records it was given.
    pub records: usize,
    /// Of those, how many were new or changed (the rest were already stored as they are).
    pub new_or_changed: usize,
}

/// Upsert each database's records (one transaction per database); one report per database.
pub fn upsert_all(
    store: &dyn Store,
    by_db: &BTreeMap<String, Vec<Record>>,
) -> Result<IngestAnswer, BackendError> {
    let databases = by_db
        .iter()
        .map(|(db, records)| {
            Ok(IngestReport {
                db: db.clone(),
                records: records.len(),
                new_or_changed: store.upsert(db, records)?,
            })
        })
        .collect::<Result<_, BackendError>>()?;
    Ok(IngestAnswer { databases })
}

/// How records are written down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON document, laid out any way: a record object, or an array of records
    /// (`application/json`, a `.json` file).
    Json,
    /// One record per line (`application/x-ndjson`, `application/jsonl`, a `.jsonl` file).
    JsonLines,
    /// A file of another name: one JSON document when the whole text is one, else JSON lines.
    JsonAny,
    /// CSV with a header row.
    Csv,
}

impl Format {
    /// The format a file's name says: `.csv`, `.json`, `.jsonl`/`.ndjson`, else either JSON.
    pub fn of_file(path: &Path) -> Self {
        let extension = path
            .extension()
            .map(|ext| ext.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("csv") => Self::Csv,
            Some("json") => Self::Json,
            Some("jsonl" | "ndjson") => Self::JsonLines,
            _ => Self::JsonAny,
        }
    }
}

/// The answer of an ingest: `POST /v1/records`, `ingest --json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestAnswer {
    pub databases: Vec<IngestReport>,
}

/// The record fields a JSON record may have (those of [`RecordFields`]).
const FIELDS: [&str; 5] = ["db", "origin_db", "id", "text", "metadata"];

/// A record as `POST /v1/records` and `ingest` read it, for the API's document; [`record`]
/// reads it field by field to name what is wrong (a test keeps the two field lists equal).
#[derive(ToSchema)]
#[schema(as = Record, example = json!({"db": "bots", "id": "bot-1", "metadata": {"name": "cert-renewer", "purpose": "renews TLS certificates"}}))]
#[allow(dead_code)]
pub struct RecordFields {
    /// The database (default: `?db=` / `--db`).
    db: Option<String>,
    /// Its origin in hits (default: the singular of `bots`, `workflows`, `errors`, `code`,
    /// `discrepancies`).
    origin_db: Option<String>,
    /// The record's id, a non-empty string or a number; at most 256 bytes.
    #[schema(value_type = String)]
    id: Value,
    /// The text searched and embedded (default: the metadata's `name`, `title`, `purpose`,
    /// `description`, `message`, `summary`, `code` and `text`, joined); at most 1 MiB.
    text: Option<String>,
    /// Anything; at most 64 KiB serialised.
    metadata: Option<Map<String, Value>>,
}

/// Records of a file, grouped by database, in file order within each: CSV for a `.csv` file,
/// JSON (array or lines) for anything else. A bad record stops the read before anything is
/// written.
pub fn read_records(
    path: &Path,
    default_db: Option<&str>,
) -> anyhow::Result<BTreeMap<String, Vec<Record>>> {
    let format = Format::of_file(path);
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {source}"))?;
    parse_records(&text, format, &source, default_db)
}

/// Records from a request body or any text. `source` names the text in errors
/// (`source:line`; `source:N` is the Nth element of a JSON array).
pub fn parse_records(
    text: &str,
    format: Format,
    source: &str,
    default_db: Option<&str>,
) -> anyhow::Result<BTreeMap<String, Vec<Record>>> {
    let lines = match format {
        Format::Csv => csv_rows(text, source)?,
        Format::Json => json_document(text, source)?,
        Format::JsonLines => json_lines(text, source)?,
        Format::JsonAny => match json_document(text, source) {
            Ok(records) => records,
            Err(_) => json_lines(text, source)?,
        },
    };
    group(lines, source, default_db)
}

/// The records of one JSON document: an object is one record, an array holds records (each
/// numbered by its place).
fn json_document(text: &str, source: &str) -> anyhow::Result<Vec<(usize, Value)>> {
    let document: Value = serde_json::from_str(text).with_context(|| {
        format!(
            "{source}: not one JSON document (a record object or an array of records, laid out any way); \
             send one record per line as application/x-ndjson, or in a .jsonl file"
        )
    })?;
    Ok(match document {
        Value::Array(values) => values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, v))
            .collect(),
        record => vec![(1, record)],
    })
}

fn group(
    lines: Vec<(usize, Value)>,
    source: &str,
    default_db: Option<&str>,
) -> anyhow::Result<BTreeMap<String, Vec<Record>>> {
    let mut by_db: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for (line_no, value) in lines {
        let (db, record) =
            record(value, default_db).with_context(|| format!("{source}:{line_no}"))?;
        by_db.entry(db).or_default().push(record);
    }
    Ok(by_db)
}

/// (line number, JSON value) of every non-blank line.
fn json_lines(text: &str, source: &str) -> anyhow::Result<Vec<(usize, Value)>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let value = serde_json::from_str(line).with_context(|| {
                format!(
                    "{source}:{}: not JSON (JSON lines hold one record per line; send one document \
                     laid out over lines as application/json, or in a .json file)",
                    index + 1
                )
            })?;
            Ok((index + 1, value))
        })
        .collect()
}

/// CSV rows as the JSON-lines shape: `db`, `origin_db`, `id` and `text` columns as they are,
/// every other non-empty cell into `metadata` (numbers as numbers).
fn csv_rows(text: &str, source: &str) -> anyhow::Result<Vec<(usize, Value)>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .with_context(|| format!("{source}: no header row"))?
        .clone();
    let mut rows = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let line_no = index + 2;
        let row = row.with_context(|| format!("{source}:{line_no}: not CSV"))?;
        let mut object = Map::new();
        let mut metadata = Map::new();
        for (header, cell) in headers
            .iter()
            .zip(row.iter())
            .filter(|(_, cell)| !cell.trim().is_empty())
        {
            match header {
                "db" | "origin_db" | "id" | "text" => {
                    object.insert(header.to_string(), Value::from(cell));
                }
                _ => {
                    let value = cell
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map_or_else(|| Value::from(cell), Value::Number);
                    metadata.insert(header.to_string(), value);
                }
            }
        }
        object.insert("metadata".to_string(), Value::Object(metadata));
        rows.push((line_no, Value::Object(object)));
    }
    Ok(rows)
}

/// Longest database, origin or record id, in bytes (the component's bound on names).
pub const MAX_NAME_BYTES: usize = 256;
/// Largest metadata object, serialised.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// Longest record text.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

fn check_size(what: &str, bytes: usize, max: usize) -> anyhow::Result<()> {
    if bytes > max {
        bail!("{what} is {bytes} bytes; at most {max} are accepted");
    }
    Ok(())
}

fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn record(value: Value, default_db: Option<&str>) -> anyhow::Result<(String, Record)> {
    let Value::Object(object) = value else {
        bail!("a record must be a JSON object")
    };
    if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        bail!(
            "unknown field {unknown:?}: a record has {}",
            FIELDS.join(", ")
        );
    }
    let db = field(&object, "db")
        .or(default_db)
        .context("no \"db\" field and no --db")?
        .to_string();
    let id = match object.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => bail!("a record needs a non-empty \"id\""),
    };
    let origin_db = field(&object, "origin_db")
        .or_else(|| default_origin(&db))
        .with_context(|| format!("no \"origin_db\" for database {db:?}"))?
        .to_string();
    let metadata = match object.get("metadata") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(_) => bail!("\"metadata\" must be an object"),
    };
    let text = match field(&object, "text") {
        Some(text) => text.to_string(),
        None => {
            let fields = metadata.as_object().expect("metadata is an object");
            TEXT_FIELDS
                .iter()
                .filter_map(|key| field(fields, key))
                .collect::<Vec<_>>()
                .join(". ")
        }
    };
    check_size("\"db\"", db.len(), MAX_NAME_BYTES)?;
    check_size("\"origin_db\"", origin_db.len(), MAX_NAME_BYTES)?;
    check_size("\"id\"", id.len(), MAX_NAME_BYTES)?;
    check_size("\"text\"", text.len(), MAX_TEXT_BYTES)?;
    check_size(
        "\"metadata\"",
        metadata.to_string().len(),
        MAX_METADATA_BYTES,
    )?;
    Ok((
        db,
        Record {
            origin_db,
            id,
            text,
            metadata,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_record_has_exactly_the_fields_the_reader_takes() {
        let schema =
            serde_json::to_value(<RecordFields as utoipa::PartialSchema>::schema()).unwrap();
        let mut documented: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut read = FIELDS.to_vec();
        documented.sort_unstable();
        read.sort_unstable();
        assert_eq!(documented, read);
    }

    #[test]
    fn each_format_reads_what_its_name_says_and_refusals_say_how_to_send_the_other() {
        let pretty = "{\n  \"db\": \"bots\",\n  \"id\": \"b1\",\n  \"text\": \"t\"\n}\n";
        let lines = "{\"db\": \"bots\", \"id\": \"b1\", \"text\": \"t\"}\n{\"db\": \"bots\", \"id\": \"b2\", \"text\": \"t\"}\n";
        let count = |text: &str, format: Format| {
            parse_records(text, format, "body", None).map(|by_db| by_db["bots"].len())
        };
        assert_eq!(count(pretty, Format::Json).unwrap(), 1);
        assert_eq!(
            count(&format!("[{pretty}, {pretty}]"), Format::Json).unwrap(),
            2
        );
        assert_eq!(count(lines, Format::JsonLines).unwrap(), 2);
        assert_eq!(count(pretty, Format::JsonAny).unwrap(), 1);
        assert_eq!(count(lines, Format::JsonAny).unwrap(), 2);
        let refused = format!("{:#}", count(lines, Format::Json).unwrap_err());
        assert!(refused.contains("application/x-ndjson"), "{refused}");
        let refused = format!("{:#}", count(pretty, Format::JsonLines).unwrap_err());
        assert!(refused.contains("as application/json"), "{refused}");
        for (name, format) in [
            ("r.json", Format::Json),
            ("r.JSONL", Format::JsonLines),
            ("r.ndjson", Format::JsonLines),
            ("r.csv", Format::Csv),
            ("r.txt", Format::JsonAny),
        ] {
            assert_eq!(Format::of_file(Path::new(name)), format, "{name}");
        }
    }
}
