//! Keeps a [`LexicalIndex`] in step with the SQLite store it caches, through the same change
//! clock as the vector index: every write of a record stamps it with the clock's new `seq`,
//! every deletion leaves a tombstone with its own. The index remembers the `seq` it reflects
//! and, before a search, replays what any process wrote since. The same replay keeps the
//! copies of what each record's hit shows ([`HitCopies`]).
//!
//! It lives in memory, and is kept beside the store as a snapshot (`<file>.lexical`: the
//! index, the copies and the `seq` they reflect, under a checksum), written when it changed by
//! [`IndexedText::save_if_changed`] (after a tenant opens, and when the store closes). A
//! process opening the store loads the snapshot and replays what was written since, instead of
//! tokenising every record again; a snapshot that is missing, damaged, of another version or
//! ahead of the database is rebuilt from the table (docs/decisions/0015-lexical-snapshot.md).

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use vector_service_runtime::api::BackendError;
use vector_service_runtime::backends::byte_codec::{ByteReader, ByteWriter, Malformed};
use vector_service_runtime::backends::LexicalIndex;

use crate::backend_error;
use crate::hit_copies::HitCopies;
use crate::indexed_vectors::{current_seq, deleted_since};

/// The snapshot file's first bytes: what it is and the layout of what follows.
const SNAPSHOT_MAGIC: &[u8; 8] = b"vslexic1";

/// The index, the records' hit copies, and the change-clock `seq` both reflect.
pub(crate) struct IndexedText {
    pub(crate) index: LexicalIndex,
    pub(crate) hits: HitCopies,
    seq: i64,
    /// The `seq` of the snapshot on disk, if one was written or loaded.
    saved_seq: Option<i64>,
}

/// Where the snapshot of the store at `database` is kept.
pub(crate) fn snapshot_path(database: &Path) -> PathBuf {
    PathBuf::from(format!("{}.lexical", database.display()))
}

impl IndexedText {
    /// The store's index: its snapshot at `snapshot` brought up to date, else every record of
    /// the store indexed; copies up to `hit_copy_budget` bytes.
    pub(crate) fn open(
        connection: &Connection,
        snapshot: &Path,
        hit_copy_budget: usize,
    ) -> Result<Self, BackendError> {
        let newest = current_seq(connection)?;
        match Self::load(snapshot, newest, hit_copy_budget) {
            Ok(Some(mut loaded)) => {
                loaded.catch_up(connection)?;
                return Ok(loaded);
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(snapshot = %snapshot.display(), %why, "rebuilding the lexical index")
            }
        }
        Self::build(connection, hit_copy_budget)
    }

    /// Every record of the store, indexed, and copied up to `hit_copy_budget` bytes.
    fn build(connection: &Connection, hit_copy_budget: usize) -> Result<Self, BackendError> {
        let seq = current_seq(connection)?;
        let mut indexed = Self {
            index: LexicalIndex::new(),
            hits: HitCopies::new(hit_copy_budget),
            seq,
            saved_seq: None,
        };
        indexed.add_rows(
            connection,
            "SELECT rowid, id, origin_db, text, metadata FROM records",
            None,
        )?;
        Ok(indexed)
    }

    /// The snapshot at `path`, unless there is none (`Ok(None)`); an error says why one that
    /// exists cannot be used.
    fn load(path: &Path, newest: i64, hit_copy_budget: usize) -> Result<Option<Self>, String> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        let malformed = |Malformed(why)| why.to_string();
        let body = bytes
            .strip_prefix(SNAPSHOT_MAGIC)
            .ok_or("not a lexical snapshot of this version")?;
        let mut header = ByteReader::new(body.get(..12).ok_or("cut short")?);
        let seq = header.u64().map_err(malformed)? as i64;
        let checksum = header.u32().map_err(malformed)?;
        let body = &body[12..];
        if crc32fast::hash(body) != checksum {
            return Err("its checksum does not match".into());
        }
        // Ahead of the database (the file was restored from an older backup and the snapshot
        // was not): it covers writes the database does not have.
        if seq > newest {
            return Err(format!(
                "it reflects seq {seq}, the database is at {newest}"
            ));
        }
        let mut input = ByteReader::new(body);
        let index_len = input.u64().map_err(malformed)? as usize;
        let index_bytes = body
            .get(8..8usize.saturating_add(index_len))
            .ok_or("cut short")?;
        let index = LexicalIndex::from_bytes(index_bytes).map_err(|error| error.to_string())?;
        let mut input = ByteReader::new(&body[8 + index_len..]);
        let hits = HitCopies::read(&mut input, hit_copy_budget).map_err(malformed)?;
        input.finish().map_err(malformed)?;
        Ok(Some(Self {
            index,
            hits,
            seq,
            saved_seq: Some(seq),
        }))
    }

    /// Write the snapshot to `path` if none was written or loaded yet: after the index was
    /// built from the table, so the next process loads it. Later changes are saved once, when
    /// the store closes ([`IndexedText::save_if_changed`]), not after every write.
    pub(crate) fn save_if_unsaved(&mut self, path: &Path) -> Result<bool, BackendError> {
        if self.saved_seq.is_some() {
            return Ok(false);
        }
        self.save_if_changed(path)
    }

    /// Write the snapshot to `path` if the index changed since the last one (whole, under a
    /// temporary name, then renamed over the old one).
    pub(crate) fn save_if_changed(&mut self, path: &Path) -> Result<bool, BackendError> {
        if self.saved_seq == Some(self.seq) {
            return Ok(false);
        }
        // Magic, seq and checksum first (the last two filled in once the body is written),
        // then the index's length, the index and the copies.
        let mut file = Vec::with_capacity(self.index.heap_bytes() / 2 + self.hits.bytes());
        file.extend_from_slice(SNAPSHOT_MAGIC);
        file.extend_from_slice(&[0; 12]);
        let index = self.index.to_bytes();
        file.extend_from_slice(&(index.len() as u64).to_le_bytes());
        file.extend_from_slice(&index);
        drop(index);
        let mut hits = ByteWriter::default();
        self.hits.write(&mut hits);
        file.extend_from_slice(&hits.into_bytes());
        let checksum = crc32fast::hash(&file[SNAPSHOT_MAGIC.len() + 12..]);
        file[8..16].copy_from_slice(&(self.seq as u64).to_le_bytes());
        file[16..20].copy_from_slice(&checksum.to_le_bytes());
        let partial = path.with_extension("lexical-partial");
        std::fs::write(&partial, &file)
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|error| {
                let _ = std::fs::remove_file(&partial);
                BackendError::Failed(format!(
                    "writing the lexical snapshot {}: {error}",
                    path.display()
                ))
            })?;
        self.saved_seq = Some(self.seq);
        Ok(true)
    }

    /// Bytes the index and the copies hold in memory.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.index.heap_bytes() + self.hits.bytes()
    }

    /// Whether the index reflects every change up to `newest`.
    pub(crate) fn is_current(&self, newest: i64) -> bool {
        self.seq >= newest
    }

    /// Apply every change written after the `seq` this index reflects. Returns how many.
    pub(crate) fn catch_up(&mut self, connection: &Connection) -> Result<usize, BackendError> {
        let newest = current_seq(connection)?;
        if self.is_current(newest) {
            return Ok(0);
        }
        let removed = deleted_since(connection, self.seq)?;
        for key in &removed {
            self.index.remove(*key);
            self.hits.remove(*key);
        }
        // Removals first: a rowid freed by a deletion may belong to a newer record now.
        let added = self.add_rows(
            connection,
            "SELECT rowid, id, origin_db, text, metadata FROM records WHERE seq > ?1",
            Some(self.seq),
        )?;
        self.seq = newest;
        Ok(removed.len() + added)
    }

    fn add_rows(
        &mut self,
        connection: &Connection,
        sql: &str,
        after: Option<i64>,
    ) -> Result<usize, BackendError> {
        let mut statement = connection.prepare_cached(sql).map_err(backend_error)?;
        let mut rows = match after {
            Some(seq) => statement.query([seq]),
            None => statement.query([]),
        }
        .map_err(backend_error)?;
        let mut added = 0;
        while let Some(row) = rows.next().map_err(backend_error)? {
            let key: i64 = row.get(0).map_err(backend_error)?;
            let id: String = row.get(1).map_err(backend_error)?;
            let origin: String = row.get(2).map_err(backend_error)?;
            let text: String = row.get(3).map_err(backend_error)?;
            let metadata: String = row.get(4).map_err(backend_error)?;
            self.index.upsert(key as u64, &id, &origin, &text);
            self.hits.put(key as u64, origin, id, metadata);
            added += 1;
        }
        Ok(added)
    }
}
