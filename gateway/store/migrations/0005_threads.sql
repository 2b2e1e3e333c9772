-- Version 5: LangGraph threads, their manual state updates, and crons.
-- A thread's status and values are derived from its runs and events (nothing to keep in step);
-- thread_states holds only what POST /threads/{id}/state wrote.

CREATE TABLE IF NOT EXISTS threads (
    thread_id  TEXT PRIMARY KEY,
    metadata   TEXT NOT NULL,
    config     TEXT NOT NULL,
    ttl        TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_updated ON threads (updated_at);

CREATE TABLE IF NOT EXISTS thread_states (
    checkpoint_id TEXT PRIMARY KEY,
    thread_id     TEXT NOT NULL,
    state_values  TEXT NOT NULL,
    as_node       TEXT,
    created_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS thread_states_thread ON thread_states (thread_id, created_at);

CREATE INDEX IF NOT EXISTS runs_thread ON runs (thread_id, created_at) WHERE thread_id IS NOT NULL;

-- A firing is claimed by moving next_run_date in the same transaction that inserts its run,
-- so a restart neither skips nor doubles one.
CREATE TABLE IF NOT EXISTS crons (
    cron_id          TEXT PRIMARY KEY,
    flow_id          TEXT NOT NULL,
    thread_id        TEXT,
    schedule         TEXT NOT NULL,
    timezone         TEXT,
    payload          TEXT NOT NULL,
    metadata         TEXT NOT NULL,
    on_run_completed TEXT,
    enabled          INTEGER NOT NULL,
    end_time         REAL,
    next_run_date    REAL NOT NULL,
    user_id          TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS crons_due ON crons (next_run_date) WHERE enabled = 1;
