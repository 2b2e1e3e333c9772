-- Version 9: heartbeat leases. A lease names the process holding it, which renews it while the
-- work is alive; a restarted gateway releases at once what another owner held on its file.
-- A run keeps the name of the process that ended it.

ALTER TABLE runs ADD COLUMN lease_owner TEXT;
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
