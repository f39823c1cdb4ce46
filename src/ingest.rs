//! Reading records to ingest: JSON lines, one record per line.
//!
//! `{"db": "bots", "origin_db": "bot", "id": "bot-1", "text": "...", "metadata": {...}}`.
//! `db` may come from `--db`; `origin_db` defaults to the singular of a known database name;
//! `text` defaults to the metadata's descriptive fields joined.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::{Map, Value};
use vector_service_host::backends::Record;

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
fn default_origin(db: &str) -> Option<&'static str> {
    Some(match db {
        "bots" => "bot",
        "workflows" => "workflow",
        "errors" => "error",
        "code" => "code",
        "discrepancies" => "discrepancy",
        _ => return None,
    })
}

/// Records grouped by database, in file order within each.
pub fn read_records(
    path: &Path,
    default_db: Option<&str>,
) -> anyhow::Result<BTreeMap<String, Vec<Record>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut by_db: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line_no = index + 1;
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{line_no}: not JSON", path.display()))?;
        let (db, record) =
            record(value, default_db).with_context(|| format!("{}:{line_no}", path.display()))?;
        by_db.entry(db).or_default().push(record);
    }
    Ok(by_db)
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
