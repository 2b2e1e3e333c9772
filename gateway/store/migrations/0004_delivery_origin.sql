-- Version 4: when the trigger behind a delivery arrived, for trigger→delivered latency.

ALTER TABLE deliveries ADD COLUMN origin_at REAL;
