"""Endpoint secrets at rest, on every backend: what the database holds is sealed (Fernet under
``GATEWAY_SECRET_KEY``); plaintext rows are sealed on open, rows sealed with an older key are
sealed again with the newest, and a key that opens nothing stops the open with a clear error.
Each test reads the columns directly, not through the store."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from gateway import errors
from gateway.store.secretbox import PREFIX
from tests.database import raw
from tests.integration.store_contract.common import (
    NOW,
    SECRET_KEY,
    FullStore,
    OpenStore,
    endpoint,
)

SECRET = "whsec_" + "c2VjcmV0LW9mLXRoZS1maXJzdC1lbmRwb2ludA=="
ROTATED = "whsec_" + "cm90YXRlZC1zZWNyZXQtb2YtdGhlLWVuZHBvaW50"
COLUMNS = "SELECT secret, previous_secret FROM endpoints ORDER BY endpoint_id"


async def opened(new_store: OpenStore, secret_key: str = SECRET_KEY) -> FullStore:
    store = new_store(secret_key)
    await store.open()
    return store


def opens_with(key: str, sealed: str) -> str:
    return Fernet(key).decrypt(sealed.removeprefix(PREFIX)).decode()


async def test_the_database_holds_no_secret_in_plaintext(
    store: FullStore, database_url: str
) -> None:
    created = await store.create_endpoint(endpoint(secret=SECRET))
    await store.rotate_secret(created.endpoint_id, ROTATED, NOW + 60, NOW + 1)
    other = await store.create_endpoint(endpoint(secret=ROTATED, previous_secret=SECRET))
    await store.update_endpoint(other.endpoint_id, {"secret": SECRET}, NOW + 2)

    every_value = " ".join(
        str(v) for row in await raw(database_url, "SELECT * FROM endpoints") for v in row
    )
    assert "whsec_" not in every_value
    for secret in (SECRET, ROTATED):
        assert secret.removeprefix("whsec_") not in every_value
    columns = await raw(database_url, COLUMNS)
    assert all(value.startswith(PREFIX) for row in columns for value in row)
    read = [await store.get_endpoint(e.endpoint_id) for e in (created, other)]
    assert [(e.secret, e.previous_secret) for e in read if e] == [
        (ROTATED, SECRET),
        (SECRET, SECRET),
    ]


async def test_plaintext_rows_are_sealed_on_open(
    store: FullStore, new_store: OpenStore, database_url: str
) -> None:
    created = await store.create_endpoint(endpoint(secret=SECRET))
    await store.close()
    # as a version before encryption left them
    await raw(database_url, "UPDATE endpoints SET secret = ?, previous_secret = ?", SECRET, ROTATED)

    reopened = await opened(new_store)
    [(secret, previous)] = await raw(database_url, COLUMNS)
    assert (opens_with(SECRET_KEY, secret), opens_with(SECRET_KEY, previous)) == (SECRET, ROTATED)
    found = await reopened.get_endpoint(created.endpoint_id)
    assert found is not None
    assert (found.secret, found.previous_secret) == (SECRET, ROTATED)


async def test_a_new_key_first_seals_every_row_again(
    new_store: OpenStore, database_url: str
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    store = await opened(new_store, old_key)
    created = await store.create_endpoint(endpoint(secret=SECRET))
    await store.close()
    [(sealed, _)] = await raw(database_url, COLUMNS)
    assert opens_with(old_key, sealed) == SECRET

    store = await opened(new_store, f"{new_key},{old_key}")  # newest first
    await store.close()
    [(resealed, _)] = await raw(database_url, COLUMNS)
    assert opens_with(new_key, resealed) == SECRET

    store = await opened(new_store, new_key)  # the old key can go now
    found = await store.get_endpoint(created.endpoint_id)
    assert found is not None
    assert found.secret == SECRET


async def test_a_key_that_opens_nothing_stops_the_open(
    store: FullStore, new_store: OpenStore, database_url: str
) -> None:
    await store.create_endpoint(endpoint(secret=SECRET))
    await store.close()
    before = await raw(database_url, COLUMNS)
    with pytest.raises(errors.StoreError, match="GATEWAY_SECRET_KEY") as caught:
        await opened(new_store, Fernet.generate_key().decode())
    assert SECRET not in caught.value.detail
    assert await raw(database_url, COLUMNS) == before
