-- The result cache's generation (`ChangeClock`): every write an answer depends on advances it
-- as its transaction's last statement, so it becomes visible with the data it counts.
CREATE TABLE change_clock (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    generation bigint NOT NULL
);
INSERT INTO change_clock (generation) VALUES (0);
-- Reliability counts the primary DB's rows too, looked up by vector like `vector_outcomes`.
CREATE INDEX patch_outcomes_by_vector ON patch_outcomes (origin_db, vector_id);
