"""Registered endpoints on SQLite; their secrets are stored sealed (``secretbox``)."""

from __future__ import annotations

import sqlite3
from typing import Any

import aiosqlite
import structlog

from gateway import models
from gateway.outbox import limits
from gateway.store import base, rows
from gateway.store.secretbox import SecretBox
from gateway.store.sqlite.connection import Database, insert

log = structlog.get_logger(__name__)


class EndpointVerbs(Database):
    async def _on_open(self, conn: aiosqlite.Connection) -> None:
        await super()._on_open(conn)
        await seal_secrets(conn, self.secrets)

    async def create_endpoint(self, endpoint: models.Endpoint) -> models.Endpoint:
        columns = rows.endpoint_columns(endpoint, self.secrets)

        def job(conn: sqlite3.Connection) -> None:
            insert(conn, "endpoints", columns)

        await self.writer.submit(job)
        return endpoint

    async def get_endpoint(self, endpoint_id: str) -> models.Endpoint | None:
        row = await self._fetchone("SELECT * FROM endpoints WHERE endpoint_id = ?", (endpoint_id,))
        return rows.endpoint(row, self.secrets) if row else None

    async def list_endpoints(self) -> list[models.Endpoint]:
        found = await self._fetchall("SELECT * FROM endpoints ORDER BY created_at")
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
        columns = ", ".join(f"{name} = ?" for name in values)
        row = await self._write_one(
            f"UPDATE endpoints SET {columns} WHERE endpoint_id = ? RETURNING *",
            (*values.values(), endpoint_id),
        )
        return rows.endpoint(row, self.secrets) if row else None

    async def rotate_secret(
        self, endpoint_id: str, secret: str, overlap_until: float, now: float
    ) -> models.Endpoint | None:
        row = await self._write_one(
            "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = ?,"
            " secret = ?, updated_at = ? WHERE endpoint_id = ? RETURNING *",
            (overlap_until, self.secrets.seal(secret), now, endpoint_id),
        )
        return rows.endpoint(row, self.secrets) if row else None

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        deleted = await self._write_count(
            "DELETE FROM endpoints WHERE endpoint_id = ?", (endpoint_id,)
        )
        return deleted > 0

    async def take_rate_token(self, endpoint_id: str, rate: float, now: float) -> float:
        def job(conn: sqlite3.Connection) -> float:
            row = conn.execute(
                "SELECT rate_tokens, rate_updated_at FROM endpoints WHERE endpoint_id = ?",
                (endpoint_id,),
            ).fetchone()
            if row is None:
                return 0.0
            bucket, wait = limits.take(rows.rate_bucket(row), rate, now)
            conn.execute(
                "UPDATE endpoints SET rate_tokens = ?, rate_updated_at = ? WHERE endpoint_id = ?",
                (bucket.tokens, bucket.updated_at, endpoint_id),
            )
            return wait

        return await self.writer.submit(job)


async def seal_secrets(conn: aiosqlite.Connection, secrets: SecretBox) -> None:
    """Encrypt plaintext endpoint secrets, and re-encrypt those sealed with an older key;
    a secret no configured key opens stops the start with a clear error."""
    query = "SELECT endpoint_id, secret, previous_secret FROM endpoints"
    found = list(await conn.execute_fetchall(query))
    stale = [
        row
        for row in found
        if not all(
            secrets.is_current(value)
            for value in (row["secret"], row["previous_secret"])
            if value is not None
        )
    ]
    if not stale:
        return
    await conn.execute("BEGIN IMMEDIATE")
    try:
        for endpoint_id, secret, previous in await conn.execute_fetchall(query):
            await conn.execute(
                "UPDATE endpoints SET secret = ?, previous_secret = ? WHERE endpoint_id = ?",
                (
                    secrets.resealed(secret),
                    None if previous is None else secrets.resealed(previous),
                    endpoint_id,
                ),
            )
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
    log.info("endpoint_secrets_sealed", endpoints=len(stale))
