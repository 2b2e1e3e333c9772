-- Version 10 (as on SQLite): relaying per endpoint and pull endpoints. An endpoint's mode is
-- 'push' or 'pull'; payload 'run' or 'raw'; forward_headers a JSON list of names (NULL: the
-- default event headers); filter and transform are operator expressions. A delivery's headers
-- travel with its payload (a raw relay's Content-Type and forwarded headers). filtered_routes
-- records each endpoint whose filter turned a run's event away, for /inspect.

ALTER TABLE endpoints ADD COLUMN mode text NOT NULL DEFAULT 'push';
ALTER TABLE endpoints ADD COLUMN payload text NOT NULL DEFAULT 'run';
ALTER TABLE endpoints ADD COLUMN forward_headers json;
ALTER TABLE endpoints ADD COLUMN filter text;
ALTER TABLE endpoints ADD COLUMN transform text;
ALTER TABLE endpoints ADD COLUMN transform_language text NOT NULL DEFAULT 'jmespath';

ALTER TABLE deliveries ADD COLUMN headers json;

CREATE TABLE filtered_routes (
    run_id      text NOT NULL,
    endpoint_id text NOT NULL,
    event_type  text NOT NULL,
    reason      text NOT NULL,
    created_at  double precision NOT NULL
);
CREATE INDEX filtered_routes_run ON filtered_routes (run_id);
