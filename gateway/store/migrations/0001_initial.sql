-- Version 1: triggers, runs, events, endpoints, deliveries, attempts. Times are epoch seconds (REAL).

CREATE TABLE IF NOT EXISTS triggers (
    trigger_id      TEXT PRIMARY KEY,
    flow_id         TEXT NOT NULL,
    received_at     REAL NOT NULL,
    method          TEXT NOT NULL,
    path            TEXT NOT NULL,
    query           TEXT NOT NULL,
    headers         TEXT NOT NULL,
    body            BLOB NOT NULL,
    content_type    TEXT NOT NULL,
    source          TEXT NOT NULL,
    idempotency_key TEXT,
    run_id          TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS triggers_idempotency
    ON triggers (flow_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE IF NOT EXISTS runs (
    run_id           TEXT PRIMARY KEY,
    thread_id        TEXT,
    flow_id          TEXT NOT NULL,
    status           TEXT NOT NULL,
    input            TEXT NOT NULL,
    kwargs           TEXT NOT NULL,
    metadata         TEXT NOT NULL,
    output           TEXT,
    error            TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_expires_at REAL,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    started_at       REAL,
    ended_at         REAL,
    trigger_id       TEXT
);
CREATE INDEX IF NOT EXISTS runs_open ON runs (created_at) WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS runs_flow ON runs (flow_id, created_at);

CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL,
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, id);

CREATE TABLE IF NOT EXISTS endpoints (
    endpoint_id TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    flow_ids    TEXT NOT NULL,
    event_types TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id      TEXT PRIMARY KEY,
    run_id           TEXT NOT NULL,
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
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_run ON deliveries (run_id);
CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (status, created_at);

CREATE TABLE IF NOT EXISTS attempts (
    attempt_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    started_at       REAL NOT NULL,
    duration_ms      REAL NOT NULL,
    status_code      INTEGER,
    response_headers TEXT NOT NULL,
    response_body    BLOB NOT NULL,
    error            TEXT
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id, attempt_id);
