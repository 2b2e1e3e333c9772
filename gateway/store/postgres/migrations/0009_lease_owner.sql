-- Version 9: heartbeat leases. A lease names the process holding it, which renews it while the
-- work is alive; others take the work over once it lapses. A run keeps the name of the process
-- that ended it.

ALTER TABLE runs ADD COLUMN lease_owner text;
ALTER TABLE deliveries ADD COLUMN lease_owner text;
