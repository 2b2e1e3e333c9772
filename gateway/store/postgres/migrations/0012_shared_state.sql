-- Version 12 (as on SQLite): state every process shares. An endpoint's rate-limit bucket
-- (outbox/limits.py: tokens left, when last taken; NULL: full), and the logged-in /inspect
-- sessions (inspect/access.py), so a login or a logout holds in every process.

ALTER TABLE endpoints ADD COLUMN rate_tokens double precision;
ALTER TABLE endpoints ADD COLUMN rate_updated_at double precision;

CREATE TABLE inspect_sessions (
    session_id text PRIMARY KEY,
    expires_at double precision NOT NULL
);
CREATE INDEX inspect_sessions_expiry ON inspect_sessions (expires_at);
