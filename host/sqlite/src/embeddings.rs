//! Embeddings: pending records found by keyset paging, each batch embedded and written in one
//! transaction.

use rusqlite::{params, OptionalExtension};
use vector_service_runtime::api::{BackendError, EmbedReport};
use vector_service_runtime::backends::embedder::{embed_batch, StoredText};
use vector_service_runtime::backends::records::now_ms;
use vector_service_runtime::backends::EmbeddingStore;

use crate::error::backend_error;
use crate::indexed_vectors::next_seq;
use crate::SqliteStore;

fn vector_to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_to_vector(blob: &[u8]) -> Vec<f32> {
    blob.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

impl EmbeddingStore for SqliteStore {
    fn databases(&self) -> Result<Vec<String>, BackendError> {
        let connection = self.connection()?;
        let mut statement = connection
            .prepare_cached("SELECT name FROM databases ORDER BY name")
            .map_err(backend_error)?;
        statement
            .query_map([], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(backend_error)
    }

    fn pending(
        &self,
        db: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError> {
        let connection = self.connection()?;
        let known: Option<String> = connection
            .query_row("SELECT name FROM databases WHERE name = ?1", [db], |row| {
                row.get(0)
            })
            .optional()
            .map_err(backend_error)?;
        if known.is_none() {
            return Err(BackendError::Failed(format!("unknown database {db:?}")));
        }
        let mut statement = connection
            .prepare_cached(
                "SELECT r.id FROM records r
                 LEFT JOIN embeddings e ON e.db = r.db AND e.id = r.id
                 WHERE r.db = ?1 AND (?2 IS NULL OR r.id > ?2)
                   AND (e.id IS NULL OR e.text_hash != r.text_hash OR e.embedding_version != ?3)
                 ORDER BY r.id LIMIT ?4",
            )
            .map_err(backend_error)?;
        statement
            .query_map(params![db, after, self.embedder.version(), limit], |row| {
                row.get(0)
            })
            .and_then(Iterator::collect)
            .map_err(backend_error)
    }

    fn embed(&self, db: &str, ids: &[String]) -> Result<EmbedReport, BackendError> {
        // Read, embed outside the lock, then write the whole batch in one transaction.
        let mut texts: Vec<StoredText> = Vec::with_capacity(ids.len());
        {
            let connection = self.connection()?;
            let mut statement = connection
                .prepare_cached("SELECT text, text_hash FROM records WHERE db = ?1 AND id = ?2")
                .map_err(backend_error)?;
            for id in ids {
                let row: Option<(String, i64)> = statement
                    .query_row(params![db, id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
                    .map_err(backend_error)?;
                if let Some((text, hash)) = row {
                    texts.push((id.clone(), text, hash));
                }
            }
        }
        embed_batch(
            self.embedder.as_ref(),
            ids.len(),
            texts,
            |texts, vectors| {
                let mut connection = self.writer()?;
                let tx = connection.transaction().map_err(backend_error)?;
                let created_at = now_ms();
                let seq = next_seq(&tx)?;
                {
                    let mut store = tx
                        .prepare_cached(
                            "INSERT OR REPLACE INTO embeddings (db, id, vector, text_hash, embedding_version, kind, source_id, created_at, seq)
                             VALUES (?1, ?2, ?3, ?4, ?5, 'text', ?2, ?6, ?7)",
                        )
                        .map_err(backend_error)?;
                    for ((id, _, hash), vector) in texts.iter().zip(&vectors) {
                        store
                            .execute(params![
                                db,
                                id,
                                vector_to_blob(vector),
                                hash,
                                self.embedder.version(),
                                created_at,
                                seq
                            ])
                            .map_err(backend_error)?;
                    }
                }
                tx.commit().map_err(backend_error)
            },
        )
    }
}
