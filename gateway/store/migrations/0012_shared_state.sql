-- Version 12: state every process serving the store shares. An endpoint's rate-limit bucket
-- (outbox/limits.py: tokens left, when last taken; NULL: full), and the logged-in /inspect
-- sessions (inspect/access.py), so a login or a logout holds in every process.

ALTER TABLE endpoints ADD COLUMN rate_tokens REAL;
ALTER TABLE endpoints ADD COLUMN rate_updated_at REAL;

CREATE TABLE IF NOT EXISTS inspect_sessions (
    session_id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inspect_sessions_expiry ON inspect_sessions (expires_at);
