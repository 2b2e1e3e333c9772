"""Registered endpoints on PostgreSQL."""

from __future__ import annotations

from typing import Any

from gateway import models
from gateway.store import base
from gateway.store.postgres import rows
from gateway.store.postgres.pool import Database, assignments, placeholders


class EndpointVerbs(Database):
    async def create_endpoint(self, endpoint: models.Endpoint) -> models.Endpoint:
        columns = rows.endpoint_columns(endpoint)
        await self._write(
            f"INSERT INTO endpoints ({', '.join(columns)})"
            f" VALUES ({placeholders(1, len(columns))}) RETURNING endpoint_id",
            *columns.values(),
            announce="endpoint_changed",
        )
        return endpoint

    async def get_endpoint(self, endpoint_id: str) -> models.Endpoint | None:
        row = await self._fetchrow("SELECT * FROM endpoints WHERE endpoint_id = $1", endpoint_id)
        return rows.endpoint(row) if row else None

    async def list_endpoints(self) -> list[models.Endpoint]:
        found = await self._fetch("SELECT * FROM endpoints ORDER BY created_at, endpoint_id")
        return [rows.endpoint(row) for row in found]

    async def update_endpoint(
        self, endpoint_id: str, changes: base.EndpointChanges, now: float
    ) -> models.Endpoint | None:
        unknown = set(changes) - set(base.ENDPOINT_SETTABLE)
        if unknown:
            raise ValueError(f"not settable: {sorted(unknown)}")
        values = {name: rows.endpoint_value(name, value) for name, value in changes.items()}
        values["updated_at"] = now
        return await self._update_endpoint(endpoint_id, values)

    async def resume_endpoint(self, endpoint_id: str, now: float) -> models.Endpoint | None:
        return await self._update_endpoint(
            endpoint_id,
            {
                "enabled": True,
                "disabled_reason": None,
                "consecutive_failures": 0,
                "failing_since": None,
                "circuit_open_until": None,
                "updated_at": now,
            },
        )

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
        return rows.endpoint(found[0]) if found else None

    async def rotate_secret(
        self, endpoint_id: str, secret: str, overlap_until: float, now: float
    ) -> models.Endpoint | None:
        found = await self._write(
            "UPDATE endpoints SET previous_secret = secret, previous_secret_expires_at = $1,"
            " secret = $2, updated_at = $3 WHERE endpoint_id = $4 RETURNING *",
            overlap_until,
            secret,
            now,
            endpoint_id,
            announce="endpoint_changed",
        )
        return rows.endpoint(found[0]) if found else None

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        found = await self._write(
            "DELETE FROM endpoints WHERE endpoint_id = $1 RETURNING endpoint_id",
            endpoint_id,
            announce="endpoint_changed",
        )
        return bool(found)
