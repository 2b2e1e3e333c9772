"""Run lifecycle: start, claim, execute, finish (final status and outbox rows in one transaction)."""
