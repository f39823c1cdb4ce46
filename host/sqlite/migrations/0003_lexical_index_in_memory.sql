-- Lexical search moves to an in-memory index replayed from the change clock (indexed_text.rs):
-- each record write stamps the record with its `seq`. FTS5 no longer ranks anything.
ALTER TABLE records ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX records_by_seq ON records(seq);
DROP TRIGGER records_fts_insert;
DROP TRIGGER records_fts_delete;
DROP TRIGGER records_fts_update;
DROP TABLE records_fts;
