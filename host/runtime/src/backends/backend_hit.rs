//! Making a [`BackendHit`]: every backend reads the record id its metadata names, natively,
//! so the component never parses JSON on a search (the WIT's `backend-hit.record-id`).

use serde::Deserialize;
use serde_json::Value;

use crate::api::BackendHit;

/// Metadata keys that name a record, in the order the original module looked them up.
pub const RECORD_ID_KEYS: [&str; 6] = ["id", "wid", "bid", "record_id", "info_id", "item_id"];

/// Just the keys that can name a record; every other field is skipped without being built.
/// (A JSON `null` reads as absent, as the original's lookup skipped it.)
#[derive(Deserialize)]
struct RecordIdKeys {
    id: Option<Value>,
    wid: Option<Value>,
    bid: Option<Value>,
    record_id: Option<Value>,
    info_id: Option<Value>,
    item_id: Option<Value>,
}

impl RecordIdKeys {
    fn first_present(self) -> Option<Value> {
        self.id
            .or(self.wid)
            .or(self.bid)
            .or(self.record_id)
            .or(self.info_id)
            .or(self.item_id)
    }
}

/// A scalar as text (strings unquoted); `None` for null, arrays and objects.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The record id `metadata` names: the first of [`RECORD_ID_KEYS`] present and not null, as
/// text; `None` when that is an array or object or no key is present.
pub fn record_id_of(metadata: &Value) -> Option<String> {
    let object = metadata.as_object()?;
    RECORD_ID_KEYS
        .iter()
        .filter_map(|key| object.get(*key))
        .find(|value| !value.is_null())
        .and_then(scalar_text)
}

/// The record id named by metadata text, and whether the text is a JSON object at all.
fn read_metadata(text: &str) -> (Option<String>, bool) {
    match serde_json::from_str::<RecordIdKeys>(text) {
        Ok(keys) => (keys.first_present().as_ref().and_then(scalar_text), true),
        // Not an object, or an object the narrow reader refuses (a key given twice): read it
        // whole, as the original did (the last of a repeated key wins).
        Err(_) => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => (record_id_of(&value), true),
            _ => (None, false),
        },
    }
}

impl BackendHit {
    /// A hit whose metadata is JSON text as the store keeps it: its record id is read from it,
    /// and text that is not a JSON object is passed on as `{}`.
    pub fn new(
        origin_db: String,
        id: String,
        score: f64,
        reason: String,
        metadata: String,
    ) -> Self {
        let (record_id, is_object) = read_metadata(&metadata);
        BackendHit {
            origin_db,
            id,
            record_id,
            score,
            reason,
            metadata: if is_object { metadata } else { "{}".into() },
        }
    }

    /// A hit whose metadata the store holds parsed.
    pub fn from_value(
        origin_db: String,
        id: String,
        score: f64,
        reason: String,
        metadata: &Value,
    ) -> Self {
        let is_object = metadata.is_object();
        BackendHit {
            origin_db,
            id,
            record_id: record_id_of(metadata),
            score,
            reason,
            metadata: if is_object {
                metadata.to_string()
            } else {
                "{}".into()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(metadata: &str) -> BackendHit {
        BackendHit::new(
            "bot".into(),
            "7".into(),
            1.0,
            String::new(),
            metadata.into(),
        )
    }

    #[test]
    fn the_first_present_key_names_the_record_as_text() {
        assert_eq!(
            hit(r#"{"name":"x","wid":"w1","id":null}"#)
                .record_id
                .as_deref(),
            Some("w1")
        );
        assert_eq!(
            hit(r#"{"item_id":12,"bid":true}"#).record_id.as_deref(),
            Some("true")
        );
        assert_eq!(
            hit(r#"{"record_id":1.5}"#).record_id.as_deref(),
            Some("1.5")
        );
        assert_eq!(hit(r#"{"name":"x"}"#).record_id, None);
        // The first present value decides, even when it is not a scalar.
        assert_eq!(hit(r#"{"id":[1],"wid":"w1"}"#).record_id, None);
        // A repeated key: the last one wins, as a whole-object read does.
        assert_eq!(
            hit(r#"{"id":"a","id":"b"}"#).record_id.as_deref(),
            Some("b")
        );
    }

    #[test]
    fn metadata_that_is_not_an_object_is_passed_on_as_empty() {
        for text in ["[1,2]", "\"id\"", "not json", ""] {
            let hit = hit(text);
            assert_eq!(
                (hit.metadata.as_str(), hit.record_id),
                ("{}", None),
                "{text}"
            );
        }
        let kept = hit(r#"{"id":"a"}"#);
        assert_eq!(kept.metadata, r#"{"id":"a"}"#);
    }

    #[test]
    fn parsed_metadata_reads_the_same_as_its_text() {
        for value in [
            json!({"bid": 3, "x": {"id": 1}}),
            json!({"id": null}),
            json!([1]),
        ] {
            let from_value =
                BackendHit::from_value("b".into(), "1".into(), 0.0, String::new(), &value);
            let from_text = hit(&value.to_string());
            assert_eq!(from_value.record_id, from_text.record_id, "{value}");
            assert_eq!(
                from_value.metadata.is_empty(),
                from_text.metadata.is_empty()
            );
        }
    }
}
