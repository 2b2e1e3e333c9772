-- Version 3: per-endpoint delivery policy and health; deliveries not tied to a run.

ALTER TABLE endpoints ADD COLUMN disabled_reason TEXT;
ALTER TABLE endpoints ADD COLUMN retry_schedule TEXT;
ALTER TABLE endpoints ADD COLUMN timeout REAL;
ALTER TABLE endpoints ADD COLUMN max_concurrency INTEGER;
ALTER TABLE endpoints ADD COLUMN rate_limit REAL;
ALTER TABLE endpoints ADD COLUMN previous_secret TEXT;
ALTER TABLE endpoints ADD COLUMN previous_secret_expires_at REAL;
ALTER TABLE endpoints ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN failing_since REAL;
ALTER TABLE endpoints ADD COLUMN circuit_open_until REAL;

-- Operational events (endpoint.disabled, …) are deliveries with no run.
CREATE TABLE deliveries_new (
    delivery_id      TEXT PRIMARY KEY,
    run_id           TEXT,
    endpoint_id      TEXT,
    url              TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          BLOB NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL,
    lease_expires_at REAL,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
INSERT INTO deliveries_new SELECT * FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_run ON deliveries (run_id);
CREATE INDEX deliveries_status ON deliveries (status, created_at);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created_at);
