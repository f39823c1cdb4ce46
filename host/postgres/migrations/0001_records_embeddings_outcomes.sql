CREATE TABLE databases (name text COLLATE "C" PRIMARY KEY);
CREATE TABLE records (
    db text COLLATE "C" NOT NULL REFERENCES databases (name),
    id text COLLATE "C" NOT NULL,
    origin_db text COLLATE "C" NOT NULL,
    text text NOT NULL,
    text_hash bigint NOT NULL,
    metadata text NOT NULL,
    updated_at bigint NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    PRIMARY KEY (db, id)
);
CREATE INDEX records_tsv ON records USING gin (tsv);
-- Any dimension count: each embedder's dimension gets its own partial HNSW index (see
-- `ensure_vector_index`), since an HNSW index needs a fixed dimension.
CREATE TABLE embeddings (
    db text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    embedding vector NOT NULL,
    dims integer NOT NULL,
    text_hash bigint NOT NULL,
    embedding_version text NOT NULL,
    kind text NOT NULL,
    source_id text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (db, id),
    FOREIGN KEY (db, id) REFERENCES records (db, id) ON DELETE CASCADE
);
CREATE TABLE patch_outcomes (
    seq bigserial PRIMARY KEY,
    patch_id text NOT NULL,
    session_id text NOT NULL,
    origin_db text,
    vector_id text,
    success boolean NOT NULL,
    reverted boolean NOT NULL,
    label text NOT NULL,
    roi_tag text NOT NULL,
    ts_ms bigint NOT NULL
);
CREATE TABLE retriever_stats (
    origin_db text COLLATE "C" PRIMARY KEY,
    wins bigint NOT NULL DEFAULT 0,
    regrets bigint NOT NULL DEFAULT 0
);
CREATE TABLE vector_outcomes (
    seq bigserial PRIMARY KEY,
    session_id text NOT NULL,
    origin_db text NOT NULL,
    vector_id text NOT NULL,
    contribution double precision NOT NULL,
    win boolean NOT NULL,
    regret boolean NOT NULL,
    patch_id text NOT NULL,
    roi_tag text NOT NULL,
    ts_ms bigint NOT NULL
);
CREATE INDEX vector_outcomes_by_vector ON vector_outcomes (origin_db, vector_id);
