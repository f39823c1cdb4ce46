-- The caller's contribution kept with a patch outcome in the primary metrics database too (WIT
-- 0.4.0), as the fallback's `vector_outcomes` always kept it. Rows written before: 0.0, what a
-- caller who gave none sends.
ALTER TABLE patch_outcomes ADD COLUMN contribution REAL NOT NULL DEFAULT 0.0;
