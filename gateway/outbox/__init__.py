"""The outbox: durable deliveries, claimed with leases, signed, sent, retried or dead-lettered."""
