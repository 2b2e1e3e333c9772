"""Endpoint secrets are encrypted at rest (Fernet under ``GATEWAY_SECRET_KEY``, or the install's
generated key); plaintext rows migrate on open; rotation re-encrypts; a wrong key stops the start."""

from __future__ import annotations

import sqlite3
import stat
import tomllib
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet

from gateway import errors, localsecrets, log, models, signing
from gateway.settings import Settings, load_settings
from gateway.store.secretbox import PREFIX
from gateway.store.sqlite import SQLiteStore
from tests.database import raw

Client = TestClient[web.Request, web.Application]
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "gateway.toml"


def raw_endpoints(path: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT secret, previous_secret FROM endpoints"))


def raw_text(path: Path) -> str:
    """Every value of every endpoint row, as the file holds it."""
    with sqlite3.connect(path) as conn:
        return " ".join(
            str(value) for row in conn.execute("SELECT * FROM endpoints") for value in row
        )


def an_endpoint(secret: str) -> models.Endpoint:
    return models.Endpoint(
        endpoint_id=models.new_id(),
        url="http://127.0.0.1:9/hook",
        secret=secret,
        created_at=1.0,
        updated_at=1.0,
    )


async def reopened(path: Path, secret_key: str = "") -> SQLiteStore:
    store = SQLiteStore(path, secret_key)
    await store.open()
    return store


async def test_created_and_rotated_secrets_are_never_stored_in_plaintext(
    gateway: Client, settings: Settings
) -> None:
    given = signing.new_secret()
    created = await gateway.post(
        "/api/v1/endpoints", json={"url": "http://127.0.0.1:9/hook", "secret": given}
    )
    assert created.status == 201
    endpoint_id = (await created.json())["endpoint_id"]
    generated = await gateway.post("/api/v1/endpoints", json={"url": "http://127.0.0.1:9/other"})
    generated_secret = (await generated.json())["secret"]
    rotated = await gateway.post(f"/api/v1/endpoints/{endpoint_id}/rotate-secret")
    assert rotated.status == 200
    new_secret = (await rotated.json())["secret"]

    rows = await raw(settings.database_url, "SELECT * FROM endpoints")  # either backend
    text = " ".join(str(value) for row in rows for value in row)
    assert "whsec_" not in text
    for secret in (given, generated_secret, new_secret):
        assert secret not in text
        assert secret.removeprefix("whsec_") not in text
    columns = await raw(settings.database_url, "SELECT secret, previous_secret FROM endpoints")
    assert all(value is None or value.startswith(PREFIX) for row in columns for value in row)
    view = await (await gateway.get(f"/api/v1/endpoints/{endpoint_id}")).json()
    assert view["secret"] == log.mask(new_secret)  # read back through the key


async def test_the_store_reads_back_what_it_sealed(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = await reopened(path)
    endpoint = an_endpoint(signing.new_secret())
    await store.create_endpoint(endpoint)
    rotated = await store.rotate_secret(endpoint.endpoint_id, signing.new_secret(), 10.0, 2.0)
    assert rotated is not None
    await store.close()

    store = await reopened(path)
    again = await store.get_endpoint(endpoint.endpoint_id)
    await store.close()
    assert again is not None
    assert (again.secret, again.previous_secret) == (rotated.secret, endpoint.secret)
    assert again.signing_secrets(5.0) == (rotated.secret, endpoint.secret)


async def test_plaintext_rows_are_encrypted_on_open(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = await reopened(path)
    endpoint = an_endpoint(signing.new_secret())
    await store.create_endpoint(endpoint)
    await store.close()
    old_current, old_previous = (
        "whsec_" + "QUJDREVGR0hJSktMTU5PUFFS",
        "whsec_" + "WllYV1ZVVFNSUVBPTk1MS0pJ",
    )
    with sqlite3.connect(path) as conn:  # as a version before encryption left it
        conn.execute(
            "UPDATE endpoints SET secret = ?, previous_secret = ?, previous_secret_expires_at = 9e9",
            (old_current, old_previous),
        )
    assert "whsec_" in raw_text(path)

    store = await reopened(path)
    migrated = await store.get_endpoint(endpoint.endpoint_id)
    await store.close()
    assert migrated is not None
    assert (migrated.secret, migrated.previous_secret) == (old_current, old_previous)
    assert "whsec_" not in raw_text(path)


async def test_rotating_the_key_re_encrypts_every_row(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    store = await reopened(path, old_key)
    endpoint = an_endpoint(signing.new_secret())
    await store.create_endpoint(endpoint)
    await store.close()
    [(sealed, _)] = raw_endpoints(path)
    assert Fernet(old_key).decrypt(sealed.removeprefix(PREFIX)).decode() == endpoint.secret

    store = await reopened(path, f"{new_key},{old_key}")  # newest first
    await store.close()
    [(resealed, _)] = raw_endpoints(path)
    assert Fernet(new_key).decrypt(resealed.removeprefix(PREFIX)).decode() == endpoint.secret

    store = await reopened(path, new_key)  # the old key can go now
    found = await store.get_endpoint(endpoint.endpoint_id)
    await store.close()
    assert found is not None
    assert found.secret == endpoint.secret
    assert "whsec_" not in raw_text(path)


async def test_a_wrong_key_stops_the_open_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    store = await reopened(path, Fernet.generate_key().decode())
    await store.create_endpoint(an_endpoint(signing.new_secret()))
    await store.close()
    before = raw_endpoints(path)
    with pytest.raises(errors.StoreError, match="GATEWAY_SECRET_KEY"):
        await reopened(path, Fernet.generate_key().decode())
    assert raw_endpoints(path) == before


async def test_without_a_key_the_install_generates_one_beside_the_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "gateway.db"
    store = await reopened(path)
    endpoint = an_endpoint(signing.new_secret())
    await store.create_endpoint(endpoint)
    await store.close()
    secrets_file = path.parent / localsecrets.FILE_NAME
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    key = tomllib.loads(secrets_file.read_text())["secret_key"]
    [(sealed, _)] = raw_endpoints(path)
    assert Fernet(key).decrypt(sealed.removeprefix(PREFIX)).decode() == endpoint.secret

    # Moving to a configured key: the generated one still opens the old rows, once.
    configured = Fernet.generate_key().decode()
    store = await reopened(path, configured)
    await store.close()
    [(resealed, _)] = raw_endpoints(path)
    assert Fernet(configured).decrypt(resealed.removeprefix(PREFIX)).decode() == endpoint.secret


def test_a_malformed_key_is_refused_at_load(tmp_path: Path) -> None:
    environ = {"GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}"}
    with pytest.raises(errors.ConfigError, match="secret_key: key 2 is not a Fernet key"):
        load_settings(
            CONFIG, {**environ, "GATEWAY_SECRET_KEY": f"{Fernet.generate_key().decode()},nope"}
        )
    settings = load_settings(
        CONFIG, {**environ, "GATEWAY_SECRET_KEY": Fernet.generate_key().decode()}
    )
    assert settings.secret_key not in repr(settings)
