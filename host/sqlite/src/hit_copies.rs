//! What a hit shows of each record (origin, ids, metadata), copied from the file beside the
//! text index, so that a lexical search answers from memory instead of reading its records
//! back with a statement of its own. The copies are kept exactly as current as the index:
//! they are written and dropped by the same replay of the change clock, and the file stays
//! the truth. A byte budget bounds them; records past it are read from the file.

use std::collections::HashMap;

use vector_service_runtime::api::BackendHit;
use vector_service_runtime::backends::byte_codec::{ByteReader, ByteWriter, Malformed};

/// Bytes of copies a store keeps unless told otherwise ([`crate::SqliteStore::with_hit_copy_budget`]).
pub const DEFAULT_HIT_COPY_BUDGET: usize = 64 << 20;

/// Bytes counted per copy on top of its text: the copy itself and its map entry.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<HitFields>() + 2 * std::mem::size_of::<u64>();

/// What a hit shows of one record; the score and reason are the search's.
struct HitFields {
    origin_db: String,
    id: String,
    record_id: Option<String>,
    metadata: String,
}

/// Copies of records' hit fields by key (rowid), within a byte budget.
pub(crate) struct HitCopies {
    by_key: HashMap<u64, HitFields>,
    bytes: usize,
    budget: usize,
}

impl HitCopies {
    /// No copies yet; at most `budget` bytes of them.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            by_key: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    /// Copy the record under `key`, replacing its earlier copy; when it does not fit the
    /// budget, only drop the earlier copy (a search then reads the record from the file).
    pub(crate) fn put(&mut self, key: u64, origin_db: String, id: String, metadata: String) {
        self.remove(key);
        // A record that cannot fit is refused before its metadata is read.
        let at_least = ENTRY_OVERHEAD + origin_db.len() + id.len() + metadata.len().min(2);
        if self.bytes + at_least > self.budget {
            return;
        }
        // Read once here, not on every search: the record id its metadata names.
        let hit = BackendHit::new(origin_db, id, 0.0, String::new(), metadata);
        let copy = HitFields {
            origin_db: hit.origin_db,
            id: hit.id,
            record_id: hit.record_id,
            metadata: hit.metadata,
        };
        let size = Self::size(&copy);
        if self.bytes + size <= self.budget {
            self.bytes += size;
            self.by_key.insert(key, copy);
        }
    }

    /// Bytes of copies held (within the budget).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Drop the copy under `key`, if any.
    pub(crate) fn remove(&mut self, key: u64) {
        if let Some(copy) = self.by_key.remove(&key) {
            self.bytes -= Self::size(&copy);
        }
    }

    /// The hit for the record under `key` with `score` and `reason`, if it is copied.
    pub(crate) fn hit(&self, key: u64, score: f64, reason: &str) -> Option<BackendHit> {
        self.by_key.get(&key).map(|copy| BackendHit {
            origin_db: copy.origin_db.clone(),
            id: copy.id.clone(),
            record_id: copy.record_id.clone(),
            score,
            reason: reason.to_owned(),
            metadata: copy.metadata.clone(),
        })
    }

    /// The copies as [`HitCopies::read`] takes them back.
    pub(crate) fn write(&self, out: &mut ByteWriter) {
        out.count(self.by_key.len());
        for (&key, copy) in &self.by_key {
            out.u64(key);
            out.str(&copy.origin_db);
            out.str(&copy.id);
            // The record id is kept as read, so loading parses no metadata.
            match &copy.record_id {
                Some(record_id) => {
                    out.u32(1);
                    out.str(record_id);
                }
                None => out.u32(0),
            }
            out.str(&copy.metadata);
        }
    }

    /// Copies [`HitCopies::write`] wrote, as many as fit `budget`.
    pub(crate) fn read(input: &mut ByteReader<'_>, budget: usize) -> Result<Self, Malformed> {
        let mut copies = Self::new(budget);
        for _ in 0..input.count(8 + 4 * 4)? {
            let key = input.u64()?;
            let origin_db = input.str()?;
            let id = input.str()?;
            let record_id = match input.u32()? {
                0 => None,
                1 => Some(input.str()?.to_owned()),
                _ => return Err(Malformed("a record id flag other than 0 or 1")),
            };
            let metadata = input.str()?;
            let copy = HitFields {
                origin_db: origin_db.to_owned(),
                id: id.to_owned(),
                record_id,
                metadata: metadata.to_owned(),
            };
            let size = Self::size(&copy);
            if copies.bytes + size <= copies.budget && copies.by_key.insert(key, copy).is_none() {
                copies.bytes += size;
            }
        }
        Ok(copies)
    }

    fn size(copy: &HitFields) -> usize {
        ENTRY_OVERHEAD
            + copy.origin_db.len()
            + copy.id.len()
            + copy.metadata.len()
            + copy.record_id.as_ref().map_or(0, String::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(copies: &mut HitCopies, key: u64, metadata: &str) {
        copies.put(key, "bot".into(), format!("b{key}"), metadata.into());
    }

    #[test]
    fn a_copy_reads_its_record_id_once_and_is_replaced_by_the_next() {
        let mut copies = HitCopies::new(DEFAULT_HIT_COPY_BUDGET);
        put(&mut copies, 1, r#"{"wid":"w1"}"#);
        let hit = copies.hit(1, 0.5, "bm25").expect("copied");
        assert_eq!(
            (
                hit.id.as_str(),
                hit.record_id.as_deref(),
                hit.score,
                hit.reason.as_str()
            ),
            ("b1", Some("w1"), 0.5, "bm25")
        );
        put(&mut copies, 1, "not json");
        let hit = copies.hit(1, 1.0, "bm25").expect("still copied");
        assert_eq!((hit.metadata.as_str(), hit.record_id), ("{}", None));
        copies.remove(1);
        assert!(copies.hit(1, 1.0, "bm25").is_none());
        assert_eq!((copies.by_key.len(), copies.bytes), (0, 0));
    }

    #[test]
    fn copies_read_back_as_written_within_the_reader_s_budget() {
        let mut copies = HitCopies::new(DEFAULT_HIT_COPY_BUDGET);
        put(&mut copies, 1, r#"{"wid":"w1"}"#);
        put(&mut copies, 2, r#"{"name":"two"}"#);
        let mut out = ByteWriter::default();
        copies.write(&mut out);
        let bytes = out.into_bytes();
        let mut input = ByteReader::new(&bytes);
        let read = HitCopies::read(&mut input, DEFAULT_HIT_COPY_BUDGET).unwrap();
        input.finish().unwrap();
        assert_eq!(read.bytes, copies.bytes);
        for key in [1, 2] {
            assert_eq!(read.hit(key, 1.0, "bm25"), copies.hit(key, 1.0, "bm25"));
        }
        let one = read.bytes / 2 + 1;
        let fewer = HitCopies::read(&mut ByteReader::new(&bytes), one).unwrap();
        assert_eq!(fewer.by_key.len(), 1, "only what fits a smaller budget");
        assert!(HitCopies::read(&mut ByteReader::new(&bytes[..bytes.len() - 1]), one).is_err());
    }

    #[test]
    fn records_past_the_budget_are_not_copied_and_a_removal_makes_room() {
        let metadata = r#"{"name":"x"}"#;
        let one = ENTRY_OVERHEAD + "bot".len() + "b1".len() + metadata.len();
        let mut copies = HitCopies::new(2 * one);
        for key in 1..=3 {
            put(&mut copies, key, metadata);
        }
        assert_eq!(copies.by_key.len(), 2);
        assert!(copies.hit(3, 1.0, "bm25").is_none(), "past the budget");
        assert_eq!(copies.bytes, 2 * one);
        // A replacement that no longer fits drops the earlier copy rather than keep it stale.
        copies.put(
            2,
            "bot".into(),
            "b2".into(),
            format!(r#"{{"name":"{}"}}"#, "y".repeat(64)),
        );
        assert!(copies.hit(2, 1.0, "bm25").is_none());
        put(&mut copies, 3, metadata);
        assert!(
            copies.hit(3, 1.0, "bm25").is_some(),
            "room made by the drop"
        );
    }
}
