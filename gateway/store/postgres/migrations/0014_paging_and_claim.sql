-- Version 14 (issue 15): keyset paging, and a claim at flat cost. The newest-first lists (GET /api/v1/deliveries and
-- /inspect's triggers, runs and deliveries) page by (time, id) after the last row shown
-- (gateway/store/sql.py newest_first). Each index ends with that pair, so a page, however deep,
-- is a range scan from the position in the list's own order, with no sort and no offset.
DROP INDEX IF EXISTS deliveries_status;
CREATE INDEX deliveries_status ON deliveries (status, created_at, delivery_id);
DROP INDEX IF EXISTS deliveries_endpoint;
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, created_at, delivery_id);
CREATE INDEX deliveries_created ON deliveries (created_at, delivery_id);
DROP INDEX IF EXISTS triggers_received;
CREATE INDEX triggers_received ON triggers (received_at, trigger_id);
DROP INDEX IF EXISTS runs_created;
CREATE INDEX runs_created ON runs (created_at, run_id);
DROP INDEX IF EXISTS runs_flow;
CREATE INDEX runs_flow ON runs (flow_id, created_at, run_id);

-- The claim (gateway/store/*/deliveries.py) costs what the destinations do, not the backlog:
-- the endpoints with pending deliveries are found by skipping through deliveries_endpoint_due,
-- each one's earliest due deliveries are read from it in order (per-run URLs under a NULL
-- endpoint), and the leases in flight from deliveries_leased.
CREATE INDEX deliveries_endpoint_due ON deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_expires_at) WHERE status = 'pending';
