-- The result cache's generation is `seq + outcomes` (clock.rs, `ChangeClock`): outcomes change
-- reliability figures but not the indexes, so they count apart from `seq`. Reliability counts
-- the primary DB's rows too, looked up by vector like `vector_outcomes`.
ALTER TABLE change_clock ADD COLUMN outcomes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX patch_outcomes_by_vector ON patch_outcomes(origin_db, vector_id);
