//! Answers as people and HTTP clients read them. The component's contract carries some JSON
//! inside strings (a hit's `metadata`, the compact `context`) so that any host can pass it on
//! untouched; in the JSON we print and serve it is embedded as JSON, not quoted again. Enum
//! values are written in the contract's own spelling (`primary`, not Rust's `Primary`).

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::value::RawValue;
use vector_service_runtime::api::{
    ContextResponse, Destination, Hit, SearchResponse, TrackResponse,
};

/// A string that holds JSON, written as that JSON; as a plain string when it does not parse
/// (a component is not trusted to keep its word).
struct EmbeddedJson<'a>(&'a str);

impl Serialize for EmbeddedJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<&RawValue>(self.0) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => self.0.serialize(serializer),
        }
    }
}

struct HitView<'a>(&'a Hit);

impl Serialize for HitView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let hit = self.0;
        let mut out = serializer.serialize_struct("Hit", 5)?;
        out.serialize_field("origin_db", &hit.origin_db)?;
        out.serialize_field("record_id", &hit.record_id)?;
        out.serialize_field("score", &hit.score)?;
        out.serialize_field("reason", &hit.reason)?;
        out.serialize_field("metadata", &EmbeddedJson(&hit.metadata))?;
        out.end()
    }
}

/// `Retriever.search`'s answer with each hit's metadata as a JSON object.
pub struct SearchAnswer<'a>(pub &'a SearchResponse);

impl Serialize for SearchAnswer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response = self.0;
        let hits: Vec<HitView<'_>> = response.hits.iter().map(HitView).collect();
        let mut out = serializer.serialize_struct("SearchResponse", 4)?;
        out.serialize_field("session_id", &response.session_id)?;
        out.serialize_field("hits", &hits)?;
        out.serialize_field("fallback", &response.fallback)?;
        out.serialize_field("from_cache", &response.from_cache)?;
        out.end()
    }
}

/// `ContextBuilder.build`'s answer with the compact context as a JSON object.
pub struct ContextAnswer<'a>(pub &'a ContextResponse);

impl Serialize for ContextAnswer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response = self.0;
        let mut out = serializer.serialize_struct("ContextResponse", 4)?;
        out.serialize_field("session_id", &response.session_id)?;
        out.serialize_field("context", &EmbeddedJson(&response.context))?;
        out.serialize_field("entries", &response.entries)?;
        out.serialize_field("from_cache", &response.from_cache)?;
        out.end()
    }
}

/// `PatchLogger.track_contributors`' answer with `written_to` as the WIT spells it.
pub struct TrackAnswer<'a>(pub &'a TrackResponse);

impl Serialize for TrackAnswer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response = self.0;
        let written_to = match response.written_to {
            Destination::Primary => "primary",
            Destination::Fallback => "fallback",
        };
        let mut out = serializer.serialize_struct("TrackResponse", 6)?;
        out.serialize_field("session_id", &response.session_id)?;
        out.serialize_field("status", &response.status)?;
        out.serialize_field("written_to", written_to)?;
        out.serialize_field("rows", &response.rows)?;
        out.serialize_field("roi_tag", &response.roi_tag)?;
        out.serialize_field("warnings", &response.warnings)?;
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(metadata: &str) -> Hit {
        Hit {
            origin_db: "bot".into(),
            record_id: Some("b1".into()),
            score: 0.5,
            reason: "bm25".into(),
            metadata: metadata.into(),
        }
    }

    #[test]
    fn metadata_and_context_are_embedded_as_json_and_other_text_stays_a_string() {
        let response = SearchResponse {
            session_id: "s".into(),
            hits: vec![
                hit(r#"{"name":"cert-renewer","tags":[1,2]}"#),
                hit("not json"),
            ],
            fallback: None,
            from_cache: false,
        };
        let value = serde_json::to_value(SearchAnswer(&response)).unwrap();
        assert_eq!(
            value,
            json!({"session_id": "s", "fallback": null, "from_cache": false, "hits": [
                {"origin_db": "bot", "record_id": "b1", "score": 0.5, "reason": "bm25",
                 "metadata": {"name": "cert-renewer", "tags": [1, 2]}},
                {"origin_db": "bot", "record_id": "b1", "score": 0.5, "reason": "bm25",
                 "metadata": "not json"}]})
        );
        let context = ContextResponse {
            session_id: "s".into(),
            context: r#"{"bots":[{"id":"b1"}]}"#.into(),
            entries: Vec::new(),
            from_cache: true,
        };
        let value = serde_json::to_value(ContextAnswer(&context)).unwrap();
        assert_eq!(value["context"], json!({"bots": [{"id": "b1"}]}));
        assert_eq!(value["from_cache"], json!(true));
    }
}
