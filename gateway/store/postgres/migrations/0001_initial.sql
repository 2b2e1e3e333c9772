-- Version 1: the whole schema of the SQLite store's migrations 1-6, in PostgreSQL's types.
-- Times are epoch seconds (double precision, as the models carry them). JSON that is only
-- stored and returned is `json` (kept as written); metadata that searches filter on is `jsonb`.

CREATE TABLE triggers (
    trigger_id      text PRIMARY KEY,
    flow_id         text NOT NULL,
    received_at     double precision NOT NULL,
    method          text NOT NULL,
    path            text NOT NULL,
    query           text NOT NULL,
    headers         json NOT NULL,
    body            bytea NOT NULL,
    content_type    text NOT NULL,
    source          text NOT NULL,
    idempotency_key text,
    run_id          text,
    verification    text NOT NULL DEFAULT 'none'
);
-- Idempotency keys expire (a window of received_at), so no unique index can state them:
-- writers of one (flow, key) take a transaction-level advisory lock before checking.
CREATE INDEX triggers_idempotency
    ON triggers (flow_id, idempotency_key, received_at) WHERE idempotency_key IS NOT NULL;
CREATE INDEX triggers_received ON triggers (received_at);

CREATE TABLE runs (
    run_id           text PRIMARY KEY,
    thread_id        text,
    flow_id          text NOT NULL,
    status           text NOT NULL,
    input            json NOT NULL,
    kwargs           json NOT NULL,
    metadata         jsonb NOT NULL,
    output           json,
    error            json,
    attempt          integer NOT NULL DEFAULT 0,
    lease_expires_at double precision,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL,
    started_at       double precision,
    ended_at         double precision,
    trigger_id       text
);
CREATE INDEX runs_open ON runs (created_at) WHERE status IN ('pending', 'running');
CREATE INDEX runs_flow ON runs (flow_id, created_at);
CREATE INDEX runs_thread ON runs (thread_id, created_at) WHERE thread_id IS NOT NULL;
CREATE INDEX runs_created ON runs (created_at);

CREATE TABLE events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     text NOT NULL,
    event      text NOT NULL,
    data       json NOT NULL,
    created_at double precision NOT NULL
);
CREATE INDEX events_run ON events (run_id, id);

CREATE TABLE endpoints (
    endpoint_id                text PRIMARY KEY,
    url                        text NOT NULL,
    secret                     text NOT NULL,
    flow_ids                   json NOT NULL,
    event_types                json NOT NULL,
    description                text NOT NULL,
    enabled                    boolean NOT NULL,
    created_at                 double precision NOT NULL,
    updated_at                 double precision NOT NULL,
    disabled_reason            text,
    retry_schedule             json,
    timeout                    double precision,
    max_concurrency            integer,
    rate_limit                 double precision,
    previous_secret            text,
    previous_secret_expires_at double precision,
    consecutive_failures       integer NOT NULL DEFAULT 0,
    failing_since              double precision,
    circuit_open_until         double precision
);

CREATE TABLE deliveries (
    delivery_id      text PRIMARY KEY,
    run_id           text,
    endpoint_id      text,
    url              text NOT NULL,
    event_type       text NOT NULL,
    payload          bytea NOT NULL,
    status           text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  double precision,
    lease_expires_at double precision,
    last_status_code integer,
    last_error       text,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL,
    origin_at        double precision
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_run ON deliveries (run_id);
CREATE INDEX deliveries_status ON deliveries (status, created_at);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created_at);

CREATE TABLE attempts (
    attempt_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      text NOT NULL,
    attempt          integer NOT NULL,
    started_at       double precision NOT NULL,
    duration_ms      double precision NOT NULL,
    status_code      integer,
    response_headers json NOT NULL,
    response_body    bytea NOT NULL,
    error            text
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, attempt_id);
CREATE INDEX attempts_started ON attempts (started_at);

-- LangGraph threads: status and values are derived from runs and events.
CREATE TABLE threads (
    thread_id  text PRIMARY KEY,
    metadata   jsonb NOT NULL,
    config     json NOT NULL,
    ttl        json,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE INDEX threads_updated ON threads (updated_at);

CREATE TABLE thread_states (
    checkpoint_id text PRIMARY KEY,
    thread_id     text NOT NULL,
    state_values  json NOT NULL,
    as_node       text,
    created_at    double precision NOT NULL
);
CREATE INDEX thread_states_thread ON thread_states (thread_id, created_at);

-- A firing is claimed by moving next_run_date in the transaction that inserts its run; the
-- UPDATE's row lock makes a second scheduler find the cron no longer due.
CREATE TABLE crons (
    cron_id          text PRIMARY KEY,
    flow_id          text NOT NULL,
    thread_id        text,
    schedule         text NOT NULL,
    timezone         text,
    payload          json NOT NULL,
    metadata         jsonb NOT NULL,
    on_run_completed text,
    enabled          boolean NOT NULL,
    end_time         double precision,
    next_run_date    double precision NOT NULL,
    user_id          text,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL
);
CREATE INDEX crons_due ON crons (next_run_date) WHERE enabled;

-- /inspect bins and what they captured.
CREATE TABLE bins (
    bin_id       text PRIMARY KEY,
    name         text NOT NULL,
    reply_status integer NOT NULL DEFAULT 200,
    reply_delay  double precision NOT NULL DEFAULT 0,
    verify_with  text NOT NULL DEFAULT 'auto',
    created_at   double precision NOT NULL
);

CREATE TABLE bin_requests (
    capture_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bin_id       text NOT NULL REFERENCES bins (bin_id) ON DELETE CASCADE,
    received_at  double precision NOT NULL,
    method       text NOT NULL,
    path         text NOT NULL,
    query        text NOT NULL,
    headers      json NOT NULL,
    body         bytea NOT NULL,
    content_type text NOT NULL,
    source       text NOT NULL
);
CREATE INDEX bin_requests_bin ON bin_requests (bin_id, capture_id);

-- /inspect searches bodies as text: UTF-8 when they are, escaped bytes when they are not.
CREATE FUNCTION hookgate_body_text(body bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    RETURN convert_from(body, 'UTF8');
EXCEPTION WHEN OTHERS THEN
    RETURN encode(body, 'escape');
END
$$;
