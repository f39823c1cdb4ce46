//! Embeddings: pending records found by keyset paging, each batch embedded and written in one
//! transaction.

use pgvector::Vector;
use vector_service_runtime::api::{BackendError, EmbedReport};
use vector_service_runtime::backends::embedder::{embed_batch, StoredText};
use vector_service_runtime::backends::records::now_ms;
use vector_service_runtime::backends::EmbeddingStore;

use crate::clock::advance_generation;
use crate::PostgresStore;

impl EmbeddingStore for PostgresStore {
    fn databases(&self) -> Result<Vec<String>, BackendError> {
        self.transaction(|tx| {
            Ok(tx
                .query("SELECT name FROM databases ORDER BY name", &[])?
                .iter()
                .map(|row| row.get(0))
                .collect())
        })
    }

    fn pending(
        &self,
        db: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError> {
        let version = self.embedder.version().to_string();
        let limit = i64::from(limit);
        self.transaction(|tx| {
            if tx
                .query_opt("SELECT 1 FROM databases WHERE name = $1", &[&db])?
                .is_none()
            {
                return Err(BackendError::Failed(format!("unknown database {db:?}")).into());
            }
            Ok(tx
                .query(
                    "SELECT r.id FROM records r
                     LEFT JOIN embeddings e ON e.db = r.db AND e.id = r.id
                     WHERE r.db = $1 AND ($2::text IS NULL OR r.id > $2)
                       AND (e.id IS NULL OR e.text_hash <> r.text_hash OR e.embedding_version <> $3)
                     ORDER BY r.id LIMIT $4",
                    &[&db, &after, &version, &limit],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect())
        })
    }

    fn embed(&self, db: &str, ids: &[String]) -> Result<EmbedReport, BackendError> {
        // Read, embed outside any transaction, then write the whole batch in one.
        let texts: Vec<StoredText> = self.transaction(|tx| {
            Ok(tx
                .query(
                    "SELECT id, text, text_hash FROM records WHERE db = $1 AND id = ANY($2) ORDER BY id",
                    &[&db, &ids],
                )?
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect())
        })?;
        embed_batch(
            self.embedder.as_ref(),
            ids.len(),
            texts,
            |texts, vectors| {
                let version = self.embedder.version().to_string();
                let vectors: Vec<(Vector, i32)> = vectors
                    .into_iter()
                    .map(|vector| {
                        let dims = vector.len() as i32;
                        (Vector::from(vector), dims)
                    })
                    .collect();
                self.transaction(|tx| {
                let created_at = now_ms();
                let upsert = tx.prepare(
                    "INSERT INTO embeddings (db, id, embedding, dims, text_hash, embedding_version, kind, source_id, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, 'text', $2, $7)
                     ON CONFLICT (db, id) DO UPDATE SET
                        embedding = excluded.embedding, dims = excluded.dims,
                        text_hash = excluded.text_hash, embedding_version = excluded.embedding_version,
                        created_at = excluded.created_at",
                )?;
                for ((id, _, hash), (vector, dims)) in texts.iter().zip(&vectors) {
                    tx.execute(&upsert, &[&db, id, vector, dims, hash, &version, &created_at])?;
                }
                Ok(advance_generation(tx)?)
            })
            },
        )
    }
}
