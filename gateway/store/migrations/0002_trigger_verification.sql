-- Version 2: whether a trigger proved its sender, and idempotency keys that expire.
-- verification: 'none' | 'verified' | 'rejected: <reason>' (a rejected trigger has no run).
-- Idempotency keys now de-duplicate within a window of received_at (dedup_window_seconds),
-- checked by the writer; the unique index that made them permanent becomes a plain one.

ALTER TABLE triggers ADD COLUMN verification TEXT NOT NULL DEFAULT 'none';

DROP INDEX IF EXISTS triggers_idempotency;
CREATE INDEX IF NOT EXISTS triggers_idempotency
    ON triggers (flow_id, idempotency_key, received_at) WHERE idempotency_key IS NOT NULL;
