-- Version 10: relaying per endpoint (gateway/outbox/routing.py) and pull endpoints.
-- An endpoint's mode is 'push' (POST to url) or 'pull' (kept for consumers: hookgate listen);
-- payload is 'run' or 'raw' (the trigger's bytes); forward_headers is a JSON list of names
-- (NULL: the default event headers); filter and transform are operator expressions.
-- A delivery's headers (JSON, NULL for none) travel with its payload: a raw relay's
-- Content-Type and the sender's forwarded headers. filtered_routes records each endpoint whose
-- filter turned a run's event away, for /inspect.

ALTER TABLE endpoints ADD COLUMN mode TEXT NOT NULL DEFAULT 'push';
ALTER TABLE endpoints ADD COLUMN payload TEXT NOT NULL DEFAULT 'run';
ALTER TABLE endpoints ADD COLUMN forward_headers TEXT;
ALTER TABLE endpoints ADD COLUMN filter TEXT;
ALTER TABLE endpoints ADD COLUMN transform TEXT;
ALTER TABLE endpoints ADD COLUMN transform_language TEXT NOT NULL DEFAULT 'jmespath';

ALTER TABLE deliveries ADD COLUMN headers TEXT;

CREATE TABLE IF NOT EXISTS filtered_routes (
    run_id      TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS filtered_routes_run ON filtered_routes (run_id);
