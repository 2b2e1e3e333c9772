"""Registered endpoints on PostgreSQL; their secrets are stored sealed (``secretbox``)."""

from __future__ import annotations

from typing import Any

import structlog

from gateway import models
from gateway.outbox import limits
from gateway.store import base, rows
from gateway.store.postgres.pool import Connection, Database, assignments, placeholders
from gateway.store.secretbox import SecretBox

log = structlog.get_logger(__name__)


class EndpointVerbs(Database):
    async def _on_open(self, conn: Connection) -> None:
        await super()._on_open(conn)
        await seal_secrets(conn, self.secrets)

    async def create_endpoint(self, endpoint: models.Endpoint) -> models.Endpoint:
        columns = rows.endpoint_columns(endpoint, self.secrets)
        await self._write(
            f"INSERT INTO endpoints ({', '.join(columns)})"
            f" VALUES ({placeholders(1, len(columns))}) RETURNING endpoint_id",
            *columns.values(),
            announce="endpoint_changed",
        )
        return endpoint

    async def get_endpoint(self, endpoint_id: str) -> models.Endpoint | None:
        row = await self._fetchrow("SELECT * FROM endpoints WHERE endpoint_id = $1", endpoint_id)
        return rows.endpoint(row, self.secrets) if row else None

    async def list_endpoints(self) -> list[models.Endpoint]:
        found = await self._fetch("SELECT * FROM endpoints ORDER BY created_at, endpoint_id")
        return [rows.endpoint(row, self.secrets) for row in found]

    async def update_endpoint(
        self, endpoint_id: str, changes: base.EndpointChanges, now: float
    ) -> models.Endpoint | None:
        values = rows.endpoint_changes(changes, self.secrets, now)
        return await self._update_endpoint(endpoint_id, values)

    async def resume_endpoint(self, endpoint_id: str, now: float) -> models.Endpoint | None:
        return await self._update_endpoint(endpoint_id, rows.resumed(now))

    async def _update_endpoint(
        self, endpoint_id: str, values: dict[str, Any]
    ) -> models.Endpoint | None:
        found = await self._write(
            f"UPDATE endpoints SET {assignments(list(values))}"
            f" WHERE endpoint_id = ${len(values) + 1} RETURNING *",
            *values.values(),
            endpoint_id,
            announce="endpoint_changed",
        )
        return rows.endpoint(found[0], self.secrets) if found else None

    async def rotate_secret(
        self, endpoint_id: str, secret: str, overlap_until: float, now: float
    ) -> models.Endpoint | None:
        found = await self._write(
            "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = $1,"
            " secret = $2, updated_at = $3 WHERE endpoint_id = $4 RETURNING *",
            overlap_until,
            self.secrets.seal(secret),
            now,
            endpoint_id,
            announce="endpoint_changed",
        )
        return rows.endpoint(found[0], self.secrets) if found else None

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        found = await self._write(
            "DELETE FROM endpoints WHERE endpoint_id = $1 RETURNING endpoint_id",
            endpoint_id,
            announce="endpoint_changed",
        )
        return bool(found)

    async def take_rate_token(self, endpoint_id: str, rate: float, now: float) -> float:
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                "SELECT rate_tokens, rate_updated_at FROM endpoints WHERE endpoint_id = $1"
                " FOR UPDATE",
                endpoint_id,
            )
            if row is None:
                return 0.0
            bucket, wait = limits.take(rows.rate_bucket(row), rate, now)
            await conn.execute(
                "UPDATE endpoints SET rate_tokens = $1, rate_updated_at = $2 WHERE endpoint_id = $3",
                bucket.tokens,
                bucket.updated_at,
                endpoint_id,
            )
            return wait


async def seal_secrets(conn: Connection, secrets: SecretBox) -> None:
    """Encrypt plaintext endpoint secrets, and re-encrypt those sealed with an older key, in one
    transaction; a secret no configured key opens stops the start with a clear error. Runs under
    the migration lock, so processes starting together do it once."""
    async with conn.transaction():
        found = await conn.fetch(
            "SELECT endpoint_id, secret, previous_secret FROM endpoints FOR UPDATE"
        )
        stale = [
            (
                row["endpoint_id"],
                secrets.resealed(row["secret"]),
                None
                if row["previous_secret"] is None
                else secrets.resealed(row["previous_secret"]),
            )
            for row in found
            if not all(
                secrets.is_current(value)
                for value in (row["secret"], row["previous_secret"])
                if value is not None
            )
        ]
        if not stale:
            return
        await conn.executemany(
            "UPDATE endpoints SET secret = $2, previous_secret = $3 WHERE endpoint_id = $1", stale
        )
    log.info("endpoint_secrets_sealed", endpoints=len(stale))
