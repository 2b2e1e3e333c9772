-- Version 10: a cancel request is recorded on its run, so the process running it hears it
-- through the change feed, and a process that claims the run later ends it at once.

ALTER TABLE runs ADD COLUMN cancel_reason text;
