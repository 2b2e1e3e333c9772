-- Version 13: retention (gateway/store/retention.py). The pruner walks settled deliveries and
-- finished runs by age, and threads by the moment their ttl (strategy "delete") ends, which
-- the store keeps beside the ttl as epoch seconds. (The file's auto_vacuum = INCREMENTAL is
-- set where the store opens it: switching an existing file takes a VACUUM, which no
-- transaction may hold.)

ALTER TABLE threads ADD COLUMN expires_at REAL;
UPDATE threads
    SET expires_at = (julianday(json_extract(ttl, '$.expires_at')) - 2440587.5) * 86400.0
    WHERE ttl IS NOT NULL AND COALESCE(json_extract(ttl, '$.strategy'), 'delete') = 'delete'
    AND json_extract(ttl, '$.expires_at') IS NOT NULL;
CREATE INDEX threads_expiring ON threads (expires_at) WHERE expires_at IS NOT NULL;

CREATE INDEX deliveries_settled ON deliveries (updated_at) WHERE status <> 'pending';
CREATE INDEX runs_ended ON runs (ended_at) WHERE status NOT IN ('pending', 'running');
