//! The index as bytes, so a store can keep it beside its records and load it on open instead
//! of tokenising and stemming every record again (docs/decisions/0015-lexical-snapshot.md).
//!
//! Little-endian `u32`s and length-prefixed UTF-8: the origins, the terms in id order, each
//! term's postings, then per slot its length, origin and (when live) key and id. A document's
//! term list is not written: it is the set of terms whose postings name its slot, rebuilt in
//! term order, which is the order [`LexicalIndex::upsert`] keeps it in. Every read is
//! bounds-checked, so bytes that are cut short or made up give an error, never a panic.

use super::{Document, LexicalIndex, REMOVED};
use crate::backends::byte_codec::{ByteReader, ByteWriter, Malformed};

/// Bumped whenever the layout, or what a term is (tokenising, stemming), changes: bytes of
/// another version are refused and the index is rebuilt from the records.
pub const ENCODING_VERSION: u32 = 1;

/// Why bytes could not be read back as an index.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Written by another version of the layout.
    #[error("lexical index version {found}, this build reads {ENCODING_VERSION}")]
    Version {
        /// The version found.
        found: u32,
    },
    /// The bytes end early or hold a value out of range.
    #[error("lexical index bytes are malformed: {0}")]
    Malformed(&'static str),
}

impl From<Malformed> for DecodeError {
    fn from(Malformed(why): Malformed) -> Self {
        Self::Malformed(why)
    }
}

impl LexicalIndex {
    /// The index as bytes, for [`LexicalIndex::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = ByteWriter::with_capacity(self.heap_bytes() / 2);
        out.u32(ENCODING_VERSION);
        out.count(self.origins.len());
        for origin in &self.origins {
            out.str(origin);
        }
        let mut terms: Vec<(&str, u32)> =
            self.terms.iter().map(|(term, &id)| (&**term, id)).collect();
        terms.sort_unstable_by_key(|&(_, id)| id);
        out.count(terms.len());
        for (term, _) in &terms {
            out.str(term);
        }
        for postings in &self.postings {
            out.count(postings.len());
            for &(slot, frequency) in postings {
                out.u32(slot);
                out.u32(frequency);
            }
        }
        out.count(self.documents.len());
        for (slot, document) in self.documents.iter().enumerate() {
            out.u32(self.slot_lengths[slot]);
            out.u32(self.slot_origins[slot]);
            if let Some(document) = document {
                out.u64(document.key);
                out.str(&document.id);
            }
        }
        out.into_bytes()
    }

    /// The index [`LexicalIndex::to_bytes`] wrote, checked as it is read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut input = ByteReader::new(bytes);
        let version = input.u32()?;
        if version != ENCODING_VERSION {
            return Err(DecodeError::Version { found: version });
        }
        let mut index = Self::new();
        for _ in 0..input.count(4)? {
            index.origins.push(input.str()?.into());
        }
        let term_count = input.count(4)?;
        for id in 0..term_count {
            let term = input.str()?;
            index.counted.term_bytes += term.len();
            if index.terms.insert(term.into(), id as u32).is_some() {
                return Err(DecodeError::Malformed("a term written twice"));
            }
        }
        index.postings.reserve_exact(term_count);
        for _ in 0..term_count {
            let count = input.count(8)?;
            let mut postings = Vec::with_capacity(count);
            for _ in 0..count {
                postings.push((input.u32()?, input.u32()?));
            }
            if !postings.is_sorted_by(|a, b| a.0 < b.0) {
                return Err(DecodeError::Malformed("postings out of slot order"));
            }
            index.counted.postings += count;
            index.postings.push(postings);
        }
        let slot_count = input.count(8)?;
        let mut per_slot = vec![0u32; slot_count];
        for postings in &index.postings {
            for &(slot, _) in postings {
                *per_slot
                    .get_mut(slot as usize)
                    .ok_or(DecodeError::Malformed("a posting past the last slot"))? += 1;
            }
        }
        let mut term_lists: Vec<Vec<u32>> = per_slot
            .iter()
            .map(|&n| Vec::with_capacity(n as usize))
            .collect();
        for (term_id, postings) in index.postings.iter().enumerate() {
            for &(slot, _) in postings {
                term_lists[slot as usize].push(term_id as u32);
            }
        }
        for (slot, terms) in term_lists.into_iter().enumerate() {
            let length = input.u32()?;
            let origin = input.u32()?;
            if origin == REMOVED {
                if !terms.is_empty() {
                    return Err(DecodeError::Malformed("a removed slot with postings"));
                }
                index.documents.push(None);
            } else {
                if origin as usize >= index.origins.len() {
                    return Err(DecodeError::Malformed("an unknown origin"));
                }
                let key = input.u64()?;
                let id = input.str()?;
                index.counted.document_bytes += id.len() + terms.len() * size_of::<u32>();
                if index.slots.insert(key, slot as u32).is_some() {
                    return Err(DecodeError::Malformed("a key written twice"));
                }
                index.documents.push(Some(Document {
                    key,
                    id: id.into(),
                    terms: terms.into_boxed_slice(),
                }));
                index.total_length += u64::from(length);
            }
            index.slot_lengths.push(length);
            index.slot_origins.push(origin);
        }
        input.finish()?;
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Counted;
    use super::*;

    /// What [`Counted`] is checked against in the tests: recounted from scratch.
    fn recount(index: &LexicalIndex) -> Counted {
        Counted {
            term_bytes: index.terms.keys().map(|term| term.len()).sum(),
            word_bytes: index.word_terms.keys().map(|word| word.len()).sum(),
            postings: index.postings.iter().map(Vec::len).sum(),
            document_bytes: index
                .documents
                .iter()
                .flatten()
                .map(|document| document.id.len() + document.terms.len() * size_of::<u32>())
                .sum(),
        }
    }

    fn sample() -> LexicalIndex {
        let mut index = LexicalIndex::new();
        index.upsert(
            7,
            "e-1",
            "error",
            "upload failed: disk full on the upload host",
        );
        index.upsert(9, "b-2", "bot", "a bot that retries failed uploads");
        index.upsert(12, "w-3", "workflow", "nightly report workflow");
        index.upsert(13, "e-4", "error", "queue stuck after deploy");
        index.remove(12);
        index
    }

    #[test]
    fn an_index_read_back_answers_as_the_one_written() {
        let index = sample();
        let read = LexicalIndex::from_bytes(&index.to_bytes()).unwrap();
        for query in [
            "upload failed",
            "bot retries",
            "nightly report",
            "queue deploy",
        ] {
            assert_eq!(
                read.search(query, 10, &[]).unwrap(),
                index.search(query, 10, &[]).unwrap(),
                "{query}"
            );
        }
        assert_eq!(
            read.search("failed", 10, &["bot".into()]).unwrap(),
            index.search("failed", 10, &["bot".into()]).unwrap()
        );
        assert_eq!(read.len(), 3);
        let (written, reread) = (recount(&index), recount(&read));
        assert_eq!(
            (reread.term_bytes, reread.postings, reread.document_bytes),
            (written.term_bytes, written.postings, written.document_bytes)
        );
        let counted = read.counted;
        assert_eq!(
            (counted.term_bytes, counted.postings, counted.document_bytes),
            (reread.term_bytes, reread.postings, reread.document_bytes),
            "the counts behind heap_bytes are kept on read"
        );
    }

    #[test]
    fn an_index_read_back_takes_changes_as_one_built_in_place() {
        let mut read = LexicalIndex::from_bytes(&sample().to_bytes()).unwrap();
        let mut index = sample();
        for changed in [&mut read, &mut index] {
            changed.upsert(9, "b-2", "bot", "a bot that restarts stuck queues");
            changed.upsert(20, "e-5", "error", "upload quota exceeded");
            changed.remove(7);
        }
        for query in ["upload", "stuck queues", "bot"] {
            assert_eq!(
                read.search(query, 10, &[]).unwrap(),
                index.search(query, 10, &[]).unwrap(),
                "{query}"
            );
        }
    }

    #[test]
    fn bytes_cut_short_or_of_another_version_are_refused() {
        let bytes = sample().to_bytes();
        for cut in [0, 3, 4, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                LexicalIndex::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut other = bytes.clone();
        other[0] = 99;
        assert!(matches!(
            LexicalIndex::from_bytes(&other),
            Err(DecodeError::Version { found: 99 })
        ));
        let mut longer = bytes;
        longer.push(0);
        assert!(LexicalIndex::from_bytes(&longer).is_err());
    }
}
