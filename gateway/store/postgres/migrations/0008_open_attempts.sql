-- Version 8 (as on SQLite): a try is recorded as started when its delivery is claimed, before
-- anything is sent; until its outcome is recorded it has neither a status code nor an error.
-- This small index holds only those open tries, so the claim finds the ones a stopped process
-- left behind.

CREATE INDEX IF NOT EXISTS attempts_open ON attempts (delivery_id)
    WHERE status_code IS NULL AND error IS NULL;
