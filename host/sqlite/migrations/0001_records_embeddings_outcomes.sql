CREATE TABLE databases (name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE records (
    db TEXT NOT NULL REFERENCES databases(name),
    id TEXT NOT NULL,
    origin_db TEXT NOT NULL,
    text TEXT NOT NULL,
    text_hash INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (db, id)
);
-- BM25 over record text (SQLite's FTS5, Porter stemming), kept in step by triggers.
CREATE VIRTUAL TABLE records_fts USING fts5(
    text, content = 'records', content_rowid = 'rowid', tokenize = 'porter unicode61'
);
CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
    INSERT INTO records_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
    INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER records_fts_update AFTER UPDATE OF text ON records BEGIN
    INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO records_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TABLE embeddings (
    db TEXT NOT NULL,
    id TEXT NOT NULL,
    vector BLOB NOT NULL,
    text_hash INTEGER NOT NULL,
    embedding_version TEXT NOT NULL,
    kind TEXT NOT NULL,
    source_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (db, id),
    FOREIGN KEY (db, id) REFERENCES records(db, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE patch_outcomes (
    patch_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    origin_db TEXT,
    vector_id TEXT,
    success INTEGER NOT NULL,
    reverted INTEGER NOT NULL,
    label TEXT NOT NULL,
    roi_tag TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE TABLE retriever_stats (
    origin_db TEXT PRIMARY KEY,
    wins INTEGER NOT NULL DEFAULT 0,
    regrets INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE vector_outcomes (
    session_id TEXT NOT NULL,
    origin_db TEXT NOT NULL,
    vector_id TEXT NOT NULL,
    contribution REAL NOT NULL,
    win INTEGER NOT NULL,
    regret INTEGER NOT NULL,
    patch_id TEXT NOT NULL,
    roi_tag TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX vector_outcomes_by_vector ON vector_outcomes(origin_db, vector_id);
