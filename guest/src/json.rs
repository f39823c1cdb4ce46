//! Reading record metadata, which backends hand over as JSON object text.

use serde_json::{Map, Value};

/// The metadata as an object, when it is one.
pub fn parse_object(metadata: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(metadata) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// The metadata as an object; anything that is not a JSON object reads as empty.
pub fn object(metadata: &str) -> Map<String, Value> {
    parse_object(metadata).unwrap_or_default()
}

/// The first of `keys` that is present and not null, with its value.
pub fn first_present<'a>(map: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter()
        .filter_map(|key| map.get(*key))
        .find(|value| !value.is_null())
}

/// A scalar value as text (strings unquoted); `None` for null, arrays and objects.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The first of `keys` whose value is non-empty text (after trimming).
pub fn first_text(map: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .filter_map(|key| map.get(*key).and_then(scalar_text))
        .find(|text| !text.trim().is_empty())
}
