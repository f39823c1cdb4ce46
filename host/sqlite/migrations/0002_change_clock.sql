-- Change tracking for the vector index snapshot: every embedding write and record deletion
-- takes the next `seq`, so an index that reflects `seq` N replays exactly what followed.
CREATE TABLE change_clock (only INTEGER PRIMARY KEY CHECK (only = 1), seq INTEGER NOT NULL);
INSERT INTO change_clock VALUES (1, 0);
ALTER TABLE embeddings ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX embeddings_by_seq ON embeddings(seq);
CREATE TABLE index_tombstones (key INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TRIGGER records_tombstone AFTER DELETE ON records BEGIN
    UPDATE change_clock SET seq = seq + 1;
    INSERT OR REPLACE INTO index_tombstones (key, seq) SELECT old.rowid, seq FROM change_clock;
END;
-- A record moved to another origin is replayed so filtered searches see the move.
CREATE TRIGGER records_origin_moved AFTER UPDATE OF origin_db ON records
WHEN old.origin_db != new.origin_db BEGIN
    UPDATE change_clock SET seq = seq + 1;
    UPDATE embeddings SET seq = (SELECT seq FROM change_clock) WHERE db = new.db AND id = new.id;
END;
