-- Version 6: /inspect bins, the webhook.site part: a URL that records every request sent to it.
-- reply_status/reply_delay: what the bin answers (to test retries); verify_with: which secret
-- its page checks signatures against ('signing' or 'endpoint:<id>'; the secret itself is never
-- stored here). Captured requests keep the query as received (the hookgate_token is checked on
-- display), headers with secrets masked, and the raw body.

CREATE TABLE IF NOT EXISTS bins (
    bin_id       TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    reply_status INTEGER NOT NULL DEFAULT 200,
    reply_delay  REAL NOT NULL DEFAULT 0,
    verify_with  TEXT NOT NULL DEFAULT 'auto',
    created_at   REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS bin_requests (
    capture_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    bin_id       TEXT NOT NULL REFERENCES bins (bin_id) ON DELETE CASCADE,
    received_at  REAL NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    query        TEXT NOT NULL,
    headers      TEXT NOT NULL,
    body         BLOB NOT NULL,
    content_type TEXT NOT NULL,
    source       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bin_requests_bin ON bin_requests (bin_id, capture_id);

-- The inspection lists: newest first, by flow.
CREATE INDEX IF NOT EXISTS triggers_received ON triggers (received_at);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
