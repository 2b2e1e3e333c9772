-- Version 13: retention (gateway/store/retention.py). The pruner walks settled deliveries and
-- finished runs by age, and threads by the moment their ttl (strategy "delete") ends, which
-- the store keeps beside the ttl as epoch seconds.

ALTER TABLE threads ADD COLUMN expires_at double precision;
UPDATE threads SET expires_at = EXTRACT(EPOCH FROM (ttl->>'expires_at')::timestamptz)
    WHERE ttl IS NOT NULL AND COALESCE(ttl->>'strategy', 'delete') = 'delete'
    AND ttl->>'expires_at' IS NOT NULL;
CREATE INDEX threads_expiring ON threads (expires_at) WHERE expires_at IS NOT NULL;

CREATE INDEX deliveries_settled ON deliveries (updated_at) WHERE status <> 'pending';
CREATE INDEX runs_ended ON runs (ended_at) WHERE status NOT IN ('pending', 'running');
